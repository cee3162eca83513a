"""From a camera frame to what a sample keeps: the capture room.

A capture stores the model input as JPEG and computes the embedding from the
*decoded* JPEG, so re-embedding the stored image later (another extractor, the
check after saving) gives exactly the stored embedding. The mirrored image's
embedding is computed the same way (one more inference) when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

__all__ = [
    "JPEG_QUALITY",
    "THUMBNAIL_SIZE",
    "CaptureData",
    "Extractor",
    "decode_model_input",
    "embed_model_input",
    "encode_model_input",
    "prepare_capture",
    "reembed_image",
    "thumbnail_of",
]

JPEG_QUALITY = 95
THUMBNAIL_SIZE = 96


class Extractor(Protocol):
    """What the capture room needs of an ``EmbeddingExtractor``."""

    feature_dim: int
    input_size: tuple[int, int]  # (width, height) of the model input

    def preprocess(self, image: np.ndarray) -> np.ndarray: ...

    def embed_input(self, model_input: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class CaptureData:
    """Everything a sample keeps of one frame.

    Attributes:
        embedding: (D,) float32.
        flipped: (D,) float32 embedding of the mirrored model input, or None.
        image: the JPEG model input.
        thumbnail: (T, T, 3) uint8 RGB.
    """

    embedding: np.ndarray
    flipped: np.ndarray | None
    image: bytes
    thumbnail: np.ndarray


def encode_model_input(model_input: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """(h, w, 3) uint8 RGB -> JPEG bytes."""
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(model_input, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"could not encode a {model_input.shape} image as JPEG")
    return buffer.tobytes()


def decode_model_input(data: bytes) -> np.ndarray:
    """JPEG bytes -> (h, w, 3) uint8 RGB; ValueError when it does not decode."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("stored sample image could not be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def thumbnail_of(model_input: np.ndarray) -> np.ndarray:
    """(T, T, 3) uint8 thumbnail of a model input."""
    return cv2.resize(model_input, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)


def embed_model_input(
    extractor: Extractor, model_input: np.ndarray, mirror: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """((D,) embedding, (D,) mirrored embedding or None) of a decoded model input."""
    embedding = np.asarray(extractor.embed_input(model_input), np.float32)
    if not mirror:
        return embedding, None
    flipped = extractor.embed_input(np.ascontiguousarray(model_input[:, ::-1]))
    return embedding, np.asarray(flipped, np.float32)


def prepare_capture(extractor: Extractor, frame: np.ndarray, mirror: bool = True) -> CaptureData:
    """Embed a (H, W, 3) uint8 RGB frame of any size (grey and RGBA are converted).

    Raises ValueError when ``frame`` is not an image.
    """
    model_input = extractor.preprocess(frame)
    image = encode_model_input(model_input)
    decoded = decode_model_input(image)
    embedding, flipped = embed_model_input(extractor, decoded, mirror)
    return CaptureData(embedding, flipped, image, thumbnail_of(decoded))


def reembed_image(
    extractor: Extractor, image: bytes, mirror: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The embeddings of a stored JPEG model input with ``extractor`` (ValueError: damaged)."""
    decoded = decode_model_input(image)
    width, height = extractor.input_size
    if decoded.shape[:2] != (height, width):  # made for another model input size
        decoded = extractor.preprocess(decoded)
    return embed_model_input(extractor, decoded, mirror)
