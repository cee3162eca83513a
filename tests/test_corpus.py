"""The bad-input corpus through every command-line entry point (tests/corpus/).

Each generated case runs the console script's own function in a child process
under a timeout (tests/corpus/runner.py) and must end with

* no hang (the timeout is a hang);
* no traceback, on stderr or stdout;
* the exit status right for the input: 2 for bad input (1 where documented);
* on failure, exactly one line on stderr, ``<command>: ...`` with a non-empty
  message holding the case's words; on success, no empty line, and the words
  on stdout.

A few cases also go through the real console script (a new interpreter), so
the wiring from ``pyproject.toml`` to the function is covered as well.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fast_sample
from tests.corpus.cases import Case, all_cases
from tests.corpus.files import Thing
from tests.corpus.runner import Outcome, base_environment, run_entry

CASES = all_cases()
# One line: the command's name, a colon, then words (not just "error:").
ONE_LINE = re.compile(r"^kiosk(-train|-models|-extractor)?( [a-z]+)?: (error: )?\S.*$")


def materialize(case: Case, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The case's arguments and environment, with its files made in ``folder``."""
    argv = [item.make(folder) if isinstance(item, Thing) else item for item in case.argv]
    env = base_environment(folder)
    for key, value in case.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value.make(folder) if isinstance(value, Thing) else value
    if case.config:
        data = case.config if isinstance(case.config, bytes) else case.config.encode("utf-8")
        Path(env["KIOSK_CONFIG"]).write_bytes(data)
    return argv, env


def check(case: Case, outcome: Outcome) -> None:
    where = f"{case.id}: status {outcome.status}\nstdout: {outcome.stdout!r}\n"
    where += f"stderr: {outcome.stderr!r}"
    assert not outcome.hung, f"hung (killed after {case.timeout} s)\n{where}"
    for text in (outcome.stdout, outcome.stderr):
        assert "Traceback" not in text, where
    assert outcome.status == case.expect, where
    lines = outcome.stderr.strip("\n").splitlines()
    if case.expect == 0:
        assert all(line.strip() for line in lines), where
        shown = outcome.stdout
    elif case.expect == 1 and not lines:
        # A documented answer on stdout ("no kiosk metadata"): one line too.
        lines = outcome.stdout.strip("\n").splitlines()
        assert len(lines) == 1 and lines[0].strip(), where
        shown = lines[0]
    else:
        assert len(lines) == 1, where
        assert ONE_LINE.match(lines[0]), where
        shown = lines[0]
    for word in case.words:
        assert word.lower() in shown.lower(), f"{word!r} missing\n{where}"


@pytest.mark.parametrize("case", fast_sample(CASES, [case.id for case in CASES]))
def test_bad_input_case(case: Case, tmp_path: Path) -> None:
    argv, env = materialize(case, tmp_path)
    check(case, run_entry(case.entry, argv, tmp_path, env, timeout=case.timeout))


def test_every_entry_point_has_cases() -> None:
    from tests.corpus.runner import ENTRY_POINTS

    assert {case.entry for case in CASES} == set(ENTRY_POINTS)
    assert len(CASES) > 300


# The same checks through the real console scripts, for a sample of cases.
SCRIPT_SAMPLE = [
    "kiosk/valid-start",
    "kiosk/env/KIOSK_BURST_HZ=nan",
    "kiosk/display/none",
    "kiosk/--model/fifo",
    "kiosk/--source/'²'",
    "kiosk-train/--reg=nan",
    "kiosk-models/info/dev-zero",
    "kiosk-extractor/input/fifo",
]


@pytest.mark.parametrize("case_id", SCRIPT_SAMPLE)
def test_console_script(case_id: str, tmp_path: Path) -> None:
    (case,) = [case for case in CASES if case.id == case_id]
    argv, env = materialize(case, tmp_path)
    script = shutil.which(case.entry, path=os.path.dirname(sys.executable))
    assert script is not None, f"{case.entry} is not installed beside {sys.executable}"
    try:
        done = subprocess.run(
            [script, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=case.timeout, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        outcome = Outcome(done.returncode, done.stdout, done.stderr, 0.0)
    except subprocess.TimeoutExpired as expired:
        outcome = Outcome(-999, str(expired.stdout or ""), str(expired.stderr or ""), 0.0)
    check(case, outcome)
