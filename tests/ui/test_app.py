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


def test_settings_reach_the_kiosk(monkeypatch, tmp_path):
    """The config file's values arrive in build(): output, kiosk mode, burst, training, PIN."""
    from kiosk.pin import hash_pin
    from kiosk.ui import app

    pin_hash = hash_pin("1234")
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f'output = "{tmp_path / "out"}"\nfullscreen = true\nburst_hz = 4\n'
        f'[training]\nnum_iter = 9\n[operator]\npin_hash = "{pin_hash}"\nunlock_seconds = 20\n'
    )
    seen: dict = {}

    class Built(Exception):
        pass

    def fake_build(extractor, source, **kwargs):
        seen.update(kwargs)
        raise Built

    monkeypatch.setattr(app, "load_core", lambda args: (None, None))
    monkeypatch.setattr(app, "build", fake_build)
    with pytest.raises(Built):
        main(["--config", str(path), "--reg", "0.5"])
    assert seen["output"] == str(tmp_path / "out") and seen["fullscreen"] is True
    assert seen["burst_hz"] == 4.0 and seen["unlock_seconds"] == 20.0
    assert seen["pin_hash"] == pin_hash
    assert (seen["training_config"].num_iter, seen["training_config"].reg) == (9, 0.5)


def test_burst_rate_sets_the_capture_timer(make_kiosk):
    kiosk = make_kiosk(burst_hz=4, start=False, size=None)
    assert kiosk.controller.burst_hz == 4.0
    assert kiosk.controller._burst.interval() == 250


def test_window_icon_is_the_shipped_svg(qapp):
    from PySide6.QtGui import QIcon

    from kiosk.ui.app import icon_path

    assert icon_path().is_file() and icon_path().name == "kiosk.svg"
    icon = QIcon(str(icon_path()))
    assert not icon.isNull() and not icon.pixmap(64, 64).isNull()
