"""Frame sources (folder, video, demo, camera, open_source) and the FrameGrabber."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.vision.demo import OBJECT_NAMES
from kiosk.vision.grabber import FrameGrabber
from kiosk.vision.sources import (
    CameraSource,
    DemoSource,
    FrameSource,
    ImageFolderSource,
    Pacer,
    SourceError,
    VideoFileSource,
    bgr_to_rgb,
    open_source,
)


def wait_until(predicate: Callable[[], object], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(0.005)


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (24, 32)) -> np.ndarray:
    """(h, w, 3) uint8 RGB of one colour."""
    return np.full((*size, 3), rgb, np.uint8)


def write_rgb(path: Path, image: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


# -- frame normalisation -------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (np.full((3, 5), 7, np.uint8), (7, 7, 7)),
        (np.full((3, 5, 1), 7, np.uint8), (7, 7, 7)),
        (np.full((3, 5, 3), (1, 2, 3), np.uint8), (3, 2, 1)),
        (np.full((3, 5, 4), (1, 2, 3, 255), np.uint8), (3, 2, 1)),
        (np.full((3, 5, 3), (256, 512, 768), np.uint16), (3, 2, 1)),
        (np.full((1, 1, 3), (1, 2, 3), np.uint8), (3, 2, 1)),
    ],
)
def test_bgr_to_rgb_normalises_what_opencv_delivers(
    frame: np.ndarray, expected: tuple[int, int, int]
) -> None:
    rgb = bgr_to_rgb(frame)
    assert rgb.dtype == np.uint8 and rgb.shape == (*frame.shape[:2], 3)
    assert rgb.flags.c_contiguous
    assert tuple(rgb[0, 0]) == expected


def test_bgr_to_rgb_big_frames_and_errors() -> None:
    big = bgr_to_rgb(np.zeros((3000, 4000, 3), np.uint8))
    assert big.shape == (3000, 4000, 3)
    with pytest.raises(SourceError, match="shape"):
        bgr_to_rgb(np.zeros((3, 5, 2), np.uint8))
    with pytest.raises(SourceError, match="float32"):
        bgr_to_rgb(np.zeros((3, 5, 3), np.float32))


def test_pacer_paces_without_long_sleeps() -> None:
    pacer = Pacer(50.0)
    started = time.monotonic()
    produced = 0
    while produced < 6:
        produced += pacer.due()
    assert time.monotonic() - started >= 5 * 0.02 * 0.9  # first is immediate
    slow = Pacer(0.5, max_wait=0.02)
    assert slow.due()
    started = time.monotonic()
    assert not slow.due()  # not due for 2 s: it says so after max_wait instead of waiting
    assert time.monotonic() - started < 2.0
    assert Pacer(None).due()
    with pytest.raises(ValueError):
        Pacer(0)


# -- image folder --------------------------------------------------------------


def test_folder_cycles_sorted_and_skips_unreadable(tmp_path: Path) -> None:
    write_rgb(tmp_path / "b.png", solid((0, 255, 0)))
    write_rgb(tmp_path / "a.bmp", solid((255, 0, 0), (1, 1)))
    assert cv2.imwrite(str(tmp_path / "c.jpg"), np.full((40, 30), 200, np.uint8))  # grey
    (tmp_path / "aa_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "ab_empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder with an image name is not a file

    source = ImageFolderSource(tmp_path, fps=None)
    assert source.describe() == f"folder {tmp_path.name}"
    with source:
        frames = [source.read() for _ in range(7)]
    for frame in frames:
        assert frame is not None and frame.dtype == np.uint8 and frame.ndim == 3
    first, second, third = frames[:3]
    assert first.shape == (1, 1, 3) and tuple(first[0, 0]) == (255, 0, 0)
    assert tuple(second[0, 0]) == (0, 255, 0)
    assert third.shape == (40, 30, 3) and abs(int(third[0, 0, 0]) - 200) <= 2
    # It loops, and broken files are dropped from the cycle.
    assert [f.shape for f in frames[3:6]] == [f.shape for f in frames[:3]]
    assert sorted(p.name for p in source.skipped) == ["aa_broken.jpg", "ab_empty.png"]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="has no images"):
        ImageFolderSource(tmp_path).open()
    with pytest.raises(SourceError, match="no such folder"):
        ImageFolderSource(tmp_path / "missing").open()
    (tmp_path / "x.png").write_bytes(b"garbage")
    source = ImageFolderSource(tmp_path, fps=None)
    source.open()
    with pytest.raises(SourceError, match="no readable images"):
        source.read()


def test_folder_paces_itself(tmp_path: Path) -> None:
    write_rgb(tmp_path / "a.png", solid((1, 2, 3)))
    source = ImageFolderSource(tmp_path, fps=40.0)
    source.open()
    started = time.monotonic()
    frames = 0
    while frames < 3:
        frames += source.read() is not None
    assert time.monotonic() - started >= 2 * 0.025 * 0.9


# -- video file ----------------------------------------------------------------


def write_video(path: Path, count: int, size: tuple[int, int] = (64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    assert writer.isOpened()
    for k in range(count):
        frame = np.full((size[1], size[0], 3), (20 * k, 0, 255 - 20 * k), np.uint8)  # BGR
        writer.write(frame)
    writer.release()


def test_video_reads_back_and_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 8)
    source = VideoFileSource(path, fps=None)
    assert source.describe() == "video clip.avi"
    with source:
        frames = [source.read() for _ in range(12)]
    assert all(f is not None and f.shape == (48, 64, 3) for f in frames)
    # Written as BGR (20k, 0, 255 - 20k): read back as RGB, red falls and blue rises.
    reds = [int(f[:, :, 0].mean()) for f in frames]
    blues = [int(f[:, :, 2].mean()) for f in frames]
    assert reds[0] > reds[7] + 100 and blues[7] > blues[0] + 100
    # Frame 8 is frame 0 again.
    assert np.abs(frames[8].astype(int) - frames[0]).mean() < 3
    assert source.frames_read == 12


def test_video_without_loop_ends_and_bad_files_fail(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 3)
    with VideoFileSource(path, loop=False, fps=None) as source:
        frames = [source.read() for _ in range(5)]
    assert [f is None for f in frames] == [False, False, False, True, True]
    assert source.ended
    text = tmp_path / "notes.avi"
    text.write_text("not a video")
    with pytest.raises(SourceError, match=r"notes\.avi could not be opened"):
        VideoFileSource(text).open()
    with pytest.raises(SourceError, match="no such file"):
        VideoFileSource(tmp_path / "missing.avi").open()


def test_video_plays_at_its_own_rate(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 4)  # 25 fps
    with VideoFileSource(path) as source:
        started = time.monotonic()
        frames = 0
        while frames < 3:
            frames += source.read() is not None
    assert time.monotonic() - started >= 2 * 0.04 * 0.9


# -- demo ----------------------------------------------------------------------


def color_share(frame: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 60) -> float:
    """Share of pixels within ``tolerance`` of a colour (per channel)."""
    close = np.all(np.abs(frame.astype(int) - rgb) < tolerance, axis=-1)
    return float(close.mean())


def test_demo_show_switches_objects() -> None:
    source = DemoSource(fps=None)
    assert source.describe() == "demo"
    assert source.object_names == OBJECT_NAMES
    signature = {
        "red disc": (205, 35, 30),
        "blue square": (30, 70, 200),
        "green triangle": (40, 170, 60),
        "yellow star": (240, 205, 30),
    }
    with source:
        assert source.auto
        source.show(None)
        assert not source.auto and source.current is None
        empty = source.read()
        assert empty is not None and empty.shape == (480, 640, 3)
        assert all(color_share(empty, rgb) < 0.001 for rgb in signature.values())
        for index, name in enumerate(OBJECT_NAMES):
            source.show(name.upper() if index % 2 else index)
            assert source.current == name
            frame = source.read()
            assert color_share(frame, signature[name]) > 0.02, name
            others = [color_share(frame, rgb) for n, rgb in signature.items() if n != name]
            assert max(others) < 0.005, name
    with pytest.raises(ValueError, match="red disc"):
        source.show("purple cow")
    with pytest.raises(ValueError):
        source.show(len(OBJECT_NAMES))


def test_demo_changes_over_time_and_cycles() -> None:
    source = DemoSource(fps=None, cycle_seconds=0.1)  # 3 frames per object when unpaced
    with source:
        seen = []
        frames = []
        for _ in range(15):
            seen.append(source.current)
            frames.append(source.read())
    assert seen[::3] == [None, *OBJECT_NAMES]
    # Consecutive frames differ (noise, light), and differ more after some motion.
    first, next_one = frames[0].astype(int), frames[1].astype(int)
    assert np.abs(first - next_one).mean() > 0
    still = DemoSource(fps=None)
    still.open()
    still.show("yellow star")
    early = still.read()
    for _ in range(45):
        late = still.read()
    moved = np.abs(late.astype(int) - early).mean()
    assert moved > 3 * np.abs(first - next_one).mean()
    source.auto_cycle(0.2)
    assert source.auto and source.cycle_seconds == 0.2


def test_demo_pause_holds_one_frame_and_objects_can_be_chosen() -> None:
    source = DemoSource(fps=None, cycle_seconds=0.1)
    with source:
        for _ in range(4):
            source.read()
        assert source.current == OBJECT_NAMES[0] and not source.paused
        source.pause()
        held = source.read()
        for _ in range(10):  # longer than a turn: nothing moves, the cycle waits
            assert np.array_equal(source.read(), held)
        assert source.paused and source.current == OBJECT_NAMES[0]
        source.show("green triangle")  # chosen while paused: same moment, other object
        triangle = source.read()
        assert source.current == "green triangle" and not np.array_equal(triangle, held)
        assert np.array_equal(source.read(), triangle)
        source.resume()
        assert not source.paused
        assert not np.array_equal(source.read(), triangle)
        source.resume()  # twice is harmless
    # The same script gives the same pictures: captures can be replayed.
    again = DemoSource(fps=None, cycle_seconds=0.1)
    with again:
        for _ in range(4):
            again.read()
        again.pause()
        assert np.array_equal(again.read(), held)


def test_demo_paces_and_odd_sizes() -> None:
    with DemoSource(fps=60.0) as source:
        started = time.monotonic()
        frames = 0
        while frames < 4:
            frames += source.read() is not None
        assert time.monotonic() - started >= 3 / 60 * 0.9
    with DemoSource(width=17, height=16, fps=None) as tiny:
        tiny.show(0)
        assert tiny.read().shape == (16, 17, 3)
    with DemoSource(width=1280, height=360, fps=None) as wide:
        wide.show("green triangle")
        assert wide.read().shape == (360, 1280, 3)
    with pytest.raises(SourceError, match="at least 16x16"):
        DemoSource(width=8, height=8).open()


# -- camera and open_source ----------------------------------------------------


def test_missing_camera_names_its_index() -> None:
    camera = CameraSource(99)
    assert camera.describe() == "camera 99"
    with pytest.raises(SourceError, match=r"Camera 99 could not be opened") as info:
        camera.open()
    assert "99" in str(info.value)
    with pytest.raises(SourceError, match="not open"):
        camera.read()
    camera.close()


def test_open_source_specs(tmp_path: Path) -> None:
    assert isinstance(open_source("demo"), DemoSource)
    assert isinstance(open_source(" Demo "), DemoSource)
    camera = open_source("3")
    assert isinstance(camera, CameraSource) and camera.index == 3
    folder = open_source(str(tmp_path))
    assert isinstance(folder, ImageFolderSource)
    clip = tmp_path / "clip.avi"
    write_video(clip, 2)
    assert isinstance(open_source(str(clip)), VideoFileSource)
    for spec in ["nope/missing.avi", "", "camera one"]:
        with pytest.raises(SourceError, match="Unknown frame source") as info:
            open_source(spec)
        assert repr(spec) in str(info.value)


# -- grabber -------------------------------------------------------------------


class CountingSource(FrameSource):
    """Delivers frames whose pixels hold a running count, as fast as asked."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.produced = 0
        self.opened = 0
        self.closed = 0

    def describe(self) -> str:
        return "counting"

    def open(self) -> None:
        self.opened += 1

    def read(self) -> np.ndarray | None:
        if self.delay:
            time.sleep(self.delay)  # like a camera's blocking read
        self.produced += 1
        return np.full((2, 2, 3), self.produced % 256, np.uint8)

    def close(self) -> None:
        self.closed += 1


