"""Reading image files: the one decoder used by datasets, folder sources and imports.

An image file is named by a user (a dataset, a folder source, Import images),
so it is checked before it is decoded:

1. ``kiosk.safe_io`` refuses FIFOs and devices before opening them, and files
   over ``MAX_IMAGE_BYTES`` before reading them (a 6 GB ".jpg").
2. The width and height in the header (PNG, JPEG, BMP, WebP, TIFF, Netpbm,
   read by the ``imagesize`` package from the first bytes) must multiply to at
   most ``MAX_IMAGE_PIXELS``: a 196-byte PNG can claim 60000x60000, which
   OpenCV refuses only above 2^30 pixels, and 30000x30000 (900 MP, within
   OpenCV's limit) makes it allocate 2.7 GB before it finds the data missing.
3. OpenCV's own limit is lowered to the same number (``OPENCV_IO_MAX_IMAGE_PIXELS``,
   set in ``kiosk/__init__.py``; OpenCV reads it once, when ``cv2`` is loaded,
   so it only holds when kiosk is imported before cv2) for headers
   ``imagesize`` cannot read, and any ``cv2.error`` is caught.
"""

from __future__ import annotations

import io
import os

import cv2
import imagesize
import numpy as np

from kiosk import _MAX_IMAGE_PIXELS
from kiosk.safe_io import FileRefused, read_regular_file

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "ImageError",
    "header_size",
    "read_image",
    "read_rgb",
]

# What OpenCV decodes in every opencv-python build.
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff"}
    | {".ppm", ".pgm", ".pbm", ".pnm"}
)

# 8192 x 8192 (owned by kiosk/__init__.py, which hands it to OpenCV too).
MAX_IMAGE_PIXELS = _MAX_IMAGE_PIXELS
# A compressed image of MAX_IMAGE_PIXELS is far smaller than this.
MAX_IMAGE_BYTES = 1 << 28


class ImageError(ValueError):
    """An image file that cannot or must not be decoded; ``str()`` is one line."""


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header bytes, or None if the header is not understood."""
    try:
        width, height = imagesize.get(io.BytesIO(data))
    except Exception:  # a header that defeats the parser is one it does not understand
        return None
    if width < 0 or height < 0:
        return None
    return int(width), int(height)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB.

    Decodes the file's bytes with ``cv2.imdecode`` rather than ``cv2.imread``:
    that opens non-ASCII paths on every platform.

    Raises:
        ImageError: the file is missing, special (FIFO, device), too large, claims
            too many pixels, or does not decode. The message names the file.
    """
    name = os.fspath(path)
    try:
        data = read_regular_file(path, MAX_IMAGE_BYTES, "image")
    except FileRefused as error:
        raise ImageError(str(error)) from None
    if not data:
        raise ImageError(f"image {name} is empty")
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        width, height = size
        raise ImageError(
            f"image {name} claims {width}x{height} pixels; the largest accepted is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        # OpenCV's own size limit, or a decoder that gave up loudly.
        image = None
    if image is None or image.size == 0:
        raise ImageError(f"image {name} cannot be decoded (damaged or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray | None:
    """An image file as (H, W, 3) uint8 RGB, or ``None`` when ``read_image`` refuses it."""
    try:
        return read_image(path)
    except ImageError:
        return None
