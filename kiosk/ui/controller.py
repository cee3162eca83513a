"""The controller: the one QObject that owns the kiosk's state.

It holds the core objects (a ``TeachingSession`` and a ``FrameGrabber``), runs
them through the workers in ``kiosk.ui.workers``, and tells the widgets what
happened through signals. Widgets never decide anything: they call a method
here and enable or disable themselves from ``changed`` (a frozen ``Snapshot``).

States (``AppState``): IDLE (no usable head yet), CAPTURING (a capture button or
number key is held), TRAINING, TRAINED (live predictions), SAVING.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from psygnal import SignalInstance
from PySide6.QtCore import QObject, Qt, QThread, QThreadPool, QTimer, Signal, Slot
from superqt.utils import FunctionWorker, WorkerBase, create_worker, qthrottled

from kiosk.coaching import class_hint
from kiosk.export import SaveCancelled, SaveReport, StagedModel
from kiosk.learn import TrainingConfig, TrainingResult
from kiosk.learn.fit_process import FitProcess
from kiosk.session import TeachingSession
from kiosk.store import EmbeddingStore, StoreFullError, listen
from kiosk.ui.workers import (
    PROGRESS_HZ,
    CaptureDone,
    FrameResult,
    TrainingCurve,
    TrainingWorker,
    VisionWorker,
)
from kiosk.vision.grabber import FrameGrabber

# A held capture button records this many samples a second...
BURST_HZ = 10.0
# ...after being held this long (a shorter press is a tap: one sample).
HOLD_DELAY_MS = 300
# Upper bound on classes: the palette, the keys and the screen all stay usable.
MAX_CLASSES = 20
# How often the grabber's error is looked at.
SOURCE_POLL_MS = 200
# Threads Qt's global pool must offer: the vision loop holds one for good, a job
# (training, a save or a task) needs another, and the job before it may still be
# returning. The pool's default is the core count, 1 on a single-core board.
POOL_THREADS = 3

Result = TypeVar("Result")  # what a run_task call returns


class AppState(enum.Enum):
    """What the kiosk is doing right now."""

    IDLE = "idle"
    CAPTURING = "capturing"
    TRAINING = "training"
    TRAINED = "trained"
    SAVING = "saving"
    WORKING = "working"  # a project operation (open, import, export...) runs off the GUI


BUSY_STATES = (AppState.TRAINING, AppState.SAVING, AppState.WORKING)


@dataclass(frozen=True)
class Snapshot:
    """Everything a widget needs to enable itself, as of one moment."""

    state: AppState
    class_names: tuple[str, ...]
    counts: tuple[int, ...]
    can_train: bool
    can_save: bool
    can_capture: bool
    can_edit_classes: bool
    can_undo: bool
    has_head: bool
    head_stale: bool
    capturing_class: int | None
    max_classes: int = MAX_CLASSES
    can_redo: bool = False
    undo_is_recent: bool = False

    @property
    def busy(self) -> bool:
        return self.state in BUSY_STATES


@dataclass(frozen=True)
class SavePaths:
    """Where Save writes: the model and its labels file."""

    model: Path
    labels: Path


def save_paths(target: str | Path) -> SavePaths:
    """A model path and labels path from ``--output`` or a chosen path.

    A ``.tflite`` path is the model itself (labels.txt goes beside it); anything
    else is a folder that gets ``model.tflite`` and ``labels.txt``.
    """
    path = Path(target).expanduser()
    if path.suffix.lower() == ".tflite":
        return SavePaths(path, path.with_name("labels.txt"))
    return SavePaths(path / "model.tflite", path / "labels.txt")


class Controller(QObject):
    """Owns the state; runs the vision loop, training and saving off the GUI thread."""

    changed = Signal(object)  # Snapshot: state or classes/samples changed
    stateChanged = Signal(object)  # AppState
    predictionChanged = Signal(object)  # Prediction | None
    sampleCaptured = Signal(int)  # class index, after the sample is in the store
    trainingStarted = Signal()
    trainingProgress = Signal(object)  # TrainingCurve
    trainingFinished = Signal(object)  # TrainingResult, or None when it failed
    saveFinished = Signal(object)  # SaveReport
    saveFailed = Signal(str)
    sourceErrorChanged = Signal(object)  # str | None
    message = Signal(str, str)  # text, level: "info" | "ok" | "busy" | "error"
    frameProcessed = Signal(object)  # FrameResult (benchmarks, diagnostics)
    noveltyChanged = Signal(object)  # float | None: how new the view is (kiosk.learn.gate.novelty)
    duplicateCaptured = Signal(int, str)  # class index, coaching text: a near-duplicate sample

    _storeChangedElsewhere = Signal()  # bounces store listener calls into this thread

    def __init__(
        self,
        session: TeachingSession,
        grabber: FrameGrabber,
        *,
        output: str | Path | None = None,
        burst_hz: float = BURST_HZ,
        parent: QObject | None = None,
    ) -> None:
        """
        Args:
            session: the ``TeachingSession``: it owns the classes, samples, head and
                the current training settings; the controller only runs it.
            grabber: a ``kiosk.vision.grabber.FrameGrabber``, started or not.
            output: where Save writes without asking (``--output``), or ``None``.
            burst_hz: samples a second while a capture button is held.
        """
        super().__init__(parent)
        self.session = session
        self.grabber = grabber
        self.output = Path(output).expanduser() if output is not None else None
        self.last_save: SaveReport | None = None
        self.last_curve: TrainingCurve | None = None
        self._state = AppState.IDLE
        self._capturing: int | None = None
        self._gestures = itertools.count(1)  # one group per press: undone together
        self._gesture = 0
        self._source_error: str | None = None
        self._refresh_pending = False
        self._shut_down = False

        # Session events may come from a worker thread: re-emit through a queued
        # signal so every widget update happens here, on the GUI thread.
        self._storeChangedElsewhere.connect(
            self._on_store_changed, Qt.ConnectionType.QueuedConnection
        )
        self._connections = [
            (signal, listen(signal, self._store_listener)) for signal in _session_signals(session)
        ]

        self._burst = QTimer(self)
        self.burst_hz = float(burst_hz)
        self._burst.setInterval(max(1, round(1000 / self.burst_hz)))
        self._burst.timeout.connect(self._burst_tick)
        self._hold = QTimer(self)
        self._hold.setSingleShot(True)
        self._hold.setInterval(HOLD_DELAY_MS)
        self._hold.timeout.connect(self._burst_start)
        self._source_poll = QTimer(self)
        self._source_poll.setInterval(SOURCE_POLL_MS)
        self._source_poll.timeout.connect(self._poll_source)

        # Every worker started and not seen to end: (worker, set when it has ended).
        self._workers: list[tuple[WorkerBase[Any], threading.Event]] = []
        # Fits run in a child process: their Python work never holds this
        # process's interpreter lock, so the GUI never waits on training.
        self._fitter = FitProcess()
        self._vision: VisionWorker | None = None
        self._trainer: TrainingWorker | None = None
        self._task_callbacks: tuple[Callable[[Any], None], Callable[[Exception], None]] | None
        self._task_callbacks = None
        # Fidelity gate: called on the GUI thread with the staged SaveReport when
        # a class's quantized agreement is low; returns whether to write anyway.
        # The main window sets it to a dialog; None writes without asking.
        self.confirm_save: Callable[[SaveReport], bool] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the grabber (if needed) and the vision loop."""
        if self._vision is not None:
            return
        if not self.grabber.is_alive():
            self.grabber.start()
        pool = QThreadPool.globalInstance()
        pool.setMaxThreadCount(max(pool.maxThreadCount(), POOL_THREADS))
        self._vision = VisionWorker(self.session, self.grabber)
        signals = self._vision.signals
        signals.result.connect(self._on_frame_result)
        signals.captured.connect(self._on_captured)
        signals.failed.connect(self._on_vision_failed)
        signals.storeFull.connect(self._on_store_full)
        self._start(self._vision)
        self._source_poll.start()
        self._poll_source()
        if self._state != AppState.WORKING:  # a task started before the camera keeps its state
            self._set_state(self._resting_state())

    def shutdown(self) -> None:
        """Stop every thread this controller started, and the grabber. Idempotent.

        Every worker is told to quit first; then the ones already running are
        waited for, without a time limit: each ends within a frame (vision), a
        training iteration (training) or one save, and none waits for this thread.
        A worker still queued in the pool ends at once when it starts (vision) or
        runs with nobody listening: superqt emits no ``returned`` after ``quit``.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self._burst.stop()
        self._hold.stop()
        self._source_poll.stop()
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._publish_progress.cancel()
        for worker, _ended in self._workers:
            worker.quit()
        for worker, ended in self._workers:
            if worker.is_running:
                ended.wait()
        self._workers.clear()
        self._fitter.close()
        self._vision = self._trainer = None
        self.grabber.stop()

    def _start(self, worker: WorkerBase[Any]) -> None:
        """Start ``worker`` in Qt's global pool; ``shutdown`` quits it and waits for its end."""
        ended = threading.Event()
        # Direct: set in the worker's thread, so a GUI thread blocked in shutdown sees it.
        worker.signals.finished.connect(ended.set, Qt.ConnectionType.DirectConnection)
        self._workers = [entry for entry in self._workers if not entry[1].is_set()]
        self._workers.append((worker, ended))
        worker.start()

    # ---------------------------------------------------------------------- state
    @property
    def state(self) -> AppState:
        return self._state

    @property
    def source_error(self) -> str | None:
        return self._source_error

    @property
    def source_name(self) -> str:
        return self.grabber.source.describe()

    def snapshot(self) -> Snapshot:
        """The current state and class list, for widgets to enable themselves."""
        store = self.session.store
        names = tuple(store.class_names)
        counts = tuple(int(c) for c in store.counts())
        state = self._state
        busy = state in BUSY_STATES
        has_head = self._has_head()
        stale = has_head and self.session.head_is_stale
        history = self.session.history
        editable = not busy and state != AppState.CAPTURING
        return Snapshot(
            state=state,
            class_names=names,
            counts=counts,
            can_train=not busy and state != AppState.CAPTURING and bool(self.session.can_train),
            can_save=state == AppState.TRAINED and has_head and not stale,
            can_capture=not busy,
            can_edit_classes=not busy and state != AppState.CAPTURING,
            can_undo=editable and history.can_undo,
            has_head=has_head,
            head_stale=stale,
            capturing_class=self._capturing,
            can_redo=editable and history.can_redo,
            undo_is_recent=history.is_recent(history.next_undo()),
        )

    def _has_head(self) -> bool:
        # A head whose class was deleted cannot predict or be saved: treat as none.
        return self.session.head_is_usable

    def _resting_state(self) -> AppState:
        return AppState.TRAINED if self._has_head() else AppState.IDLE

    def _set_state(self, state: AppState) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)
        self._publish()

    def _publish(self) -> None:
        snapshot = self.snapshot()
        if snapshot.can_train and not self._shut_down:
            # Train is about to be offered: have the training process ready.
            with contextlib.suppress(OSError):  # cannot start now: the fit will say so
                self._fitter.warm_up()
        self.changed.emit(snapshot)

    def _say(self, text: str, level: str = "info") -> None:
        self.message.emit(text, level)

    # -------------------------------------------------------------------- classes
    def class_count(self) -> int:
        return len(self.session.store.class_names)

    def thumbnails(self, class_index: int, n: int = 4) -> list[np.ndarray]:
        """The newest ``n`` thumbnails of a class, newest first: (h, w, 3) uint8 each."""
        try:
            return list(self.session.store.latest_thumbnails(class_index, n))
        except (IndexError, KeyError, ValueError):
            return []

    def add_class(self, name: str | None = None) -> int | None:
        """Add a class; returns its index, or ``None`` (with a message) when not possible."""
        if not self.snapshot().can_edit_classes:
            return None
        if self.class_count() >= MAX_CLASSES:
            self._say(f"At most {MAX_CLASSES} classes", "error")
            return None
        try:
            index = self.session.add_class(name)
        except ValueError as error:
            self._say(str(error), "error")
            return None
        self._say(f"Added “{self.session.store.class_names[index]}”")
        return index

    def rename_class(self, class_index: int, name: str) -> str | None:
        """Rename a class; returns ``None`` on success, else the reason it was refused."""
        if not self.snapshot().can_edit_classes:
            return "Wait until training or saving has finished"
        old = self.session.store.class_names[class_index]
        try:
            self.session.rename_class(class_index, name)
        except ValueError as error:
            return str(error)
        new = self.session.store.class_names[class_index]
        if new != old:
            self._say(f"Renamed “{old}” to “{new}”")
        return None

    def remove_class(self, class_index: int) -> None:
        """Delete a class and its samples."""
        if not self.snapshot().can_edit_classes:
            return
        self._drop_pending_captures()
        name = self.session.store.class_names[class_index]
        try:
            self.session.remove_class(class_index)
        except (ValueError, IndexError) as error:
            self._say(str(error), "error")
            return
        self._say(f"Deleted “{name}” (Undo brings it back)")

    def clear_class(self, class_index: int) -> None:
        """Delete every sample of a class, keeping the class."""
        if not self.snapshot().can_edit_classes:
            return
        self._drop_pending_captures()
        name = self.session.store.class_names[class_index]
        self.session.clear_class(class_index)
        self._say(f"Cleared the samples of “{name}” (Undo brings them back)")

    def undo(self) -> None:
        """Take back the last step: a tap or a whole burst, a deleted or cleared class...

        The window asks the operator PIN first when ``undo_is_recent()`` is False.
        """
        if not self.snapshot().can_undo:
            self._say("Nothing to undo")
            return
        self._drop_pending_captures()
        try:
            step = self.session.undo()
        except (ValueError, StoreFullError) as error:
            self._say(f"Cannot undo: {error}", "error")
            return
        self._publish()  # the history moved after the store's own change events
        self._say("Nothing to undo" if step is None else f"Undid {step.describe()}")

    def redo(self) -> None:
        """Do again what Undo took back last."""
        if not self.snapshot().can_redo:
            return
        self._drop_pending_captures()
        try:
            step = self.session.redo()
        except (ValueError, StoreFullError) as error:
            self._say(f"Cannot redo: {error}", "error")
            return
        self._publish()
        self._say("Nothing to redo" if step is None else f"Redid {step.describe()}")

    @property
    def can_undo(self) -> bool:
        return self.snapshot().can_undo

    @property
    def can_redo(self) -> bool:
        return self.snapshot().can_redo

    def undo_is_recent(self) -> bool:
        """Whether Undo would take back the visitor's own captures since the last Train or Save.

        Older work (earlier visitors', a restored or opened session, a deleted
        class) is the operator's: the window asks for the PIN first.
        """
        history = self.session.history
        return history.is_recent(history.next_undo())

    def redo_is_recent(self) -> bool:
        """Whether Redo would redo the visitor's own captures (see ``undo_is_recent``)."""
        history = self.session.history
        return history.is_recent(history.next_redo())

    def reset_recent_work(self) -> None:
        """From now on only new work counts as the visitor's (after Open, Import...)."""
        self.session.history.mark()

    # -------------------------------------------------------------------- capture
    def begin_capture(self, class_index: int) -> None:
        """A capture button or key went down: one sample now, a burst if it stays down."""
        if self._capturing is not None or not self.snapshot().can_capture:
            return
        if not 0 <= class_index < self.class_count():
            return
        if self._vision is None:
            return
        self._capturing = class_index
        self._gesture = next(self._gestures)
        self._vision.request_capture(class_index, self._gesture)
        self._hold.start()
        self._set_state(AppState.CAPTURING)

    def end_capture(self) -> None:
        """The capture button or key came up."""
        if self._capturing is None:
            return
        self._capturing = None
        self._hold.stop()
        self._burst.stop()
        self._set_state(self._resting_state())

    def capture_once(self, class_index: int) -> None:
        """One sample into ``class_index`` (a tap)."""
        self.begin_capture(class_index)
        self.end_capture()

    @Slot()
    def _burst_start(self) -> None:
        if self._capturing is not None:
            self._burst.start()
            self._burst_tick()

    @Slot()
    def _burst_tick(self) -> None:
        if self._capturing is None or self._vision is None:
            self._burst.stop()
            return
        self._vision.request_capture(self._capturing, self._gesture)

    def _drop_pending_captures(self) -> None:
        self.end_capture()
        if self._vision is not None:
            self._vision.clear_requests()

    # ------------------------------------------------------------------- training
    def train(self) -> bool:
        """Start training in a worker thread; returns whether it started."""
        snap = self.snapshot()
        if not snap.can_train:
            if not self.session.can_train:
                self._say("Capture samples for at least two classes first", "error")
            return False
        self.last_curve = None
        self._trainer = TrainingWorker(self.session, self._fitter)
        self._trainer.signals.progressed.connect(self._on_training_progress)
        self._trainer.returned.connect(self._on_training_done)
        self._trainer.errored.connect(self._on_training_failed)
        self._set_state(AppState.TRAINING)
        self._say("Training…", "busy")
        self.trainingStarted.emit()
        self._start(self._trainer)
        return True

    def cancel_training(self) -> None:
        """Ask training to stop; ``trainingFinished`` follows within about 100 ms."""
        if self._state == AppState.TRAINING and self._trainer is not None:
            self._trainer.cancel()
            self._say("Cancelling…", "busy")

    @property
    def is_training(self) -> bool:
        return self._state == AppState.TRAINING

    @property
    def training_config(self) -> TrainingConfig:
        """The current training schedule (owned by the session's settings)."""
        return self.session.settings.config

    @property
    def default_training_config(self) -> TrainingConfig:
        """What Settings' "defaults" restores (the config file's)."""
        return self.session.default_settings.config

    def set_training_config(self, config: TrainingConfig) -> None:
        """Change the schedule in the session's settings (the next Train uses it)."""
        self.session.set_settings(dataclasses.replace(self.session.settings, config=config))

    @Slot()
    def _on_training_progress(self) -> None:
        self._publish_progress()

    @qthrottled(timeout=round(1000 / PROGRESS_HZ), leading=True)
    def _publish_progress(self) -> None:
        # Leading and trailing: the first report shows at once, the newest one last.
        if self._trainer is not None and not self._shut_down:
            self._show_curve(self._trainer.curve())

    def _show_curve(self, curve: TrainingCurve) -> None:
        self.last_curve = curve
        self.trainingProgress.emit(curve)

    def _training_ended(self) -> bool:
        """Plot the whole curve (none of it waits for the throttle); False after shutdown."""
        if self._shut_down:
            return False
        self._publish_progress.cancel()
        if self._trainer is not None:
            self._show_curve(self._trainer.curve())
        self._set_state(self._resting_state())
        return True

    @Slot(object)
    def _on_training_done(self, result: TrainingResult) -> None:
        if not self._training_ended():
            return
        if result.cancelled:
            self._say("Training cancelled", "info")
        elif result.diverged:
            self._say(
                "Training diverged: lower the learning rate in Settings and train again", "error"
            )
        else:
            text = _training_summary(result)
            head = self.session.head
            hint = None if head is None or head.evaluation is None else head.evaluation.hint
            if hint:  # name the most-confused pair instead of the generic advice
                text = text.split(". ")[0] + ". " + hint
            self._say(text, "ok")
        self.trainingFinished.emit(result)

    @Slot(object)
    def _on_training_failed(self, error: Exception) -> None:
        if not self._training_ended():
            return
        self._say(f"Training failed: {str(error) or type(error).__name__}", "error")
        self.trainingFinished.emit(None)

    # --------------------------------------------------------------------- saving
    def default_save_target(self) -> Path:
        """Where the Save dialog starts."""
        if self.last_save is not None:
            return Path(self.last_save.model_path)
        return Path.home() / "kiosk-model" / "model.tflite"

    def save(self, target: str | Path | None = None) -> bool:
        """Save model + labels (to ``target``, else ``--output``) in two phases.

        A worker stages and checks the files; back on this thread, when some
        class agrees too rarely, ``confirm_save`` asks; then the staged files are
        committed (a rename) or discarded. No thread ever waits for the answer.
        """
        if not self.snapshot().can_save:
            if self._has_head() and self.session.head_is_stale:
                self._say("Samples changed since training: train again before saving", "error")
            return False
        target = target if target is not None else self.output
        if target is None:
            self._say("No output path: start kiosk with --output or choose a file", "error")
            return False
        paths = save_paths(target)
        session = self.session

        def stage() -> StagedModel:
            try:
                paths.model.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OSError(
                    f"Cannot create the folder {paths.model.parent}: {error.strerror or error}"
                ) from error
            return session.stage_save(paths.model, paths.labels)

        saver: FunctionWorker[StagedModel] = create_worker(
            stage,
            _start_thread=False,
            _connect={"returned": self._on_staged, "errored": self._on_save_failed},
        )
        self._set_state(AppState.SAVING)
        self._say(f"Saving {paths.model}…", "busy")
        self._start(saver)
        return True

    @Slot(object)
    def _on_staged(self, staged: StagedModel) -> None:
        report = staged.report
        if self._shut_down:
            staged.discard()
            return
        try:
            if (
                report.low_fidelity_classes()
                and self.confirm_save is not None
                and not self.confirm_save(report)
            ):
                raise SaveCancelled("Not saved: the quantized model disagrees too often")
            report = self.session.commit_save(staged)
        except Exception as error:
            staged.discard()
            self._on_save_failed(error)
            return
        self.last_save = report
        self._set_state(self._resting_state())
        self._say(_save_summary(report), "ok")
        self.saveFinished.emit(report)

    @Slot(object)
    def _on_save_failed(self, error: Exception) -> None:
        if self._shut_down:
            return
        self._set_state(self._resting_state())
        text = str(error) or type(error).__name__
        if isinstance(error, SaveCancelled):
            self._say(f"{text}. Earlier files are untouched.", "info")
            self.saveFailed.emit(text)
            return
        self._say(f"Save failed, earlier files are untouched: {text}", "error")
        self.saveFailed.emit(text)

    # ---------------------------------------------------------- long operations
    @property
    def is_working(self) -> bool:
        """Whether a ``run_task`` operation is under way."""
        return self._state == AppState.WORKING

    def run_task(
        self,
        busy_text: str,
        call: Callable[[], Result],
        on_done: Callable[[Result], None],
        on_failed: Callable[[Exception], None] | None = None,
    ) -> bool:
        """Run ``call`` off the GUI thread (state WORKING, ``busy_text`` on the status line).

        ``on_done(result)`` or ``on_failed(error)`` then runs on the GUI thread,
        after the state is back to resting (default failure: the error on the status
        line). Returns whether it started: not while training, saving, capturing or
        another task runs.
        """
        if self._shut_down or self._state not in (AppState.IDLE, AppState.TRAINED):
            self._say("Wait until the current operation has finished", "error")
            return False
        self._drop_pending_captures()
        self._task_callbacks = (on_done, on_failed or self._say_task_failed)
        task: FunctionWorker[Result] = create_worker(
            call,
            _start_thread=False,
            _connect={"returned": self._on_task_done, "errored": self._on_task_failed},
        )
        self._set_state(AppState.WORKING)
        self._say(busy_text, "busy")
        self._start(task)
        return True

    def _say_task_failed(self, error: Exception) -> None:
        self._say(str(error) or type(error).__name__, "error")

    @Slot(object)
    def _on_task_done(self, result: object) -> None:
        callbacks = self._end_task()
        if callbacks is not None:
            callbacks[0](result)
            self._publish()

    @Slot(object)
    def _on_task_failed(self, error: Exception) -> None:
        callbacks = self._end_task()
        if callbacks is not None:
            callbacks[1](error)
            self._publish()

    def _end_task(self) -> tuple[Callable[[Any], None], Callable[[Exception], None]] | None:
        """Back to resting; the task's (on_done, on_failed), or None after shutdown."""
        callbacks, self._task_callbacks = self._task_callbacks, None
        if self._shut_down:
            return None
        self._set_state(self._resting_state())
        return callbacks

    # --------------------------------------------------------------------- source
    def retry_source(self) -> None:
        """Try to open the frame source again now."""
        self.grabber.retry_now()
        self._say(f"Trying {self.source_name} again…", "busy")

    @Slot()
    def _poll_source(self) -> None:
        error = self.grabber.error
        if error != self._source_error:
            self._source_error = error
            self.sourceErrorChanged.emit(error)
            if error is None:
                self._say(f"{self.source_name.capitalize()} is running", "ok")

    # ----------------------------------------------------------- worker callbacks
    def _store_listener(self, *args: object) -> None:
        # Any thread. A change made here (a click) refreshes at once; one made on
        # a worker thread is bounced over, and a burst of them is coalesced.
        # Not superqt's ensure_main_thread: called from a worker thread it makes
        # a QObject per call that is freed inside its own queued slot, and with
        # PySide6 6.11 a few thousand calls crash the process (use after free).
        if QThread.currentThread() == self.thread():
            self._on_store_changed()
        elif not self._refresh_pending:
            self._refresh_pending = True
            self._storeChangedElsewhere.emit()

    @Slot()
    def _on_store_changed(self) -> None:
        self._refresh_pending = False
        if self._shut_down:
            return
        if self._state in (AppState.IDLE, AppState.TRAINED):
            # Removing a class can drop the head; keep the resting state honest.
            self._set_state(self._resting_state())
        else:
            self._publish()

    @Slot(object)
    def _on_frame_result(self, result: FrameResult) -> None:
        self.frameProcessed.emit(result)
        self.predictionChanged.emit(result.prediction)
        self.noveltyChanged.emit(result.novelty)

    @Slot(object)
    def _on_captured(self, done: CaptureDone) -> None:
        self.sampleCaptured.emit(done.class_index)
        message = None if done.feedback is None else done.feedback.message
        if message:  # stored anyway; the operator is told to vary the view
            self._say(message, "info")
            self.duplicateCaptured.emit(done.class_index, message)

    @Slot(str)
    def _on_vision_failed(self, text: str) -> None:
        self._say(text, "error")

    @Slot(int, str)
    def _on_store_full(self, class_index: int, text: str) -> None:
        # The burst stops here: every further capture would be refused the same way.
        self._drop_pending_captures()
        self._say(store_full_message(self.session.store, class_index, text), "error")