class FlakySource(CountingSource):
    """Fails to open until ``healthy`` is set; can be told to die while reading."""

    def __init__(self) -> None:
        super().__init__(delay=0.002)
        self.healthy = threading.Event()
        self.die = threading.Event()
        self.attempts = 0

    def describe(self) -> str:
        return "camera 7"

    def open(self) -> None:
        self.attempts += 1
        if not self.healthy.is_set():
            raise SourceError("Camera 7 could not be opened: no device /dev/video7")
        super().open()

    def read(self) -> np.ndarray | None:
        if self.die.is_set():
            self.die.clear()
            self.healthy.clear()
            raise SourceError("Camera 7 stopped delivering frames (unplugged?)")
        return super().read()


def test_grabber_keeps_only_the_newest_frame() -> None:
    source = CountingSource()
    grabber = FrameGrabber(source)
    grabber.start()
    try:
        first = grabber.wait_for_frame(timeout=2)
        assert first is not None
        wait_until(lambda: grabber.frame_count > first[0] + 50)
        frame_id, frame = grabber.latest()
        assert frame_id > first[0]
        # The newest frame: nothing older is queued behind it.
        assert frame_id <= grabber.frame_count
        with pytest.raises(ValueError):
            frame[0, 0, 0] = 1  # handed out read-only, never mutated afterwards
        assert grabber.error is None
    finally:
        assert grabber.stop()
    assert source.closed == 1
    assert grabber.latest() is not None  # still readable after stop


