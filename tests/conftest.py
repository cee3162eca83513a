"""Shared fixtures: where the real models and data live.

Models and images are never committed; they are read in place from the shared
folder beside the checkout (``../shared``), or from ``KIOSK_SHARED_DIR``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

# Qt tests run headless; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KIOSK_SHARED_DIR", ROOT.parent / "shared")).resolve()
MODELS = SHARED / "models"
DATA = SHARED / "data"

CPU_EXTRACTOR = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
EDGETPU_EXTRACTOR = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite"
BROKEN_MODEL = MODELS / "model_invoking_error.tflite"
MOBILENET_V2 = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
MOBILENET_V1_SMALL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
CORE50 = DATA / "core50_mini"
IMAGES = DATA / "images"

T = TypeVar("T")


@pytest.fixture(autouse=True, scope="session")
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory):
    """Autosave and kiosk.log go to a temporary folder, never the user's data folder."""
    if os.environ.get("KIOSK_DATA_DIR"):
        yield
        return
    os.environ["KIOSK_DATA_DIR"] = str(tmp_path_factory.mktemp("kiosk-data"))
    try:
        yield
    finally:
        os.environ.pop("KIOSK_DATA_DIR", None)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"missing shared test file {path}; set KIOSK_SHARED_DIR")
    return path


@pytest.fixture(scope="session")
def cpu_extractor_path() -> Path:
    """The real MobileNet v1 embedding extractor: uint8 [1,224,224,3] -> [1,1,1,1024]."""
    return _require(CPU_EXTRACTOR)


@pytest.fixture(scope="session")
def extractor(cpu_extractor_path: Path):
    """The real MobileNet v1 extractor on the CPU, 2 threads, built once for the whole run.

    It serialises its own ``invoke()`` calls, so tests and the window's worker
    threads can share it; tests that need another model build their own.
    """
    from kiosk.embedding import EmbeddingExtractor

    return EmbeddingExtractor(cpu_extractor_path, num_threads=2, edgetpu=False)


@pytest.fixture(scope="session")
def edgetpu_extractor_path() -> Path:
    """The same extractor compiled for the Edge TPU (one edgetpu-custom-op)."""
    return _require(EDGETPU_EXTRACTOR)


@pytest.fixture(scope="session")
def broken_model_path() -> Path:
    """A model whose only op is an unknown custom op."""
    return _require(BROKEN_MODEL)


@pytest.fixture(scope="session")
def core50_dir() -> Path:
    """90 real 128x128 frames of 10 objects, one folder per class."""
    return _require(CORE50)


@pytest.fixture(scope="session")
def images_dir() -> Path:
    """Real test images (cat.bmp, grace_hopper.bmp, ...)."""
    return _require(IMAGES)


def fast_sample(values: Sequence[T], ids: Sequence[str], every: int = 12) -> list[Any]:
    """Parameters for a long case list, most of them marked ``slow``.

    The fast loop (``-m "not slow"``) keeps the first case of each group (an id
    up to its last ``/``) and every ``every``-th case, so each kind of input is
    still tried there; the full suite runs them all.
    """
    seen: set[str] = set()
    params = []
    for index, (value, case_id) in enumerate(zip(values, ids, strict=True)):
        group = case_id.rsplit("/", 1)[0]
        fast = group not in seen or index % every == 0
        seen.add(group)
        params.append(pytest.param(value, id=case_id, marks=() if fast else pytest.mark.slow))
    return params
