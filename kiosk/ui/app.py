"""The kiosk window's assembly: core objects in, controller and window out.

``build`` wires a session, a grabber, the controller and the window; ``run``
makes the QApplication and runs it. The ``kiosk`` command's arguments, settings
and checks live in ``kiosk.cli.kiosk``, which imports this module only once
everything is known to be usable.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from kiosk import __version__

if TYPE_CHECKING:  # imported where used: kiosk.cli.kiosk imports this module early
    from pyqtgraph.util.garbage_collector import GarbageCollector

    from kiosk.config import Settings
    from kiosk.embedding import EmbeddingExtractor
    from kiosk.learn import TrainingConfig
    from kiosk.persist import Autosaver
    from kiosk.places import Places
    from kiosk.session import TeachingSession
    from kiosk.store import EmbeddingStore
    from kiosk.ui.controller import Controller
    from kiosk.ui.main_window import MainWindow
    from kiosk.vision.sources import FrameSource

# How often the GUI thread looks at the allocation counts (s). Young collections
# are cheap, so often enough that garbage never piles up.
GC_INTERVAL_S = 0.1

# The GUI-thread garbage collector ``run`` installs (a pyqtgraph GarbageCollector).
gc_collector: GarbageCollector | None = None


@dataclass
class Kiosk:
    """The assembled application: controller (state, threads) and window."""

    controller: Controller
    window: MainWindow
    autosaver: Autosaver | None = None  # when autosave is on

    def close(self) -> None:
        """Stop the threads and write what autosave has pending."""
        self.controller.shutdown()
        if self.autosaver is not None:
            self.autosaver.close()


def build(
    extractor: EmbeddingExtractor,
    source: FrameSource,
    *,
    output: str | Path | None = None,
    fullscreen: bool = False,
    session: TeachingSession | None = None,
    training_config: TrainingConfig | None = None,
    burst_hz: float | None = None,
    pin_hash: str | None = None,
    unlock_seconds: float | None = None,
    autosave_dir: str | Path | None = None,
    autosave: bool = False,
    fresh: bool = False,
    model_note: str | None = None,
    max_samples_per_class: int | None = None,
    max_memory_mb: int | None = None,
    places: Places | None = None,
) -> Kiosk:
    """Wire a session, a grabber, the controller and the window (nothing started yet).

    Call ``kiosk.controller.start()`` to start the camera and vision threads, and
    ``controller.shutdown()`` (closing the window does it) to stop them. The
    operator lock guards anything only in kiosk mode (``fullscreen``) with a PIN.

    With ``autosave`` (or an ``autosave_dir``) every change is journaled
    (``kiosk.autosave``) and, unless ``fresh``, the last session and its head
    are restored first; the status line says what came back.

    ``model_note`` (``load_extractor``'s CPU fall-back note) is shown on the
    status line and as a badge that stays in the window's corner. When the
    autosave was made by the Edge TPU twin, the operator is asked whether to
    re-embed its stored images with this model (``kiosk.ui.recovery``).

    ``max_samples_per_class`` and ``max_memory_mb`` are the store's limits
    (default: the store's own). ``places`` (a ``kiosk.places.Places``) are the
    folders Save and the project rows may use (default: the data folder's).

    Needs the QApplication. ``run`` also moves Python's cyclic garbage collection
    to the GUI thread (``install_gc_collector``); a test that calls ``build`` alone
    keeps the interpreter's own.
    """
    from kiosk.learn.recipe import TrainingSettings
    from kiosk.session import TeachingSession
    from kiosk.ui.controller import BURST_HZ, Controller
    from kiosk.ui.lock import UNLOCK_SECONDS, OperatorLock
    from kiosk.ui.main_window import MainWindow
    from kiosk.vision.grabber import FrameGrabber

    if session is None:
        settings = TrainingSettings(config=training_config) if training_config else None
        store = _make_store(extractor, max_samples_per_class, max_memory_mb)
        session = TeachingSession(extractor, store, settings=settings)
    saver: Autosaver | None = None
    restored: tuple[str, str, bool] | None = None
    if autosave or autosave_dir is not None:
        saver, restored = _restore_autosave(session, autosave_dir, fresh)
    # The product starts with two classes ready to fill (not undoable: not a step taken).
    while session.store.num_classes < 2:
        session.store.add_class()
    grabber = FrameGrabber(source)
    controller = Controller(
        session,
        grabber,
        output=output,
        burst_hz=burst_hz if burst_hz is not None else BURST_HZ,
    )
    lock = OperatorLock(
        pin_hash if fullscreen else None,
        unlock_seconds=unlock_seconds if unlock_seconds is not None else UNLOCK_SECONDS,
    )
    window = MainWindow(controller, kiosk=fullscreen, lock=lock, places=places)
    other_model = saver is not None and restored is not None and restored[2]
    recovering = False
    built: list[Kiosk] = []
    if model_note is not None and saver is not None and other_model:
        from kiosk.ui.recovery import offer_reembed

        # Asked before the autosave starts: the Edge TPU's journal stays as it
        # is until the re-embedded session has been written in its place.
        recovering = offer_reembed(
            window, controller, saver, model_note, give_up=lambda: _drop_autosaver(built)
        )
    if saver is not None:
        saver.on_error = _autosave_reporter(controller)
        if not recovering:
            saver.start()
    # What the status line says first: (text, level), or None.
    status = None if restored is None else restored[:2]
    if model_note is not None:
        from kiosk.ui.badge import CornerBadge

        window.cpu_badge = CornerBadge(model_note, window)
    if recovering:
        status = None  # the recovery says what happens
    elif model_note is not None:
        if saver is not None and other_model:
            # CPU embeddings differ slightly from the Edge TPU's: the autosave
            # refuses them rather than mix the two. Say what to do about it.
            status = (
                f"{model_note}. The autosaved samples were made on the Edge TPU "
                f"model; they are kept unchanged in {saver.folder.name}-kept-<time> beside "
                "the new autosave",
                "error",
            )
        elif status is None:
            status = (model_note, "error")
        elif status[1] != "error":
            status = (f"{model_note}. {status[0]}", "error")
    if status is not None:
        controller.message.emit(*status)
    built.append(Kiosk(controller, window, saver))
    return built[0]


def _drop_autosaver(built: list[Kiosk]) -> None:
    # A failed recovery: this session must never overwrite the old autosave.
    for kiosk in built:
        kiosk.autosaver = None


def _make_store(
    extractor: EmbeddingExtractor, per_class: int | None, memory_mb: int | None
) -> EmbeddingStore:
    from kiosk.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_SAMPLES_PER_CLASS, EmbeddingStore

    return EmbeddingStore(
        extractor.feature_dim,
        max_samples_per_class=per_class or DEFAULT_MAX_SAMPLES_PER_CLASS,
        max_bytes=memory_mb * 2**20 if memory_mb else DEFAULT_MAX_BYTES,
    )


def _restore_autosave(
    session: TeachingSession, folder: str | Path | None, fresh: bool
) -> tuple[Autosaver, tuple[str, str, bool] | None]:
    """(the Autosaver, a (text, level, made by another model) status message or None)."""
    from kiosk.persist import Autosaver, OtherModelError

    saver = Autosaver(session, folder)
    if fresh:
        if not saver.has_journal():
            return saver, None
        return saver, (
            "Started fresh: the last session is kept whole and moves aside with the first change",
            "info",
            False,
        )
    try:
        report = saver.restore()
    except OtherModelError as error:
        # Start empty rather than not at all; the autosave files stay until replaced.
        return saver, (f"Could not restore the last session: {error}", "error", True)
    if report is None:
        return saver, None
    return saver, (report.message(), report.level, False)


def _autosave_reporter(controller: Controller) -> Callable[[str | None], None]:
    def report(text: str | None) -> None:
        # Runs on the autosave thread: a signal emit is safe there (queued to the GUI).
        controller.message.emit(text or "Autosave works again", "error" if text else "ok")

    return report


def _quit_on_signal(window: MainWindow) -> None:
    # Qt's event loop keeps Python's signal handlers from running; a timer that
    # wakes the interpreter now and then lets Ctrl+C in the terminal quit cleanly.
    from PySide6.QtCore import QTimer

    def handler(signum: int, frame: FrameType | None) -> None:
        # systemd stops the service with SIGTERM: that must never wait for a PIN.
        window.quit(force=True)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    timer = QTimer(window)
    timer.setInterval(250)
    timer.timeout.connect(_noop)
    timer.start()


def _noop() -> None:
    pass


def run(
    extractor: EmbeddingExtractor,
    source: FrameSource,
    settings: Settings,
    *,
    fresh: bool = False,
    model_note: str | None = None,
) -> int:
    """Open the window for checked core objects and run until it closes; the exit status.

    ``settings`` is the ``kiosk.config.Settings`` in effect; ``fresh`` and
    ``model_note`` are as for ``build``. The ``kiosk`` command
    (``kiosk.cli.kiosk.main``) calls this once every setting, the display, the
    model and the source have been checked.
    """
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from kiosk.places import Places

    # Kept referenced until the window closes; the settings below are static.
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "kiosk"])
    QApplication.setApplicationName("kiosk")
    QApplication.setApplicationVersion(__version__)
    # Matches kiosk.desktop, so a compositor or taskbar shows the same icon.
    QApplication.setDesktopFileName("kiosk")
    QApplication.setWindowIcon(QIcon(str(icon_path())))
    install_gc_collector()
    kiosk = build(
        extractor,
        source,
        output=settings.output,
        fullscreen=settings.fullscreen,
        training_config=settings.training_config(),
        burst_hz=settings.burst_hz,
        pin_hash=settings.operator_pin_hash,
        unlock_seconds=settings.operator_unlock_seconds,
        autosave=True,
        fresh=fresh,
        model_note=model_note,
        max_samples_per_class=settings.max_samples_per_class,
        max_memory_mb=settings.max_memory_mb,
        places=Places(settings.models_dir, settings.projects_dir),
    )
    _quit_on_signal(kiosk.window)
    kiosk.controller.start()
    kiosk.window.show_for_mode()
    try:
        return int(app.exec())
    finally:
        kiosk.close()


def install_gc_collector() -> GarbageCollector:
    """Run Python's cyclic garbage collection on the GUI thread only, from now on.

    Automatic collection runs in whichever thread is allocating when a threshold
    trips. When that is a worker (vision, save, a task) and the garbage holds Qt
    widgets, say a closed dialog caught in a reference cycle, they are destroyed
    off the GUI thread: Qt forbids that, and the two threads can deadlock over a
    Qt mutex and the interpreter lock. pyqtgraph's ``GarbageCollector`` switches
    automatic collection off and collects, generation by generation, from a
    GUI-thread timer. Idempotent; returns the collector (kept in ``gc_collector``).
    """
    global gc_collector
    if gc_collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        gc_collector = GarbageCollector(interval=GC_INTERVAL_S)
    return gc_collector


def icon_path() -> Path:
    """The application icon (``kiosk.svg`` in ``kiosk.resources``) as a real file path.

    Installed from a wheel the package is a plain folder, so the resource is a file.
    """
    from importlib import resources

    return Path(str(resources.files("kiosk.resources").joinpath("kiosk.svg")))
