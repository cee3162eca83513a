"""The live picture, with the prediction drawn over it.

The view pulls the grabber's newest frame on its own timer (60 Hz), so the
picture keeps moving whatever the embedding, training or saving threads are
doing. The prediction overlay comes from the controller's ``predictionChanged``.
A small meter in the bottom-right corner shows how new the view is compared
with every captured sample (``kiosk.learn.gate.novelty``, computed by the vision
worker from the frame's embedding): empty = already captured, full = new.
When the source fails, a message with the source's name and a Retry button
covers the picture.

Overlays never cover each other (``overlay_rects``): the prediction banner
spans the top of the view, with its font shrunk until a name of 16 characters
fits whole; small widgets (the demo control, the CPU badge) sit under it in
the top corners; the "Recording" pill and the novelty meter share the bottom
edge, the pill moving up above the meter when the view is too narrow for both.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QHideEvent,
    QImage,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from kiosk.learn.gate import NOVELTY_CAP
from kiosk.predict import Prediction
from kiosk.ui.style import class_color

# How often the view looks for a new frame: twice a 30 fps camera's rate, so
# timer jitter never makes it skip a frame (a look that finds none costs nothing).
POLL_HZ = 60
# How long the frame glows in a class's colour after a sample was stored.
FLASH_S = 0.18
# Novelty that fills the meter: twice the highest limit a "not sure" gate
# uses, so the meter reads "New view" (half full and more) where a trained head
# starts to say "not sure" about any view.
NOVELTY_FULL = 2 * NOVELTY_CAP
NOVELTY_COLOR = QColor("#4fc3f7")
# Gap between an overlay and the view's edge or another overlay.
GAP = 8
# The banner's text shrinks to fit down to this size, and only then elides.
MIN_BANNER_FONT = 12


def to_qimage(frame: np.ndarray) -> QImage:
    """(H, W, 3) uint8 RGB -> QImage sharing the array's memory (keep the array alive)."""
    frame = np.ascontiguousarray(frame)
    height, width, _ = frame.shape
    return QImage(frame.data, width, height, 3 * width, QImage.Format.Format_RGB888)


class SourceOverlay(QWidget):
    """The "no picture" card: what failed, on which source, and a Retry button."""

    retry = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("SourceOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(8)
        self.title = QLabel("No picture")
        self.title.setObjectName("OverlayTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint = QLabel(
            "Check the cable and press Retry (kiosk also retries by itself), "
            "or start kiosk with --source demo or a video file."
        )
        self.hint.setObjectName("OverlayHint")
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.button = QPushButton("Retry")
        self.button.setObjectName("RetryButton")
        self.button.setAccessibleName("Retry the camera")
        self.button.setMinimumWidth(160)
        self.button.clicked.connect(self.retry)
        layout.addWidget(self.title)
        layout.addWidget(self.text)
        layout.addWidget(self.hint)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignHCenter)

    def show_error(self, source: str, message: str) -> None:
        self.title.setText(f"No picture from {source}")
        self.text.setText(message)
        self.show()
        self.raise_()


class LatestFrame(Protocol):
    """What the view reads frames from (a ``FrameGrabber``)."""

    def latest(self) -> tuple[int, np.ndarray] | None: ...


