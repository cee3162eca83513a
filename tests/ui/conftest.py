"""Fixtures for the Qt layer: a real extractor, a kiosk factory, a GUI heartbeat."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QAbstractButton, QApplication, QWidget

from kiosk.places import Places
from kiosk.ui import dialogs
from kiosk.ui.app import Kiosk, build

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(autouse=True)
def no_unanswered_dialogs(monkeypatch):
    """A modal dialog nobody answers would block the run forever: fail the test instead.

    Tests that expect a question replace the ``dialogs.ask_*`` function (or
    ``dialogs.run_modal``) themselves.
    """

    def refuse(dialog) -> bool:
        raise AssertionError(f"unexpected modal dialog: {dialog.windowTitle()!r}")

    monkeypatch.setattr(dialogs, "run_modal", refuse)


@pytest.fixture
def artifacts() -> Path:
    """test-artifacts/ at the repository root (gitignored): screenshots to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def places_under(root: Path) -> Places:
    """Places under ``root``: models/, projects/, and media/ whose folders count as drives."""
    media = root / "media"
    return Places(
        root / "models",
        root / "projects",
        media_roots=[media],
        is_mount=lambda path: path.parent == media,
    )


@pytest.fixture
def make_kiosk(qtbot, extractor, tmp_path) -> Iterator[Callable[..., Kiosk]]:
    """Build (and by default start) a kiosk; every one is shut down after the test."""
    from kiosk.vision.sources import DemoSource

    made: list[Kiosk] = []

    def make(
        source=None,
        *,
        output: Path | None = None,
        fullscreen: bool = False,
        config=None,
        start: bool = True,
        size: tuple[int, int] | None = (1280, 800),
        pin_hash: str | None = None,
        burst_hz: float | None = None,
        places: Places | None = None,
    ) -> Kiosk:
        kiosk = build(
            extractor,
            source if source is not None else DemoSource(),
            output=output if output is not None else tmp_path / "out" / "model.tflite",
            fullscreen=fullscreen,
            training_config=config,
            pin_hash=pin_hash,
            burst_hz=burst_hz,
            places=places if places is not None else places_under(tmp_path),
        )
        qtbot.addWidget(kiosk.window)
        made.append(kiosk)
        if start:
            kiosk.controller.start()
        if size is not None:
            kiosk.window.resize(*size)
            kiosk.window.show()
            qtbot.waitExposed(kiosk.window)
        return kiosk

    yield make
    for kiosk in made:
        kiosk.controller.shutdown()


class Heartbeat:
    """A 10 ms QTimer on the GUI thread; ``beats`` counts the times it fired.

    Tests use it for an ordering fact (the GUI thread kept running while work
    went on elsewhere), never for a time budget: those live in ``bench/``.
    """

    def __init__(self, interval_ms: int = 10) -> None:
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.beats = 0

    def start(self) -> None:
        self.beats = 0
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        self.beats += 1


@pytest.fixture
def heartbeat() -> Iterator[Heartbeat]:
    beat = Heartbeat()
    yield beat
    beat.timer.stop()


def visible_buttons(root: QWidget) -> list[QAbstractButton]:
    """Every button a finger could try to hit right now."""
    return [b for b in root.findChildren(QAbstractButton) if b.isVisibleTo(root)]


def wait_for_new_frames(qtbot, grabber, count: int = 2, timeout: int = 5000) -> None:
    """Wait until the grabber has produced ``count`` frames after now."""
    latest = grabber.latest()
    start = latest[0] if latest is not None else 0

    def arrived() -> None:
        now = grabber.latest()
        assert now is not None and now[0] >= start + count

    qtbot.waitUntil(arrived, timeout=timeout)


def capture_two_classes(qtbot, controller, source, per_class: int = 3) -> None:
    """Three samples each of the demo's red disc (class 1) and blue square (class 2)."""
    for index, name in enumerate(("red disc", "blue square")):
        source.show(name)
        for _ in range(per_class):
            with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
                controller.capture_once(index)


# The Raspberry Pi 7-inch display and a full-HD screen.
SCREEN_SIZES = ((800, 480), (1920, 1080))


def at_screen_sizes(qtbot, window) -> Iterator[tuple[int, int]]:
    """Resize ``window`` to each of ``SCREEN_SIZES``; yields once it shows fresh frames there."""
    for width, height in SCREEN_SIZES:
        window.resize(width, height)
        QApplication.processEvents()
        qtbot.waitUntil(lambda w=width, h=height: window.size().toTuple() == (w, h), timeout=2000)
        frames = window.video.frames_shown
        qtbot.waitUntil(lambda f=frames: window.video.frames_shown > f + 2, timeout=3000)
        yield width, height
