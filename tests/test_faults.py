"""Faults behind the FrameSource interface, and a training run that diverges.

Fake sources stand in for a camera that is unplugged and comes back, one that
never delivers, and one whose driver hangs inside ``read()``. The grabber must
report, back off, recover, stay cheap and stay responsive; the samples must
never be touched by any of it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from kiosk.learn import TrainingConfig
from kiosk.session import TeachingSession
from kiosk.vision.grabber import FrameGrabber
from kiosk.vision.sources import FrameSource, SourceError
from tests.fakes import FakeExtractor, HangingSource, picture


class FlakySource(FrameSource):
    """Delivers ``fail_after`` frames, then "is unplugged": ``read()`` raises and the
    next ``refuse_opens`` calls to ``open()`` raise too; after that it works forever.
    """

    def __init__(self, fail_after: int = 5, refuse_opens: int = 2) -> None:
        self.fail_after = fail_after
        self.refuse_opens = refuse_opens
        self.unplugged = False
        self.delivered = 0
        self.open_attempts: list[float] = []
        self.failed_at: float | None = None

    def describe(self) -> str:
        return "flaky camera"

    def open(self) -> None:
        self.open_attempts.append(time.monotonic())
        if self.unplugged:
            if self.refuse_opens > 0:
                self.refuse_opens -= 1
                raise SourceError("Camera flaky is not connected")
            self.unplugged = False

    def read(self) -> np.ndarray | None:
        if self.failed_at is None and self.delivered >= self.fail_after:
            self.failed_at = time.monotonic()
            self.unplugged = True
            raise SourceError("Camera flaky stopped delivering frames")
        time.sleep(0.002)  # a camera paced at a few hundred fps
        self.delivered += 1
        return picture(self.delivered, size=16)

    def close(self) -> None:
        pass


class SilentSource(FrameSource):
    """Opens fine and never has a frame: ``read()`` returns None forever.

    Records the CPU time of the thread that reads, so the test can tell a
    polite idle loop from a busy spin.
    """

    def __init__(self) -> None:
        self.reads = 0
        self.cpu: list[tuple[float, float]] = []  # (wall, thread CPU) per read

    def describe(self) -> str:
        return "silent camera"

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        self.reads += 1
        self.cpu.append((time.monotonic(), time.thread_time()))
        return None

    def close(self) -> None:
        pass


def wait_until(condition, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


@pytest.fixture
def session() -> TeachingSession:
    """A session with two classes of samples and a trained head."""
    session = TeachingSession(FakeExtractor())
    session.store.add_class("cup")
    session.store.add_class("pen")
    for i in range(12):
        session.capture(i % 2, picture(i))
    session.train()
    return session


def store_state(session: TeachingSession) -> tuple:
    snapshot = session.store.snapshot()
    return (
        snapshot.version,
        tuple(snapshot.class_names),
        tuple(tuple(s.id for s in samples) for samples in snapshot.samples),
        session.head,
    )


def test_unplugged_source_is_reported_backs_off_and_recovers(session) -> None:
    source = FlakySource(fail_after=5, refuse_opens=2)
    grabber = FrameGrabber(source, backoff_initial=0.05, backoff_max=1.0)
    before = store_state(session)
    grabber.start()
    try:
        # The error stays up through the refused reopens (~0.35 s): the UI shows it.
        wait_until(lambda: grabber.error is not None, what="the report")
        reported = grabber.error
        # Frames come back by themselves, with no retry_now().
        wait_until(lambda: grabber.frame_count >= 10, timeout=5.0, what="frames again")
        assert grabber.error is None
        assert grabber.seconds_until_retry() is None
    finally:
        assert grabber.stop(1.0)
    assert "stopped delivering" in reported or "not connected" in reported
    # Open attempts after the failure: refused, refused, accepted, with pauses
    # that double (0.05 s, 0.1 s, 0.2 s).
    attempts = [t for t in source.open_attempts if t >= source.failed_at]
    assert len(attempts) == 3
    gaps = np.diff([source.failed_at, *attempts])
    assert gaps[0] >= 0.045 and gaps[1] >= 0.09 and gaps[2] >= 0.18, gaps
    assert gaps[2] > gaps[1] > gaps[0]
    # Nothing the operator taught was touched, and the session still predicts.
    assert store_state(session) == before
    assert session.predict(picture(3)) is not None


@pytest.mark.slow
def test_source_without_frames_does_not_spin(session) -> None:
    source = SilentSource()
    grabber = FrameGrabber(source)
    grabber.start()
    try:
        time.sleep(1.0)
    finally:
        assert grabber.stop(1.0)
    assert grabber.latest() is None and grabber.error is None
    (wall0, cpu0), (wall1, cpu1) = source.cpu[0], source.cpu[-1]
    busy = (cpu1 - cpu0) / (wall1 - wall0)
    # The loop naps between empty reads (a few ms each): a spin would be ~100 %.
    assert busy < 0.2, f"grabber thread used {busy:.0%} of a core on an empty source"
    assert source.reads < 1000, f"{source.reads} reads in 1 s"


def test_hanging_read_keeps_the_grabber_responsive() -> None:
    source = HangingSource()
    grabber = FrameGrabber(source)
    grabber.start()
    try:
        assert source.reading.wait(2.0)
        # Everything the GUI thread calls returns while read() hangs (how fast:
        # bench/bench_grabber.py).
        for _ in range(100):
            grabber.latest()
            _ = grabber.error, grabber.fps, grabber.frame_count, grabber.stopping
            grabber.seconds_until_retry()
            grabber.retry_now()
        assert grabber.wait_for_frame(timeout=0.05) is None
        # stop() gives up after its timeout instead of waiting for the driver.
        assert grabber.stop(0.2) is False
        assert grabber.stopping
        assert source.reading.is_set() and not source.release.is_set()
    finally:
        source.release.set()
    # Once the driver lets go, the thread ends and closes the source itself.
    grabber.join(2.0)
    assert not grabber.is_alive()
    assert source.closed.is_set()


def test_diverging_training_keeps_the_previous_head(session) -> None:
    previous = session.head
    assert previous is not None
    before = store_state(session)
    probabilities = session.predict(picture(1)).probabilities
    wild = TrainingConfig(optimizer="sgd", learning_rate=1e300, num_iter=50, batch_size=4)
    result = session.train(config=wild)
    assert result.diverged and not result.cancelled
    assert session.head is previous
    assert store_state(session) == before
    np.testing.assert_array_equal(session.predict(picture(1)).probabilities, probabilities)
    # A sensible run afterwards works as usual.
    assert not session.train().diverged
    assert session.head is not previous
