"""The kiosk window: the live picture, the classes, the plot and the action row.

Layout (landscape, from 800x480 up)::

    +------------------------------+------------------+
    | live picture + prediction    | class cards      |
    |                              | (flick to scroll;|
    +---------------+--------------+  compact when    |
    | confidence    | loss/accuracy|  short of room)  |
    +---------------+--------------+                  |
    | status line (elides)         |                  |
    | [↶][↷][Menu]   [Train][Save] | [+ Add class]    |
    +------------------------------+------------------+

Everything works by touch: Menu holds the project rows, Settings, Full screen
and Quit; a tap on a disabled button says why on the status line. Keys are
shortcuts for the same actions. In kiosk mode the operator lock (PIN) guards
what removes data or touches files beyond the visitor's own recent work:
deleting, clearing and renaming classes, the project rows, Undo and Redo of
older work, replacing a saved model or saving it outside the models folder,
the settings and quitting. Visitors save a model to the models folder freely.

The window wires the controller's signals to the views and turns taps and keys
into controller calls; it decides nothing about the data itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QRect, Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kiosk.export import SaveReport
from kiosk.learn import TrainingResult
from kiosk.places import Places
from kiosk.ui import dialogs, project_menu, reasons
from kiosk.ui.badge import CornerBadge
from kiosk.ui.class_panel import ClassPanel
from kiosk.ui.controller import AppState, Controller, Snapshot, hint_for
from kiosk.ui.demo_control import DemoControl
from kiosk.ui.lock import OperatorLock
from kiosk.ui.places_view import PlaceRequest
from kiosk.ui.prediction_view import PredictionView
from kiosk.ui.style import px, render_stylesheet, scale_for_size
from kiosk.ui.touch import DisabledTapExplainer, ElidedLabel
from kiosk.ui.training_panel import TrainingPanel
from kiosk.ui.video_view import VideoView
from kiosk.vision.sources import DemoSource

# How long a message stays in the status line before the next-step hint returns.
MESSAGE_SECONDS = {"info": 5.0, "busy": 30.0, "ok": 15.0, "error": 15.0}

# Keys 1-9 capture into classes 1-9 (Qt's key codes for digits are their ASCII codes).
_DIGIT_KEYS = {Qt.Key(Qt.Key.Key_1.value + d): d for d in range(9)}


class MainWindow(QMainWindow):
    """The one window of the kiosk."""

    def __init__(
        self,
        controller: Controller,
        *,
        kiosk: bool = False,
        lock: OperatorLock | None = None,
        places: Places | None = None,
    ) -> None:
        """
        Args:
            controller: owns the state; the window only shows it and forwards intent.
            kiosk: frameless full screen; Esc and window-manager closes do not quit,
                only Quit (Menu, or Ctrl+Q) does.
            lock: the operator lock (default: an open lock that never asks).
            places: the models folder, projects folder and USB drives that Save
                and the project rows may use (default: the user data folder's).
        """
        super().__init__()
        self.controller = controller
        self.kiosk = kiosk
        self.lock = lock if lock is not None else OperatorLock(None)
        self.lock.setParent(self)
        self.places = places if places is not None else Places()
        self._quitting = False
        self._scale = 0.0
        self._snapshot: Snapshot | None = None
        self._message_until = 0.0
        self._key_capture: int | None = None  # the number key held down, as Qt's key code
        # The corner badge that says the model runs on the CPU (set by kiosk.ui.app).
        self.cpu_badge: CornerBadge | None = None
        self._normal_geometry: QRect | None = None
        self.setWindowTitle("kiosk · teach the camera")
        self.setMinimumSize(760, 440)
        # A tap on a disabled control says why (touch screens have no tooltips).
        self.explainer = DisabledTapExplainer(self)

        central = QWidget()
        central.setObjectName("Central")
        self.setCentralWidget(central)
        root = QHBoxLayout(central)
        self._root = root

        # -- left: picture, bars and plot, status line, action row ------------------
        left = QVBoxLayout()
        self._left = left
        self.video = VideoView(controller.grabber, controller.source_name)
        self.video.setAccessibleName("Live picture")
        left.addWidget(self.video, 1)
        # A fixed share of the height (see _fit_panels), so a wrapping label or
        # the plot's own size hints never squeeze the picture.
        self.lower_panels = QWidget()
        self.lower_panels.setObjectName("LowerPanels")
        lower = QHBoxLayout(self.lower_panels)
        lower.setContentsMargins(0, 0, 0, 0)
        self._lower = lower
        self.predictions = PredictionView()
        self.predictions.setAccessibleName("Confidence per class")
        self.training = TrainingPanel()
        # Equal halves whatever the plot's own size hint says.
        for widget in (self.predictions, self.training):
            widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            lower.addWidget(widget, 1)
        left.addWidget(self.lower_panels)
        self.status = ElidedLabel()
        self.status.setObjectName("StatusLine")
        self.status.setAccessibleName("Status")
        left.addWidget(self.status)
        actions = QHBoxLayout()
        self._actions = actions
        self.undo_button = self._button("↶", "Undo", "UndoButton")
        self.redo_button = self._button("↷", "Redo", "RedoButton")
        self.project = project_menu.ProjectActions(self)
        self.menu_button = project_menu.make_menu_button(self)
        self.train_button = self._button("Train", "Train", "TrainButton")
        self.cancel_button = self._button("Cancel training", "Cancel training", "CancelButton")
        self.save_button = self._button("Save model", "Save model", "SaveButton")
        for button in (self.undo_button, self.redo_button, self.menu_button):
            actions.addWidget(button)
        actions.addStretch(1)
        for button in (self.train_button, self.cancel_button, self.save_button):
            actions.addWidget(button)
        left.addLayout(actions)
        self.cancel_button.hide()
        root.addLayout(left, 1)

        # -- right: the classes, the whole height ---------------------------------
        self.classes = ClassPanel(controller, lock=self.lock, explainer=self.explainer)
        self.classes.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        root.addWidget(self.classes)

        # -- the demo source's control -----------------------------------------------
        self.demo: DemoControl | None = None
        source = controller.grabber.source
        if isinstance(source, DemoSource):
            self.demo = DemoControl(source)
            self.video.add_corner_widget(self.demo, "top-right")
            self.demo.changed.connect(self.show_message)

        # -- wiring ----------------------------------------------------------------
        for button in (self.undo_button, self.redo_button, self.menu_button):
            self.explainer.watch(button)
        for button in (self.train_button, self.save_button):
            self.explainer.watch(button)
        self.explainer.explain.connect(self._explain)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
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
        # No auto-repeat: holding Ctrl+Z must not wipe sample after sample.
        self._shortcut("Ctrl+Z", self.undo, repeat=False)
        self._shortcut("Ctrl+Shift+Z", self.redo, repeat=False)
        self._shortcut("Ctrl+T", controller.train)
        self._shortcut("Ctrl+S", self.save)
        self._shortcut("Esc", controller.cancel_training)
        self._shortcut("F11", self.toggle_fullscreen)
        if self.demo is not None:
            self._shortcut("P", self.demo.toggle_pause, repeat=False)
            self._shortcut("N", self.demo.next_object, repeat=False)
            self._shortcut("A", self.demo.cycle, repeat=False)

        if kiosk:
            self.setWindowFlag(Qt.WindowType.FramelessWindowHint, True)

        self._apply_scale(1.0)
        self.on_changed(controller.snapshot())
        if controller.source_error is not None:
            self.video.set_source_error(controller.source_error)

    def _button(self, text: str, name: str, object_name: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(object_name)
        button.setAccessibleName(name)
        # Keys stay with the window (number keys capture).
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button

    def _shortcut(self, keys: str, slot: Callable[[], object], *, repeat: bool = True) -> None:
        shortcut = QShortcut(QKeySequence(keys), self)
        # Application context: a kiosk often runs with no window manager to give
        # the window focus back after a dialog. A modal dialog still blocks these
        # (Esc keeps closing the dialog).
        shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        shortcut.setAutoRepeat(repeat)
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
        """F11 or Menu > Full screen (windowed mode only; kiosk mode stays full screen).

        Works without a window manager too: the window covers the screen itself
        and goes back to where it was.
        """
        if self.kiosk:
            return
        if self.isFullScreen():
            self.showNormal()
            if self._normal_geometry is not None:
                self.setGeometry(self._normal_geometry)
        else:
            self._normal_geometry = self.geometry()
            self.setGeometry(self.screen().geometry())
            self.showFullScreen()
        self.raise_()
        self.activateWindow()

    # ------------------------------------------------------------------- sizing
    def resizeEvent(self, event: QResizeEvent) -> None:
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
        self._root.setSpacing(px(10, scale))
        self._left.setSpacing(px(6, scale))
        self._lower.setSpacing(px(10, scale))
        self._actions.setSpacing(px(8, scale))
        # Words where there is room; on a small panel the arrows alone (the
        # accessible names still say Undo and Redo).
        wide = scale > 1.0
        self.undo_button.setText("↶  Undo" if wide else "↶")
        self.redo_button.setText("↷  Redo" if wide else "↷")
        self.save_button.setText("Save model" if wide else "Save")
        for button in (self.undo_button, self.redo_button):
            button.setMinimumWidth(px(56, scale) if not wide else px(100, scale))
        self.menu_button.setMinimumWidth(px(80, scale))
        for button in (self.train_button, self.cancel_button, self.save_button):
            button.setMinimumWidth(px(104, scale) if not wide else px(150, scale))
        self.video.scale = scale
        self.predictions.scale = scale
        self.training.set_scale(scale)
        self.classes.set_scale(scale)
        self.video.place_corner_widgets()
        if self._snapshot is not None:
            self.on_changed(self._snapshot)
        self._fit_panels()

    def _fit_panels(self) -> None:
        # Classes: about a third of the width, room for four thumbnails and a big
        # button. Bars and plot: about a third of the height, the rest is picture.
        scale = self._scale or 1.0
        width = max(px(300, scale), min(px(420, scale), int(self.width() * 0.36)))
        self.classes.setFixedWidth(width)
        self.lower_panels.setFixedHeight(max(120, int(self.height() * 0.32)))

    # ------------------------------------------------------------------- state
    @Slot(object)
    def on_changed(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        training = snapshot.state == AppState.TRAINING
        self.train_button.setVisible(not training)
        self.cancel_button.setVisible(training)
        self.train_button.setEnabled(snapshot.can_train)
        again = "Train again" if self._scale > 1.0 else "Retrain"
        self.train_button.setText(again if snapshot.head_stale else "Train")
        self.train_button.setAccessibleName("Train again" if snapshot.head_stale else "Train")
        self.save_button.setEnabled(snapshot.can_save)
        self.undo_button.setEnabled(snapshot.can_undo)
        self.redo_button.setEnabled(snapshot.can_redo)
        self.menu_button.setEnabled(not snapshot.busy)
        self.explainer.set_reason(self.train_button, reasons.train_reason(snapshot))
        self.explainer.set_reason(self.save_button, reasons.save_reason(snapshot))
        self.explainer.set_reason(self.undo_button, reasons.undo_reason(snapshot))
        self.explainer.set_reason(self.redo_button, reasons.redo_reason(snapshot))
        self.explainer.set_reason(self.menu_button, reasons.busy_reason(snapshot))
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
        self.training.on_started(self.controller.training_config.num_iter)

    @Slot(object)
    def _on_training_finished(self, result: TrainingResult | None) -> None:
        head = self.controller.session.head
        if result is None or head is None or result.cancelled:
            return
        indices = self.controller.session.head_indices or ()
        self.training.show_evaluation(head.evaluation, indices)

    def _confirm_low_fidelity(self, report: SaveReport) -> bool:
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

    @Slot(str)
    def _explain(self, text: str) -> None:
        self.show_message(text, "info")

    @Slot(str, str)
    def show_message(self, text: str, level: str = "info") -> None:
        self._message_until = time.monotonic() + MESSAGE_SECONDS.get(level, 5.0)
        self._set_status(text, level)

    def _set_status(self, text: str, level: str) -> None:
        self.status.setText(text)
        if self.status.property("level") != level:
            self.status.setProperty("level", level)
            # Re-polish so the [level=...] stylesheet rule applies.
            self.status.style().unpolish(self.status)
            self.status.style().polish(self.status)
        self.status.update()

    @Slot()
    def _refresh_hint(self) -> None:
        if self._snapshot is None or time.monotonic() < self._message_until:
            return
        self._set_status(hint_for(self._snapshot), "info")

    # ------------------------------------------------------------------ intent
    @Slot()
    def undo(self) -> None:
        """Undo: free for the visitor's own work since the last Train or Save, else the PIN."""
        if not self.controller.can_undo:
            self.controller.undo()  # says why not
            return
        if not self.controller.undo_is_recent() and not self.lock.request(
            self, "undo earlier work"
        ):
            return
        self.controller.undo()

    @Slot()
    def redo(self) -> None:
        """Redo, guarded like Undo."""
        if (
            self.controller.can_redo
            and not self.controller.redo_is_recent()
            and not self.lock.request(self, "redo earlier work")
        ):
            return
        self.controller.redo()

    @Slot()
    def save(self) -> None:
        """Save to ``--output``, else to a name in the models folder (or elsewhere).

        Visitors save a new model to the models folder without the PIN; replacing
        a saved model or saving anywhere else (a USB drive) is the operator's.
        """
        if self._snapshot is None or not self._snapshot.can_save:
            self.controller.save()  # says why not
            return
        if self.controller.output is not None:
            self.controller.save()
            return
        places = self.places
        request = PlaceRequest(
            "Save model",
            "models",
            (places.models,),
            "Save",
            name_prefix="model",
            replace_kinds=("model",),
        )
        choice = dialogs.ask_place(self, places, request, whole_computer=not self.kiosk)
        if choice is None:
            return
        if choice.replace and not self.lock.request(self, "replace a saved model"):
            return
        if choice.place.kind != "models" and not self.lock.request(
            self, "save outside the models folder"
        ):
            return
        target = choice.path
        if not target.is_dir() and target.suffix.lower() == ".tflite":
            target = target.with_suffix("")  # a folder for the model and its labels.txt
        self.controller.save(target)

    @Slot()
    def show_menu(self) -> None:
        """The Menu button: pick a row, then do it."""
        if self._snapshot is not None and self._snapshot.busy:
            self.show_message(reasons.busy_reason(self._snapshot), "error")
            return
        choice = project_menu.ask_menu_action(self, kiosk=self.kiosk)
        if choice is None:
            return
        self._menu_actions()[choice]()

    def _menu_actions(self) -> dict[str, Callable[[], object]]:
        """The Menu's rows by their names in ``project_menu.PROJECT_ROWS`` and ``KIOSK_ROWS``."""
        return {
            "save_project": self.project.save_project,
            "open_project": self.project.open_project,
            "import_images": self.project.import_images,
            "export_samples": self.project.export_samples,
            "edit_settings": self.edit_settings,
            "toggle_fullscreen": self.toggle_fullscreen,
            "quit": self.quit,
        }

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
        """Menu > Quit or Ctrl+Q: the way out of kiosk mode (the operator PIN, when set).

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
            if shortcut.key() == QKeySequence(combination):
                if event.isAutoRepeat() and not shortcut.autoRepeat():
                    event.accept()
                    return
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
            self.show_message("This is a kiosk: Menu > Quit (or Ctrl+Q) quits", "info")
            return
        self.controller.shutdown()
        event.accept()
