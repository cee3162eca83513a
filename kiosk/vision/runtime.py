"""The TFLite runtime: LiteRT's interpreter, the Edge TPU delegate, clear errors.

LiteRT (``ai-edge-litert``) is preferred; the older ``tflite_runtime`` package is
accepted as a fallback when LiteRT is not installed. Both expose the same
``Interpreter``/``load_delegate`` API.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from kiosk.vision.model_check import check_model_structure

EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"

# libedgetpu's file name per OS, as Coral's runtime packages install it.
_EDGETPU_LIBRARY = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}


class RuntimeMissingError(ImportError):
    """No TFLite interpreter package is installed."""


def interpreter_module() -> ModuleType:
    """The module that provides ``Interpreter`` and ``load_delegate``.

    LiteRT first; ``tflite_runtime`` only when LiteRT is absent.
    """
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        pass
    else:
        return litert
    try:
        from tflite_runtime import interpreter as tflite_runtime
    except ImportError:
        raise RuntimeMissingError(
            "no TFLite runtime is installed: run `pip install ai-edge-litert`"
        ) from None
    return tflite_runtime


def edgetpu_library_name() -> str:
    """The Edge TPU runtime library for this OS (``libedgetpu.so.1`` on Linux)."""
    return _EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")


def load_edgetpu_delegate(device: str | None = None) -> Any:
    """Load the Edge TPU delegate, or raise ``ValueError`` saying why not.

    Args:
        device: optional Coral device selector such as ``"usb"``, ``"pci:0"``.
    """
    options = {"device": device} if device else {}
    library = edgetpu_library_name()
    try:
        # Probe the library first: a failed load_delegate leaves a half-built
        # Delegate whose destructor prints a traceback.
        ctypes.CDLL(library)
        return interpreter_module().load_delegate(library, options)
    except (ValueError, OSError, RuntimeError) as error:
        raise ValueError(
            f"no Edge TPU available ({library} could not be loaded or found no device: {error})"
        ) from None


@functools.cache
def edgetpu_available() -> bool:
    """Whether an Edge TPU and its runtime are present. Cached: probing costs ~100 ms."""
    if os.environ.get("KIOSK_NO_EDGETPU"):
        return False
    try:
        load_edgetpu_delegate()
    except (ValueError, RuntimeMissingError):
        return False
    return True


def is_edgetpu_model(model: bytes) -> bool:
    """Whether a model was compiled for the Edge TPU: one of its operator codes is the
    Edge TPU custom op. Only the operator codes are read (never metadata, where a
    class may carry any name); a file that is no TFLite model is not one.
    """
    from kiosk.learn.tflite_head import model_custom_codes

    try:
        return EDGETPU_CUSTOM_OP in model_custom_codes(model)
    except ValueError:
        return False


def cpu_twin_name(path: str | os.PathLike[str]) -> str:
    """``x_edgetpu.tflite`` -> ``x.tflite``: the CPU model to use without an Edge TPU."""
    name = Path(path).name
    return name.replace("_edgetpu.tflite", ".tflite") if "_edgetpu" in name else name


def load_interpreter(
    model: str | os.PathLike[str] | bytes,
    *,
    num_threads: int | None = None,
    edgetpu: bool = False,
    name: str | None = None,
) -> Any:
    """Create and allocate an interpreter, turning every failure into ``ValueError``.

    Args:
        model: a path to a ``.tflite`` file, or its bytes.
        num_threads: CPU threads for the interpreter; ``None`` means all cores.
        edgetpu: run with the Edge TPU delegate (required for ``_edgetpu`` models).
        name: what to call the model in messages (default: its path).
    """
    label, content = read_model(model)
    label = name or label
    # LiteRT trusts the file: a corrupt shape can make it allocate gigabytes
    # (found by tests/test_fuzz_models.py). Refuse such files here instead.
    check_model_structure(content, label)
    if is_edgetpu_model(content) and not edgetpu:
        raise ValueError(
            f"{label} is compiled for the Edge TPU and needs one to run; "
            f"use the CPU model {cpu_twin_name(label)} instead"
        )
    delegates = [load_edgetpu_delegate()] if edgetpu else None
    threads = num_threads if num_threads is not None else (os.cpu_count() or 1)
    try:
        with _quiet_native_info():
            interpreter = interpreter_module().Interpreter(
                model_content=content, num_threads=threads, experimental_delegates=delegates
            )
            interpreter.allocate_tensors()
    except RuntimeMissingError:
        raise
    except Exception as error:  # the runtime raises ValueError/RuntimeError with C++ text
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{label} could not be loaded as a TFLite model: {detail}") from None
    return interpreter


def read_model(model: str | os.PathLike[str] | bytes) -> tuple[str, bytes]:
    """(a name for messages, the model's bytes), checked to be a TFLite flatbuffer.

    Raises:
        ValueError: missing, unreadable, or not a TFLite file.
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        label, content = "the model", bytes(model)
    else:
        path = Path(model)
        if not path.exists():
            raise ValueError(f"model file not found: {path}")
        if path.is_dir():
            raise ValueError(f"{path} is a folder, not a .tflite model file")
        try:
            label, content = str(path), path.read_bytes()
        except OSError as error:
            raise ValueError(f"cannot read model {path}: {error.strerror}") from None
    # Every TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError(f"{label} is not a TFLite model (no TFL3 file identifier)")
    return label, content


@contextlib.contextmanager
def _quiet_native_info() -> Iterator[None]:
    """Drop the runtime's native "INFO: Created ... delegate" chatter from stderr.

    The C++ runtime writes straight to file descriptor 2, beyond Python's reach,
    so the descriptor is parked in a temporary file and everything that is not an
    INFO line is written back.
    """
    try:
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (pythonw, pytest capture)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(stderr_fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), stderr_fd)
        try:
            yield
        finally:
            os.dup2(saved, stderr_fd)
            os.close(saved)
            sink.seek(0)
            kept = [
                line
                for line in sink.read().splitlines(keepends=True)
                if not line.startswith(b"INFO: ")
            ]
            if kept:
                os.write(stderr_fd, b"".join(kept))
