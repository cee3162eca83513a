"""The kiosk window: the live picture, the classes, the plot and the action row.

Layout (landscape, from 800x480 up)::

    +------------------------------+------------------+
    | live picture + prediction    | class cards      |
    |                              | (scrolls)        |
    +---------------+--------------+                  |
    | confidence    | loss/accuracy| [+ Add class]    |
    +---------------+--------------+------------------+
    | status line                                     |
    | [Undo] [Settings] [Project]   [Train]  [Save]   |
    +-------------------------------------------------+

The window wires the controller's signals to the views and turns keys into
controller calls; it decides nothing itself.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kiosk.ui import dialogs
from kiosk.ui.class_panel import ClassPanel
from kiosk.ui.controller import AppState, Controller, Snapshot, hint_for
from kiosk.ui.lock import OperatorLock
from kiosk.ui.prediction_view import PredictionView
from kiosk.ui.project_menu import make_project_button
from kiosk.ui.style import px, render_stylesheet, scale_for_size
from kiosk.ui.training_panel import TrainingPanel
from kiosk.ui.video_view import VideoView

# How long a message stays in the status line before the next-step hint returns.
MESSAGE_SECONDS = {"info": 5.0, "busy": 30.0, "ok": 15.0, "error": 15.0}

_DIGIT_KEYS = {getattr(Qt.Key, f"Key_{d}"): d - 1 for d in range(1, 10)}


class MainWindow(QMainWindow):
    """The one window of the kiosk."""

    def __init__(
        self, controller: Controller, *, kiosk: bool = False, lock: OperatorLock | None = None
    ) -> None:
        """
        Args:
            controller: owns the state; the window only shows it and forwards intent.
            kiosk: frameless full screen; Esc and window-manager closes do not quit,
                only Ctrl+Q does.
            lock: the operator lock guarding deletes, settings, Save as and quit
                (default: an open lock that never asks).
        """
        super().__init__()
        self.controller = controller
        self.kiosk = kiosk
        self.lock = lock if lock is not None else OperatorLock(None)
        self.lock.setParent(self)
        self._quitting = False
        self._scale = 0.0
        self._snapshot: Snapshot | None = None
        self._message_until = 0.0
        self._key_capture: Any = None
        self.setWindowTitle("kiosk · teach the camera")
        self.setMinimumSize(760, 440)

        central = QWidget()
        central.setObjectName("Central")
        self.setCentralWidget(central)
        root = QVBoxLayout(central)
        self._root = root

        # -- body: picture and plots on the left, classes on the right ------------
        body = QHBoxLayout()
        self._body = body
        left = QVBoxLayout()
        self._left = left
        self.video = VideoView(controller.grabber, controller.source_name)
        left.addWidget(self.video, 1)
        # A fixed share of the height (see _fit_panels), so a wrapping label or
        # the plot's own size hints never squeeze the picture.
        self.lower = QWidget()
        self.lower.setObjectName("LowerPanels")
        lower = QHBoxLayout(self.lower)
        lower.setContentsMargins(0, 0, 0, 0)
        self._lower = lower
        self.predictions = PredictionView()
        self.training = TrainingPanel()
        # Equal halves whatever the plot's own size hint says.
        for widget in (self.predictions, self.training):
            widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            lower.addWidget(widget, 1)
        left.addWidget(self.lower)
        body.addLayout(left, 1)
        self.classes = ClassPanel(controller, lock=self.lock)
        self.classes.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        body.addWidget(self.classes)
        root.addLayout(body, 1)

        # -- status line and action row -------------------------------------------
        self.status = QLabel()
        self.status.setObjectName("StatusLine")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        root.addWidget(self.status)
        actions = QHBoxLayout()
        self._actions = actions
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Remove the last sample (Ctrl+Z)")
        self.settings_button = QPushButton("Settings")
        self.settings_button.setToolTip("Advanced training settings")
        self.train_button = QPushButton("Train")
        self.train_button.setObjectName("TrainButton")
        self.train_button.setToolTip("Train on the captured samples (Ctrl+T)")
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setObjectName("CancelButton")
        self.cancel_button.setToolTip("Stop training (Esc)")
        self.save_button = QPushButton("Save model")
        self.save_button.setObjectName("SaveButton")
        self.save_button.setToolTip("Write the .tflite model and labels.txt (Ctrl+S)")
        self.project_button = make_project_button(self)
        for button in (self.undo_button, self.settings_button, self.project_button):
            actions.addWidget(button)
        actions.addStretch(1)
        for button in (self.train_button, self.cancel_button, self.save_button):
            actions.addWidget(button)
        root.addLayout(actions)
        self.cancel_button.hide()

        # -- wiring ----------------------------------------------------------------
        self.undo_button.clicked.connect(controller.undo)
        self.settings_button.clicked.connect(self.edit_settings)
        self.train_button.clicked.connect(controller.train)
        self.cancel_button.clicked.connect(controller.cancel_training)
        self.save_button.clicked.connect(self.save)
        self.video.retryRequested.connect(controller.retry_source)

        controller.changed.connect(self.on_changed)
        controller.predictionChanged.connect(self.video.set_prediction)
        controller.noveltyChanged.connect(self.video.set_novelty)
        controller.predictionChanged.connect(self.predictions.set_prediction)
        controller.sampleCaptured.connect(self.video.flash)
        controller.sourceErrorChanged.connect(self.video.set_source_error)
        controller.trainingStarted.connect(self._on_training_started)
        controller.trainingProgress.connect(self.training.on_progress)
        controller.trainingFinished.connect(self._on_training_finished)
        controller.confirm_save = self._confirm_low_fidelity
        controller.message.connect(self.show_message)
        self.lock.message.connect(self.show_message)

        self._hint_timer = QTimer(self)
        self._hint_timer.setInterval(1000)
        self._hint_timer.timeout.connect(self._refresh_hint)
        self._hint_timer.start()

        self._shortcuts: list[QShortcut] = []
        self._shortcut("Ctrl+Q", self.quit)
        self._shortcut("Ctrl+Z", controller.undo)
        self._shortcut("Ctrl+T", controller.train)
        self._shortcut("Ctrl+S", self.save)
        self._shortcut("Esc", controller.cancel_training)
        self._shortcut("F11", self.toggle_fullscreen)

        if kiosk:
            self.setWindowFlag(Qt.WindowType.FramelessWindowHint, True)

        self._apply_scale(1.0)
        self.on_changed(controller.snapshot())
        if controller.source_error is not None:
            self.video.set_source_error(controller.source_error)

    def _shortcut(self, keys: str, slot: Any) -> None:
        shortcut = QShortcut(QKeySequence(keys), self)
        # Application context: a kiosk often runs with no window manager to give
        # the window focus back after a dialog. A modal dialog still blocks these
        # (Esc keeps closing the dialog).
        shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        shortcut.activated.connect(slot)
        self._shortcuts.append(shortcut)

    # ------------------------------------------------------------------ showing
    def show_for_mode(self) -> None:
        """Full screen in kiosk mode, else a normal window sized for the screen."""
        if self.kiosk:
            # Without a window manager the full-screen request is nobody's job:
            # cover the screen ourselves as well.
            self.setGeometry(self.screen().geometry())
            self.showFullScreen()
        else:
            screen = self.screen().availableGeometry()
            self.resize(min(1280, screen.width()), min(800, screen.height()))
            self.show()
        # With no window manager (a common kiosk set-up) nobody else gives the
        # window the keyboard focus that its shortcuts need.
        self.raise_()
        self.activateWindow()

    @Slot()
    def toggle_fullscreen(self) -> None:
        if self.kiosk:
            return  # kiosk mode stays full screen
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    # ------------------------------------------------------------------- sizing
    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._apply_scale(scale_for_size(self.width(), self.height()))
        self._fit_panels()

    def _apply_scale(self, scale: float) -> None:
        if scale == self._scale:
            return
        self._scale = scale
        self.setStyleSheet(render_stylesheet(scale))
        margin = px(10, scale)
        self._root.setContentsMargins(margin, margin, margin, margin)
        self._root.setSpacing(px(6, scale))
        self._body.setSpacing(px(10, scale))
        self._left.setSpacing(px(8, scale))
        self._lower.setSpacing(px(10, scale))
        self._actions.setSpacing(px(10, scale))
        for button in (self.train_button, self.cancel_button, self.save_button):
            button.setMinimumWidth(px(150, scale))
        for button in (self.undo_button, self.settings_button, self.project_button):
            button.setMinimumWidth(px(100, scale))
        self.video.scale = scale
        self.predictions.scale = scale
        self.training.set_scale(scale)
        self.classes.set_scale(scale)
        self._fit_panels()

    def _fit_panels(self) -> None:
        # Classes: about a third of the width, room for four thumbnails and a big
        # button. Bars and plot: about a third of the height, the rest is picture.
        scale = self._scale or 1.0
        width = max(px(320, scale), min(px(420, scale), int(self.width() * 0.36)))
        self.classes.setFixedWidth(width)
        self.lower.setFixedHeight(max(120, int(self.height() * 0.34)))

    # ------------------------------------------------------------------- state
    @Slot(object)
    def on_changed(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        training = snapshot.state == AppState.TRAINING
        self.train_button.setVisible(not training)
        self.cancel_button.setVisible(training)
        self.train_button.setEnabled(snapshot.can_train)
        self.train_button.setText("Train again" if snapshot.head_stale else "Train")
        self.save_button.setEnabled(snapshot.can_save)
        self.undo_button.setEnabled(snapshot.can_undo)
        self.settings_button.setEnabled(not snapshot.busy)
        self.project_button.setEnabled(not snapshot.busy)
        self.video.set_stale(snapshot.head_stale)
        capturing = snapshot.capturing_class
        if capturing is not None and capturing < len(snapshot.class_names):
            self.video.set_capturing(snapshot.class_names[capturing])
        else:
            self.video.set_capturing(None)
        if training:
            self.predictions.set_placeholder("Training…")
        elif snapshot.has_head and snapshot.head_stale:
            self.predictions.set_placeholder("Samples changed: train again")
        else:
            self.predictions.set_placeholder("Train to see live predictions here")
        if not snapshot.has_head:
            self.predictions.set_prediction(None)
            self.video.set_prediction(None)
        self._refresh_hint()

    @Slot()
    def _on_training_started(self) -> None:
        self.training.on_started(int(getattr(self.controller.training_config, "num_iter", 1)))

    @Slot(object)
    def _on_training_finished(self, result: object) -> None:
        head = self.controller.session.head
        if result is None or head is None or getattr(result, "cancelled", True):
            return
        indices = self.controller.session.head_indices or ()
        self.training.show_evaluation(head.evaluation, indices)

    def _confirm_low_fidelity(self, report: object) -> bool:
        """The fidelity gate's question: write a model that disagrees on some classes?"""
        parts = [
            f"{name}: {100 * value:.0f}%"
            for name, value in report.per_class_agreement.items()
            if value is not None and name in report.low_fidelity_classes()
        ]
        return dialogs.ask_confirm(
            self,
            "Save a less accurate model?",
            "The saved (quantized) model disagrees with the trained model on some classes ("
            + ", ".join(parts)
            + "). Add more varied samples and train again, or save anyway.",
            ok_text="Save anyway",
            danger=True,
        )

    @Slot(str, str)
    def show_message(self, text: str, level: str = "info") -> None:
        self._message_until = time.monotonic() + MESSAGE_SECONDS.get(level, 5.0)
        self._set_status(text, level)

    def _set_status(self, text: str, level: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)
        if self.status.property("level") != level:
            self.status.setProperty("level", level)
            # Re-polish so the [level=...] stylesheet rule applies.
            self.status.style().unpolish(self.status)
            self.status.style().polish(self.status)

    @Slot()
    def _refresh_hint(self) -> None:
        if self._snapshot is None or time.monotonic() < self._message_until:
            return
        self._set_status(hint_for(self._snapshot), "info")

    # ------------------------------------------------------------------ intent
    @Slot()
    def save(self) -> None:
        """Save to ``--output``, or ask where when none was given.

        Visitors may save to the configured output; choosing a location is the
        operator's (the lock asks for the PIN in kiosk mode).
        """
        if self._snapshot is None or not self._snapshot.can_save:
            self.controller.save()  # says why not
            return
        if self.controller.output is not None:
            self.controller.save()
            return
        if not self.lock.request(self, "choose where to save"):
            return
        path = dialogs.ask_save_path(self, self.controller.default_save_target())
        if path is not None:
            self.controller.save(path)

    @Slot()
    def edit_settings(self) -> None:
        if not self.lock.request(self, "change the settings"):
            return
        config = dialogs.ask_settings(
            self, self.controller.training_config, self.controller.default_training_config
        )
        if config is not None:
            self.controller.set_training_config(config)
            self.show_message("Training settings changed; they apply to the next training")

    @Slot()
    def quit(self, force: bool = False) -> None:
        """Ctrl+Q: the one way out of kiosk mode (with the operator PIN, when one is set).

        ``force`` skips the PIN: for SIGTERM from systemd and Ctrl+C in a terminal,
        whose senders already have the device's account.
        """
        if not force and not self.lock.request(self, "quit the kiosk"):
            return
        self._quitting = True
        self.close()

    # ------------------------------------------------------------ keys, closing
    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Shortcuts only fire for an active window; without a window manager the
        # window may get keys without being active, so match them here as well.
        combination = event.keyCombination()
        for shortcut in self._shortcuts:
            if shortcut.key().count() and shortcut.key()[0] == combination:
                shortcut.activated.emit()
                event.accept()
                return
        index = _DIGIT_KEYS.get(Qt.Key(event.key()))
        if index is not None and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            if not event.isAutoRepeat() and self._key_capture is None:
                self._key_capture = event.key()
                self.classes.scroll_to(index)
                self.controller.begin_capture(index)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == self._key_capture and not event.isAutoRepeat():
            self._key_capture = None
            self.controller.end_capture()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        # Losing focus mid-hold would never deliver the release: stop the burst.
        if (
            event.type() == QEvent.Type.ActivationChange
            and not self.isActiveWindow()
            and self._key_capture is not None
        ):
            self._key_capture = None
            self.controller.end_capture()
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.kiosk and not self._quitting:
            # A stray Alt+F4 or window-manager close must not end a kiosk.
            event.ignore()
            self.show_message("This is a kiosk: press Ctrl+Q to quit", "info")
            return
        self.controller.shutdown()
        event.accept()
