"""Run one corpus case through a real entry point, in a child process, under a timeout.

The entry point is the console script's own function, looked up in the
installed package's metadata (``kiosk = kiosk.cli.kiosk:main``...), so a case
runs exactly what the command runs. Each case runs in a process of its own,
forked from a server process that has already imported kiosk, numpy, OpenCV
and LiteRT (multiprocessing's "forkserver"): a case costs a fork, not an
interpreter start, and a case that hangs is killed at its timeout. The child
gets the case's environment (nothing of the parent's beyond PATH, HOME and the
test settings), its own folder as working directory, no terminal
(``setsid``: nothing can prompt), stdin from ``/dev/null``, and file
descriptors 1 and 2 redirected to files, so even native code's output is caught.

An exception escaping the entry point is written to stderr as the interpreter
would ("Traceback ..."), exit status 1: the test then fails on it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from tests.conftest import MODELS

ENTRY_POINTS = ("kiosk", "kiosk-train", "kiosk-models", "kiosk-extractor")
# Imported once by the server process, so every forked case starts warm.
PRELOAD = [
    "tests.corpus.runner",
    "kiosk.cli.kiosk",
    "kiosk.cli.train",
    "kiosk.cli.models",
    "kiosk.cli.extractor",
    "kiosk.embedding",
    "kiosk.vision.sources",
]
HUNG = -999


@dataclass(frozen=True)
class Outcome:
    """What a run of an entry point did: exit status (``HUNG`` if killed), output, time."""

    status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def hung(self) -> bool:
        return self.status == HUNG


def base_environment(folder: Path) -> dict[str, str]:
    """A clean, headless environment whose files all live in ``folder``."""
    config = folder / "kiosk-default.toml"
    if not config.exists():
        config.write_text("")
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "KIOSK_SHARED_DIR", "PYTHONPATH")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        KIOSK_CONFIG=str(config),
        KIOSK_DATA_DIR=str(folder / "data"),
        KIOSK_MODEL_DIR=str(MODELS),
        KIOSK_NO_EDGETPU="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _entry(name: str):
    (point,) = entry_points(group="console_scripts", name=name)
    return point.load()


def _child(name: str, argv: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """Runs in the forked process: become a headless command and run the entry point."""
    os.setsid()  # no controlling terminal: getpass and friends cannot wait on one
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(handle, fd)
        os.close(handle)
    sys.argv = [name, *argv]
    status = 1
    try:
        result = _entry(name)(argv)
        status = int(result or 0)
    except SystemExit as done:
        code = done.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        if isinstance(code, str):
            print(code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(status)


def run_entry(
    name: str,
    argv: list[str],
    folder: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Outcome:
    """Run console script ``name`` with ``argv`` in ``folder``; killed after ``timeout`` s."""
    env = base_environment(folder) if env is None else env
    out, err = folder / ".stdout", folder / ".stderr"
    process = _context().Process(
        target=_child, args=(name, argv, env, str(folder), str(out), str(err)), daemon=True
    )
    started = time.monotonic()
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(10)
        status = HUNG
    else:
        status = process.exitcode if process.exitcode is not None else HUNG
    seconds = time.monotonic() - started

    def text(path: Path) -> str:
        return path.read_bytes().decode("utf-8", "replace") if path.exists() else ""

    return Outcome(status, text(out), text(err), seconds)
