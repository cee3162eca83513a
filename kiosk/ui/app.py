"""The ``kiosk`` command: parse arguments, build the core objects, open the window.

Problems the operator can fix (no model, a bad model file, an unknown source)
are reported in one line on stderr with exit status 2, before any window
opens. A camera that is missing or unplugged is not such a problem: the window
opens and says so over the picture, with a Retry button.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk import __version__, config
from kiosk.pin import check_pin_format, hash_pin

EXIT_USAGE = 2
CPU_FALLBACK_MESSAGE = "Running on the CPU: Edge TPU not found"


def build_parser() -> argparse.ArgumentParser:
    """The ``kiosk`` flags. Settings flags default to "not given" so the config file shows."""
    parser = argparse.ArgumentParser(
        prog="kiosk",
        description=(
            "Teach a camera new object classes: capture samples per class, train, "
            "watch live predictions, save a .tflite model and labels.txt."
        ),
        epilog=(
            "Keys: 1-9 capture into class 1-9 (hold for a burst), Ctrl+T train, "
            "Esc cancel training, Ctrl+Z undo, Ctrl+S save, F11 full screen, Ctrl+Q quit. "
            "Settings come from the config file, then KIOSK_<KEY> variables, then flags."
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help=f"settings file (default: ${config.CONFIG_ENV}, then {config.default_config_path()})",
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="embedding extractor .tflite (default: KIOSK_MODEL, then the folder "
        "`kiosk-models fetch` fills)",
    )
    parser.add_argument(
        "--source",
        metavar="SOURCE",
        help="camera number, video file, folder of images, or 'demo' (default: 0)",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="where Save writes: a .tflite path (labels.txt goes beside it) or a folder; "
        "without it Save asks",
    )
    parser.add_argument(
        "--fullscreen",
        action=argparse.BooleanOptionalAction,
        help="kiosk mode: frameless full screen; Esc does not quit, Ctrl+Q does, and the "
        "operator PIN (if set) guards deleting, settings, Save as and quitting",
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads for the extractor (default: all)"
    )
    parser.add_argument(
        "--burst-hz",
        dest="burst_hz",
        type=float,
        metavar="HZ",
        help="samples a second while a capture button is held (default: 10)",
    )
    limits = parser.add_argument_group("store limits (captures stop beyond them)")
    limits.add_argument(
        "--max-samples-per-class",
        dest="max_samples_per_class",
        type=int,
        metavar="N",
        help=f"samples a class may hold (default: {config.DEFAULT_MAX_SAMPLES_PER_CLASS})",
    )
    limits.add_argument(
        "--max-memory-mb",
        dest="max_memory_mb",
        type=int,
        metavar="MB",
        help=f"megabytes all samples may take (default: {config.DEFAULT_MAX_MB})",
    )
    training = parser.add_argument_group("training defaults")
    for flag, dest, kind in (
        ("--num-iter", "training_num_iter", int),
        ("--learning-rate", "training_learning_rate", float),
        ("--batch-size", "training_batch_size", int),
        ("--reg", "training_reg", float),
    ):
        training.add_argument(flag, dest=dest, type=kind, metavar="X")
    actions = parser.add_argument_group("instead of opening the window")
    one = actions.add_mutually_exclusive_group()
    one.add_argument(
        "--print-config",
        action="store_true",
        default=False,
        help="print the effective settings and where each came from, then exit",
    )
    one.add_argument(
        "--set-pin",
        action="store_true",
        default=False,
        help="ask for a new operator PIN (twice) and store its hash in the config file",
    )
    one.add_argument(
        "--clear-pin",
        action="store_true",
        default=False,
        help="remove the operator PIN from the config file (the forgotten-PIN recovery)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        default=False,
        help="start with no classes instead of restoring the autosaved session "
        "(the previous autosave is kept, moved to a folder named autosave-kept-<time>)",
    )
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    return parser


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """The arguments, merged with the config file and environment.

    Every setting is an attribute (``args.source``, ``args.training_num_iter``…);
    ``args.settings`` is the ``kiosk.config.Settings`` with their origins.

    Raises:
        ConfigError: the config file, a ``KIOSK_*`` variable or a flag value is invalid.
    """
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    given = vars(args)
    explicit = bool(args.config or environ.get(config.CONFIG_ENV))
    settings = config.load(
        config.config_path(args.config, environ),
        explicit=explicit and not (args.set_pin or args.clear_pin),
        environ=environ,
        flags=config.flags_from_namespace(args, given.__contains__),
    )
    for option in config.OPTIONS:
        setattr(args, option.dest, getattr(settings, option.dest))
    args.settings = settings
    return args


def load_core(args: argparse.Namespace) -> tuple[Any, Any]:
    """The extractor and the (unopened) frame source; ``ValueError``-like errors say why not.

    Sets ``args.model_note`` to ``CPU_FALLBACK_MESSAGE`` when an Edge TPU model
    was replaced by its CPU twin (see ``load_extractor``), else None.
    """
    from kiosk.models import resolve_model
    from kiosk.vision.sources import open_source

    model_path = resolve_model(args.model)
    extractor, args.model_note = load_extractor(model_path, args.threads)
    source = open_source(args.source)
    return extractor, source


def load_extractor(
    model_path: str | Path, num_threads: int | None = None
) -> tuple[Any, str | None]:
    """(the extractor, a note for the operator or None).

    An ``_edgetpu`` model that cannot run (no Edge TPU plugged in) falls back to
    its CPU twin (``x_edgetpu.tflite`` -> ``x.tflite``) from the same folder, when
    that file exists: the kiosk keeps working, a little slower, and the note
    (``CPU_FALLBACK_MESSAGE``) says so. Any other failure raises as it was.
    """
    from kiosk.embedding import EmbeddingExtractor
    from kiosk.vision import runtime

    path = Path(model_path)
    try:
        return EmbeddingExtractor(path, num_threads=num_threads), None
    except ValueError:
        twin = path.with_name(runtime.cpu_twin_name(path))
        try:
            compiled = runtime.is_edgetpu_model(runtime.read_model(path)[1])
        except ValueError:
            compiled = False
        if not compiled or twin == path or not twin.is_file():
            raise
    return EmbeddingExtractor(twin, num_threads=num_threads), CPU_FALLBACK_MESSAGE


def set_pin(path: Path, ask: Callable[[str], str] | None = None) -> int:
    """``kiosk --set-pin``: ask twice, store the salted hash in ``path``; exit status."""
    ask = ask or getpass.getpass  # looked up now, so tests can replace it
    try:
        first = ask("New operator PIN (4-8 digits): ")
        problem = check_pin_format(first)
        if problem is not None:
            print(f"kiosk: {problem}; the PIN was not changed", file=sys.stderr)
            return EXIT_USAGE
        if ask("Same PIN again: ") != first:
            print("kiosk: the two PINs differ; the PIN was not changed", file=sys.stderr)
            return EXIT_USAGE
    except (EOFError, KeyboardInterrupt):
        print("\nkiosk: cancelled; the PIN was not changed", file=sys.stderr)
        return EXIT_USAGE
    config.set_pin_hash(path, hash_pin(first))
    print(f"Operator PIN set in {path}")
    return 0


def clear_pin(path: Path) -> int:
    """``kiosk --clear-pin``: remove the PIN hash from ``path``; exit status."""
    if not path.is_file():
        print(f"No config file at {path}: no PIN was set")
        return 0
    config.set_pin_hash(path, None)
    print(f"Operator PIN removed from {path}")
    return 0


@dataclass
class Kiosk:
    """The assembled application: controller (state, threads) and window."""

    controller: Any  # kiosk.ui.controller.Controller
    window: Any  # kiosk.ui.main_window.MainWindow
    autosaver: Any = None  # kiosk.autosave.Autosaver, when autosave is on

    def close(self) -> None:
        """Stop the threads and write what autosave has pending."""
        self.controller.shutdown()
        if self.autosaver is not None:
            self.autosaver.close()


def build(
    extractor: Any,
    source: Any,
    *,
    output: str | Path | None = None,
    fullscreen: bool = False,
    session: Any = None,
    training_config: Any = None,
    burst_hz: float | None = None,
    pin_hash: str | None = None,
    unlock_seconds: float | None = None,
    autosave_dir: str | Path | None = None,
    autosave: bool = False,
    fresh: bool = False,
    model_note: str | None = None,
    max_samples_per_class: int | None = None,
    max_memory_mb: int | None = None,
    places: Any = None,
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

    Needs the QApplication; from here on Python's cyclic garbage collection runs
    only on the GUI thread (``kiosk.ui.gc_guard``).
    """
    from kiosk.learn.recipe import TrainingSettings
    from kiosk.session import TeachingSession
    from kiosk.ui.controller import BURST_HZ, Controller
    from kiosk.ui.gc_guard import collect_on_gui_thread
    from kiosk.ui.lock import UNLOCK_SECONDS, OperatorLock
    from kiosk.ui.main_window import MainWindow
    from kiosk.vision.grabber import FrameGrabber

    if session is None:
        settings = TrainingSettings(config=training_config) if training_config else None
        store = _make_store(extractor, max_samples_per_class, max_memory_mb)
        session = TeachingSession(extractor, store, settings=settings)
    collect_on_gui_thread()
    saver, restored = None, None
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
    if model_note is not None and other_model:
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
    if restored is not None:
        restored = restored[:2]
    if recovering:
        restored = None  # the recovery says what happens
    elif model_note is not None:
        from kiosk.ui.badge import CornerBadge

        window.cpu_badge = CornerBadge(model_note, window)
        if other_model:
            # CPU embeddings differ slightly from the Edge TPU's: the autosave
            # refuses them rather than mix the two. Say what to do about it.
            restored = (
                f"{model_note}. The autosaved samples were made on the Edge TPU "
                f"model; they are kept unchanged in {saver.folder.name}-kept-<time> beside "
                "the new autosave",
                "error",
            )
        elif restored is None:
            restored = (model_note, "error")
        elif restored[1] != "error":
            restored = (f"{model_note}. {restored[0]}", "error")
    if recovering:
        from kiosk.ui.badge import CornerBadge

        window.cpu_badge = CornerBadge(model_note, window)
    if restored is not None:
        controller.message.emit(*restored)
    built.append(Kiosk(controller, window, saver))
    return built[0]


