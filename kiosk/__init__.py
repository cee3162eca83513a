"""kiosk: teach a camera new object classes in a minute, on an Edge TPU or a CPU."""

from __future__ import annotations

import os

# The one place the version is written: pyproject.toml reads it from here
# (dynamic version), so `kiosk --version`, the installed metadata and the
# "kiosk_version" in saved models always agree.
__version__ = "0.1.0"

# The most pixels an image file may claim before it is decoded (8192 x 8192;
# decoded as RGB it takes 200 MB). kiosk.vision.image_io checks headers against
# it; OpenCV gets the same limit for the headers that check cannot read. OpenCV
# reads OPENCV_IO_MAX_IMAGE_PIXELS once, when cv2 is loaded, and every kiosk
# module that imports cv2 is imported after this file. A value set by the user wins.
_MAX_IMAGE_PIXELS = 1 << 26
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(_MAX_IMAGE_PIXELS))
