"""Qt workers around the Qt-free core: each one is a QObject moved to a QThread.

* ``VisionWorker`` loops over the grabber's newest frame: it serves queued
  capture requests and predicts with the current head, emitting a small result
  per frame. Its loop blocks its thread's event loop, so the GUI talks to it
  through thread-safe methods (a deque and events), never through queued slots.
* ``TrainingWorker`` runs ``session.train`` with a progress callback (throttled to
  about 10 signals a second) and a ``threading.Event`` for Cancel; the fit
  itself runs in a child process (``kiosk.learn.fit_process``) when given one.
* ``CallWorker`` runs one blocking call (Save) and reports its result.

``WorkerThreads`` starts them and owns each worker and its thread until the
thread has ended, so the GUI thread never waits on a running worker.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from kiosk.learn.fit_process import Fitter
from kiosk.session import TeachingSession
from kiosk.store import StoreFullError

# Progress signals per second while training: smooth enough to watch, and each
# one costs the GUI thread a plot update.
PROGRESS_HZ = 10.0
# The plot gets at most about this many points, however long training runs.
MAX_PLOT_POINTS = 1000
# The same vision failure is reported at most this often (seconds).
REPORT_EVERY_S = 5.0
# How much nicer than the GUI the training thread runs (see _yield_cpu_to_gui).
TRAINING_NICENESS = 10
# A capture request older than this is dropped (no frame arrived in time).
CAPTURE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class FrameResult:
    """What the vision worker learned from one frame."""

    frame_id: int
    prediction: Any  # kiosk.session.Prediction | None
    seconds: float  # time spent on this frame (embedding + head)
    novelty: float | None = None  # kiosk.coaching.novelty vs every sample (None: no samples)


@dataclass(frozen=True)
class CaptureDone:
    """A capture request that reached the store."""

    class_index: int
    sample_id: Any
    latency: float  # seconds from the request to the sample being stored
    feedback: Any = None  # kiosk.coaching.CaptureFeedback | None (near-duplicate check)


@dataclass(frozen=True)
class TrainingCurve:
    """Everything the training plot needs, copied out of the training thread.

    ``iterations``, ``loss``, ``train_accuracy``, ``val_accuracy`` are equal-length
    tuples (accuracies are NaN where the trainer did not report one).
    """

    iterations: tuple[int, ...]
    loss: tuple[float, ...]
    train_accuracy: tuple[float, ...]
    val_accuracy: tuple[float, ...]
    num_iter: int

    @property
    def last(self) -> tuple[int, float, float, float] | None:
        if not self.iterations:
            return None
        return (self.iterations[-1], self.loss[-1], self.train_accuracy[-1], self.val_accuracy[-1])


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _yield_cpu_to_gui(niceness: int = TRAINING_NICENESS) -> None:
    """Lower the calling thread's CPU priority (Linux: a per-thread nice value).

    On a small board the GUI, the camera and the live embedding all want the
    same cores as training; training is the one that can wait. It still gets
    every cycle nobody else wants, so it runs at full speed on an idle machine.
    """
    if not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError:
        pass  # not permitted here: run at the normal priority


class VisionWorker(QObject):
    """Embeds the newest frame, serves capture requests, predicts (in its own thread)."""

    result = Signal(object)  # FrameResult
    captured = Signal(object)  # CaptureDone
    failed = Signal(str)  # a capture or prediction that went wrong, for the status line
    storeFull = Signal(int, str)  # class index, the store's refusal: the burst must stop
    finished = Signal()

    def __init__(self, session: TeachingSession, grabber: Any, idle_wait: float = 0.003) -> None:
        super().__init__()
        self._session = session
        self._grabber = grabber
        self._idle_wait = idle_wait
        # (class index, gesture, when asked): a gesture's captures are undone together.
        self._requests: collections.deque[tuple[int, object, float]] = collections.deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._last_report = ""
        self._last_report_at = 0.0

    # -- called from the GUI thread (thread-safe) ---------------------------------
    def request_capture(self, class_index: int, gesture: object = None) -> None:
        """Store the newest frame in ``class_index`` as soon as possible.

        ``gesture``: the press (a tap or a held button) the capture belongs to.
        """
        self._requests.append((class_index, gesture, time.perf_counter()))
        self._wake.set()

    def clear_requests(self) -> None:
        """Forget pending captures (their class indices may no longer be valid)."""
        self._requests.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # -- the loop, in the worker thread -------------------------------------------
    @Slot()
    def run(self) -> None:
        last_id: Any = None
        frame = None
        try:
            while not self._stop.is_set():
                latest = self._grabber.latest()
                fresh = latest is not None and latest[0] != last_id
                if fresh:
                    last_id, frame = latest
                served = bool(self._requests)
                if served:
                    self._serve_captures(frame)
                if fresh:
                    self._process(last_id, frame)
                elif not served:
                    # Nothing new: wait a little, or until a capture request wakes us.
                    self._wake.wait(self._idle_wait)
                    self._wake.clear()
        finally:
            self.finished.emit()

    def _serve_captures(self, frame: Any) -> None:
        now = time.perf_counter()
        if frame is None:
            # No frame yet: keep fresh requests, drop ones that waited too long.
            while self._requests and now - self._requests[0][2] > CAPTURE_TIMEOUT_S:
                self._requests.popleft()
                self._report("No camera frame to capture yet")
            self._wake.wait(self._idle_wait)
            self._wake.clear()
            return
        while self._requests:
            class_index, gesture, requested = self._requests.popleft()
            try:
                sample_id = self._session.capture(class_index, frame, gesture)
            except StoreFullError as error:
                # Drop the rest of the burst: every further request would fail the same way.
                self._requests.clear()
                self.storeFull.emit(class_index, str(error))
                continue
            except Exception as error:  # a class removed meanwhile...
                self._report(f"Capture failed: {error}")
                continue
            latency = time.perf_counter() - requested
            # After the latency is taken: coaching must not delay the capture itself.
            feedback = self._session.capture_feedback(sample_id)
            self.captured.emit(CaptureDone(class_index, sample_id, latency, feedback))

    def _report(self, text: str) -> None:
        # A failure that repeats on every frame is said once every few seconds.
        now = time.monotonic()
        if text != self._last_report or now - self._last_report_at > REPORT_EVERY_S:
            self._last_report, self._last_report_at = text, now
            self.failed.emit(text)

    def _process(self, frame_id: Any, frame: Any) -> None:
        start = time.perf_counter()
        prediction = novelty = None
        try:
            # One embedding: the live prediction (the trained head, or before training
            # the instant imprinted one) and how new the view is (one matmul).
            prediction, novelty = self._session.observe(frame)
        except Exception as error:
            self._report(f"Prediction failed: {error}")
        elapsed = time.perf_counter() - start
        self.result.emit(FrameResult(frame_id, prediction, elapsed, novelty))


class TrainingWorker(QObject):
    """Runs ``session.train`` and reports throttled progress."""

    progress = Signal(object)  # TrainingCurve
    done = Signal(object)  # TrainingResult
    failed = Signal(str)

    def __init__(self, session: TeachingSession, fitter: Fitter | None = None) -> None:
        super().__init__()
        self._session = session
        self._fitter = fitter  # kiosk.learn.fit_process.Fitter; None fits in this thread
        self.cancel_event = threading.Event()
        # The plotted history: (iteration, loss, train accuracy, val accuracy) rows,
        # thinned as it grows (every ``_stride``-th report) so a long run costs the
        # GUI no more to draw than a short one.
        self._points: list[tuple[int, float, float, float]] = []
        self._stride = 1
        self._reports = 0
        self._latest: tuple[int, float, float, float] | None = None
        self._num_iter = session.settings.config.num_iter
        self._last_emit = 0.0

    def cancel(self) -> None:
        """Ask training to stop; thread-safe, the trainer checks between iterations."""
        self.cancel_event.set()

    @Slot()
    def run(self) -> None:
        if self._fitter is None:
            _yield_cpu_to_gui()
        try:
            result = self._session.train(
                callback=self._on_progress, cancel=self.cancel_event, fitter=self._fitter
            )
        except Exception as error:
            self._emit_curve()
            self.failed.emit(str(error) or type(error).__name__)
            return
        self._emit_curve()
        self.done.emit(result)

    def _on_progress(self, progress: Any) -> None:
        point = (
            int(progress.iteration),
            _number(progress.loss),
            _number(getattr(progress, "train_accuracy", None)),
            _number(getattr(progress, "val_accuracy", None)),
        )
        self._latest = point
        if self._reports % self._stride == 0:
            self._points.append(point)
            if len(self._points) >= 2 * MAX_PLOT_POINTS:
                del self._points[1::2]
                self._stride *= 2
        self._reports += 1
        self._num_iter = int(getattr(progress, "num_iter", self._num_iter) or self._num_iter)
        now = time.perf_counter()
        if now - self._last_emit >= 1.0 / PROGRESS_HZ:
            self._last_emit = now
            self._emit_curve()

    def _emit_curve(self) -> None:
        points = list(self._points)
        if self._latest is not None and (not points or points[-1] != self._latest):
            points.append(self._latest)
        columns = tuple(zip(*points, strict=True)) if points else ((), (), (), ())
        self.progress.emit(TrainingCurve(*columns, num_iter=self._num_iter))


class CallWorker(QObject):
    """Runs one blocking call off the GUI thread."""

    done = Signal(object)
    failed = Signal(object)  # the exception

    def __init__(self, function: Callable[[], Any]) -> None:
        super().__init__()
        self._function = function

    @Slot()
    def run(self) -> None:
        try:
            result = self._function()
        except Exception as error:
            self.failed.emit(error)
            return
        self.done.emit(result)


class WorkerThreads(QObject):
    """Runs workers on their own QThreads and owns each pair until its thread has ended.

    ``start`` does the wiring superqt's ``new_worker_qthread`` does (started ->
    run, a finish signal -> quit) with two differences that keep the GUI thread
    from ever waiting on a running worker:

    * The finish signals call ``QThread.quit`` directly on the worker's thread
      (it is thread-safe), not through the GUI thread's event queue: a queued
      quit could sit behind the very GUI call that is waiting for the thread to
      end, such as a Save pressed right after the previous one failed.
    * A superseded worker is not waited for; it stays referenced here until its
      own ``finished`` arrives, then both objects are released. Holding them
      until then also means the ``sender()`` of that late signal is never a
      freed thread whose address a newer one reuses.

    There is no ``deleteLater``: both objects were made in Python, so these
    references own them. Mixing the two ownerships is how PySide programs delete
    a worker twice.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._live: list[tuple[QObject, QThread]] = []

    def start(self, worker: QObject, *finish_signals: Any, name: str = "") -> QThread:
        """Move ``worker`` to a new QThread and run ``worker.run`` there.

        The thread quits when any of ``finish_signals`` fires; ``worker.run``
        returns right after emitting one.
        """
        thread = QThread()
        if name:
            thread.setObjectName(name)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        for signal in finish_signals:
            signal.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._on_finished)  # queued to the GUI thread
        self._live.append((worker, thread))
        thread.start()
        return thread

    def __len__(self) -> int:
        """How many threads have not been released yet."""
        return len(self._live)

    def stop_all(self) -> None:
        """Quit every thread and wait for it (shutdown: stop or cancel the workers first)."""
        for _worker, thread in self._live:
            thread.quit()
            thread.wait()
        self._live.clear()

    @Slot()
    def _on_finished(self) -> None:
        thread = self.sender()
        for entry in self._live:
            if entry[1] is thread:
                # ``finished`` is the thread's last act: this wait returns at
                # once, and makes sure it is not deleted while still returning.
                thread.wait()
                self._live.remove(entry)
                return
