"""superqt workers around the Qt-free core: each runs in Qt's global thread pool.

* ``VisionWorker`` loops over the grabber's newest frame: it serves queued
  capture requests and predicts with the current head, emitting a small result
  per frame. Its loop holds its pool thread until ``quit``, so the GUI talks to
  it through thread-safe methods (a deque and events), never through slots.
* ``TrainingWorker`` runs ``session.train`` in a ``FitProcess`` child with a
  ``threading.Event`` for Cancel. Every progress report updates the curve here
  and rings ``progressed`` unless a ring is still unanswered; the controller
  reads ``curve()`` through a ``qthrottled`` slot, at most ``PROGRESS_HZ`` a second.
* One-shot calls (Save's staging, project tasks) are plain superqt
  ``FunctionWorker``s made with ``create_worker``.

superqt keeps each started worker referenced until it has finished, and its
signals are queued to the receivers' (GUI) thread, so the GUI thread never waits
on a running worker. Only ``quit`` at shutdown suppresses a worker's ``returned``.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Signal
from superqt.utils import WorkerBase
from superqt.utils._qthreading import WorkerBaseSignals

from kiosk.coaching import CaptureFeedback
from kiosk.learn import TrainingResult
from kiosk.learn.fit_process import Fitter
from kiosk.learn.training import TrainingProgress
from kiosk.predict import Prediction
from kiosk.session import TeachingSession
from kiosk.store import StoreFullError
from kiosk.vision.grabber import FrameGrabber

# Progress signals per second while training: smooth enough to watch, and each
# one costs the GUI thread a plot update.
PROGRESS_HZ = 10.0
# The plot gets at most about this many points, however long training runs.
MAX_PLOT_POINTS = 1000
# The same vision failure is reported at most this often (seconds).
REPORT_EVERY_S = 5.0
# A capture request older than this is dropped (no frame arrived in time).
CAPTURE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class FrameResult:
    """What the vision worker learned from one frame."""

    frame_id: int
    prediction: Prediction | None
    seconds: float  # time spent on this frame (embedding + head)
    novelty: float | None = None  # kiosk.learn.gate.novelty vs every sample (None: no samples)


@dataclass(frozen=True)
class CaptureDone:
    """A capture request that reached the store."""

    class_index: int
    sample_id: int
    latency: float  # seconds from the request to the sample being stored
    feedback: CaptureFeedback | None = None  # near-duplicate check (None: sample gone)


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


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


class VisionSignals(WorkerBaseSignals):
    result = Signal(object)  # FrameResult
    captured = Signal(object)  # CaptureDone
    failed = Signal(str)  # a capture or prediction that went wrong, for the status line
    storeFull = Signal(int, str)  # class index, the store's refusal: the burst must stop


class VisionWorker(WorkerBase[None]):
    """Embeds the newest frame, serves capture requests, predicts; ends on ``quit``."""

    signals: VisionSignals

    def __init__(
        self, session: TeachingSession, grabber: FrameGrabber, idle_wait: float = 0.003
    ) -> None:
        super().__init__(SignalsClass=VisionSignals)
        self._session = session
        self._grabber = grabber
        self._idle_wait = idle_wait
        # (class index, gesture, when asked): a gesture's captures are undone together.
        self._requests: collections.deque[tuple[int, object, float]] = collections.deque()
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

    def quit(self) -> None:
        """End the loop after the current frame (superqt's abort request, plus a wake-up)."""
        super().quit()
        self._wake.set()

    # -- the loop, in a pool thread ---------------------------------------------------
    def work(self) -> None:
        last_id: int | None = None
        frame: np.ndarray | None = None
        while not self.abort_requested:
            latest = self._grabber.latest()
            fresh = latest is not None and latest[0] != last_id
            if latest is not None and fresh:
                last_id, frame = latest
            served = bool(self._requests)
            if served:
                self._serve_captures(frame)
            if fresh and last_id is not None and frame is not None:
                self._process(last_id, frame)
            elif not served:
                # Nothing new: wait a little, or until a capture request wakes us.
                self._wake.wait(self._idle_wait)
                self._wake.clear()

    def _serve_captures(self, frame: np.ndarray | None) -> None:
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
                self.signals.storeFull.emit(class_index, str(error))
                continue
            except Exception as error:  # a class removed meanwhile...
                self._report(f"Capture failed: {error}")
                continue
            latency = time.perf_counter() - requested
            # After the latency is taken: coaching must not delay the capture itself.
            feedback = self._session.capture_feedback(sample_id)
            self.signals.captured.emit(CaptureDone(class_index, sample_id, latency, feedback))

    def _report(self, text: str) -> None:
        # A failure that repeats on every frame is said once every few seconds.
        now = time.monotonic()
        if text != self._last_report or now - self._last_report_at > REPORT_EVERY_S:
            self._last_report, self._last_report_at = text, now
            self.signals.failed.emit(text)

    def _process(self, frame_id: int, frame: np.ndarray) -> None:
        start = time.perf_counter()
        prediction: Prediction | None = None
        novelty: float | None = None
        try:
            # One embedding: the live prediction (the trained head, or before training
            # the instant imprinted one) and how new the view is (one matmul).
            prediction, novelty = self._session.observe(frame)
        except Exception as error:
            self._report(f"Prediction failed: {error}")
        elapsed = time.perf_counter() - start
        self.signals.result.emit(FrameResult(frame_id, prediction, elapsed, novelty))


class TrainingSignals(WorkerBaseSignals):
    progressed = Signal()  # the curve has new points: read them with ``curve()``


class TrainingWorker(WorkerBase[TrainingResult]):
    """Runs ``session.train``; ``returned`` the result, ``errored`` the exception."""

    signals: TrainingSignals

    def __init__(self, session: TeachingSession, fitter: Fitter) -> None:
        super().__init__(SignalsClass=TrainingSignals)
        self._session = session
        self._fitter = fitter  # the fit runs in a child process: the GUI never waits on it
        self.cancel_event = threading.Event()
        # The plotted history: (iteration, loss, train accuracy, val accuracy) rows,
        # thinned as it grows (every ``_stride``-th report) so a long run costs the
        # GUI no more to draw than a short one.
        self._lock = threading.Lock()
        self._points: list[tuple[int, float, float, float]] = []
        self._stride = 1
        self._reports = 0
        self._latest: tuple[int, float, float, float] | None = None
        self._num_iter = session.settings.config.num_iter
        # A ``progressed`` is on its way and ``curve()`` has not been read since:
        # reports in between only update the curve (one queued signal at a time).
        self._rung = False

    def cancel(self) -> None:
        """Ask training to stop; thread-safe, the trainer checks between iterations.

        Unlike ``quit``, the (cancelled) result is still ``returned``.
        """
        self.cancel_event.set()

    def quit(self) -> None:
        """Stop training and drop its result (shutdown)."""
        super().quit()
        self.cancel_event.set()

    def work(self) -> TrainingResult:
        return self._session.train(
            callback=self._on_progress, cancel=self.cancel_event, fitter=self._fitter
        )

    def curve(self) -> TrainingCurve:
        """The curve so far (any thread); re-arms ``progressed``."""
        with self._lock:
            self._rung = False
            points = list(self._points)
            if self._latest is not None and (not points or points[-1] != self._latest):
                points.append(self._latest)
            num_iter = self._num_iter
        if not points:
            return TrainingCurve((), (), (), (), num_iter=num_iter)
        iterations, loss, train, val = zip(*points, strict=True)
        return TrainingCurve(iterations, loss, train, val, num_iter=num_iter)

    def _on_progress(self, progress: TrainingProgress) -> None:
        point = (
            int(progress.iteration),
            _number(progress.loss),
            _number(progress.train_accuracy),
            _number(progress.val_accuracy),
        )
        with self._lock:
            self._latest = point
            if self._reports % self._stride == 0:
                self._points.append(point)
                if len(self._points) >= 2 * MAX_PLOT_POINTS:
                    del self._points[1::2]
                    self._stride *= 2
            self._reports += 1
            self._num_iter = int(progress.num_iter) or self._num_iter
            ring, self._rung = not self._rung, True
        if ring:
            self.signals.progressed.emit()