def test_grabber_stop_is_prompt_with_blocking_and_slow_sources(tmp_path: Path) -> None:
    write_rgb(tmp_path / "a.png", solid((9, 9, 9)))
    for source in [CountingSource(delay=0.05), ImageFolderSource(tmp_path, fps=0.2)]:
        grabber = FrameGrabber(source)
        grabber.start()
        assert grabber.wait_for_frame(timeout=2) is not None
        # stop() wakes the reader and joins it within its own timeout (how fast:
        # bench/bench_grabber.py).
        assert grabber.stop()
        assert not grabber.is_alive()


def test_grabber_reports_errors_and_retries_with_backoff() -> None:
    source = FlakySource()
    grabber = FrameGrabber(source, backoff_initial=0.02, backoff_max=0.05)
    grabber.start()
    try:
        wait_until(lambda: source.attempts >= 3)
        assert grabber.error == "Camera 7 could not be opened: no device /dev/video7"
        assert grabber.latest() is None
        remaining = grabber.seconds_until_retry()
        assert remaining is not None and remaining <= 0.05
        source.healthy.set()
        assert grabber.wait_for_frame(timeout=2) is not None
        assert grabber.error is None and grabber.seconds_until_retry() is None
        # The source dies mid-stream: error, close, retry, recover.
        source.die.set()
        wait_until(lambda: grabber.error is not None)
        assert "stopped delivering" in grabber.error
        assert source.closed >= 1
        source.healthy.set()
        wait_until(lambda: grabber.error is None)
        count = grabber.frame_count
        assert grabber.wait_for_frame(after=count, timeout=2) is not None
    finally:
        assert grabber.stop()


