"""An on-screen keyboard for the few text fields the kiosk has (class and file names).

A plain widget placed under its text field, not Qt's virtual keyboard input
method. Measured with PySide6 6.11.3 on x86_64 under Xvfb at 800x480: that one's
libraries come only with PySide6-Addons (a 175 MB wheel; PySide6 grows from 234
to 651 MiB installed, for 0.7 MB of keyboard libraries), its QML components
also need the PulseAudio client library (``libpulse0`` and 9 more apt packages,
for key sounds), it draws with Qt Quick, and a window with one text field and
the keyboard shown takes 173 MiB resident instead of 54 MiB. This keyboard adds
no dependency and about 8 MiB: a grid of ordinary buttons, styled by the
kiosk's stylesheet, every key at least 48 px (``TOUCH``), never taking the
focus from the field.

Pages: letters (one-shot shift), and digits with the punctuation names use.
A physical keyboard keeps working alongside.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QGridLayout,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from kiosk.ui.style import TOUCH

_LETTERS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_SYMBOLS = ("1234567890", "-_.,()&+'!", "#@:;~=")
# Keys that are not characters: what is shown and what a screen reader says.
SHIFT, BACKSPACE, PAGE, SPACE, DONE, HIDE = "⇧", "⌫", "page", "space", "Done", "hide"
_NAMES = {
    SHIFT: "Shift",
    BACKSPACE: "Backspace",
    SPACE: "Space",
    DONE: "Done",
    HIDE: "Hide keyboard",
}
# Columns of the grid: ten character keys a row, each taking two half-columns,
# so the second row can be offset by half a key as on a real keyboard.
_COLUMNS = 20


class OnScreenKeyboard(QWidget):
    """Types into a ``QLineEdit``; appears when the field is tapped or focused.

    Signals:
        done: the Done key (a dialog accepts on it).
        opening: about to appear (a crowded dialog makes room first).
        closing: about to go (the Hide key).
    """

    done = Signal()
    opening = Signal()
    closing = Signal()

    def __init__(
        self,
        target: QLineEdit | None = None,
        parent: QWidget | None = None,
        *,
        hideable: bool = False,
        key_px: int = TOUCH,
    ) -> None:
        """
        Args:
            target: the field to type into (``attach`` changes it).
            hideable: a key that hides the keyboard (it comes back when the
                field is tapped); off for dialogs that are only a text field.
            key_px: the key height (at least the 48 px touch minimum).
        """
        super().__init__(parent)
        self.setObjectName("OnScreenKeyboard")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setAccessibleName("On-screen keyboard")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.target: QLineEdit | None = None
        self.shift = False
        self.symbols = False
        self.keys: dict[str, QPushButton] = {}
        self._char_keys: list[QPushButton] = []
        self._key_px = max(TOUCH, key_px)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        self._grid = grid
        for row, offset in ((0, 0), (1, 1), (2, 3)):
            for column in range(len(_LETTERS[row])):
                key = self._key("", self._type_key)
                self._char_keys.append(key)
                grid.addWidget(key, row, offset + 2 * column, 1, 2)
        self._rows = (10, 9, 7)
        self.keys[SHIFT] = self._key(SHIFT, self._toggle_shift)
        self.keys[BACKSPACE] = self._key(BACKSPACE, self._backspace)
        self.keys[BACKSPACE].setAutoRepeat(True)
        grid.addWidget(self.keys[SHIFT], 2, 0, 1, 3)
        grid.addWidget(self.keys[BACKSPACE], 2, 17, 1, 3)
        self.keys[PAGE] = self._key("123", self._toggle_page)
        self.keys[SPACE] = self._key("space", self._space)
        self.keys[DONE] = self._key(DONE, self.done)
        self.keys[DONE].setObjectName("KeyDone")
        grid.addWidget(self.keys[PAGE], 3, 0, 1, 3)
        if hideable:
            self.keys[HIDE] = self._key("⌨ ▾", self.close_keys)
            grid.addWidget(self.keys[HIDE], 3, 3, 1, 3)
            grid.addWidget(self.keys[SPACE], 3, 6, 1, 10)
        else:
            grid.addWidget(self.keys[SPACE], 3, 3, 1, 13)
        grid.addWidget(self.keys[DONE], 3, 16, 1, 4)
        for column in range(_COLUMNS):
            grid.setColumnStretch(column, 1)
        for name, key in self.keys.items():
            key.setAccessibleName(_NAMES.get(name, key.accessibleName()))
        self._relabel()
        if target is not None:
            self.attach(target)

    def _key(self, text: str, slot) -> QPushButton:
        key = QPushButton(text)
        key.setObjectName("Key")
        # The field keeps the focus (and its cursor) whatever is tapped here.
        key.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        key.setMinimumSize(TOUCH, self._key_px)
        key.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        key.clicked.connect(slot)
        return key

    # ---------------------------------------------------------------- target
    def attach(self, target: QLineEdit) -> None:
        """Type into ``target`` from now on; show the keyboard when it is tapped or focused."""
        if self.target is not None:
            self.target.removeEventFilter(self)
        self.target = target
        target.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.target and event.type() in (
            QEvent.Type.FocusIn,
            QEvent.Type.MouseButtonPress,
            QEvent.Type.TouchBegin,
        ):
            self.open_keys()
        return False

    @Slot()
    def open_keys(self) -> None:
        """Show the keyboard (after ``opening``, so room can be made for it)."""
        if self.isHidden():
            self.opening.emit()
            self.show()

    @Slot()
    def close_keys(self) -> None:
        """Hide the keyboard; it comes back when the field is tapped."""
        if not self.isHidden():
            self.hide()
            self.closing.emit()

    # ----------------------------------------------------------------- keys
    @property
    def page(self) -> str:
        """ "letters" or "symbols"."""
        return "symbols" if self.symbols else "letters"

    def type_text(self, text: str) -> None:
        """Press the keys that type ``text`` (letters, digits, space and the symbol keys)."""
        for char in text:
            self._press_char(char)

    def _press_char(self, char: str) -> None:
        if char == " ":
            self.keys[SPACE].click()
            return
        wanted_symbols = char.lower() not in "".join(_LETTERS)
        if wanted_symbols != self.symbols:
            self.keys[PAGE].click()
        if not wanted_symbols and char.isupper() != self.shift:
            self.keys[SHIFT].click()
        for key in self._char_keys:
            if not key.isHidden() and key.property("char") == char:
                key.click()
                return
        raise ValueError(f"no key types {char!r}")

    @Slot()
    def _type_key(self) -> None:
        key = self.sender()
        if isinstance(key, QPushButton):
            self._insert(str(key.property("char")))
            if self.shift and not self.symbols:
                self.shift = False  # one-shot, as on a phone
                self._relabel()

    def _insert(self, text: str) -> None:
        if self.target is not None and not self.target.isReadOnly():
            self.target.insert(text)

    @Slot()
    def _space(self) -> None:
        self._insert(" ")

    @Slot()
    def _backspace(self) -> None:
        if self.target is not None and not self.target.isReadOnly():
            self.target.backspace()

    @Slot()
    def _toggle_shift(self) -> None:
        self.shift = not self.shift
        self._relabel()

    @Slot()
    def _toggle_page(self) -> None:
        self.symbols = not self.symbols
        self.shift = False
        self._relabel()

    def _relabel(self) -> None:
        rows = _SYMBOLS if self.symbols else _LETTERS
        keys = iter(self._char_keys)
        for row, count in zip(rows, self._rows, strict=True):
            for position in range(count):
                key = next(keys)
                if position < len(row):
                    char = row[position].upper() if self.shift else row[position]
                    key.setProperty("char", char)
                    # A button shows "&" as a shortcut marker unless it is doubled.
                    key.setText(char.replace("&", "&&"))
                    key.setAccessibleName(f"Type {char}")
                    key.setVisible(True)
                else:
                    key.setProperty("char", "")
                    key.setText("")
                    key.setVisible(False)
        self.keys[PAGE].setText("ABC" if self.symbols else "123")
        self.keys[PAGE].setAccessibleName("Letters" if self.symbols else "Digits and symbols")
        self.keys[SHIFT].setEnabled(not self.symbols)
        self.keys[SHIFT].setProperty("on", self.shift)
        self.keys[SHIFT].style().unpolish(self.keys[SHIFT])
        self.keys[SHIFT].style().polish(self.keys[SHIFT])