def store_full_message(store: EmbeddingStore, class_index: int, text: str) -> str:
    """The store's refusal, plus which setting raises the limit that was hit."""
    counts = store.counts()
    count = counts[class_index] if 0 <= class_index < len(counts) else -1
    if count >= store.max_samples_per_class:
        return (
            f"{text}. Limit: {store.max_samples_per_class} samples a class; raise "
            "max_samples_per_class in the config file (or --max-samples-per-class)"
        )
    return (
        f"{text}. Limit: {store.max_bytes / 2**20:.0f} MB of samples; raise max_memory_mb in "
        "the config file (or --max-memory-mb)"
    )


def _session_signals(session: TeachingSession) -> list[SignalInstance]:
    """Every signal after which the window may have to show something else."""
    store = session.store.events
    return [
        store.samplesAdded,
        store.samplesRemoved,
        store.classAdded,
        store.classRemoved,
        store.classRenamed,
        store.extended,
        store.replaced,
        session.events.headChanged,
        session.events.settingsChanged,
    ]


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * float(value):.0f}%"


def _training_summary(result: TrainingResult) -> str:
    parts = ["Trained"]
    if result.val_accuracy is not None:
        parts.append(f"validation accuracy {_percent(result.val_accuracy)}")
    else:
        parts.append(f"training accuracy {_percent(result.train_accuracy)}")
    seconds = result.seconds
    parts.append(f"in {seconds:.1f} s" if seconds >= 0.1 else f"in {1000 * seconds:.0f} ms")
    return " · ".join(parts) + ". Show the camera an object to see the prediction."


