"""Per-class accuracy and the confusion matrix on held-out samples, painted.

Display only: it is handed a ``kiosk.learn.evaluation.Evaluation`` (or None) after
each training. One painted widget, like the prediction bars: a title, a row
per class (number, name, accuracy bar, %), then the confusion matrix as a heat
map whose axes are labelled "true class" (rows) and "predicted class"
(columns), numbered like the rows. Text never goes below ``MIN_FONT`` px and
rows never below ``MIN_ROW`` px, so 20 classes stay readable: the view grows
taller than its panel and the panel scrolls by flicking (``heightForWidth``).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Slot
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from kiosk.learn.evaluation import Evaluation
from kiosk.ui.style import class_color

MIN_FONT = 12
MIN_ROW = 20
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
        self.setAccessibleName("Per-class accuracy and confusion matrix")
        size_policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        size_policy.setHeightForWidth(True)
        self.setSizePolicy(size_policy)
        self.setMinimumSize(150, 80)
        self.evaluation: Evaluation | None = None
        self.class_indices: tuple[int, ...] = ()
        self.scale = 1.0
        self.drawn_text: list[str] = []  # every string last painted (tests read it)
        self.font_px = 0
        self.row_px = 0.0

    def sizeHint(self) -> QSize:
        return QSize(320, 200)

    @Slot(object)
    def set_evaluation(
        self, evaluation: Evaluation | None, class_indices: tuple[int, ...] = ()
    ) -> None:
        """Show an ``Evaluation`` (None: a placeholder); colours follow ``class_indices``."""
        self.evaluation = evaluation
        self.class_indices = tuple(class_indices)
        self.updateGeometry()
        self.update()

    # ----------------------------------------------------------------- layout
    def _shown(self) -> Evaluation | None:
        """The evaluation to paint, or None: the placeholder instead."""
        if self.evaluation is None or self.evaluation.num_samples == 0:
            return None
        return self.evaluation

    def _count(self) -> int:
        evaluation = self._shown()
        return 0 if evaluation is None else len(evaluation.class_names)

    def _font(self, bold: bool = False) -> QFont:
        font = QFont(self.font())
        font.setPixelSize(max(MIN_FONT, round(14 * self.scale)))
        font.setBold(bold)
        return font

    def _metrics(self) -> tuple[float, float, float, float]:
        """(pad, line height, row height, row gap) at the current scale."""
        line = QFontMetrics(self._font()).height()
        pad = 6 * self.scale
        row = max(float(MIN_ROW), line + 4 * self.scale)
        return pad, float(line), row, 3 * self.scale

    def _two_lines(self, evaluation: Evaluation, width: float) -> bool:
        """Whether rows put the name on a line of its own (a narrow panel, long names)."""
        metrics = QFontMetrics(self._font(bold=True))
        longest = max((metrics.horizontalAdvance(n) for n in evaluation.class_names), default=0)
        fixed = metrics.horizontalAdvance("20") + 6 + metrics.horizontalAdvance("100%") + 4
        return longest + fixed + 30 * self.scale > width

    def _matrix_side(self, width: int) -> float:
        count = self._count()
        pad, line, _, _ = self._metrics()
        room = width - 2 * pad - 2 * line - 8
        # At least as long as its axis labels, so they are never cut.
        labels = QFontMetrics(self._font()).horizontalAdvance("predicted class →") + 8
        return max(0.0, min(room, max(float(labels), count * 22 * self.scale)))

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        evaluation = self._shown()
        if evaluation is None or not evaluation.class_names:
            return 80
        count = len(evaluation.class_names)
        pad, line, row, gap = self._metrics()
        if self._two_lines(evaluation, width - 2 * pad):
            row += line
        height = pad + line + 4 + count * (row + gap)
        if count > 1:
            height += 10 + line + 4 + line + self._matrix_side(width)
        return int(height + pad)

    def minimumSizeHint(self) -> QSize:
        return QSize(150, 80)

    # --------------------------------------------------------------- painting
    def _text(self, painter: QPainter, box: QRectF, flags: int, text: str) -> None:
        painter.drawText(box, flags, text)
        self.drawn_text.append(text)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.fillRect(self.rect(), QColor("#1b1f25"))
        self.drawn_text = []
        font = self._font()
        self.font_px = font.pixelSize()
        evaluation = self._shown()
        if evaluation is None or not evaluation.class_names:
            painter.setFont(font)
            painter.setPen(MUTED)
            self._text(
                painter,
                QRectF(self.rect().adjusted(12, 0, -12, 0)),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                "Per-class accuracy appears after training, once a class has 5 samples",
            )
            painter.end()
            return
        pad, line, row, gap = self._metrics()
        width = self.width() - 2 * pad
        two_lines = self._two_lines(evaluation, width)
        self.row_px = row + line if two_lines else row
        title = self._font(bold=True)
        painter.setFont(title)
        painter.setPen(MUTED)
        left = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft
        elide = QFontMetrics(title).elidedText
        self._text(
            painter,
            QRectF(pad, pad, width, line),
            left,
            elide("Accuracy per class", Qt.TextElideMode.ElideRight, int(width)),
        )
        y = pad + line + 4
        y = self._paint_rows(painter, evaluation, QRectF(pad, y, width, 0), row, gap, two_lines)
        if len(evaluation.class_names) > 1:
            y += 10
            painter.setFont(title)
            painter.setPen(MUTED)
            self._text(
                painter,
                QRectF(pad, y, width, line),
                left,
                elide("Confusion matrix", Qt.TextElideMode.ElideRight, int(width)),
            )
            y += line + 4
            side = self._matrix_side(self.width())
            self._paint_matrix(painter, evaluation.confusion, pad, y, side, line)
        painter.end()

    def _paint_rows(
        self,
        painter: QPainter,
        evaluation: Evaluation,
        box: QRectF,
        row: float,
        gap: float,
        two_lines: bool,
    ) -> float:
        """Paint the rows from ``box.top()``; returns the y below them.

        ``two_lines``: the number and name on one line, the bar and % under it.
        """
        font = self._font()
        metrics = QFontMetrics(font)
        line = float(metrics.height())
        number_width = metrics.horizontalAdvance("20") + 6
        if two_lines:
            name_width = box.width()
            bar_left = box.left() + number_width
        else:
            name_width = min(box.width() * 0.5, 180 * self.scale)
            bar_left = box.left() + name_width + 4
        percent_width = metrics.horizontalAdvance("100%") + 4
        weakest = evaluation.weakest_class
        y = box.top()
        for i, (name, value) in enumerate(
            zip(evaluation.class_names, evaluation.per_class_accuracy, strict=True)
        ):
            color = class_color(self.class_indices[i] if i < len(self.class_indices) else i)
            name_row = line if two_lines else row
            painter.setPen(color)
            font.setBold(True)
            painter.setFont(font)
            self._text(
                painter,
                QRectF(box.left(), y, number_width, name_row),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                str(i + 1),
            )
            label_box = QRectF(box.left() + number_width, y, name_width - number_width, name_row)
            painter.setPen(TEXT)
            font.setBold(i == weakest and value is not None and value < 1.0)
            painter.setFont(font)
            label = QFontMetrics(font).elidedText(
                name, Qt.TextElideMode.ElideRight, int(label_box.width())
            )
            self._text(painter, label_box, Qt.AlignmentFlag.AlignVCenter, label)
            bar_y = y + line if two_lines else y
            track = QRectF(
                bar_left,
                bar_y + row * 0.2,
                max(0.0, box.right() - percent_width - 4 - bar_left),
                row * 0.6,
            )
            painter.fillRect(track, TRACK)
            if value is not None:
                painter.fillRect(
                    QRectF(track.left(), track.top(), track.width() * value, track.height()),
                    accuracy_color(value),
                )
            painter.setPen(accuracy_color(value))
            self._text(
                painter,
                QRectF(box.right() - percent_width, bar_y, percent_width, row),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                "–" if value is None else f"{100 * value:.0f}%",
            )
            y += (row + line if two_lines else row) + gap
        return y

    def _paint_matrix(
        self,
        painter: QPainter,
        confusion: np.ndarray,
        left: float,
        top: float,
        side: float,
        line: float,
    ) -> None:
        """The heat map with "predicted class" over it and "true class" down its left."""
        count = len(confusion)
        font = self._font()
        painter.setFont(font)
        painter.setPen(MUTED)
        box = QRectF(left + line + 4, top + line + 4, side, side)
        self._text(
            painter,
            QRectF(box.left(), top, side, line),
            Qt.AlignmentFlag.AlignCenter,
            "predicted class →",
        )
        painter.save()
        painter.translate(QPointF(left + line, box.top() + side / 2))
        painter.rotate(-90)
        self._text(
            painter,
            QRectF(-side / 2, -line, side, line),
            Qt.AlignmentFlag.AlignCenter,
            "← true class",
        )
        painter.restore()
        cell = side / count
        totals = confusion.sum(axis=1)
        for t in range(count):
            for p in range(count):
                share = confusion[t, p] / totals[t] if totals[t] else 0.0
                base = QColor(GOOD) if t == p else QColor(BAD)
                base.setAlphaF(0.12 + 0.88 * float(share) if share else 0.06)
                painter.fillRect(
                    QRectF(box.left() + p * cell, box.top() + t * cell, cell - 1, cell - 1), base
                )
        # Numbered like the rows above, in the class colours, where the cells are big
        # enough to hold a readable number; else a coloured tick marks each class.
        numbered = cell >= QFontMetrics(font).horizontalAdvance("20") + 2
        for i in range(count):
            color = class_color(self.class_indices[i] if i < len(self.class_indices) else i)
            if numbered:
                painter.setPen(TEXT)
                self._text(
                    painter,
                    QRectF(box.left() + i * cell, box.top() + i * cell, cell - 1, cell - 1),
                    Qt.AlignmentFlag.AlignCenter,
                    str(i + 1),
                )
            painter.fillRect(QRectF(box.left() - 4, box.top() + i * cell, 3, cell - 1), color)
            painter.fillRect(QRectF(box.left() + i * cell, box.top() - 4, cell - 1, 3), color)