def test_retry_now_cuts_the_pause_short() -> None:
    source = FlakySource()
    grabber = FrameGrabber(source, backoff_initial=30.0, backoff_max=30.0)
    grabber.start()
    try:
        wait_until(lambda: grabber.error is not None)
        remaining = grabber.seconds_until_retry()
        assert remaining is not None and remaining > 20
        source.healthy.set()
        grabber.retry_now()
        assert grabber.wait_for_frame(timeout=2) is not None
    finally:
        assert grabber.stop()  # also wakes a thread in a long pause


def test_grabber_turns_unexpected_exceptions_into_messages() -> None:
    class Broken(CountingSource):
        def read(self) -> np.ndarray | None:
            raise RuntimeError("driver exploded")

    grabber = FrameGrabber(Broken(), backoff_initial=0.01, backoff_max=0.01)
    grabber.start()
    try:
        wait_until(lambda: grabber.error is not None)
        assert grabber.error == "counting failed: driver exploded"
    finally:
        assert grabber.stop()


def test_grabber_with_real_demo_source() -> None:
    grabber = FrameGrabber(DemoSource(fps=60.0))
    grabber.start()
    try:
        first = grabber.wait_for_frame(timeout=2)
        assert first is not None and first[1].shape == (480, 640, 3)
        second = grabber.wait_for_frame(after=first[0], timeout=2)
        assert second is not None and second[0] > first[0]
    finally:
        assert grabber.stop()
