"""The touch places browser: pick or name a model, project or folder in a named place.

It replaces the stock file dialog. Across the top, one big button per place
(Models, Projects, each USB drive); under it the place's entries in
finger-sized rows (name, date, classes, samples) that scroll by flicking; in
the save modes a name field with a proposed name and the on-screen keyboard.
Nothing here reaches outside the places (``kiosk.places``): "‹ Up" stops at
the place's root and a typed name cannot contain a path. Outside kiosk mode
two more places, Home and Computer, reach the rest of the file system, by touch
like the others (there is no stock file dialog).

The dialog only answers the question (a ``PlaceChoice``); the window decides
what needs the operator PIN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kiosk.places import Entry, Place, PlaceError, Places, propose_name
from kiosk.ui import dialogs
from kiosk.ui.keyboard import OnScreenKeyboard
from kiosk.ui.style import TOUCH
from kiosk.ui.touch import ElidedLabel, enable_flick

ROW_PX = 64
# How often the browser looks for USB drives plugged in or pulled out.
DRIVE_POLL_MS = 1500


@dataclass(frozen=True)
class PlaceRequest:
    """What the browser asks for.

    Attributes:
        title: the dialog's heading ("Save model").
        show: which entries to list: "models", "projects" or "folders".
        places: the fixed places offered (the models or projects folder).
        drives: where the mounted USB drives go among them: "after", "first"
            (shown first when there is one) or "none".
        action: the confirm button's text ("Save", "Open", "Import", "Export").
        name_prefix: with a name field proposing ``<prefix>-<date>``; None to pick an entry.
        replace_kinds: entry kinds a typed or tapped name may replace ("model", "project").
        pick_kinds: entry kinds that can be picked in pick mode ("project", "folder").
    """

    title: str
    show: str
    places: tuple[Place, ...]
    action: str
    name_prefix: str | None = None
    replace_kinds: tuple[str, ...] = ()
    pick_kinds: tuple[str, ...] = ()
    drives: str = "after"


@dataclass(frozen=True)
class PlaceChoice:
    """The answer: ``path`` in ``place`` (a new name, or an existing entry)."""

    place: Place
    path: Path
    replace: bool = False
    entry: Entry | None = field(default=None, compare=False)


class EntryRow(QFrame):
    """One entry: a big selectable button (name over date and details), "›" to go in."""

    def __init__(self, entry: Entry, *, can_enter: bool) -> None:
        super().__init__()
        self.setObjectName("EntryRow")
        self.entry = entry
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self.button = QPushButton()
        self.button.setObjectName("EntryButton")
        self.button.setCheckable(True)
        self.button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.button.setMinimumHeight(ROW_PX)
        icon = {"model": "◆", "project": "▣"}.get(entry.kind, "▸")
        self.button.setAccessibleName(f"{entry.kind.capitalize()} {entry.name}")
        lines = QVBoxLayout(self.button)
        lines.setContentsMargins(12, 4, 12, 4)
        lines.setSpacing(0)
        self.name_label = ElidedLabel(f"{icon}  {entry.name}")
        self.name_label.setObjectName("EntryName")
        details = " · ".join(part for part in (entry.date_text(), entry.detail()) if part)
        self.detail_label = ElidedLabel(details)
        self.detail_label.setObjectName("EntryDetail")
        for label in (self.name_label, self.detail_label):
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
            lines.addWidget(label)
        row.addWidget(self.button, 1)
        self.enter_button: QPushButton | None = None
        if can_enter:
            self.enter_button = QPushButton("›")
            self.enter_button.setObjectName("EnterButton")
            self.enter_button.setAccessibleName(f"Open folder {entry.name}")
            self.enter_button.setFixedSize(max(TOUCH, ROW_PX), ROW_PX)
            row.addWidget(self.enter_button)


class PlacesDialog(dialogs.TouchDialog):
    """Pick an entry in a place, or name a new one; ``choice`` holds the answer."""

    def __init__(
        self,
        parent: QWidget | None,
        places: Places,
        request: PlaceRequest,
        *,
        whole_computer: bool = False,
    ) -> None:
        super().__init__(parent, request.title, fill=True)
        self.places = places
        self.request = request
        self.whole_computer = whole_computer
        self.choice: PlaceChoice | None = None
        self.offered = self._offered()
        self.place: Place = self.offered[0]
        self.folder: Path = self.place.path
        self.rows: list[EntryRow] = []
        self.selected: Entry | None = None
        self._names: set[str] = set()

        # -- the places: a button each; drives come and go ----------------------
        self.place_row = QWidget()
        self.place_row.setObjectName("DialogRow")
        self._place_line = QHBoxLayout(self.place_row)
        self._place_line.setContentsMargins(0, 0, 0, 0)
        self._place_line.setSpacing(8)
        self.place_group = QButtonGroup(self)
        self.place_buttons: dict[str, QPushButton] = {}
        self.drive_hint = QLabel("Plug in a USB drive: it appears here")
        self.drive_hint.setObjectName("ThumbHint")
        self.drive_hint.setWordWrap(True)
        self._build_place_buttons()
        self.layout_.addWidget(self.place_row)
        self._drive_timer = QTimer(self)
        self._drive_timer.setInterval(DRIVE_POLL_MS)
        self._drive_timer.timeout.connect(self.refresh_drives)
        if request.drives != "none":
            self._drive_timer.start()

        # -- where in the place ------------------------------------------------
        self.path_row = QWidget()
        self.path_row.setObjectName("DialogRow")
        path_line = QHBoxLayout(self.path_row)
        path_line.setContentsMargins(0, 0, 0, 0)
        self.up_button = QPushButton("‹  Up")
        self.up_button.setAccessibleName("Up one folder")
        self.up_button.clicked.connect(self.go_up)
        self.crumb = ElidedLabel()
        self.crumb.setObjectName("Crumb")
        path_line.addWidget(self.up_button)
        path_line.addWidget(self.crumb, 1)
        self.layout_.addWidget(self.path_row)

        # -- the entries -------------------------------------------------------
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setAccessibleName("Entries")
        self._list = QWidget()
        self._list.setObjectName("EntryList")
        self._list_layout = QVBoxLayout(self._list)
        self._list_layout.setContentsMargins(0, 0, 0, 0)
        self._list_layout.setSpacing(6)
        self.empty_label = QLabel()
        self.empty_label.setObjectName("ThumbHint")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self._list_layout.addWidget(self.empty_label)
        self._list_layout.addStretch(1)
        self.scroll_area.setWidget(self._list)
        enable_flick(self.scroll_area)
        self.layout_.addWidget(self.scroll_area, 1)
        # Takes the room the list leaves while the keyboard is up.
        self.layout_.addStretch(0)

        # -- the name (save modes) ----------------------------------------------
        self.name_edit: QLineEdit | None = None
        self.keyboard: OnScreenKeyboard | None = None
        self.error = QLabel()
        self.error.setObjectName("DialogError")
        self.error.setWordWrap(True)
        if request.name_prefix is not None:
            name_line = QHBoxLayout()
            label = QLabel("Name")
            self.name_edit = QLineEdit()
            self.name_edit.setMaxLength(64)
            self.name_edit.setAccessibleName("Name")
            self.name_edit.textChanged.connect(self._update)
            self.name_edit.returnPressed.connect(self._accept_if_ready)
            name_line.addWidget(label)
            name_line.addWidget(self.name_edit, 1)
            self.layout_.addLayout(name_line)
            self.keyboard = OnScreenKeyboard(self.name_edit, hideable=True)
            self.keyboard.done.connect(self._keyboard_done)
            self.keyboard.hide()
            self.keyboard.opening.connect(self._make_room)
            self.keyboard.closing.connect(self._give_room_back)
        self.layout_.addWidget(self.error)
        if self.keyboard is not None:
            self.layout_.addWidget(self.keyboard)

        # -- the buttons ---------------------------------------------------------
        self.ok_button = self.finish(request.action)
        self.ok_button.clicked.disconnect()
        self.ok_button.clicked.connect(self._accept_if_ready)
        self.show_place(self.place)

    # ------------------------------------------------------------ navigation
    def _offered(self) -> list[Place]:
        """The request's places with the drives mounted now, in the requested order."""
        fixed = list(self.request.places)
        computer = self.places.computer() if self.whole_computer else []
        if self.request.drives == "none":
            return [*fixed, *computer]
        drives = self.places.drives()
        if self.request.drives == "first":
            return [*drives, *fixed, *computer]
        return [*fixed, *drives, *computer]

    def _build_place_buttons(self) -> None:
        for button in self.place_buttons.values():
            self.place_group.removeButton(button)
            self._place_line.removeWidget(button)
            button.deleteLater()
        self.place_buttons = {}
        self._place_line.removeWidget(self.drive_hint)
        while self._place_line.count():  # the old stretch
            self._place_line.takeAt(0)
        for place in self.offered:
            button = QPushButton(place.label)
            button.setObjectName("PlaceButton")
            button.setCheckable(True)
            button.setAccessibleName(f"Place {place.label}")
            button.clicked.connect(self._on_place_clicked)
            button.setProperty("placeKey", place.key)
            self.place_group.addButton(button)
            self.place_buttons[place.key] = button
            self._place_line.addWidget(button)
        no_drives = self.request.drives != "none" and not any(p.removable for p in self.offered)
        self.drive_hint.setVisible(no_drives)
        self._place_line.addWidget(self.drive_hint, 1)
        self._place_line.addStretch(0 if no_drives else 1)

    @Slot()
    def refresh_drives(self) -> None:
        """A drive plugged in appears, one pulled out goes (and is left if it was open)."""
        offered = self._offered()
        if [p.key for p in offered] == [p.key for p in self.offered]:
            return
        self.offered = offered
        self._build_place_buttons()
        if self.place.key in self.place_buttons:
            self.place_buttons[self.place.key].setChecked(True)
        else:
            gone = self.place.label
            self.show_place(offered[0])
            self.show_error(f"{gone} was removed")

    @Slot()
    def _on_place_clicked(self) -> None:
        button = self.sender()
        key = button.property("placeKey") if button is not None else None
        for place in self.offered:
            if place.key == key:
                self.show_place(place)

    def show_place(self, place: Place) -> None:
        """List ``place``'s root."""
        self.place = place
        self.places.ensure(place)
        self.place_buttons[place.key].setChecked(True)
        self.show_folder(place.path)

    def show_folder(self, folder: Path) -> None:
        """List ``folder`` (inside the current place)."""
        try:
            entries = self.places.entries(self.place, self.request.show, folder)
        except PlaceError as error:
            self.error.setText(str(error))
            return
        self.folder = folder
        self.selected = None
        relative = folder.relative_to(self.place.path) if folder != self.place.path else None
        parts = [self.place.label, *(relative.parts if relative else ())]
        self.crumb.setText("  ›  ".join(parts))
        # Where it goes stays in view while the keyboard hides the list.
        self.heading.setText(f"{self.request.title}  ·  {parts[-1]}")
        self.up_button.setVisible(relative is not None)
        self.path_row.setVisible(relative is not None)
        self._fill(entries)
        self._names = {name.casefold() for name in self.places.names_in(folder)}
        if self.name_edit is not None:
            prefix = self.request.name_prefix or "item"
            self.name_edit.setText(propose_name(prefix, self._names))
        self._update()

    @Slot()
    def go_up(self) -> None:
        if self.folder != self.place.path:
            self.show_folder(self.folder.parent)

    def _fill(self, entries: list[Entry]) -> None:
        for row in self.rows:
            self._list_layout.removeWidget(row)
            row.hide()
            row.deleteLater()
        self.rows = []
        for position, entry in enumerate(entries):
            # Where a folder can be picked, "›" goes into it; elsewhere a tap does.
            can_enter = entry.kind == "folder" and self.request.show == "folders"
            row = EntryRow(entry, can_enter=can_enter)
            row.button.clicked.connect(self._on_row_clicked)
            if row.enter_button is not None:
                row.enter_button.clicked.connect(self._on_enter_clicked)
            self._list_layout.insertWidget(position, row)
            self.rows.append(row)
        self.empty_label.setVisible(not entries)
        self.empty_label.setText(
            {
                "models": "No saved models here yet",
                "projects": "No projects here yet",
            }.get(self.request.show, "No folders here")
        )
        self.scroll_area.verticalScrollBar().setValue(0)

    def _row_of(self, widget: QObject | None) -> EntryRow | None:
        for row in self.rows:
            if widget is row.button or widget is row.enter_button:
                return row
        return None

    @Slot()
    def _on_enter_clicked(self) -> None:
        row = self._row_of(self.sender())
        if row is not None:
            self.show_folder(row.entry.path)

    @Slot()
    def _on_row_clicked(self) -> None:
        row = self._row_of(self.sender())
        if row is not None:
            self.tap(row.entry)

    def tap(self, entry: Entry) -> None:
        """What a tap on ``entry``'s row does: select it, name after it, or go into it."""
        request = self.request
        if entry.kind == "folder" and request.show != "folders":
            self.show_folder(entry.path)
            return
        self.selected = entry
        for row in self.rows:
            row.button.setChecked(row.entry is entry)
        if self.name_edit is not None:
            self.name_edit.setText(entry.name)
        self._update()

    # ------------------------------------------------------------ the answer
    def _target(self) -> tuple[PlaceChoice | None, str]:
        """The choice the confirm button would make now, or (None, why not)."""
        request = self.request
        if self.name_edit is None:
            entry = self.selected
            if entry is None or entry.kind not in request.pick_kinds:
                what = {"project": "a project", "folder": "a folder"}
                wanted = " or ".join(what.get(kind, kind) for kind in request.pick_kinds)
                return None, f"Tap {wanted} to {request.action.lower()}"
            return PlaceChoice(self.place, entry.path, entry=entry), ""
        try:
            path = self.places.target(self.place, self.name_edit.text(), self.folder)
        except PlaceError as error:
            return None, str(error)
        if path.name.casefold() not in self._names:
            return PlaceChoice(self.place, path), ""
        existing = next((r.entry for r in self.rows if r.entry.name == path.name), None)
        if existing is not None and existing.kind in request.replace_kinds:
            return PlaceChoice(self.place, path, replace=True, entry=existing), ""
        return None, f"“{path.name}” is already here: choose another name"

    @Slot()
    def _update(self) -> None:
        choice, why = self._target()
        self.ok_button.setEnabled(choice is not None)
        replace = choice is not None and choice.replace
        self.ok_button.setText("Replace" if replace else self.request.action)
        self.ok_button.setObjectName("DangerButton" if replace else "PrimaryDialogButton")
        self.ok_button.style().unpolish(self.ok_button)
        self.ok_button.style().polish(self.ok_button)
        self.ok_button.setAccessibleName(self.ok_button.text())
        self.explainer.set_reason(self.ok_button, why)
        # Picking needs no error line until someone tries; a bad name says so at once.
        self.error.setText(why if self.name_edit is not None else "")
        self.error.setVisible(bool(self.error.text()))

    @Slot()
    def _accept_if_ready(self) -> None:
        choice, why = self._target()
        if choice is None:
            self.error.setText(why)
            self.error.setVisible(True)
            return
        self.choice = choice
        self.accept()

    @Slot()
    def _keyboard_done(self) -> None:
        if self.keyboard is not None:
            self.keyboard.close_keys()
        self._accept_if_ready()

    @Slot()
    def _make_room(self) -> None:
        # On a small screen the list makes way for the keys while typing; on a
        # big one it only gets shorter (keeping room for two rows).
        assert self.keyboard is not None
        keys = self.keyboard.sizeHint().height() + self.layout_.spacing()
        if self.isVisible() and self.scroll_area.height() - keys >= 2 * ROW_PX:
            return
        for widget in (self.place_row, self.path_row, self.scroll_area):
            widget.hide()

    @Slot()
    def _give_room_back(self) -> None:
        self.place_row.show()
        self.scroll_area.show()
        self.path_row.setVisible(self.folder != self.place.path)


def ask_place(
    parent: QWidget | None, places: Places, request: PlaceRequest, *, whole_computer: bool = False
) -> PlaceChoice | None:
    """The place and name the operator chose, or None when they cancelled."""
    dialog = PlacesDialog(parent, places, request, whole_computer=whole_computer)
    accepted = dialogs.run_modal(dialog)
    choice = dialog.choice
    dialog.deleteLater()
    return choice if accepted else None
