"""Small widgets and helpers for a screen used with fingers only.

- ``ElidedLabel``: one line that ends in "…" (full text in its tooltip)
  instead of growing the window or being cut mid-letter.
- ``enable_flick``: a scroll area or list scrolls when a finger drags or
  flicks it. The gesture delays the press it starts with, so a flick that
  begins on a capture button scrolls and captures nothing.
- ``DisabledTapExplainer``: a tap on a disabled control says why it is
  disabled (``set_reason``), on the status line, instead of doing nothing.
- ``find_control``: a control by its accessible name ("Capture into red
  disc"), which is how tests and screen readers find things.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QLabel,
    QScroller,
    QScrollerProperties,
    QSizePolicy,
    QWidget,
)

# A press on a flickable list reaches the control under the finger after this
# long without movement (Qt's default is 0.25 s): quick enough to feel direct,
# long enough for a flick to start first.
PRESS_DELAY_S = 0.15


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" instead of growing or being cut off."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def elided_text(self) -> str:
        """The text as drawn at the current width (ends in "…" when it does not fit)."""
        rect = self.contentsRect()
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())

    def is_elided(self) -> bool:
        return self.elided_text() != self.text()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(
            self.contentsRect(),
            int(self.alignment()) | Qt.AlignmentFlag.AlignVCenter,
            self.elided_text(),
        )
        painter.end()


def enable_flick(area: QAbstractScrollArea) -> QScroller:
    """Let a finger drag and flick ``area`` (a scroll area or item view)."""
    if isinstance(area, QAbstractItemView):
        area.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        area.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    viewport = area.viewport()
    QScroller.grabGesture(viewport, QScroller.ScrollerGestureType.LeftMouseButtonGesture)
    scroller = QScroller.scroller(viewport)
    properties = scroller.scrollerProperties()
    properties.setScrollMetric(QScrollerProperties.ScrollMetric.MousePressEventDelay, PRESS_DELAY_S)
    # No rubber band past the ends: on a small panel it reads as "something broke".
    never = QScrollerProperties.OvershootPolicy.OvershootAlwaysOff
    properties.setScrollMetric(QScrollerProperties.ScrollMetric.VerticalOvershootPolicy, never)
    properties.setScrollMetric(QScrollerProperties.ScrollMetric.HorizontalOvershootPolicy, never)
    scroller.setScrollerProperties(properties)
    return scroller


class DisabledTapExplainer(QObject):
    """Says why a disabled control is disabled when someone taps it.

    ``set_reason(widget, text)`` records the reason (empty: none to give);
    a press on the widget while it is disabled emits ``explain(text)``.
    """

    explain = Signal(str)

    REASON = "whyDisabled"

    def watch(self, widget: QWidget) -> None:
        widget.installEventFilter(self)

    def set_reason(self, widget: QWidget, reason: str) -> None:
        widget.setProperty(self.REASON, reason)
        if not widget.isEnabled() and reason:
            # Tooltips are useless on a touch screen; screen readers read this.
            widget.setAccessibleDescription(reason)
        else:
            widget.setAccessibleDescription("")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.TouchBegin) and (
            isinstance(watched, QWidget) and not watched.isEnabled()
        ):
            reason = watched.property(self.REASON)
            if reason:
                self.explain.emit(str(reason))
                return True
        return False


def find_control(root: QWidget, name: str, kind: type[QWidget] = QWidget) -> QWidget:
    """The one visible ``kind`` under ``root`` whose accessible name is ``name``.

    Raises:
        LookupError: none or several match (the message lists what there is).
    """
    found = [
        widget
        for widget in root.findChildren(kind)
        if widget.accessibleName() == name and widget.isVisibleTo(root)
    ]
    if len(found) != 1:
        names = sorted({w.accessibleName() for w in root.findChildren(kind) if w.accessibleName()})
        raise LookupError(f"{len(found)} controls named {name!r}; named ones: {names}")
    return found[0]
