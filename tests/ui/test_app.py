"""The ``kiosk`` command line: version, arguments, clear errors, no Qt in the core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import __version__
from kiosk.ui.app import main, parse_args

ROOT = Path(__file__).resolve().parents[2]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"kiosk {__version__}"


def test_arguments():
    args = parse_args(["--source", "demo", "--fullscreen", "--output", "out", "--threads", "2"])
    assert (args.source, args.fullscreen, args.output, args.threads) == ("demo", True, "out", 2)
    assert parse_args([]).source == "0"


def test_missing_model_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["--model", str(tmp_path / "nope.tflite"), "--source", "demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kiosk: ") and "\n" not in err
    assert "nope.tflite" in err


def test_broken_model_is_one_line_and_exit_2(capsys, broken_model_path):
    assert main(["--model", str(broken_model_path), "--source", "demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kiosk: ") and "\n" not in err


def test_unknown_source_is_one_line_and_exit_2(capsys, cpu_extractor_path, tmp_path):
    assert main(["--model", str(cpu_extractor_path), "--source", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown frame source" in err and "\n" not in err


def test_python_dash_m_kiosk():
    done = subprocess.run(
        [sys.executable, "-m", "kiosk", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"kiosk {__version__}"
