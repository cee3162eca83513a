"""The window's start: settings reach build(), the burst rate, the icon.

The ``kiosk`` command's arguments and checks before the window are tested in
tests/test_kiosk_cli.py, without Qt.
"""

from __future__ import annotations

import pytest

from kiosk.cli import kiosk as cli


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

    monkeypatch.setattr(cli, "load_core", lambda args: (None, None))
    monkeypatch.setattr(app, "build", fake_build)
    with pytest.raises(Built):
        cli.main(["--config", str(path), "--reg", "0.5"])
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
