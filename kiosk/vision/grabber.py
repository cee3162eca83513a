"""Background frame grabbing: the newest frame wins.

A ``FrameGrabber`` thread reads a ``FrameSource`` as fast as it delivers and
keeps only the newest frame; whoever wants a frame (the live view on a timer,
a capture press, the predictor) takes ``latest()`` without ever waiting for
the camera. When the source fails to open or dies, the grabber keeps the
message in ``error`` and retries with a growing pause (0.5 s, 1 s, 2 s, 4 s,
then every 5 s); ``retry_now()`` cuts the pause short.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from kiosk.vision.sources import FrameSource, SourceError

__all__ = ["FrameGrabber"]

log = logging.getLogger(__name__)

# How long the loop naps when the source has no frame for it: short enough for
# a prompt stop, long enough not to spin a core on a paused or ended source.
_IDLE_WAIT = 0.005


class FrameGrabber(threading.Thread):
    """Reads frames from a source on its own daemon thread.

    Frames handed out by ``latest()`` are never written to again, by the
    grabber or the source, so they can be shown or embedded without copying.
    Every public method returns at once; none waits for the source.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 5.0,
        name: str | None = None,
    ) -> None:
        """
        Args:
            source: an unopened source; the grabber opens and closes it.
            backoff_initial: the first pause before reopening a failed source, in s.
            backoff_max: the longest pause; pauses double up to it.
            name: the thread's name (default "grabber <source>").
        """
        super().__init__(name=name or f"grabber {source.describe()}", daemon=True)
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self.source = source
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._stop_event = threading.Event()
        self._retry_event = threading.Event()
        self._new_frame = threading.Condition()
        self._latest: tuple[int, np.ndarray] | None = None
        self._frame_count = 0
        self._error: str | None = None
        self._retry_at: float | None = None
        self._fps = 0.0

    # -- what the UI reads ------------------------------------------------------

    def latest(self) -> tuple[int, np.ndarray] | None:
        """(frame id, (H, W, 3) uint8 RGB frame) of the newest frame, or None before the first.

        Frame ids count up from 1; an unchanged id means no new frame since the last look.
        """
        with self._new_frame:
            return self._latest

    def wait_for_frame(
        self, after: int = 0, timeout: float | None = None
    ) -> tuple[int, np.ndarray] | None:
        """Block until a frame with an id above ``after`` exists; None on timeout.

        For scripts, tests and the CLI; the UI polls ``latest()`` instead.
        """
        with self._new_frame:
            self._new_frame.wait_for(
                lambda: self._latest is not None and self._latest[0] > after, timeout
            )
            latest = self._latest
        return latest if latest is not None and latest[0] > after else None

    @property
    def frame_count(self) -> int:
        """Frames read from the source since the start (stale ones included)."""
        return self._frame_count

    @property
    def fps(self) -> float:
        """Frames per second delivered by the source, smoothed over about a second."""
        return self._fps

    @property
    def error(self) -> str | None:
        """The user-facing message of the last failure, or None while frames flow."""
        return self._error

    def seconds_until_retry(self) -> float | None:
        """Seconds until the next attempt to reopen a failed source, or None when not failed."""
        retry_at = self._retry_at
        return None if retry_at is None else max(0.0, retry_at - time.monotonic())

    # -- control ----------------------------------------------------------------

    def retry_now(self) -> None:
        """Try to reopen a failed source at once and restart the pauses from the shortest."""
        self._retry_event.set()

    def stop(self, timeout: float = 0.5) -> bool:
        """Ask the thread to end and wait up to ``timeout`` s; True if it has ended.

        The thread closes the source itself on the way out, so a read that is
        still in progress is never cut off under its feet.
        """
        self._stop_event.set()
        self._retry_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
        return not self.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    # -- the thread -------------------------------------------------------------

    def run(self) -> None:
        delay = self.backoff_initial
        try:
            while not self._stop_event.is_set():
                if self._open():
                    delay = self.backoff_initial
                    self._pump()
                if self._stop_event.is_set():
                    break
                # Failed to open, or the source died: pause, then try again.
                if self._wait_before_retry(delay):
                    delay = self.backoff_initial
                else:
                    delay = min(delay * 2, self.backoff_max)
        finally:
            self._close()

    def _open(self) -> bool:
        """Open the source; on failure record the error and return False."""
        try:
            self.source.open()
        except Exception as error:
            self._fail(error)
            return False
        self._error = None
        self._retry_at = None
        # A retry_now() pressed while healthy must not skip the next pause.
        self._retry_event.clear()
        return True

    def _pump(self) -> None:
        """Read until stopped or the source fails (then close it and return)."""
        window_start, window_frames = time.monotonic(), 0
        while not self._stop_event.is_set():
            try:
                frame = self.source.read()
            except Exception as error:
                self._fail(error)
                self._close()
                return
            if frame is None:
                self._stop_event.wait(_IDLE_WAIT)
                continue
            frame.flags.writeable = False
            with self._new_frame:
                self._frame_count += 1
                self._latest = (self._frame_count, frame)
                self._new_frame.notify_all()
            window_frames += 1
            elapsed = time.monotonic() - window_start
            if elapsed >= 1.0:
                self._fps = window_frames / elapsed
                window_start, window_frames = time.monotonic(), 0

    def _wait_before_retry(self, delay: float) -> bool:
        """Pause ``delay`` s unless stopped or ``retry_now()``; True if asked to retry now."""
        self._retry_at = time.monotonic() + delay
        asked = self._retry_event.wait(delay)
        self._retry_event.clear()
        return asked

    def _fail(self, error: Exception) -> None:
        if isinstance(error, SourceError):
            message = str(error)
        else:
            # Not a failure the source foresaw: keep the details in the log.
            log.exception("frame source %s failed", self.source.describe())
            message = f"{self.source.describe()} failed: {error}"
        self._error = message
        self._fps = 0.0

    def _close(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.exception("closing frame source %s failed", self.source.describe())
