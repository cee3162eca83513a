"""Garbage collection runs on the GUI thread only, never in a worker thread."""

from __future__ import annotations

import gc
import threading
from typing import ClassVar

from PySide6.QtWidgets import QWidget

from kiosk.ui.gc_guard import GuiThreadCollector, collect_on_gui_thread


class Cycle:
    """Garbage only the cyclic collector can free; records where it was freed."""

    freed_in: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.me = self
        self.widget = QWidget()  # what must never be destroyed off the GUI thread

    def __del__(self) -> None:
        Cycle.freed_in.append(threading.current_thread().name)


def test_cycles_are_freed_on_the_gui_thread_while_workers_allocate(qapp, qtbot):
    collector = collect_on_gui_thread()
    assert collect_on_gui_thread() is collector  # one per application
    assert isinstance(collector, GuiThreadCollector) and collector.active
    assert not gc.isenabled()

    Cycle.freed_in.clear()
    Cycle()  # unreachable at once, but in a cycle

    kept: list[list[int]] = []

    def allocate() -> None:
        # Far past every threshold: automatic collection would run right here.
        kept.extend([i] for i in range(200_000))

    worker = threading.Thread(target=allocate, name="worker")
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: bool(Cycle.freed_in), timeout=5000)
    assert Cycle.freed_in == [threading.main_thread().name]
    assert sum(collector.collections) > 0


def test_stop_hands_collection_back(qapp):
    collector = GuiThreadCollector()
    collector.start()
    assert not gc.isenabled()
    collector.stop()
    assert gc.isenabled() and not collector.active
    collect_on_gui_thread()  # leave the application's collector running
