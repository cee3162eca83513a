"""The ``kiosk`` command: arguments, settings, checks, then the window.

Everything before the window is here and Qt-free: the flags, the config file
and ``KIOSK_*`` variables (``kiosk.config``), logging (``kiosk.logs``), the
display check (``kiosk.cli.display``), the model and the frame source. Only
when all of them are usable is ``kiosk.ui`` imported to open the window.

Problems the operator can fix (a bad setting, no display, no model, a bad
model file, an unknown source) are reported in one line on stderr with exit
status 2, before any window opens. A camera that is missing or unplugged is
not such a problem: the window opens and says so over the picture, with a
Retry button. ``kiosk --check`` stops where the window would open (exit 0), so
a deployment can test its settings without a screen in front of it.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kiosk import __version__, config, logs
from kiosk.cli.common import EXIT_USAGE, ArgumentParser, error_text, finite_float
from kiosk.cli.display import display_problem
from kiosk.pin import check_pin_format, hash_pin

__all__ = [
    "CPU_FALLBACK_MESSAGE",
    "EXIT_USAGE",
    "build_parser",
    "clear_pin",
    "load_core",
    "load_extractor",
    "main",
    "parse_args",
    "set_pin",
]

PROGRAM = "kiosk"
CPU_FALLBACK_MESSAGE = "Running on the CPU: Edge TPU not found"

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The ``kiosk`` flags. Settings flags default to "not given" so the config file shows."""
    parser = ArgumentParser(
        prog=PROGRAM,
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
        type=finite_float,
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
        ("--learning-rate", "training_learning_rate", finite_float),
        ("--batch-size", "training_batch_size", int),
        ("--reg", "training_reg", finite_float),
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
    actions.add_argument(
        "--check",
        action="store_true",
        default=False,
        help="check the settings, the display, the model and the source, then exit "
        "(status 0) where the window would open",
    )
    logs.add_log_level_argument(parser)
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
    if not os.path.exists(path):
        print(f"No config file at {path}: no PIN was set")
        return 0
    config.set_pin_hash(path, None)
    print(f"Operator PIN removed from {path}")
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``kiosk`` console script (and ``python -m kiosk``)."""
    environ = os.environ if environ is None else environ
    try:
        args = parse_args(argv, environ)
        level = logs.log_level(args.log_level, environ)
        path = args.settings.config_path
        if args.print_config or args.set_pin or args.clear_pin:
            logs.setup_logging(PROGRAM, level)
            if args.print_config:
                print(config.describe(args.settings))
                return 0
            return set_pin(path) if args.set_pin else clear_pin(path)
        # On a device nobody reads stderr: the log file is where it says what happened.
        problem = logs.setup_logging(
            PROGRAM, level, log_file=logs.data_dir(environ) / logs.LOG_FILE_NAME
        )
        if problem is not None:
            print(f"{PROGRAM}: warning: {problem}", file=sys.stderr)
        log.info("kiosk %s starting; settings from %s", __version__, path)
        problem = display_problem(environ)
        if problem is not None:
            return _refuse(problem)
    except (config.ConfigError, ValueError, OSError) as error:
        return _refuse(error)
    try:
        extractor, source = load_core(args)
    except Exception as error:  # ModelError, ValueError, SourceError...: one clear line
        return _refuse(error)
    where = "Edge TPU" if getattr(extractor, "on_edgetpu", False) else "CPU"
    ready = f"model {getattr(extractor, 'model_path', None)} on the {where}, source " + (
        source.describe() if source is not None else "none"
    )
    if args.check:
        print(f"ready: {ready}")
        return 0
    log.info("opening the window: %s", ready)

    from kiosk.ui.app import run

    status = run(
        extractor,
        source,
        args.settings,
        fresh=args.fresh,
        model_note=getattr(args, "model_note", None),
    )
    log.info("window closed, exit status %s", status)
    return status


def _refuse(problem: BaseException | str) -> int:
    text = error_text(problem)
    log.info("not started: %s", text, extra=logs.FILE_ONLY)
    print(f"{PROGRAM}: {text}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
