"""A small persistent badge in the live picture's top-left corner.

The status line shows a message for a few seconds and then goes back to
hints; some facts must stay in view for the whole run (the kiosk fell back to
the CPU because no Edge TPU was found). Given the kiosk window, the badge moves
into its live picture (``VideoView``), which keeps it under the prediction
banner and clear of the other overlays; given any other widget, it floats over
that widget's top-left corner. It wraps rather than grow past half the width.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QWidget

MARGIN = 20


class CornerBadge(QLabel):
    """A label pinned to the top-left corner of ``parent``."""

    def __init__(self, text: str, parent: QWidget) -> None:
        super().__init__(text, parent)
        self.setObjectName("cornerBadge")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet(
            "#cornerBadge { background: #8a5a00; color: white; border-radius: 6px;"
            " padding: 4px 10px; font-weight: bold; }"
        )
        self.setToolTip(text)
        self.setAccessibleName(text)
        self.setWordWrap(True)
        from kiosk.ui.video_view import VideoView

        video = parent.findChild(VideoView)
        if video is not None:
            self.ensurePolished()
            video.add_corner_widget(self, "top-left")
            return
        parent.installEventFilter(self)
        # Size it with the stylesheet's padding and bold font, not the defaults.
        self.ensurePolished()
        self.adjustSize()
        self._place()
        self.raise_()
        self.show()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parent() and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self._place()
            self.raise_()
        return False

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            # The window's stylesheet may change the font after construction:
            # size again each time, within the window.
            self.setMaximumWidth(max(0, parent.width() - 2 * MARGIN))
            self.adjustSize()
            self.move(MARGIN, MARGIN)
