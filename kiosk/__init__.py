"""kiosk: teach a camera new object classes in a minute, on an Edge TPU or a CPU."""

from __future__ import annotations

__version__ = "0.1.0"
