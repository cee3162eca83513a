"""Head surgery on the real MobileNet classifiers: cut, load, compare, train, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from kiosk.cli import extractor as extractor_cli
from kiosk.cli import train as train_cli
from kiosk.dataset import read_rgb
from kiosk.embedding import EmbeddingExtractor
from kiosk.learn import SoftmaxRegression, tflite_head
from kiosk.learn.metadata import read_standard_metadata
from kiosk.learn.surgery import cut_classifier_head
from kiosk.vision.runtime import load_interpreter
from tests import tflite_builders as tb
from tests.conftest import CPU_EXTRACTOR, EDGETPU_EXTRACTOR, MOBILENET_V1_SMALL, MOBILENET_V2

CLASSIFIERS = {
    "v1_0.25_128": (MOBILENET_V1_SMALL, "MobilenetV1/Logits/AvgPool_1a/AvgPool", 256),
    "v2_1.0_224": (MOBILENET_V2, "MobilenetV2/Logits/AvgPool", 1280),
}
IMAGE_NAMES = ("cat.bmp", "grace_hopper.bmp", "sunflower.bmp", "hotdog_test_0.bmp")


@pytest.fixture(scope="module")
def cut_models() -> dict[str, tuple[bytes, object]]:
    """Original bytes and SurgeryResult of each shared classifier."""
    out = {}
    for key, (path, _, _) in CLASSIFIERS.items():
        original = path.read_bytes()
        out[key] = (original, cut_classifier_head(original))
    return out


@pytest.fixture(scope="module")
def small_extractor_path(tmp_path_factory, cut_models) -> Path:
    """The cut MobileNet v1 0.25 (128x128 input, 256 features) as a file."""
    path = tmp_path_factory.mktemp("cut") / "v1_small_extractor.tflite"
    path.write_bytes(cut_models["v1_0.25_128"][1].model)
    return path


def _input(interpreter: Interpreter, image: np.ndarray) -> np.ndarray:
    """(1, H, W, 3) uint8: the image resized to the model input, as the kiosk feeds it."""
    import cv2

    _, height, width, _ = interpreter.get_input_details()[0]["shape"]
    return cv2.resize(image, (int(width), int(height)), interpolation=cv2.INTER_AREA)[None]


@pytest.mark.parametrize("key", sorted(CLASSIFIERS))
def test_cut_output_equals_the_original_intermediate_tensor(
    key: str, cut_models, images_dir: Path
) -> None:
    original, result = cut_models[key]
    _, feature_name, dim = CLASSIFIERS[key]
    assert result.feature_name == feature_name
    assert result.feature_shape == (1, 1, 1, dim)
    assert result.removed_ops == ("CONV_2D", "RESHAPE", "SOFTMAX")
    assert result.dropped_metadata == ()
    assert result.rewritten_metadata == ("TFLITE_METADATA",)
    assert result.dropped_files == ("imagenet_labels.txt",)
    # The 1001-class kernel goes, and with it most of a small model.
    assert len(result.model) < len(original) - 1001 * dim

    reference = Interpreter(model_content=original, experimental_preserve_all_tensors=True)
    reference.allocate_tensors()
    cut = Interpreter(model_content=result.model)
    cut.allocate_tensors()
    (output,) = cut.get_output_details()
    assert tuple(output["shape"]) == (1, 1, 1, dim) and output["dtype"] == np.uint8
    distinct = set()
    for name in IMAGE_NAMES:
        image = read_rgb(images_dir / name)
        assert image is not None
        x = _input(reference, image)
        reference.set_tensor(reference.get_input_details()[0]["index"], x)
        reference.invoke()
        cut.set_tensor(cut.get_input_details()[0]["index"], x)
        cut.invoke()
        expected = reference.get_tensor(result.feature_index)
        actual = cut.get_tensor(output["index"])
        np.testing.assert_array_equal(actual, expected)
        distinct.add(actual.tobytes())
    assert len(distinct) == len(IMAGE_NAMES)  # real, image-dependent features


@pytest.mark.parametrize("key", sorted(CLASSIFIERS))
def test_cut_model_keeps_other_metadata_and_is_an_extractor(key: str, cut_models) -> None:
    original, result = cut_models[key]
    info = tflite_head.inspect_extractor(result.model)
    assert info.feature_dim == CLASSIFIERS[key][2] and not info.is_edgetpu
    before = tflite_head._parse_model(original)
    after = tflite_head._parse_model(result.model)
    assert [m.name for m in after.metadata] == [b"min_runtime_version", b"TFLITE_METADATA"]
    assert after.description == before.description
    # The standard metadata now describes the feature output; the rest is the backbone's.
    described, files = read_standard_metadata(result.model)
    original_described, _ = read_standard_metadata(original)
    assert files == {}
    assert described.inputs == original_described.inputs
    assert (described.author, described.license) == (
        original_described.author,
        original_described.license,
    )
    (embedding,) = described.outputs
    assert embedding.name == "embedding" and not embedding.files
    assert f"{CLASSIFIERS[key][2]}-d" in embedding.description
    # Every tensor still points at a buffer that exists; nothing dangles.
    assert all(0 <= t.buffer < len(after.buffers) for t in after.subgraphs[0].tensors)
    assert len(after.subgraphs[0].operators) == len(before.subgraphs[0].operators) - 3


def test_cut_model_trains_serializes_and_runs(small_extractor_path: Path, images_dir) -> None:
    extractor = EmbeddingExtractor(small_extractor_path, num_threads=1, edgetpu=False)
    assert extractor.feature_dim == 256 and extractor.input_size == (128, 128)
    names = ("cat_train_0.bmp", "dog_train_0.bmp", "hotdog_train_0.bmp")
    embeddings = np.stack([extractor.embed(read_rgb(images_dir / n)) for n in names])
    model = SoftmaxRegression(256, 3, seed=0)
    model.fit({"data_train": embeddings, "labels_train": np.arange(3)})
    saved = model.serialize_model(small_extractor_path)
    interpreter = load_interpreter(saved)
    (output,) = interpreter.get_output_details()
    assert tuple(output["shape"]) == (1, 3)
    for label, name in enumerate(names):
        x = extractor.preprocess(read_rgb(images_dir / name))[None]
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        assert int(np.argmax(interpreter.get_tensor(output["index"]))) == label


def test_kiosk_train_with_a_cut_extractor(
    small_extractor_path: Path, core50_dir: Path, tmp_path: Path
) -> None:
    metrics_path = tmp_path / "metrics.json"
    status = train_cli.main(
        [
            "--data-dir", str(core50_dir),
            "--embedding-extractor", str(small_extractor_path),
            "--output-dir", str(tmp_path),
            "--metrics-json", str(metrics_path),
            "--num-threads", "2",
        ]
    )  # fmt: skip
    assert status == 0
    metrics = json.loads(metrics_path.read_text())
    assert metrics["num_classes"] == 10
    assert metrics["agreement"] >= 0.9
    interpreter = load_interpreter(tmp_path / "retrained_model.tflite")
    assert tuple(interpreter.get_output_details()[0]["shape"]) == (1, 10)


# -- the command line ------------------------------------------------------------


def test_cli_writes_beside_the_input_by_default(tmp_path: Path, capsys) -> None:
    classifier = tmp_path / "small.tflite"
    classifier.write_bytes(MOBILENET_V1_SMALL.read_bytes())
    assert extractor_cli.main([str(classifier)]) == 0
    written = tmp_path / "small_embedding_extractor.tflite"
    assert tflite_head.inspect_extractor(written.read_bytes()).feature_dim == 256
    out = capsys.readouterr().out
    assert "MobilenetV1/Logits/AvgPool_1a/AvgPool [1, 1, 1, 256]" in out
    assert "CONV_2D, RESHAPE, SOFTMAX" in out


def test_cli_output_option(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.tflite"
    target.parent.mkdir()
    assert extractor_cli.main([str(MOBILENET_V1_SMALL), "-o", str(target)]) == 0
    assert target.stat().st_size > 0


def _float_classifier() -> bytes:
    """float32 [1, 4] -> FULLY_CONNECTED -> [1, 3] -> SOFTMAX, behind a RESHAPE."""
    f32 = tb.FLOAT32
    tensors = [
        tb.tensor("input", [1, 4], f32),
        tb.tensor("features", [1, 4], f32),
        tb.tensor("kernel", [3, 4], f32, 1),
        tb.tensor("bias", [3], f32, 2),
        tb.tensor("logits", [1, 3], f32),
        tb.tensor("probs", [1, 3], f32),
    ]
    op, opts = tb.schema.BuiltinOperator, tb.schema.BuiltinOptions
    ops = [
        tb.operator(0, [0], [1], opts.ReshapeOptions, tb._reshape_options([1, 4])),
        tb.operator(1, [1, 2, 3], [4], opts.FullyConnectedOptions,
                    tb.schema.FullyConnectedOptionsT()),
        tb.operator(2, [4], [5], opts.SoftmaxOptions, tb.schema.SoftmaxOptionsT(beta=1.0)),
    ]  # fmt: skip
    return tb.finish(
        [tb.subgraph(tensors, ops, [0], [5])],
        [tb.opcode(op.RESHAPE), tb.opcode(op.FULLY_CONNECTED), tb.opcode(op.SOFTMAX)],
        [tb.buffer(), tb.buffer(bytes(48)), tb.buffer(bytes(12))],
    )


@pytest.mark.parametrize(
    ("make_model", "message"),
    [
        (lambda: CPU_EXTRACTOR.read_bytes(), "already an embedding extractor"),
        (lambda: EDGETPU_EXTRACTOR.read_bytes(), "compiled for the Edge TPU"),
        (_float_classifier, r"float32 \(a float model\)"),
        (lambda: tb.fc_extractor_2d(), "reads the graph input directly"),
        (lambda: b"\x00" * 4 + b"TFL3" + b"\xff" * 64, "not a valid TFLite model|subgraph"),
        (lambda: b"garbage, not a model", "not a valid TFLite model"),
    ],
    ids=["extractor", "edgetpu", "float", "fc-on-input", "corrupt", "garbage"],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    make_model, message: str, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "in.tflite"
    path.write_bytes(make_model())
    with pytest.raises(ValueError, match=message):
        cut_classifier_head(path.read_bytes())
    assert extractor_cli.main([str(path), "-o", str(tmp_path / "out.tflite")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kiosk-extractor: error: ") and re.search(message, err)
    assert err.count("\n") == 1
    assert not (tmp_path / "out.tflite").exists()


def test_missing_file_and_self_overwrite(tmp_path: Path, capsys) -> None:
    assert extractor_cli.main([str(tmp_path / "nope.tflite")]) == 2
    assert "does not exist" in capsys.readouterr().err
    model = tmp_path / "m.tflite"
    model.write_bytes(MOBILENET_V1_SMALL.read_bytes())
    assert extractor_cli.main([str(model), "-o", str(model)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert model.read_bytes() == MOBILENET_V1_SMALL.read_bytes()