def _drop_autosaver(built: list[Kiosk]) -> None:
    # A failed recovery: this session must never overwrite the old autosave.
    for kiosk in built:
        kiosk.autosaver = None


def _make_store(extractor: Any, per_class: int | None, memory_mb: int | None) -> Any:
    from kiosk.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_SAMPLES_PER_CLASS, EmbeddingStore

    return EmbeddingStore(
        extractor.feature_dim,
        max_samples_per_class=per_class or DEFAULT_MAX_SAMPLES_PER_CLASS,
        max_bytes=memory_mb * 2**20 if memory_mb else DEFAULT_MAX_BYTES,
    )


def _restore_autosave(
    session: Any, folder: str | Path | None, fresh: bool
) -> tuple[Any, tuple[str, str, bool] | None]:
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


def _autosave_reporter(controller: Any) -> Callable[[str | None], None]:
    def report(text: str | None) -> None:
        # Runs on the autosave thread: a signal emit is safe there (queued to the GUI).
        controller.message.emit(text or "Autosave works again", "error" if text else "ok")

    return report


def _quit_on_signal(window: Any) -> None:
    # Qt's event loop keeps Python's signal handlers from running; a timer that
    # wakes the interpreter now and then lets Ctrl+C in the terminal quit cleanly.
    from PySide6.QtCore import QTimer

    def handler(signum: int, frame: Any) -> None:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kiosk`` console script."""
    try:
        args = parse_args(argv)
        path = args.settings.config_path
        if args.print_config:
            print(config.describe(args.settings))
            return 0
        if args.set_pin:
            return set_pin(path)
        if args.clear_pin:
            return clear_pin(path)
    except (config.ConfigError, OSError) as error:
        print(f"kiosk: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        extractor, source = load_core(args)
    except Exception as error:  # ModelError, ValueError, SourceError...: one clear line
        print(f"kiosk: {error}", file=sys.stderr)
        return EXIT_USAGE

    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from kiosk.places import Places

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "kiosk"])
    app.setApplicationName("kiosk")
    app.setApplicationVersion(__version__)
    # Matches kiosk.desktop, so a compositor or taskbar shows the same icon.
    app.setDesktopFileName("kiosk")
    app.setWindowIcon(QIcon(str(icon_path())))
    settings = args.settings
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
        fresh=getattr(args, "fresh", False),
        model_note=getattr(args, "model_note", None),
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


def icon_path() -> Path:
    """The application icon (``kiosk.svg`` in ``kiosk.resources``) as a real file path.

    Installed from a wheel the package is a plain folder, so the resource is a file.
    """
    from importlib import resources

    return Path(str(resources.files("kiosk.resources").joinpath("kiosk.svg")))


if __name__ == "__main__":
    raise SystemExit(main())
