"""Python's cyclic garbage collection, run only on the GUI thread.

Automatic collection runs in whichever thread is allocating when a threshold
trips. When that is a worker thread (vision, save, a task) and the garbage
holds Qt widgets, say a closed dialog caught in a reference cycle, the widgets
are destroyed off the GUI thread. Qt forbids that, and with shiboken handing
part of the deletion to the main thread the two threads can deadlock: one
holds a Qt mutex and waits for the interpreter lock, the other the reverse.
So automatic collection is switched off and a GUI-thread timer collects
instead, generation by generation, by the interpreter's own thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Slot

# How often the GUI thread looks at the allocation counts (ms). Young
# collections are cheap, so often enough that garbage never piles up.
INTERVAL_MS = 100


class GuiThreadCollector(QObject):
    """Disables automatic ``gc`` and collects from a timer on this object's thread."""

    def __init__(self, interval_ms: int = INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]  # per generation, for tests and diagnostics
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Hand collection back to the interpreter."""
        self._timer.stop()
        gc.enable()

    @Slot()
    def collect(self) -> None:
        """Collect the oldest generation whose count is over its threshold, if any."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.thresholds[generation]:
                gc.collect(generation)
                self.collections[generation] += 1
                return


def collect_on_gui_thread() -> GuiThreadCollector:
    """Install the collector once per application (idempotent); returns it.

    Call from the GUI thread after the QApplication exists.
    """
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("create the QApplication first")
    collector = app.findChild(GuiThreadCollector)
    if collector is None:
        collector = GuiThreadCollector(parent=app)
    if not collector.active:
        collector.start()
    return collector
