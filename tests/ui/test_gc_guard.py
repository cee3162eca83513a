"""The ``kiosk`` command collects garbage on the GUI thread only; ``build`` leaves gc alone."""

from __future__ import annotations

import gc
import threading
from typing import ClassVar

import pytest
from PySide6.QtWidgets import QWidget

from kiosk.cli import kiosk as cli
from kiosk.ui import app


class Cycle:
    """Garbage only the cyclic collector can free; records where it was freed."""

    freed_in: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.me = self
        self.widget = QWidget()  # what must never be destroyed off the GUI thread

    def __del__(self) -> None:
        Cycle.freed_in.append(threading.current_thread().name)


def test_build_alone_keeps_automatic_collection(make_kiosk):
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        make_kiosk(size=None)
        assert gc.isenabled()
    finally:
        if not was_enabled:
            gc.disable()


def test_the_kiosk_command_collects_on_the_gui_thread(qapp, qtbot, monkeypatch, tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text("")
    seen: dict[str, bool] = {}

    class Built(Exception):
        pass

    def fake_build(extractor, source, **kwargs):
        collector = app.gc_collector
        seen["installed"] = collector is not None and collector.timer.isActive()
        seen["gc enabled"] = gc.isenabled()
        raise Built

    monkeypatch.setattr(cli, "load_core", lambda args: (None, None))
    monkeypatch.setattr(app, "build", fake_build)
    with pytest.raises(Built):
        cli.main(["--config", str(config)])
    assert seen == {"installed": True, "gc enabled": False}

    # The collector stays for the application's life: cycles made garbage while a
    # worker allocates far past every threshold are freed on the GUI thread.
    Cycle.freed_in.clear()
    Cycle()
    kept: list[list[int]] = []
    worker = threading.Thread(target=lambda: kept.extend([i] for i in range(200_000)))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: bool(Cycle.freed_in), timeout=5000)
    assert Cycle.freed_in == [threading.main_thread().name]
