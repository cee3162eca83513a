"""A small control for the demo source: pause the scene and choose the object in view.

Shown only with ``--source demo``. A button in the picture's top-right corner
says what the scene does ("Demo: cycling", "Demo ❚❚ red disc") and opens a
touch panel: Pause / Resume, Cycle through the objects, Empty table, and one
row per object. Keys do the same: P pauses and resumes, N shows the next
object, A goes back to cycling. A paused, chosen scene gives the same frame
every time, so demos and scripted captures are reproducible.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QGridLayout, QPushButton, QSizePolicy, QWidget

from kiosk.ui import dialogs
from kiosk.vision.sources import DemoSource

PAUSE, AUTO, EMPTY = "pause", "auto", "empty"


class DemoPanel(dialogs.TouchDialog):
    """The demo's choices as big buttons; ``choice`` is PAUSE, AUTO, EMPTY or an object name."""

    def __init__(self, parent: QWidget | None, source: DemoSource) -> None:
        super().__init__(parent, "Demo scene")
        self.choice: str | None = None
        grid = QGridLayout()
        grid.setSpacing(8)
        rows = [
            (PAUSE, "▶  Resume" if source.paused else "❚❚  Pause"),
            (AUTO, "Cycle through objects"),
            (EMPTY, "Empty table"),
            *((name, name) for name in source.object_names),
        ]
        self.rows: dict[str, QPushButton] = {}
        for position, (key, label) in enumerate(rows):
            button = QPushButton(label)
            button.setAccessibleName(label.replace("❚❚", "").replace("▶", "").strip())
            button.setMinimumWidth(200)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _=False, k=key: self._pick(k))
            self.rows[key] = button
            grid.addWidget(button, position // 2, position % 2)
        self.layout_.addLayout(grid)
        self.finish("Close", cancel_text="Cancel")
        self.ok_button.hide()  # every row acts at once; Cancel closes

    def _pick(self, key: str) -> None:
        self.choice = key
        self.accept()


def ask_demo_choice(parent: QWidget | None, source: DemoSource) -> str | None:
    """What the operator picked in the demo panel, or None (tests replace this)."""
    panel = DemoPanel(parent, source)
    dialogs.run_modal(panel)
    choice = panel.choice
    panel.deleteLater()
    return choice


class DemoControl(QPushButton):
    """The picture's demo button, and what its panel and keys do to the source."""

    changed = Signal(str)  # what the scene does now, for the status line

    def __init__(self, source: DemoSource, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("DemoControl")
        self.setAccessibleName("Demo scene")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.source = source
        self.clicked.connect(self.open_panel)
        self.refresh()

    def describe(self) -> str:
        """ "Demo: cycling", "Demo ❚❚ red disc"..."""
        source = self.source
        what = "cycling" if source.auto else (source.current or "empty table")
        return f"Demo {'❚❚' if source.paused else '·'} {what}"

    def refresh(self) -> None:
        self.setText(self.describe())
        self.adjustSize()

    @Slot()
    def open_panel(self) -> None:
        choice = ask_demo_choice(self.window(), self.source)
        if choice is not None:
            self.apply(choice)

    def apply(self, choice: str) -> None:
        """Do what a panel row says (PAUSE toggles, AUTO cycles, EMPTY or an object name)."""
        if choice == PAUSE:
            self.toggle_pause()
            return
        if choice == AUTO:
            self.source.auto_cycle()
        else:
            self.source.show(None if choice == EMPTY else choice)
        self._changed()

    @Slot()
    def toggle_pause(self) -> None:
        """Key P."""
        if self.source.paused:
            self.source.resume()
        else:
            self.source.pause()
        self._changed()

    @Slot()
    def next_object(self) -> None:
        """Key N: the next object (after the last, the empty table), held in view."""
        names = self.source.object_names
        current = self.source.current
        position = -1 if current is None else names.index(current)
        following = position + 1
        self.source.show(names[following] if following < len(names) else None)
        self._changed()

    @Slot()
    def cycle(self) -> None:
        """Key A."""
        self.source.auto_cycle()
        self._changed()

    def _changed(self) -> None:
        self.refresh()
        self.changed.emit(self.describe())
