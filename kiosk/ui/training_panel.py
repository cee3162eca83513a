"""The live training plot: loss (left axis) and accuracies (right axis, 0-100 %).

The curves are created once and fed with ``setData``; the training worker already
throttles its progress signals to about 10 a second, so every signal is drawn.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kiosk.learn.evaluation import Evaluation
from kiosk.ui.evaluation_view import EvaluationView
from kiosk.ui.touch import enable_flick
from kiosk.ui.workers import TrainingCurve

LOSS_COLOR = "#eef1f5"
TRAIN_COLOR = "#4fc3f7"
VAL_COLOR = "#81c784"


class TrainingPlot(pg.PlotWidget):
    """Loss and accuracy against the iteration, on two y axes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="#1b1f25")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 80)
        self.setMenuEnabled(False)
        # Display only: never take the keyboard focus from the number keys.
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        item = self.getPlotItem()
        item.showGrid(x=False, y=True, alpha=0.15)
        item.setLabel("bottom", "iteration")
        item.setLabel("left", "loss")
        item.showAxis("right")
        item.setLabel("right", "accuracy %")
        # A second view box for the accuracies, sharing the x axis.
        self.accuracy_view = pg.ViewBox(enableMouse=False)
        item.scene().addItem(self.accuracy_view)
        item.getAxis("right").linkToView(self.accuracy_view)
        self.accuracy_view.setXLink(item)
        self.accuracy_view.setYRange(0, 100, padding=0.02)
        self.accuracy_view.enableAutoRange(axis=pg.ViewBox.YAxis, enable=False)
        item.vb.sigResized.connect(self._sync_views)

        self.loss_curve = item.plot([], [], pen=pg.mkPen(LOSS_COLOR, width=2.5), name="loss")
        self.train_curve = pg.PlotDataItem([], [], pen=pg.mkPen(TRAIN_COLOR, width=2.5))
        self.val_curve = pg.PlotDataItem(
            [], [], pen=pg.mkPen(VAL_COLOR, width=2.5, style=Qt.PenStyle.DashLine)
        )
        self.accuracy_view.addItem(self.train_curve)
        self.accuracy_view.addItem(self.val_curve)
        item.setXRange(0, 1, padding=0)
        self._x_end = 1
        self.set_scale(1.0)

    @Slot()
    def _sync_views(self) -> None:
        item = self.getPlotItem()
        self.accuracy_view.setGeometry(item.vb.sceneBoundingRect())
        self.accuracy_view.linkedViewChanged(item.vb, self.accuracy_view.XAxis)

    def set_scale(self, scale: float) -> None:
        font = QFont()
        font.setPixelSize(round(13 * scale))
        item = self.getPlotItem()
        for name in ("left", "bottom", "right"):
            axis = item.getAxis(name)
            axis.setStyle(tickFont=font)
            axis.setTextPen("#c9d1dc")
            axis.setPen("#59626f")
            axis.label.setFont(font)
            # On a small screen the summary line's colours name the curves instead.
            axis.showLabel(scale > 1.0)
            # "loss (x0.001)" helps nobody at arm's length. pyqtgraph 0.14 still
            # computes the prefix when a visible label is re-enabled, so also
            # give it no range in which to apply one.
            if hasattr(axis, "setSIPrefixEnableRanges"):
                axis.setSIPrefixEnableRanges(())
            axis.enableAutoSIPrefix(False)

    def clear_curves(self, num_iter: int = 1) -> None:
        for curve in (self.loss_curve, self.train_curve, self.val_curve):
            curve.setData([], [])
        self._set_x_end(max(1, num_iter))

    def show_curve(self, curve: TrainingCurve) -> None:
        x = np.asarray(curve.iterations, dtype=np.float64)
        loss = np.asarray(curve.loss, dtype=np.float64)
        train = 100 * np.asarray(curve.train_accuracy, dtype=np.float64)
        val = 100 * np.asarray(curve.val_accuracy, dtype=np.float64)
        self.loss_curve.setData(x, loss, connect="finite")
        self.train_curve.setData(x, train, connect="finite")
        self.val_curve.setData(x, val, connect="finite")
        last = int(x[-1]) if len(x) else 1
        self._set_x_end(max(1, curve.num_iter, last))

    def _set_x_end(self, end: int) -> None:
        # Re-ranging regenerates the axis ticks, in Python: only when it changes.
        if end != self._x_end:
            self._x_end = end
            self.getPlotItem().setXRange(0, end, padding=0.02)


