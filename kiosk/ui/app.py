"""The ``kiosk`` command: parse arguments, build the core objects, open the window.

Problems the operator can fix (no model, a bad model file, an unknown source)
are reported in one line on stderr with exit status 2, before any window
opens. A camera that is missing or unplugged is not such a problem: the window
opens and says so over the picture, with a Retry button.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk import __version__

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiosk",
        description=(
            "Teach a camera new object classes: capture samples per class, train, "
            "watch live predictions, save a .tflite model and labels.txt."
        ),
        epilog=(
            "Keys: 1-9 capture into class 1-9 (hold for a burst), Ctrl+T train, "
            "Esc cancel training, Ctrl+Z undo, Ctrl+S save, F11 full screen, Ctrl+Q quit."
        ),
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="embedding extractor .tflite (default: KIOSK_MODEL, then the folder "
        "`kiosk-models fetch` fills)",
    )
    parser.add_argument(
        "--source",
        default="0",
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
        action="store_true",
        help="kiosk mode: frameless full screen; Esc does not quit, Ctrl+Q does",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for the extractor (default: all cores)",
    )
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        build_parser().error("--threads must be at least 1")
    return args


def load_core(args: argparse.Namespace) -> tuple[Any, Any]:
    """The extractor and the (unopened) frame source; ``ValueError``-like errors say why not."""
    from kiosk.embedding import EmbeddingExtractor
    from kiosk.models import resolve_model
    from kiosk.vision.sources import open_source

    model_path = resolve_model(args.model)
    extractor = EmbeddingExtractor(model_path, num_threads=args.threads)
    source = open_source(args.source)
    return extractor, source


@dataclass
class Kiosk:
    """The assembled application: controller (state, threads) and window."""

    controller: Any  # kiosk.ui.controller.Controller
    window: Any  # kiosk.ui.main_window.MainWindow


def build(
    extractor: Any,
    source: Any,
    *,
    output: str | Path | None = None,
    fullscreen: bool = False,
    session: Any = None,
    training_config: Any = None,
) -> Kiosk:
    """Wire a session, a grabber, the controller and the window (nothing started yet).

    Call ``kiosk.controller.start()`` to start the camera and vision threads, and
    ``controller.shutdown()`` (closing the window does it) to stop them.
    """
    from kiosk.session import TeachingSession
    from kiosk.ui.controller import Controller
    from kiosk.ui.main_window import MainWindow
    from kiosk.vision.grabber import FrameGrabber

    if session is None:
        session = TeachingSession(extractor)
    # The product starts with two classes ready to fill.
    while len(session.store.class_names) < 2:
        session.store.add_class()
    grabber = FrameGrabber(source)
    controller = Controller(session, grabber, output=output, training_config=training_config)
    window = MainWindow(controller, kiosk=fullscreen)
    return Kiosk(controller, window)


def _quit_on_signal(window: Any) -> None:
    # Qt's event loop keeps Python's signal handlers from running; a timer that
    # wakes the interpreter now and then lets Ctrl+C in the terminal quit cleanly.
    from PySide6.QtCore import QTimer

    def handler(signum: int, frame: Any) -> None:
        window.quit()

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
    args = parse_args(argv)
    try:
        extractor, source = load_core(args)
    except Exception as error:  # ModelError, ValueError, SourceError...: one clear line
        print(f"kiosk: {error}", file=sys.stderr)
        return EXIT_USAGE

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "kiosk"])
    app.setApplicationName("kiosk")
    app.setApplicationVersion(__version__)
    kiosk = build(extractor, source, output=args.output, fullscreen=args.fullscreen)
    _quit_on_signal(kiosk.window)
    kiosk.controller.start()
    kiosk.window.show_for_mode()
    try:
        return int(app.exec())
    finally:
        kiosk.controller.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
