"""The TFLite runtime layer: interpreter choice, Edge TPU handling, clean errors."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from kiosk.vision import runtime


def test_litert_is_preferred() -> None:
    assert runtime.interpreter_module().__name__ == "ai_edge_litert.interpreter"


def test_tflite_runtime_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy

    fallback = types.ModuleType("tflite_runtime")
    fallback.interpreter = types.ModuleType("tflite_runtime.interpreter")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "tflite_runtime", fallback)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fallback.interpreter)
    monkeypatch.setattr(numpy, "__version__", "1.26.4")  # the numpy it was built for
    assert runtime.interpreter_module() is fallback.interpreter
    # Under numpy 2 it fails on every model; say so instead.
    monkeypatch.setattr(numpy, "__version__", "2.1.0")
    with pytest.raises(runtime.RuntimeMissingError, match="tflite-runtime needs numpy < 2"):
        runtime.interpreter_module()


def test_no_runtime_at_all_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    with pytest.raises(runtime.RuntimeMissingError, match="pip install ai-edge-litert"):
        runtime.interpreter_module()


def test_loads_a_real_model_from_path_and_bytes(cpu_extractor_path) -> None:
    for model in (cpu_extractor_path, cpu_extractor_path.read_bytes()):
        interpreter = runtime.load_interpreter(model, num_threads=1)
        (output,) = interpreter.get_output_details()
        assert tuple(output["shape"]) == (1, 1, 1, 1024)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a TFLite model"),
        (b"hello world, not a model", "not a TFLite model"),
        (np.random.default_rng(0).bytes(4096), "not a TFLite model"),
    ],
)
def test_garbage_is_a_clean_value_error(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        runtime.load_interpreter(path)


def test_truncated_model_is_a_clean_value_error(cpu_extractor_path) -> None:
    content = cpu_extractor_path.read_bytes()
    for length in (8, 64, 1000, len(content) // 2, len(content) - 1):
        with pytest.raises(ValueError, match="could not be loaded"):
            runtime.load_interpreter(content[:length], num_threads=1)


def test_missing_file_and_folder(tmp_path) -> None:
    with pytest.raises(ValueError, match="not found"):
        runtime.load_interpreter(tmp_path / "nope.tflite")
    with pytest.raises(ValueError, match="is a folder"):
        runtime.load_interpreter(tmp_path)


def test_unknown_custom_op_is_named(broken_model_path) -> None:
    with pytest.raises(ValueError, match="fake-op-double"):
        runtime.load_interpreter(broken_model_path)


def test_edgetpu_model_without_delegate_names_the_cpu_model(edgetpu_extractor_path) -> None:
    with pytest.raises(
        ValueError, match=r"mobilenet_v1_1\.0_224_quant_embedding_extractor\.tflite"
    ):
        runtime.load_interpreter(edgetpu_extractor_path)


def test_no_edgetpu_on_this_machine() -> None:
    assert runtime.is_edgetpu_model(b"TFL3" * 2) is False
    assert not runtime.edgetpu_available()
    with pytest.raises(ValueError, match="no Edge TPU"):
        runtime.load_edgetpu_delegate()


def test_cpu_twin_name() -> None:
    assert runtime.cpu_twin_name("/m/x_edgetpu.tflite") == "x.tflite"
    assert runtime.cpu_twin_name("x.tflite") == "x.tflite"


def test_native_info_chatter_is_silenced(cpu_extractor_path) -> None:
    code = (
        "from kiosk.vision.runtime import load_interpreter\n"
        f"load_interpreter({str(cpu_extractor_path)!r}, num_threads=1)\n"
        "import sys; print('after', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "INFO: Created" not in done.stderr
    assert "after" in done.stderr
