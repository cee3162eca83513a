"""What the commands share: never-empty one-line errors, finite numbers, tqdm bars, logging."""

from __future__ import annotations

import argparse
import errno
import io
import logging
import sys

import pytest

from kiosk import logs
from kiosk.cli import extractor, kiosk, models, train
from kiosk.cli.common import (
    ArgumentParser,
    ProgressBar,
    error_text,
    fail,
    finite_float,
    user_path,
)


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (MemoryError(), "out of memory (the input is too large for this machine)"),
        (RecursionError(), "the input is nested too deeply"),
        (ValueError(""), "ValueError (no details given)"),
        (ValueError("  two\nlines  "), "two lines"),
        (OSError(errno.ENOENT, "No such file or directory", "x.tflite"),
         "No such file or directory: x.tflite"),
        (KeyError("class_names"), "missing 'class_names'"),
        ("", "failed (no details given)"),
    ],
)  # fmt: skip
def test_error_text_is_one_line_and_never_empty(error, text):
    assert error_text(error) == text


def test_fail_prints_one_line(capsys):
    assert fail("kiosk-train", MemoryError()) == 2
    assert capsys.readouterr().err == (
        "kiosk-train: error: out of memory (the input is too large for this machine)\n"
    )


def test_argument_errors_are_one_line(capsys):
    parser = ArgumentParser(prog="kiosk-x")
    parser.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["--n", "9" * 5000])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kiosk-x: error: argument --n: invalid int")
    assert err.rstrip().endswith("(see kiosk-x --help)") and len(err) < 400


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_finite_float_refuses_non_finite(text):
    with pytest.raises(argparse.ArgumentTypeError, match="not a finite number"):
        finite_float(text)
    assert finite_float("1e-3") == 0.001


def test_user_path():
    assert str(user_path("~/x")).endswith("/x") and "~" not in str(user_path("~/x"))
    with pytest.raises(argparse.ArgumentTypeError, match="no user"):
        user_path("~nosuchuser-kiosk/x")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_redraws_in_place():
    stream = _Terminal()
    bar = ProgressBar("training", 40, stream)
    for step in range(1, 41):
        bar.update(step, f"loss {1 / step:.3f}")
    bar.close()
    text = stream.getvalue()
    assert "\r" in text and "training" in text and "40/40" in text and "loss 0.025" in text


def test_progress_bar_in_a_log_prints_only_its_last_line():
    stream = io.StringIO()
    bar = ProgressBar("embedding", 90, stream)
    for step in range(1, 91):
        bar.update(step)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("embedding: 100%") and "90/90" in lines[0]
    assert lines[0].isascii()
    quiet = io.StringIO()
    ProgressBar("nothing", None, quiet, unit_bytes=True).close(0)
    assert quiet.getvalue() == ""  # never updated: nothing to say


def test_download_bar_counts_bytes():
    stream = io.StringIO()
    bar = ProgressBar("model.tflite", None, stream, unit_bytes=True)
    bar.total = 4 * 2**20
    for done in range(0, 4 * 2**20 + 1, 2**16):
        bar.update(done)
    bar.close(bar.done)
    assert "4.00M/4.00M" in stream.getvalue()


@pytest.mark.parametrize("module", [kiosk, train, models, extractor])
def test_every_command_takes_log_level(module):
    parser = module.build_parser()
    assert any("--log-level" in action.option_strings for action in parser._actions)


def test_log_level_precedence_and_errors():
    assert logs.log_level(None, {}) is None
    assert logs.log_level(None, {"KIOSK_LOG_LEVEL": "Info"}) == logging.INFO
    assert logs.log_level("error", {"KIOSK_LOG_LEVEL": "debug"}) == logging.ERROR
    with pytest.raises(ValueError, match="KIOSK_LOG_LEVEL must be one of"):
        logs.log_level(None, {"KIOSK_LOG_LEVEL": "verbose"})


def test_setup_twice_keeps_one_console_handler_that_follows_stderr(monkeypatch):
    try:
        logs.setup_logging("kiosk-x", logging.INFO)
        logs.setup_logging("kiosk-x", logging.INFO)
        ours = [h for h in logging.getLogger().handlers if getattr(h, "_kiosk_handler", False)]
        assert len(ours) == 1
        replaced = io.StringIO()
        monkeypatch.setattr(sys, "stderr", replaced)
        logging.getLogger("kiosk.somewhere").warning("disk %s", "full")
        assert replaced.getvalue() == "kiosk-x: warning: disk full\n"
    finally:
        logs.remove_handlers()
