"""Per-class accuracy and the confusion matrix on held-out samples, painted.

Display only: it is handed a ``kiosk.learn.evaluation.Evaluation`` (or None) after
each training. One painted widget, like the prediction bars, so it fits the
small lower panel at 800x480: a row per class (name, accuracy bar, %) and, when
the panel is wide enough, the confusion matrix as a heat map beside it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt, Slot
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from kiosk.ui.style import class_color

GOOD = QColor("#81c784")
WEAK = QColor("#ffb74d")
BAD = QColor("#e57373")
TRACK = QColor("#262b33")
TEXT = QColor("#eef1f5")
MUTED = QColor("#8a93a0")


def accuracy_color(value: float | None) -> QColor:
    """Green from 90 %, amber from 70 %, red below."""
    if value is None:
        return MUTED
    return GOOD if value >= 0.9 else WEAK if value >= 0.7 else BAD


class EvaluationView(QWidget):
    """Held-out accuracy per class, and which class was taken for which."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("EvaluationView")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(150, 80)
        self.evaluation: Any = None
        self.class_indices: tuple[int, ...] = ()
        self.scale = 1.0

    def sizeHint(self) -> QSize:
        return QSize(320, 200)

    @Slot(object)
    def set_evaluation(self, evaluation: Any, class_indices: tuple[int, ...] = ()) -> None:
        """Show an ``Evaluation`` (None: a placeholder); colours follow ``class_indices``."""
        self.evaluation = evaluation
        self.class_indices = tuple(class_indices)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.fillRect(self.rect(), QColor("#1b1f25"))
        evaluation = self.evaluation
        font = QFont(self.font())
        if evaluation is None or evaluation.num_samples == 0:
            font.setPixelSize(round(15 * self.scale))
            painter.setFont(font)
            painter.setPen(MUTED)
            painter.drawText(
                self.rect().adjusted(12, 0, -12, 0),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                "Per-class accuracy appears after training, once a class has 5 samples",
            )
            painter.end()
            return
        count = len(evaluation.class_names)
        pad = 6 * self.scale
        height = self.height() - 2 * pad
        # The matrix is square and only drawn when it leaves the rows enough room.
        side = min(height, self.width() * 0.4)
        show_matrix = count > 1 and side >= 3 * count and self.width() - side > 160 * self.scale
        rows_width = self.width() - (side + 2 * pad if show_matrix else 0)
        self._paint_rows(painter, font, QRectF(pad, pad, rows_width - 2 * pad, height))
        if show_matrix:
            self._paint_matrix(painter, QRectF(self.width() - side - pad, pad, side, side))
        painter.end()

    def _paint_rows(self, painter: QPainter, font: QFont, box: QRectF) -> None:
        evaluation = self.evaluation
        count = len(evaluation.class_names)
        gap = 3 * self.scale
        row = min(30 * self.scale, max(10.0, (box.height() - gap * (count - 1)) / count))
        font.setPixelSize(max(9, round(min(row * 0.62, 16 * self.scale))))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        name_width = min(box.width() * 0.45, 130 * self.scale)
        percent_width = metrics.horizontalAdvance("100%") + 4
        weakest = evaluation.weakest_class
        for i, (name, value) in enumerate(
            zip(evaluation.class_names, evaluation.per_class_accuracy, strict=True)
        ):
            y = box.top() + i * (row + gap)
            color = class_color(self.class_indices[i] if i < len(self.class_indices) else i)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(color)
            dot = row * 0.45
            painter.drawEllipse(QRectF(box.left(), y + (row - dot) / 2, dot, dot))
            label_box = QRectF(box.left() + dot + 4, y, name_width - dot - 4, row)
            painter.setPen(TEXT)
            font.setBold(i == weakest and value is not None and value < 1.0)
            painter.setFont(font)
            label = metrics.elidedText(name, Qt.TextElideMode.ElideRight, int(label_box.width()))
            painter.drawText(label_box, Qt.AlignmentFlag.AlignVCenter, label)
            track = QRectF(
                box.left() + name_width + 4,
                y + row * 0.2,
                max(0.0, box.width() - name_width - percent_width - 8),
                row * 0.6,
            )
            painter.fillRect(track, TRACK)
            if value is not None:
                painter.fillRect(
                    QRectF(track.left(), track.top(), track.width() * value, track.height()),
                    accuracy_color(value),
                )
            painter.setPen(accuracy_color(value))
            text = "–" if value is None else f"{100 * value:.0f}%"
            painter.drawText(
                QRectF(box.right() - percent_width, y, percent_width, row),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                text,
            )

    def _paint_matrix(self, painter: QPainter, box: QRectF) -> None:
        confusion = self.evaluation.confusion
        count = len(confusion)
        cell = box.width() / count
        totals = confusion.sum(axis=1)
        for t in range(count):
            for p in range(count):
                share = confusion[t, p] / totals[t] if totals[t] else 0.0
                base = QColor(GOOD) if t == p else QColor(BAD)
                base.setAlphaF(0.12 + 0.88 * float(share) if share else 0.06)
                painter.fillRect(
                    QRectF(box.left() + p * cell, box.top() + t * cell, cell - 1, cell - 1), base
                )
        # Rows: true class, columns: predicted; a class-coloured tick marks each.
        for i in range(count):
            color = class_color(self.class_indices[i] if i < len(self.class_indices) else i)
            painter.fillRect(QRectF(box.left() - 4, box.top() + i * cell, 3, cell - 1), color)
