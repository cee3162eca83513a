"""Reading image files: the one decoder used by datasets, folder sources and imports."""

from __future__ import annotations

import os

import cv2
import numpy as np

# What OpenCV decodes in every opencv-python build.
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff"}
    | {".ppm", ".pgm", ".pbm", ".pnm"}
)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray | None:
    """An image file as (H, W, 3) uint8 RGB, or ``None`` when it cannot be decoded.

    Decodes the file's bytes with ``cv2.imdecode`` rather than ``cv2.imread``:
    that opens non-ASCII paths on every platform and prints nothing for a
    broken file.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
