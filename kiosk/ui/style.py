"""Look and feel: the dark stylesheet, its size scale, and the class colours.

The stylesheet in ``kiosk.resources/kiosk.qss`` holds ``@NAME@`` size tokens; the
window picks a scale from its own height (a 7-inch 800x480 panel and a 1080p
screen both stay readable at arm's length) and renders the sheet with it.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from PySide6.QtGui import QColor

# Distinct, bright on dark, and readable with dark text on top (capture buttons).
CLASS_COLORS: tuple[str, ...] = (
    "#4fc3f7",  # sky
    "#ffb74d",  # amber
    "#81c784",  # green
    "#f48fb1",  # pink
    "#b39ddb",  # lavender
    "#fff176",  # yellow
    "#4db6ac",  # teal
    "#ff8a65",  # coral
    "#aed581",  # lime
    "#90caf9",  # light blue
    "#ce93d8",  # orchid
    "#e6ee9c",  # pale lime
)

# Minimum height of anything a finger has to hit, at scale 1 (Material and
# Apple guidance is 44-48 px).
TOUCH = 48

# Base sizes at scale 1.0 (the 800x480 panel); every token scales with the window.
_SIZES = {
    "FONT_S": 14,
    "FONT": 16,
    "FONT_L": 19,
    "FONT_XL": 24,
    "TOUCH": TOUCH,
    # A bordered button's content height: with its 2 px border it is TOUCH high.
    "TOUCH_IN": TOUCH - 4,
    "TOUCH_L": 56,
    "CAPTURE": 60,
    "PAD": 14,
    "PAD_L": 22,
    "RADIUS": 10,
    "RADIUS_L": 14,
    # Lists scroll by flicking: the bar only shows where you are.
    "SCROLL": 8,
}


def class_color(index: int) -> QColor:
    """The colour of class ``index`` (cycles after the palette runs out)."""
    return QColor(CLASS_COLORS[index % len(CLASS_COLORS)])


def scale_for_size(width: int, height: int) -> float:
    """A size scale for a ``width`` x ``height`` window: 1.0 on 800x480, 1.5 on 1080p.

    Steps rather than a continuous value, so resizing a window by a few pixels does
    not re-render the stylesheet.
    """
    if height >= 1000 and width >= 1600:
        return 1.5
    if height >= 760 and width >= 1100:
        return 1.25
    return 1.0


def px(value: float, scale: float) -> int:
    """``value`` px at scale 1, scaled and rounded."""
    return round(value * scale)


@lru_cache(maxsize=1)
def _template() -> str:
    return resources.files("kiosk.resources").joinpath("kiosk.qss").read_text("utf-8")


def render_stylesheet(scale: float = 1.0) -> str:
    """The application stylesheet with every ``@TOKEN@`` sized for ``scale``."""
    sheet = _template()
    for name, value in _SIZES.items():
        sheet = sheet.replace(f"@{name}@", str(px(value, scale)))
    return sheet


def font_px(name: str, scale: float) -> int:
    """The pixel size of a named font token (``"FONT"``, ``"FONT_L"``...) at ``scale``."""
    return px(_SIZES[name], scale)