def _save_summary(report: SaveReport) -> str:
    model = Path(report.model_path)
    text = f"Saved {model.name} + labels.txt to {model.parent}"
    low = report.low_fidelity_classes()
    if low:
        text += " · warning: the quantized model often disagrees on " + ", ".join(low)
    elif report.agreement is not None:
        text += f" · quantized model agrees with the float head on {_percent(report.agreement)}"
        if report.checked:
            text += f" of {report.checked}"
    elif report.note:
        text += f" · {report.note}"
    return text


def hint_for(snapshot: Snapshot) -> str:
    """What the operator should do next, for the status line when nothing else is said."""
    state = snapshot.state
    if state == AppState.TRAINING:
        return "Training… the camera keeps running. Cancel stops it."
    if state == AppState.SAVING:
        return "Saving the model…"
    if state == AppState.WORKING:
        return "Working… the camera keeps running."
    if state == AppState.CAPTURING:
        return "Recording samples: let go to stop."
    with_samples = sum(1 for c in snapshot.counts if c > 0)
    if with_samples < 2:
        return "Tap or hold a class's button (or keys 1–9) to capture two classes or more."
    coaching = class_hint(snapshot.class_names, snapshot.counts)
    if coaching and (not snapshot.has_head or snapshot.head_stale):
        return coaching
    if not snapshot.has_head:
        return "Ready: press Train."
    if snapshot.head_stale:
        return "Samples changed: press Train again to update the predictions."
    return "Live predictions are on. Save writes the model and labels.txt."
