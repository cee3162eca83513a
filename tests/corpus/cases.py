"""The bad-input corpus: one generator of cases per entry point.

Every generator crosses a kind of bad input with every place it can enter:
each float setting x each non-finite spelling x file / environment / flag;
each bad path kind (``files.BAD_PATHS``) x each argument that names a file;
each huge-header image format x each reader of images; and so on. A case says
which console script to run, with which arguments and environment, and what
must come out: the exit status (2 for bad input unless documented otherwise)
and words the one-line message must hold.

To extend: write ``def <entry>_cases() -> Iterator[Case]`` (or add to one) and
list it in ``GENERATORS``. Arguments and environment values may hold a
``files.Thing``; it is made in the case's own folder just before the run.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kiosk import config
from tests.corpus.files import BAD_PATHS, IN_FOLDERS, Thing

Arg = str | Thing


@dataclass(frozen=True)
class Case:
    """One run of one console script on one bad input.

    Attributes:
        id: unique, readable (the pytest id).
        entry: the console script ("kiosk", "kiosk-train", ...).
        argv: its arguments; ``Thing`` items are made and replaced by their paths.
        env: variables set on top of ``runner.base_environment`` (None unsets one).
        config: text of the default config file (``KIOSK_CONFIG``), when not empty.
        expect: the exit status that is right for this input.
        words: text the message (stderr, or stdout when ``expect`` is 0) must hold.
        timeout: seconds before the run counts as a hang.
    """

    id: str
    entry: str
    argv: tuple[Arg, ...] = ()
    env: Mapping[str, Arg | None] = field(default_factory=dict)
    config: str | bytes = ""
    expect: int = 2
    words: tuple[str, ...] = ()
    timeout: float = 60.0


# The ways a number can be "a number" and still not be usable.
NON_FINITE_TEXT = ("nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e400")
NON_FINITE_TOML = ("nan", "+nan", "inf", "-inf", "1e999")
OUT_OF_RANGE = ("-1", "1e300", "1e-300")

# --check: everything is checked, then exit 0 where the window would open.
KIOSK_OK = ("--check", "--source", "demo")


def _float_options() -> list[config.Option]:
    return [option for option in config.OPTIONS if option.kind is float]


def _in_range(option: config.Option, text: str) -> bool:
    value = float(text)
    low = option.minimum if option.minimum is not None else -math.inf
    high = option.maximum if option.maximum is not None else math.inf
    return math.isfinite(value) and low <= value <= high


def _toml_line(key: str, value: str) -> str:
    table, _, name = key.rpartition(".")
    return f"[{table}]\n{name} = {value}\n" if table else f"{key} = {value}\n"


# ----------------------------------------------------------------------- kiosk
def kiosk_cases() -> Iterator[Case]:
    yield Case("kiosk/valid-start", "kiosk", KIOSK_OK, expect=0, words=("ready",))
    # Every float setting, every non-finite spelling, from every origin.
    for option in _float_options():
        for text in NON_FINITE_TOML:
            yield Case(
                f"kiosk/file/{option.key}={text}",
                "kiosk",
                KIOSK_OK,
                config=_toml_line(option.key, text),
                words=(option.key, "finite"),
            )
        if option.env:
            for text in (*NON_FINITE_TEXT, *OUT_OF_RANGE):
                good = _in_range(option, text)
                yield Case(
                    f"kiosk/env/{option.env_name}={text}",
                    "kiosk",
                    KIOSK_OK,
                    env={option.env_name: text},
                    expect=0 if good else 2,
                    words=("ready",) if good else (option.key,),
                )
        if option.flag:
            for text in NON_FINITE_TEXT:
                yield Case(
                    f"kiosk/flag/{option.flag}={text}",
                    "kiosk",
                    (*KIOSK_OK, f"{option.flag}={text}"),
                    words=(option.flag, "finite"),
                )
    for option in config.OPTIONS:
        if option.kind is int and option.flag:
            for text in ("x", "1.5", "9" * 5000, "-0x10"):
                yield Case(
                    f"kiosk/flag/{option.flag}={text[:12]}",
                    "kiosk",
                    (*KIOSK_OK, f"{option.flag}={text}"),
                    words=(option.flag,),
                )
    # The config file: named by flag or variable, each bad kind of path.
    for kind, word in BAD_PATHS.items():
        if kind in ("missing", "empty"):
            continue  # a missing named file is below; an empty one is a valid config
        thing = Thing(kind, "kiosk.toml")
        yield Case(f"kiosk/--config/{kind}", "kiosk", (*KIOSK_OK, "--config", thing), words=(word,))
        yield Case(
            f"kiosk/KIOSK_CONFIG/{kind}",
            "kiosk",
            KIOSK_OK,
            env={"KIOSK_CONFIG": thing},
            words=(word,),
        )
    yield Case(
        "kiosk/--config/missing",
        "kiosk",
        (*KIOSK_OK, "--config", Thing("missing")),
        words=("not found",),
    )
    yield Case(
        "kiosk/--config/sparse-3gb",
        "kiosk",
        (*KIOSK_OK, "--config", Thing("sparse-3gb")),
        words=("3 GB",),
    )
    # The config file's content.
    for name, text, expect, words in CONFIG_TEXTS:
        yield Case(
            f"kiosk/config-text/{name}", "kiosk", KIOSK_OK, config=text, expect=expect, words=words
        )
    # The model: each bad path kind, each bad model kind, by flag, variable and config.
    for kind, word in {**BAD_PATHS, **BAD_MODELS}.items():
        thing = Thing(kind, "model.tflite")
        yield Case(f"kiosk/--model/{kind}", "kiosk", (*KIOSK_OK, "--model", thing), words=(word,))
        yield Case(
            f"kiosk/KIOSK_MODEL/{kind}",
            "kiosk",
            KIOSK_OK,
            env={"KIOSK_MODEL": thing},
            words=(word,),
        )
    yield Case(
        "kiosk/--model/sparse-3gb",
        "kiosk",
        (*KIOSK_OK, "--model", Thing("sparse-3gb")),
        words=("3 GB",),
    )
    yield Case(
        "kiosk/KIOSK_MODEL_DIR/unknown-user",
        "kiosk",
        KIOSK_OK,
        env={"KIOSK_MODEL_DIR": Thing("unknown-user")},
        words=("nosuchuser",),
    )
    # The frame source.
    for text, word in SOURCES:
        yield Case(
            f"kiosk/--source/{text!r}", "kiosk", ("--check", "--source", text), words=(word,)
        )
    for kind in ("fifo", "dev-zero", "link-to-dev-zero", "unknown-user", "dangling-link"):
        yield Case(f"kiosk/--source/{kind}", "kiosk", ("--check", "--source", Thing(kind)))
    # A folder of nothing but image bombs is a source: the window opens and says so.
    yield Case(
        "kiosk/--source/only-bad-images",
        "kiosk",
        ("--check", "--source", Thing("only-bad-images")),
        expect=0,
    )
    # Paths in settings that cannot be expanded.
    for key in ("output", "source", "model"):
        yield Case(
            f"kiosk/file/{key}=~nosuchuser",
            "kiosk",
            KIOSK_OK,
            config=f'{key} = "~nosuchuser-kiosk/x"\n',
            words=("nosuchuser",),
        )
    # The environment around the settings.
    yield Case(
        "kiosk/KIOSK_DATA_DIR/unknown-user",
        "kiosk",
        KIOSK_OK,
        env={"KIOSK_DATA_DIR": Thing("unknown-user")},
        words=("nosuchuser",),
    )
    for kind in ("dev-zero", "fifo", "empty"):
        # No log file, said in one warning line; the kiosk still starts.
        yield Case(
            f"kiosk/KIOSK_DATA_DIR/{kind}",
            "kiosk",
            KIOSK_OK,
            env={"KIOSK_DATA_DIR": Thing(kind)},
            expect=0,
            words=("ready",),
        )
    for text in ("loud", "", "DEBUG", "5", "debug\n"):
        good = text.strip().lower() in ("", "debug")
        yield Case(
            f"kiosk/KIOSK_LOG_LEVEL={text!r}",
            "kiosk",
            KIOSK_OK,
            env={"KIOSK_LOG_LEVEL": text},
            expect=0 if good else 2,
            words=("ready",) if good else ("KIOSK_LOG_LEVEL",),
        )
    yield Case(
        "kiosk/--log-level=loud",
        "kiosk",
        (*KIOSK_OK, "--log-level", "loud"),
        words=("--log-level",),
    )
    # Flags argparse itself refuses: one line too, not the usage text.
    for argv in (
        ("--bogus",),
        ("--threads",),
        ("--source",),
        ("--fullscreen=yes",),
        ("--print-config", "--set-pin"),
    ):
        yield Case(f"kiosk/argv/{' '.join(argv)}", "kiosk", argv, words=("error",))
    # No display at all, or a display that is not there.
    for name, env, word in DISPLAYS:
        if name == "eglfs-without-gpu" and glob.glob("/dev/dri/card*"):
            continue  # this machine has a GPU: eglfs may well work here
        yield Case(f"kiosk/display/{name}", "kiosk", KIOSK_OK, env=env, words=(word,))
    # --clear-pin on a config file that is not a file.
    for kind in ("fifo", "dev-zero", "folder"):
        yield Case(
            f"kiosk/--clear-pin/{kind}",
            "kiosk",
            ("--clear-pin", "--config", Thing(kind, "kiosk.toml")),
        )


BAD_MODELS: dict[str, str] = {
    "truncated-model": "",
    "tfl3-header-only": "corrupt",
    "huge-shape-model": "corrupt",
    "classifier": "kiosk-extractor",
    "edgetpu-extractor": "Edge TPU",
}

CONFIG_TEXTS: list[tuple[str, str | bytes, int, tuple[str, ...]]] = [
    ("bom", "\ufeffburst_hz = 4\n[training]\nnum_iter = 9\n", 0, ("ready",)),
    ("bom-only", "\ufeff", 0, ("ready",)),
    ("double-bom", "\ufeff\ufeffburst_hz = 4\n", 2, ("invalid TOML",)),
    ("nested-arrays", "x = " + "[" * 100_000 + "]" * 100_000 + "\n", 2, ("nested",)),
    ("nested-inline-tables", "x = " + "{a=" * 50_000 + "1" + "}" * 50_000 + "\n", 2, ("TOML",)),
    ("unclosed-arrays", "source = " + "[" * 100_000 + "\n", 2, ("TOML",)),
    ("not-utf8", b'source = "caf\xe9"\n', 2, ("UTF-8",)),
    ("utf16", "burst_hz = 4\n".encode("utf-16"), 2, ("UTF-8",)),
    ("nul-in-string", 'source = "a\\u0000b"\n', 2, ("control",)),
    ("newline-in-string", 'output = "a\\nb"\n', 2, ("control",)),
    ("huge-int", "threads = " + "9" * 400 + "\n", 2, ("threads",)),
    ("huge-float-int", "burst_hz = " + "9" * 400 + "\n", 2, ("burst_hz",)),
    ("wrong-type-table", "[training]\nnum_iter = [1, 2]\n", 2, ("num_iter",)),
    ("table-as-array", "[[training]]\nnum_iter = 3\n", 2, ("training",)),
    ("unknown-key", "sourse = 'demo'\n", 2, ("sourse",)),
    ("duplicate-key", "burst_hz = 2\nburst_hz = 3\n", 2, ("TOML",)),
    ("long-string", 'source = "' + "x" * 200_000 + '"\n', 0, ("ready",)),
    ("pin-hash-junk", '[operator]\npin_hash = "scrypt$1$1$1$$"\n', 2, ("pin_hash",)),
    ("binary", bytes(range(256)) * 4, 2, ("UTF-8",)),
]

SOURCES: list[tuple[str, str]] = [
    ("²", "0-9"),
    ("٣", "0-9"),  # an Arabic-Indic three
    ("１", "0-9"),  # a fullwidth one
    ("-1", "Unknown"),
    ("", "Unknown"),
    ("   ", "Unknown"),
    ("nowhere/clip.avi", "Unknown"),
]

DISPLAYS: list[tuple[str, dict[str, Arg | None], str]] = [
    ("none", {"QT_QPA_PLATFORM": None, "DISPLAY": None, "WAYLAND_DISPLAY": None}, "DISPLAY"),
    ("dead-x", {"QT_QPA_PLATFORM": None, "DISPLAY": ":97", "WAYLAND_DISPLAY": None}, ":97"),
    ("bad-display-name", {"QT_QPA_PLATFORM": None, "DISPLAY": "nonsense"}, "DISPLAY"),
    (
        "dead-wayland",
        {
            "QT_QPA_PLATFORM": None,
            "DISPLAY": None,
            "WAYLAND_DISPLAY": "nowhere-9",
            "XDG_RUNTIME_DIR": "/tmp",
        },
        "Wayland",
    ),
    ("xcb-without-display", {"QT_QPA_PLATFORM": "xcb", "DISPLAY": None}, "xcb"),
    ("unknown-platform", {"QT_QPA_PLATFORM": "bogus"}, "bogus"),
    ("eglfs-without-gpu", {"QT_QPA_PLATFORM": "eglfs"}, "eglfs"),
    ("linuxfb-without-fb", {"QT_QPA_PLATFORM": "linuxfb:fb=/dev/fb97"}, "fb97"),
]


# ------------------------------------------------------------------ kiosk-train
def train_cases() -> Iterator[Case]:
    data = Thing("folder-with-garbage", "data")

    def train(*argv: Arg, **kwargs) -> tuple[Arg, ...]:
        return ("--data-dir", kwargs.get("data", data), "--output-dir", "out", *argv)

    for flag in ("--learning-rate", "--reg", "--weight-scale", "--val-fraction", "--test-fraction"):
        for text in NON_FINITE_TEXT:
            yield Case(
                f"kiosk-train/{flag}={text}", "kiosk-train", train(f"{flag}={text}"), words=(flag,)
            )
    for flag, text in (
        ("--num-iter", "0"),
        ("--batch-size", "-1"),
        ("--num-threads", "0"),
        ("--val-fraction", "1.5"),
        ("--seed", "x"),
    ):
        yield Case(
            f"kiosk-train/{flag}={text}",
            "kiosk-train",
            train(f"{flag}={text}"),
            words=(flag.lstrip("-").split("-")[0],),
        )
    for kind, word in BAD_PATHS.items():
        if kind in ("empty", "garbage"):
            continue
        yield Case(
            f"kiosk-train/--data-dir/{kind}",
            "kiosk-train",
            train(data=Thing(kind, "data")),
            words=(word,) if kind != "fifo" else (),
        )
    yield Case(
        "kiosk-train/--data-dir/one-class",
        "kiosk-train",
        train(data=Thing("folder-one-class", "data")),
        words=("2",),
    )
    yield Case(
        "kiosk-train/--data-dir/only-bad-images",
        "kiosk-train",
        train(data=Thing("only-bad-images", "data")),
        words=("class",),
    )
    for kind, word in {**BAD_PATHS, **BAD_MODELS}.items():
        yield Case(
            f"kiosk-train/--embedding-extractor/{kind}",
            "kiosk-train",
            train("--embedding-extractor", Thing(kind, "model.tflite")),
            words=(word,),
        )
    yield Case(
        "kiosk-train/--embedding-extractor/sparse-3gb",
        "kiosk-train",
        train("--embedding-extractor", Thing("sparse-3gb", "m.tflite")),
        words=("3 GB",),
    )
    for kind in ("folder", "fifo", "dev-zero", "link-to-dev-zero"):
        yield Case(
            f"kiosk-train/--metrics-json/{kind}",
            "kiosk-train",
            train("--metrics-json", Thing(kind, "metrics.json")),
            words=("metrics",),
        )
    for kind in ("fifo", "dev-zero", "empty"):
        yield Case(
            f"kiosk-train/--output-dir/{kind}",
            "kiosk-train",
            ("--data-dir", data, "--output-dir", Thing(kind, "out")),
        )
    for argv in (("--bogus",), ("--optimizer", "adam"), ()):
        yield Case(
            f"kiosk-train/argv/{' '.join(argv) or 'none'}", "kiosk-train", argv, words=("error",)
        )
    yield Case(
        "kiosk-train/KIOSK_LOG_LEVEL=loud",
        "kiosk-train",
        train(),
        env={"KIOSK_LOG_LEVEL": "loud"},
        words=("KIOSK_LOG_LEVEL",),
    )
    # Bad image files among good ones are skipped with a warning; training goes on.
    for kind in IN_FOLDERS:
        yield Case(
            f"kiosk-train/image/{kind}",
            "kiosk-train",
            train("--num-iter", "5", data=Thing(f"folder-with-{kind}", "data")),
            expect=0,
            words=("saved",),
            timeout=120,
        )


# ----------------------------------------------------------------- kiosk-models
def models_cases() -> Iterator[Case]:
    for kind, word in {**BAD_PATHS, **BAD_MODELS}.items():
        if kind in ("classifier", "edgetpu-extractor"):
            # Valid models without kiosk's metadata: documented exit status 1.
            yield Case(
                f"kiosk-models/info/{kind}",
                "kiosk-models",
                ("info", Thing(kind, "m.tflite")),
                expect=1,
            )
            continue
        yield Case(
            f"kiosk-models/info/{kind}",
            "kiosk-models",
            ("info", Thing(kind, "m.tflite")),
            words=(word,),
        )
    yield Case(
        "kiosk-models/info/sparse-3gb",
        "kiosk-models",
        ("info", Thing("sparse-3gb", "m.tflite")),
        words=("3 GB",),
    )
    for kind in ("fifo", "dev-zero", "unknown-user"):
        yield Case(
            f"kiosk-models/fetch/--source/{kind}",
            "kiosk-models",
            ("fetch", "--dir", "installed", "--source", Thing(kind, "src")),
        )
        yield Case(
            f"kiosk-models/fetch/--dir/{kind}",
            "kiosk-models",
            ("fetch", "--source", str(_models_dir()), "--dir", Thing(kind, "dst")),
        )
    yield Case(
        "kiosk-models/fetch/unknown-name",
        "kiosk-models",
        ("fetch", "nothing"),
        words=("unknown model",),
    )
    for argv in (("info",), ("bogus",), ()):
        yield Case(
            f"kiosk-models/argv/{' '.join(argv) or 'none'}", "kiosk-models", argv, words=("error",)
        )


def _models_dir() -> Path:
    from tests.conftest import MODELS

    return MODELS


# -------------------------------------------------------------- kiosk-extractor
def extractor_cases() -> Iterator[Case]:
    # An extractor with a corrupt input shape still has no head to cut.
    for kind, word in {**BAD_PATHS, **BAD_MODELS, "huge-shape-model": "extractor"}.items():
        if kind == "classifier":
            continue  # the one thing it is for
        yield Case(
            f"kiosk-extractor/input/{kind}",
            "kiosk-extractor",
            (Thing(kind, "m.tflite"), "-o", "out.tflite"),
            words=(word,),
        )
    yield Case(
        "kiosk-extractor/input/sparse-3gb",
        "kiosk-extractor",
        (Thing("sparse-3gb", "m.tflite"), "-o", "out.tflite"),
        words=("3 GB",),
    )
    for kind in ("folder", "fifo", "dev-zero", "link-loop"):
        yield Case(
            f"kiosk-extractor/-o/{kind}",
            "kiosk-extractor",
            (Thing("classifier", "c.tflite"), "-o", Thing(kind, "out.tflite")),
        )
    yield Case(
        "kiosk-extractor/-o/same-as-input",
        "kiosk-extractor",
        (Thing("classifier", "c.tflite"), "-o", "c.tflite"),
        words=("overwrite",),
    )


GENERATORS: dict[str, Callable[[], Iterator[Case]]] = {
    "kiosk": kiosk_cases,
    "kiosk-train": train_cases,
    "kiosk-models": models_cases,
    "kiosk-extractor": extractor_cases,
}


def all_cases() -> list[Case]:
    """Every case of every generator; ids are unique."""
    cases = [case for generate in GENERATORS.values() for case in generate()]
    ids = [case.id for case in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, duplicates
    return cases


def is_finite_text(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
