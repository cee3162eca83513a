"""Small stand-ins: an extractor fast enough for property tests, a camera driver that hangs."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import cv2
import numpy as np

from kiosk.vision.sources import FrameSource


class FakeExtractor:
    """Duck-types ``EmbeddingExtractor``: (H, W, 3) uint8 -> (D,) float32 in microseconds.

    The embedding is the 2x2-pooled model input, so different pictures differ
    and the same decoded JPEG always gives the same vector.
    """

    on_edgetpu = False

    def __init__(self, feature_dim: int = 12, name: str = "fake.tflite", size: int = 32) -> None:
        assert feature_dim % 3 == 0
        self.feature_dim = feature_dim
        self.model_path = Path(name)
        self.sha256 = hashlib.sha256(name.encode()).hexdigest()
        self.size = size
        self.input_size = (size, size)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """Any (H, W, 3) uint8 -> (size, size, 3) uint8."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        return cv2.resize(np.ascontiguousarray(image[..., :3]), (self.size, self.size))

    def embed_input(self, model_input: np.ndarray) -> np.ndarray:
        cells = self.feature_dim // 3
        pooled = cv2.resize(model_input, (cells, 1), interpolation=cv2.INTER_AREA)
        return pooled.reshape(-1).astype(np.float32) / 255.0

    def embed(self, image: np.ndarray) -> np.ndarray:
        return self.embed_input(self.preprocess(image))


def picture(seed: int, size: int = 48) -> np.ndarray:
    """(size, size, 3) uint8: a random colour field, different for each seed."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    noise = rng.integers(-20, 20, (size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


class HangingSource(FrameSource):
    """A driver that hangs: ``read()`` blocks until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reading = threading.Event()
        self.closed = threading.Event()

    def describe(self) -> str:
        return "hanging camera"

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        self.reading.set()
        self.release.wait()
        return None

    def close(self) -> None:
        self.closed.set()
