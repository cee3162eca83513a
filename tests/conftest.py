"""Shared fixtures: where the real models and data live.

Models and images are never committed; they are read in place from the shared
folder beside the checkout (``../shared``), or from ``KIOSK_SHARED_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

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
