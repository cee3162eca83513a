"""Per-class confidence bars, repainted on every prediction.

One painted widget rather than a label and a progress bar per class: a frame's
update is a single repaint with no layout work, whatever the class count.

Names are drawn whole: the font shrinks (to ``MIN_FONT``) until the longest
name of 16 characters or fewer fits beside "100%". When the rows would get too
thin to read (many classes on a small panel), only the most likely classes are
drawn and a last line says how many more there are.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Slot
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from kiosk.predict import Prediction
from kiosk.ui.style import class_color

NOT_SURE_COLOR = "#ffb74d"
INSTANT_COLOR = "#8a93a0"
# Rows thinner than this are not drawn (the top classes are, with "+N more").
MIN_ROW = 18
MIN_FONT = 11
# Names up to this long are never elided in the bars.
WHOLE_NAME = 16


def caption_for(prediction: Prediction | None) -> tuple[str, str] | None:
    """(text, colour) of the line over the bars, or None: "not sure" or an instant guess."""
    if prediction is None:
        return None
    if not prediction.sure:
        return "Not sure: no class fits", NOT_SURE_COLOR
    if prediction.source == "imprinted":
        return "Instant guess from the samples · Train to improve", INSTANT_COLOR
    return None


class PredictionView(QWidget):
    """Confidence bars in class colours; the top class is highlighted.

    Over the bars a caption says "Not sure" when the top confidence is below
    the head's threshold (no bar is highlighted then), or that the answer is
    an instant guess of the imprinted head before training.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PredictionView")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(150, 90)
        self._names: tuple[str, ...] = ()
        self._probabilities: tuple[float, ...] = ()
        self._top: int | None = None
        self._colors: tuple[int, ...] = ()
        self._placeholder = "Train to see live predictions here"
        self._caption: tuple[str, str] | None = None
        self._shown: tuple = ()
        self.scale = 1.0
        self.drawn_labels: list[str] = []  # the names as last drawn (tests read them)

    def sizeHint(self) -> QSize:
        return QSize(320, 200)

    @Slot(object)
    def set_prediction(self, prediction: Prediction | None) -> None:
        """Show a ``Prediction`` (or clear with ``None``)."""
        if prediction is None:
            if self._probabilities:
                self._probabilities = ()
                self._top = None
                self._caption = None
                self._shown = ()
                self.update()
            return
        names = tuple(str(n) for n in prediction.class_names)
        probabilities = tuple(float(p) for p in prediction.probabilities)
        # Bars are in head order; colours follow the classes' store positions.
        colors = tuple(prediction.class_indices)
        top: int | None = max(range(len(probabilities)), key=probabilities.__getitem__)
        if not prediction.sure:
            top = None  # no class is named when the head is not sure
        caption = caption_for(prediction)
        # Repaint only when what is drawn changes (whole percents, the top bar,
        # the caption): every frame brings a prediction, and on a small board
        # painting identical bars 30 times a second takes CPU from the video.
        shown = (names, colors, top, caption, tuple(round(100 * p) for p in probabilities))
        self._probabilities = probabilities
        if shown == self._shown:
            return
        self._shown = shown
        self._names, self._colors, self._top, self._caption = names, colors, top, caption
        self.update()

    @property
    def caption(self) -> str | None:
        """The line shown over the bars, if any."""
        return None if self._caption is None else self._caption[0]

    def set_placeholder(self, text: str) -> None:
        if text != self._placeholder:
            self._placeholder = text
            self.update()

    @property
    def probabilities(self) -> tuple[float, ...]:
        return self._probabilities

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if not self._probabilities:
            panel = QPainterPath()
            radius = 10 * self.scale
            panel.addRoundedRect(QRectF(self.rect()), radius, radius)
            painter.fillPath(panel, QColor("#1b1f25"))
            painter.setPen(QColor("#8a93a0"))
            font = QFont(self.font())
            font.setPixelSize(round(16 * self.scale))
            painter.setFont(font)
            painter.drawText(
                self.rect().adjusted(12, 0, -12, 0),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self._placeholder,
            )
            painter.end()
            return
        gap = 6 * self.scale
        header = 0.0
        if self._caption is not None:
            text, caption_color = self._caption
            header = round(22 * self.scale)
            caption_font = QFont(self.font())
            caption_font.setPixelSize(round(15 * self.scale))
            caption_font.setBold(True)
            painter.setFont(caption_font)
            painter.setPen(QColor(caption_color))
            box = QRectF(0, 0, self.width(), header)
            elided = painter.fontMetrics().elidedText(
                text, Qt.TextElideMode.ElideRight, int(box.width())
            )
            painter.drawText(
                box, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, elided
            )
            header += gap
        room = self.height() - header
        order = list(range(len(self._probabilities)))
        count = len(order)
        hidden = 0
        fits = int((room + gap) // (MIN_ROW + gap))
        if count > fits:
            # Too many to read: the likeliest classes, in their usual order, and a count.
            fits = max(1, fits - 1)
            keep = sorted(order, key=lambda i: -self._probabilities[i])[:fits]
            order = sorted(keep)
            hidden = count - len(order)
            count = len(order) + 1
        row = min(48 * self.scale, max(float(MIN_ROW), (room - gap * (count - 1)) / count))
        pad = 10 * self.scale
        font = self._bar_font(row, pad)
        top = header + max(0.0, (room - count * row - (count - 1) * gap) / 2)
        self.drawn_labels = []
        for slot, i in enumerate(order):
            probability = self._probabilities[i]
            color = class_color(self._colors[i] if i < len(self._colors) else i)
            is_top = i == self._top
            name = self._names[i] if i < len(self._names) else f"Class {i + 1}"
            # The bar is the whole row: name on its left, percentage on its right.
            track = QRectF(0, top + slot * (row + gap), self.width(), row)
            radius = min(12 * self.scale, track.height() / 2.5)
            outline = QPainterPath()
            outline.addRoundedRect(track, radius, radius)
            painter.fillPath(outline, QColor("#262b33"))
            filled = QRectF(track.left(), track.top(), track.width() * probability, row)
            fill = QColor(color)
            if not is_top:
                fill.setAlpha(150)
            painter.save()
            painter.setClipRect(filled)
            painter.fillPath(outline, fill)
            painter.restore()
            font.setBold(is_top)
            painter.setFont(font)
            metrics = painter.fontMetrics()
            percent = f"{100 * probability:.0f}%"
            text_box = track.adjusted(pad, 0, -pad, 0)
            space = text_box.width() - metrics.horizontalAdvance("100%") - pad
            label = metrics.elidedText(name, Qt.TextElideMode.ElideRight, max(0, int(space)))
            self.drawn_labels.append(label)
            # Dark text where the bar is filled, light text on the empty track:
            # readable whatever the class colour and the confidence.
            for clip, pen in (
                (filled, QColor("#101317")),
                (QRectF(filled.right(), track.top(), track.width(), row), QColor("#eef1f5")),
            ):
                painter.save()
                painter.setClipRect(clip)
                painter.setPen(pen)
                align = Qt.AlignmentFlag.AlignVCenter
                painter.drawText(text_box, align | Qt.AlignmentFlag.AlignLeft, label)
                painter.drawText(text_box, align | Qt.AlignmentFlag.AlignRight, percent)
                painter.restore()
        if hidden:
            font.setBold(False)
            painter.setFont(font)
            painter.setPen(QColor(INSTANT_COLOR))
            box = QRectF(pad, top + len(order) * (row + gap), self.width() - 2 * pad, row)
            painter.drawText(
                box,
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                f"+{hidden} more classes",
            )
        painter.end()

    def _bar_font(self, row: float, pad: float) -> QFont:
        """The bars' font: as big as the row allows, small enough for whole names."""
        font = QFont(self.font())
        font.setBold(True)  # the top bar is bold: size for it
        size = max(MIN_FONT, round(min(row * 0.5, 20 * self.scale)))
        longest = max((n for n in self._names if len(n) <= WHOLE_NAME), key=len, default="")
        while size > MIN_FONT:
            font.setPixelSize(size)
            metrics = QFontMetrics(font)
            space = self.width() - 3 * pad - metrics.horizontalAdvance("100%")
            if metrics.horizontalAdvance(longest) <= space:
                break
            size -= 1
        font.setPixelSize(size)
        return font