class VideoView(QWidget):
    """Draws the newest frame letterboxed, the top prediction, and capture flashes."""

    retryRequested = Signal()

    def __init__(
        self, grabber: LatestFrame, source_name: str, parent: QWidget | None = None
    ) -> None:
        """
        Args:
            grabber: anything with ``latest() -> (frame_id, (H, W, 3) uint8) | None``.
            source_name: how to call the source in messages ("camera 0", "demo").
        """
        super().__init__(parent)
        self.setObjectName("VideoView")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 160)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self._grabber = grabber
        self._source_name = source_name
        self._frame: np.ndarray | None = None
        self._image: QImage | None = None
        self._frame_id: int | None = None
        self._prediction: Prediction | None = None
        self._stale = False
        self._error: str | None = None
        self._flash_color: QColor | None = None
        self._flash_until = 0.0
        self._capture_label: str | None = None
        self.novelty: float | None = None
        self.frames_shown = 0
        self.scale = 1.0
        self.banner_text = ""  # the banner's label as last drawn (tests read it)
        self._fonts: dict[tuple[int, bool, str], tuple[QFont, QFontMetrics]] = {}
        self._corners: dict[str, QWidget] = {}

        self.overlay = SourceOverlay(self)
        self.overlay.hide()
        self.overlay.retry.connect(self.retryRequested)

        self._timer = QTimer(self)
        self._timer.setInterval(round(1000 / POLL_HZ))
        self._timer.timeout.connect(self.pull)
        # The timer runs only while the view is on screen (showEvent/hideEvent):
        # a hidden or closed window should not keep pulling frames 60 times a
        # second on the GUI thread.

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._timer.stop()

    # ------------------------------------------------------------------ inputs
    @Slot()
    def pull(self) -> None:
        """Take the grabber's newest frame if it is new, and repaint."""
        latest = self._grabber.latest()
        if latest is not None and latest[0] != self._frame_id:
            self._frame_id, frame = latest
            self._frame = np.ascontiguousarray(frame)
            self._image = to_qimage(self._frame)
            self.frames_shown += 1
            self.update()
        elif self._flash_color is not None and time.monotonic() > self._flash_until:
            self._flash_color = None
            self.update()

    @Slot(object)
    def set_prediction(self, prediction: Prediction | None) -> None:
        self._prediction = prediction

    @Slot(object)
    def set_novelty(self, novelty: float | None) -> None:
        """How new the current view is (``kiosk.learn.gate.novelty``); None hides the meter."""
        if novelty is not None:
            novelty = min(1.0, max(0.0, float(novelty) / NOVELTY_FULL))
        if novelty != self.novelty:
            self.novelty = novelty
            self.update()

    def set_stale(self, stale: bool) -> None:
        self._stale = stale

    def set_capturing(self, label: str | None) -> None:
        """Show "Recording <label>" while a capture button is held (``None`` hides it)."""
        self._capture_label = label
        self.update()

    @Slot(int)
    def flash(self, class_index: int) -> None:
        """Glow in the class colour: a sample of that class was just stored."""
        self._flash_color = class_color(class_index)
        self._flash_until = time.monotonic() + FLASH_S
        self.update()

    @Slot(object)
    def set_source_error(self, error: str | None) -> None:
        self._error = error
        if error is None:
            self.overlay.hide()
        else:
            self.overlay.show_error(self._source_name, error)
            self._place_overlay()
        self.update()

    @property
    def has_frame(self) -> bool:
        return self._image is not None

    # ----------------------------------------------------------------- drawing
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_overlay()
        self.place_corner_widgets()

    # ---------------------------------------------------------------- overlays
    def add_corner_widget(self, widget: QWidget, corner: str) -> None:
        """Keep ``widget`` (a child of this view) in the "top-left" or "top-right" corner."""
        if widget.parentWidget() is not self:
            widget.setParent(self)
        self._corners[corner] = widget
        widget.installEventFilter(self)  # a new text changes its size: place it again
        widget.show()
        widget.raise_()
        self.place_corner_widgets()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and watched in self._corners.values():
            QTimer.singleShot(0, self.place_corner_widgets)
        return False

    def place_corner_widgets(self) -> None:
        """Put the corner widgets under the banner band, each at most half the width."""
        top = self.banner_height() + GAP
        for corner, widget in self._corners.items():
            widget.setMaximumWidth(max(0, self.width() // 2 - 2 * GAP))
            widget.adjustSize()
            x = GAP if corner == "top-left" else self.width() - widget.width() - GAP
            widget.move(QPoint(x, top))
            widget.raise_()

    def banner_height(self) -> int:
        """The band along the top that the prediction banner takes (reserved when absent)."""
        return max(48, round(min(self.height() * 0.16, 72 * self.scale)))

    def _pill_font(self) -> QFont:
        return self._font(18 * self.scale)

    def _novelty_font(self) -> QFont:
        return self._font(14 * self.scale)

    def _novelty_size(self) -> tuple[float, float]:
        metrics = self._metrics(14 * self.scale)
        text_w = max(metrics.horizontalAdvance("New view"), metrics.horizontalAdvance("Seen"))
        bar_w = round(70 * self.scale)
        return 12 + text_w + 10 + bar_w + 12, metrics.height() + 12

    def _pill_layout(self) -> tuple[QRectF, str] | None:
        """Where the "Recording" pill goes and its (possibly elided) text."""
        if self._capture_label is None or self._error is not None:
            return None
        metrics = self._metrics(18 * self.scale)
        height = metrics.height() + 16
        bottom: float = self.height() - GAP
        room: float = self.width() - 2 * GAP
        if self.novelty is not None:
            novelty_w, novelty_h = self._novelty_size()
            beside = self.width() - novelty_w - 3 * GAP
            if beside >= min(room, 160 * self.scale):
                room = beside
            else:  # too narrow for both side by side: the pill goes above the meter
                bottom -= novelty_h + GAP
        text = metrics.elidedText(
            f"●  Recording {self._capture_label}", Qt.TextElideMode.ElideRight, int(room - 32)
        )
        width = min(room, metrics.horizontalAdvance(text) + 32)
        return QRectF(GAP, bottom - height, width, height), text

    def overlay_rects(self) -> dict[str, QRectF]:
        """Every overlay shown now, in view coordinates (none overlaps another)."""
        rects: dict[str, QRectF] = {}
        if self._error is not None or self._image is None:
            return rects
        if self._prediction is not None:
            rects["banner"] = QRectF(0, 0, self.width(), self.banner_height())
        pill = self._pill_layout()
        if pill is not None:
            rects["recording"] = pill[0]
        if self.novelty is not None:
            width, height = self._novelty_size()
            rects["novelty"] = QRectF(
                self.width() - width - GAP, self.height() - height - GAP, width, height
            )
        for corner, widget in self._corners.items():
            if widget.isVisible():
                rects[corner] = QRectF(widget.geometry())
        return rects

    def _place_overlay(self) -> None:
        width = max(200, min(self.width() - 16, max(360, int(self.width() * 0.7))))
        room = self.height() - 16

        def needed() -> int:
            by_width = self.overlay.heightForWidth(width)
            return by_width if by_width > 0 else self.overlay.sizeHint().height()

        # On a small screen the advice goes first: the error and Retry must fit.
        self.overlay.hint.setVisible(True)
        if needed() > room:
            self.overlay.hint.setVisible(False)
        height = min(room, needed())
        self.overlay.setGeometry(
            (self.width() - width) // 2, (self.height() - height) // 2, width, height
        )

    def image_rect(self) -> QRect:
        """Where the frame is drawn: as large as fits, aspect kept, centred."""
        if self._image is None:
            return self.rect()
        img_w, img_h = self._image.width(), self._image.height()
        scale = min(self.width() / img_w, self.height() / img_h)
        w, h = round(img_w * scale), round(img_h * scale)
        return QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#0b0d10"))
        if self._image is None:
            if self._error is None:
                self._draw_center_text(painter, f"Starting {self._source_name}…")
            painter.end()
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        target = self.image_rect()
        painter.drawImage(target, self._image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._flash_color is not None and time.monotonic() <= self._flash_until:
            pen = QPen(self._flash_color, max(6, round(8 * self.scale)))
            painter.setPen(pen)
            painter.drawRect(target.adjusted(3, 3, -4, -4))
        if self._error is None:
            self._draw_prediction(painter)
            self._draw_capture_badge(painter)
            self._draw_novelty(painter)
        painter.end()

    def _font(self, px: float, bold: bool = True) -> QFont:
        return self._font_and_metrics(px, bold)[0]

    def _metrics(self, px: float, bold: bool = True) -> QFontMetrics:
        return self._font_and_metrics(px, bold)[1]

    def _font_and_metrics(self, px: float, bold: bool) -> tuple[QFont, QFontMetrics]:
        # Painted 30-60 times a second: fonts and their metrics are made once.
        key = (max(10, round(px)), bold, self.font().key())
        cached = self._fonts.get(key)
        if cached is None:
            font = QFont(self.font())
            font.setPixelSize(key[0])
            font.setBold(bold)
            cached = self._fonts[key] = (font, QFontMetrics(font))
        return cached

    def _draw_center_text(self, painter: QPainter, text: str) -> None:
        painter.setPen(QColor("#8a93a0"))
        painter.setFont(self._font(22 * self.scale, bold=False))
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, text)

    def _draw_prediction(self, painter: QPainter) -> None:
        prediction = self._prediction
        if prediction is None:
            return
        index = int(prediction.class_index)
        name = str(prediction.class_name)
        confidence = float(prediction.confidence)
        color = class_color(index)
        sure = prediction.sure
        if not sure:
            # Below the head's threshold: say so rather than force a class (and no
            # percentage beside it: "Not sure 97%" would read as sure).
            name, color = "Not sure", QColor("#ffb74d")
        elif prediction.source == "imprinted":
            name = f"{name}?"  # an instant guess before training
        # A banner across the top of the view (wider than a letterboxed picture):
        # big name, confidence beside it.
        height = self.banner_height()
        band = QRectF(0, 0, self.width(), height)
        painter.fillRect(band, QColor(11, 13, 16, 200))
        # A confidence meter along the banner's bottom edge in the class colour.
        meter = QRectF(band.left(), band.bottom() - 6, band.width() * confidence, 6)
        painter.fillRect(meter, color)
        swatch = QRectF(band.left() + 14, band.top() + height * 0.25, height * 0.5, height * 0.5)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawEllipse(swatch)
        text_rect = band.adjusted(swatch.right() - band.left() + 12, 0, -14, -6)
        percent = f"{100 * confidence:.0f}%" if sure else ""
        label = name if not self._stale else f"{name} (retrain)"
        # Shrink the font until the whole name fits; elide only below the smallest size.
        size = max(MIN_BANNER_FONT, round(height * 0.5))
        while True:
            font, metrics = self._font_and_metrics(size, True)
            room = text_rect.width() - metrics.horizontalAdvance(percent) - 16
            if metrics.horizontalAdvance(label) <= room or size <= MIN_BANNER_FONT:
                break
            size -= 1
        painter.setFont(font)
        label = metrics.elidedText(label, Qt.TextElideMode.ElideRight, int(room))
        self.banner_text = label
        painter.setPen(QColor("#ffffff"))
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, label
        )
        painter.setPen(color)
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, percent
        )

    def _draw_capture_badge(self, painter: QPainter) -> None:
        pill = self._pill_layout()
        if pill is None:
            return
        box, text = pill
        painter.setFont(self._pill_font())
        path = QPainterPath()
        path.addRoundedRect(box, box.height() / 2, box.height() / 2)
        painter.fillPath(path, QColor(179, 55, 47, 230))
        painter.setPen(QColor("#ffffff"))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_novelty(self, painter: QPainter) -> None:
        """A pill in the bottom-right corner: "New" and a bar filled by the novelty."""
        if self.novelty is None:
            return
        width, height = self._novelty_size()
        box = QRectF(self.width() - width - GAP, self.height() - height - GAP, width, height)
        painter.setFont(self._novelty_font())
        metrics = self._metrics(14 * self.scale)
        label = "New view" if self.novelty >= 0.5 else "Seen"
        text_w = max(metrics.horizontalAdvance("New view"), metrics.horizontalAdvance("Seen"))
        bar_w = round(70 * self.scale)
        path = QPainterPath()
        path.addRoundedRect(box, height / 2, height / 2)
        # Opaque enough to read over the picture and the black bars beside it alike.
        painter.fillPath(path, QColor(20, 23, 28, 225))
        painter.setPen(QPen(QColor("#3a414c"), 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(
            QRectF(box.left() + 12, box.top(), text_w, height),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            label,
        )
        bar = QRectF(box.right() - 12 - bar_w, box.center().y() - 4, bar_w, 8)
        painter.fillRect(bar, QColor(255, 255, 255, 50))
        painter.fillRect(QRectF(bar.left(), bar.top(), bar_w * self.novelty, 8), NOVELTY_COLOR)