class TrainingPanel(QWidget):
    """A summary line over the plot: iteration, loss, training and validation accuracy.

    After a training with held-out samples a toggle switches between the curve
    and the per-class evaluation (``EvaluationView``), which is shown first.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrainingPanel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.summary = QLabel()
        self.summary.setObjectName("TrainingSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.plot = TrainingPlot()
        # Before the first training an empty chart says nothing: show what will come.
        self.placeholder = QLabel("The training curve appears here when you press Train")
        self.placeholder.setObjectName("PlotPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.evaluation = EvaluationView()
        # Many classes make the evaluation taller than the panel: it scrolls by flicking.
        self.evaluation_area = QScrollArea()
        self.evaluation_area.setWidgetResizable(True)
        self.evaluation_area.setFrameShape(QFrame.Shape.NoFrame)
        self.evaluation_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.evaluation_area.setWidget(self.evaluation)
        enable_flick(self.evaluation_area)
        self.plot.setAccessibleName("Training curve")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.plot)
        self.stack.addWidget(self.evaluation_area)
        self.view_toggle = QPushButton("Per class")
        self.view_toggle.setObjectName("ViewToggle")
        self.view_toggle.setAccessibleName("Per class")
        self.view_toggle.setToolTip("Switch between the training curve and per-class accuracy")
        self.view_toggle.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view_toggle.clicked.connect(self.toggle_view)
        self.view_toggle.hide()
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.summary, 1)
        header.addWidget(self.view_toggle)
        layout.addLayout(header)
        layout.addWidget(self.stack, 1)
        self.summary.hide()
        self.points_shown = 0
        self._legend(None)

    def set_scale(self, scale: float) -> None:
        self.plot.set_scale(scale)
        self.evaluation.scale = scale
        self.evaluation.updateGeometry()

    @Slot()
    def on_started(self, num_iter: int = 1) -> None:
        self.points_shown = 0
        self.plot.clear_curves(num_iter)
        self._legend(None)
        self.summary.show()
        self.view_toggle.hide()
        self.stack.setCurrentWidget(self.plot)

    def show_evaluation(
        self, evaluation: Evaluation | None, class_indices: tuple[int, ...] = ()
    ) -> None:
        """After training: show the per-class view (None keeps the curve)."""
        self.evaluation.set_evaluation(evaluation, class_indices)
        if evaluation is None:
            self.view_toggle.hide()
            return
        self.view_toggle.show()
        self.stack.setCurrentWidget(self.evaluation_area)
        self._set_toggle("Curve")

    @Slot()
    def toggle_view(self) -> None:
        showing_curve = self.stack.currentWidget() is self.plot
        self.stack.setCurrentWidget(self.evaluation_area if showing_curve else self.plot)
        self._set_toggle("Curve" if showing_curve else "Per class")

    def _set_toggle(self, text: str) -> None:
        self.view_toggle.setText(text)
        self.view_toggle.setAccessibleName(text)

    @Slot(object)
    def on_progress(self, curve: TrainingCurve) -> None:
        self.plot.show_curve(curve)
        self.points_shown = len(curve.iterations)
        self._legend(curve)

    def _legend(self, curve: TrainingCurve | None) -> None:
        def pct(value: float) -> str:
            return "–" if value is None or math.isnan(value) else f"{100 * value:.0f}%"

        if curve is None or curve.last is None:
            it, loss, train, val = "–", "–", "–", "–"
        else:
            i, loss_value, train_value, val_value = curve.last
            it = f"{i}/{curve.num_iter}" if curve.num_iter else str(i)
            loss = "–" if math.isnan(loss_value) else f"{loss_value:.3f}"
            train, val = pct(train_value), pct(val_value)
        # &nbsp; inside an item, plain spaces between items: a narrow panel wraps
        # between "loss …" and "train …", never inside one.
        items = (
            ("#c9d1dc", "", it),
            (LOSS_COLOR, "━&nbsp;loss", loss),
            (TRAIN_COLOR, "━&nbsp;train", train),
            (VAL_COLOR, "┅&nbsp;val", val),
        )
        self.summary.setText(
            " &nbsp; ".join(
                f"<span style='color:{color}'>{name}{'&nbsp;' if name else ''}<b>{value}</b></span>"
                for color, name, value in items
            )
        )
