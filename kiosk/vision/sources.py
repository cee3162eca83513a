"""Frame sources: where the live picture comes from.

Every source hands out (H, W, 3) uint8 RGB frames through the same small
interface, so the grabber, the session and the UI never care whether the
picture comes from a webcam, a video file, a folder of images or the
synthetic demo scene.

Failures that a user can fix (no camera, unreadable file, empty folder) are
raised as ``SourceError`` with a message meant to be shown as it is.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Literal

import cv2
import numpy as np

from kiosk.safe_io import FileRefused, expand_user
from kiosk.vision.demo import OBJECT_NAMES, DemoScene
from kiosk.vision.image_io import IMAGE_SUFFIXES, ImageError, read_image

__all__ = [
    "IMAGE_SUFFIXES",
    "CameraSource",
    "DemoSource",
    "FrameSource",
    "ImageFolderSource",
    "Pacer",
    "SourceError",
    "VideoFileSource",
    "bgr_to_rgb",
    "open_source",
]


class SourceError(Exception):
    """A frame source cannot deliver frames; ``str(error)`` is a user-facing message."""


class FrameSource(ABC):
    """One place frames come from.

    ``open()`` before ``read()``; ``close()`` is safe to call twice. As a context
    manager the source is opened on entry and closed on exit. Sources are used
    from one thread at a time (the grabber's); only the demo's ``show()`` is
    meant to be called from another thread.
    """

    @abstractmethod
    def describe(self) -> str:
        """A short name for messages: "camera 0", "video clip.avi", "folder imgs", "demo"."""

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or file. Raises ``SourceError`` with a clear message."""

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame as (H, W, 3) uint8 RGB, or ``None`` if there is none right now.

        ``None`` is not an error: a paced source has no new frame yet, or a
        non-looping video has ended. Lasting failures raise ``SourceError``.
        The returned array belongs to the caller; the source never touches it again.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device or file."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class Pacer:
    """Hands out frame slots at a target rate without long sleeps.

    ``due()`` sleeps at most ``max_wait`` seconds, so a thread reading a slow
    source (one image a second) still notices a stop request quickly.
    """

    def __init__(self, fps: float | None, max_wait: float = 0.05) -> None:
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be positive or None, got {fps!r}")
        self.period = 0.0 if fps is None else 1.0 / fps
        self.max_wait = max_wait
        self._next = 0.0

    def reset(self) -> None:
        """Make the next ``due()`` true at once."""
        self._next = 0.0

    def due(self) -> bool:
        """Whether the next frame may be produced now (after waiting up to ``max_wait``)."""
        if self.period == 0.0:
            return True
        now = time.monotonic()
        remaining = self._next - now
        if remaining > self.max_wait:
            time.sleep(self.max_wait)
            return False
        if remaining > 0:
            time.sleep(remaining)
            now = self._next
        # On time: keep the grid. After a stall: restart it rather than burst to catch up.
        late = now - self._next
        self._next = self._next + self.period if late < self.period else now + self.period
        return True


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """Normalise a frame as OpenCV delivers it to (H, W, 3) uint8 RGB, C-contiguous.

    Accepts (H, W) / (H, W, 1) grey, (H, W, 3) BGR and (H, W, 4) BGRA, in uint8
    or uint16 (16-bit frames keep their top 8 bits). Always returns a new array.
    """
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise SourceError(f"unsupported frame type {frame.dtype} (expected 8-bit images)")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    raise SourceError(f"unsupported frame shape {frame.shape}")


class CameraSource(FrameSource):
    """A camera through OpenCV (V4L2 on Linux); the camera sets the pace."""

    # A few failed grabs happen on healthy cameras; this many in a row means gone.
    MAX_FAILED_READS = 10

    def __init__(self, index: int = 0, *, width: int | None = None, height: int | None = None):
        if index < 0:
            raise ValueError(f"camera index must be >= 0, got {index}")
        self.index = index
        self.width = width
        self.height = height
        self._capture: cv2.VideoCapture | None = None
        self._failed_reads = 0

    def describe(self) -> str:
        return f"camera {self.index}"

    def open(self) -> None:
        self.close()
        device = Path(f"/dev/video{self.index}")
        # On Linux a missing device node is the usual cause; say so plainly
        # instead of letting OpenCV print its own warnings.
        if sys.platform.startswith("linux") and not device.exists():
            raise SourceError(f"Camera {self.index} could not be opened: no device {device}")
        capture = cv2.VideoCapture(self.index)
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"Camera {self.index} could not be opened: the device is busy, "
                "unplugged or not a camera"
            )
        # Keep only the newest frame in the driver: less lag between scene and screen.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        self._capture = capture
        self._failed_reads = 0

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceError(f"Camera {self.index} is not open")
        ok, frame = self._capture.read()
        if not ok or frame is None or frame.size == 0:
            self._failed_reads += 1
            if self._failed_reads >= self.MAX_FAILED_READS:
                raise SourceError(f"Camera {self.index} stopped delivering frames (unplugged?)")
            return None
        self._failed_reads = 0
        return bgr_to_rgb(frame)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class VideoFileSource(FrameSource):
    """A video file, played at its own frame rate (or ``fps``), looping by default."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        loop: bool = True,
        *,
        fps: float | Literal["native"] | None = "native",
    ) -> None:
        """
        Args:
            path: any file OpenCV's FFmpeg backend can read (AVI/MJPG always works).
            loop: start again at the end; otherwise ``read()`` returns ``None`` for ever.
            fps: "native" plays at the file's rate (30 if it has none), a number
                at that rate, ``None`` as fast as frames decode (tests, batch work).
        """
        self.path = Path(path)
        self.loop = loop
        self._fps_choice = fps
        self._capture: cv2.VideoCapture | None = None
        self._pacer = Pacer(None)
        self.ended = False
        self.frames_read = 0

    def describe(self) -> str:
        return f"video {self.path.name}"

    def open(self) -> None:
        self.close()
        if not self.path.is_file():
            raise SourceError(f"Video {self.path} could not be opened: no such file")
        capture = cv2.VideoCapture(str(self.path))
        ok = capture.isOpened()
        # Some files "open" but yield nothing; probe the first frame to know.
        ok = ok and capture.grab()
        if not ok:
            capture.release()
            raise SourceError(
                f"Video {self.path.name} could not be opened: not a video OpenCV can read"
            )
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        fps = self._fps_choice
        if fps == "native":
            native = capture.get(cv2.CAP_PROP_FPS)
            fps = native if 1.0 <= native <= 240.0 else 30.0
        self._pacer = Pacer(fps)
        self._capture = capture
        self.ended = False

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceError(f"Video {self.path.name} is not open")
        if self.ended or not self._pacer.due():
            return None
        ok, frame = self._capture.read()
        if not ok:
            if not self.loop:
                self.ended = True
                return None
            # Seeking back works for most containers; reopening covers the rest.
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
            if not ok:
                self._capture.release()
                self._capture = cv2.VideoCapture(str(self.path))
                ok, frame = self._capture.read()
            if not ok:
                raise SourceError(f"Video {self.path.name} could not be read again from the start")
        self.frames_read += 1
        return bgr_to_rgb(frame)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource(FrameSource):
    """The images of a folder, sorted by name, shown one after another in a loop.

    Files that are not images or fail to decode are skipped (and remembered in
    ``skipped``). Images are decoded as they are shown, so a big folder costs
    no memory up front. A refused file is not tried again when the source is
    reopened (the grabber retries a failed source every few seconds) unless it
    changed: a broken file costs one decode, and the decoder's own complaints
    (libpng writes to stderr) appear once, not on every retry.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None = 1.0) -> None:
        """
        Args:
            path: a folder; sub-folders are not searched.
            fps: images per second; ``None`` hands out the next image on every read.
        """
        self.path = Path(path)
        self.fps = fps
        self._pacer = Pacer(fps)
        self._files: list[Path] = []
        self._position = 0
        self.skipped: list[Path] = []
        # path -> (modification time, size) when it was refused, and why.
        self._refused: dict[Path, tuple[tuple[int, int], str]] = {}

    def describe(self) -> str:
        return f"folder {self.path.name or self.path}"

    @property
    def files(self) -> list[Path]:
        """The candidate image files, in the order they are shown."""
        return list(self._files)

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"Folder {self.path} could not be opened: no such folder")
        try:
            entries = list(self.path.iterdir())
        except OSError as error:
            raise SourceError(f"Folder {self.path} could not be read: {error.strerror}") from None
        files = sorted(
            (p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
            key=lambda p: p.name,
        )
        if not files:
            raise SourceError(f"Folder {self.path} has no images")
        refused = [p for p in files if self._still_refused(p)]
        if len(refused) == len(files):
            raise self._unreadable(self._refused[refused[-1]][1])
        self._files = [p for p in files if p not in refused]
        self._position = 0
        self.skipped = refused
        self._pacer.reset()

    def _still_refused(self, path: Path) -> bool:
        entry = self._refused.get(path)
        return entry is not None and entry[0] == _signature(path)

    def _unreadable(self, reason: str) -> SourceError:
        return SourceError(
            f"Folder {self.path} has no readable images" + (f" (last: {reason})" if reason else "")
        )

    def read(self) -> np.ndarray | None:
        if not self._files:
            raise SourceError(f"Folder {self.path} is not open")
        if not self._pacer.due():
            return None
        # Try each remaining file at most once per call: a folder of nothing but
        # broken files must fail rather than spin.
        reason = ""
        for _ in range(len(self._files)):
            path = self._files[self._position]
            try:
                frame = read_image(path)
            except ImageError as error:
                # Skipped until the file changes: one line at most, never the
                # decoder's own text on every cycle.
                reason = str(error)
                self._refused[path] = (_signature(path), reason)
            else:
                self._position = (self._position + 1) % len(self._files)
                return frame
            self.skipped.append(path)
            del self._files[self._position]
            if not self._files:
                break
            self._position %= len(self._files)
        raise self._unreadable(reason)

    def close(self) -> None:
        self._files = []


def _signature(path: Path) -> tuple[int, int]:
    """(modification time in ns, size): what changes when a file is replaced or fixed."""
    try:
        info = path.stat()
    except OSError:
        return (-1, -1)
    return (info.st_mtime_ns, info.st_size)


class DemoSource(FrameSource):
    """The synthetic demo scene (``kiosk.vision.demo``) as a frame source.

    By default the scene cycles through "nothing" and each object, a few seconds
    each, so an operator can teach classes with no camera. ``show()`` pins one
    object (or the empty table); ``auto_cycle()`` goes back to cycling;
    ``pause()`` holds the picture still (scene, light and noise) until
    ``resume()``, so scripted or slow captures see one known frame. All of them
    may be called from any thread while another reads.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        *,
        fps: float | None = 30.0,
        cycle_seconds: float = 4.0,
        seed: int = 0,
    ) -> None:
        """
        Args:
            width, height: frame size.
            fps: frames per second handed out; ``None`` renders on every read
                (tests, benchmarks). Scene time advances 1/fps (1/30 when
                unpaced) per frame, so the motion looks the same either way.
            cycle_seconds: how long each object stays in auto-cycle mode.
            seed: fixes the table texture, object textures and noise.
        """
        if not cycle_seconds > 0:
            raise ValueError(f"cycle_seconds must be positive, got {cycle_seconds!r}")
        self.width = width
        self.height = height
        self.fps = fps
        self.cycle_seconds = cycle_seconds
        self.seed = seed
        self._scene: DemoScene | None = None
        self._pacer = Pacer(fps)
        self._frame_index = 0
        self._lock = threading.Lock()
        self._pinned: int | None = None
        self._auto = True
        self._paused_at: int | None = None  # frame index held while paused

    @property
    def object_names(self) -> tuple[str, ...]:
        """The objects the scene can show, in order."""
        return OBJECT_NAMES

    @property
    def auto(self) -> bool:
        """Whether the scene cycles through the objects by itself."""
        with self._lock:
            return self._auto

    @property
    def paused(self) -> bool:
        """Whether the picture is held still (``pause``)."""
        with self._lock:
            return self._paused_at is not None

    def pause(self) -> None:
        """Hold the picture still: the same frame until ``resume()``.

        ``show()`` still changes the object while paused (at the held moment).
        """
        with self._lock:
            if self._paused_at is None:
                self._paused_at = max(0, self._frame_index - 1)

    def resume(self) -> None:
        """Let the scene move again from where it stopped."""
        with self._lock:
            if self._paused_at is not None:
                self._frame_index, self._paused_at = self._paused_at + 1, None

    @property
    def current(self) -> str | None:
        """The object in view now (name), or ``None`` for the empty table."""
        with self._lock:
            frame = self._frame_index if self._paused_at is None else self._paused_at
        index = self._current_index(frame)
        return None if index is None else OBJECT_NAMES[index]

    def show(self, which: str | int | None) -> None:
        """Pin one object (by name or index), or the empty table (``None``); stops cycling.

        Raises:
            ValueError: an unknown name or index (the message lists the names).
        """
        if which is None:
            index = None
        elif isinstance(which, str):
            names = [n.casefold() for n in OBJECT_NAMES]
            if which.strip().casefold() not in names:
                raise ValueError(
                    f"no demo object {which!r}; choose one of {', '.join(OBJECT_NAMES)}"
                )
            index = names.index(which.strip().casefold())
        elif isinstance(which, int) and 0 <= which < len(OBJECT_NAMES):
            index = which
        else:
            raise ValueError(
                f"demo object index must be 0..{len(OBJECT_NAMES) - 1} or None, got {which!r}"
            )
        with self._lock:
            self._pinned = index
            self._auto = False

    def auto_cycle(self, seconds: float | None = None) -> None:
        """Cycle through the empty table and each object again, ``seconds`` each."""
        if seconds is not None:
            if not seconds > 0:
                raise ValueError(f"seconds must be positive, got {seconds!r}")
            self.cycle_seconds = seconds
        with self._lock:
            self._auto = True

    def describe(self) -> str:
        return "demo"

    def open(self) -> None:
        if self._scene is None:
            try:
                self._scene = DemoScene(self.width, self.height, seed=self.seed)
            except ValueError as error:
                raise SourceError(f"Demo scene could not be set up: {error}") from None
        self._frame_index = 0
        self._pacer.reset()

    def read(self) -> np.ndarray | None:
        if self._scene is None:
            raise SourceError("Demo scene is not open")
        if not self._pacer.due():
            return None
        with self._lock:
            held = self._paused_at
        if held is not None:
            return self._scene.render(self._time(held), self._current_index(held), held)
        index = self._frame_index
        self._frame_index += 1
        return self._scene.render(self._time(index), self._current_index(index), index)

    def close(self) -> None:
        # The scene keeps its pre-drawn textures: reopening is instant.
        pass

    def _time(self, frame_index: int) -> float:
        return frame_index / (self.fps or 30.0)

    def _current_index(self, frame_index: int) -> int | None:
        with self._lock:
            if not self._auto:
                return self._pinned
        return self._cycle_index(frame_index)

    def _cycle_index(self, frame_index: int) -> int | None:
        # Auto: the empty table, then each object in turn. Counted in whole
        # frames so float rounding never shortens a turn.
        frames_per_turn = max(1, round(self.cycle_seconds * (self.fps or 30.0)))
        slot = (frame_index // frames_per_turn) % (len(OBJECT_NAMES) + 1)
        return None if slot == 0 else slot - 1


def open_source(spec: str) -> FrameSource:
    """Turn a command-line or settings value into a (not yet opened) source.

    "demo" -> the demo scene; "0", "1", ... -> that camera; an existing folder ->
    its images; an existing file -> a video. Anything else raises ``SourceError``
    naming the value.
    """
    text = spec.strip()
    if text.lower() == "demo":
        return DemoSource()
    if text.isdigit() and text.isascii():
        return CameraSource(int(text))
    try:
        path = expand_user(text, "frame source")
    except FileRefused as error:
        raise SourceError(str(error)) from None
    if text.isdigit() and not path.exists():
        # "²" or "٣" pass str.isdigit(); a camera number is written 0-9.
        raise SourceError(
            f"Unknown frame source {spec!r}: a camera number is written with the digits 0-9"
        )
    if text and path.is_dir():
        return ImageFolderSource(path)
    if text and path.is_file():
        return VideoFileSource(path)
    raise SourceError(
        f"Unknown frame source {spec!r}: use 'demo', a camera number, a folder of images "
        "or a video file"
    )
