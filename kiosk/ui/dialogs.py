"""Every question the UI asks the operator, behind small ``ask_*`` functions.

Widgets call these through the module (``dialogs.ask_text(...)``), so a test can
``monkeypatch.setattr(dialogs, "ask_text", ...)`` and never see a modal loop.
The dialogs themselves are touch-first: big text field with the on-screen
keyboard under it, big buttons, and for numbers a stepper over sensible values
instead of a tiny spin box. Every dialog fits inside the window that opened it
(an 800x480 panel included) and every control has an accessible name.

Files and folders are chosen in the places browser (``ask_place``, see
``kiosk.ui.places_view``), never in a stock file dialog; outside kiosk mode it
also offers the home folder and the whole file system.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kiosk.learn import TrainingConfig
from kiosk.pin import MAX_DIGITS as PIN_MAX_DIGITS
from kiosk.ui.keyboard import OnScreenKeyboard
from kiosk.ui.style import render_stylesheet
from kiosk.ui.touch import DisabledTapExplainer

if TYPE_CHECKING:
    from kiosk.places import Places
    from kiosk.ui.places_view import PlaceChoice, PlaceRequest

# PIN pad keys: comfortably above the 48 px touch-target minimum.
PIN_KEY_PX = 56
# Room left around a dialog inside its window.
FIT_MARGIN = 8


class TouchDialog(QDialog):
    """A modal dialog with a title line, an error line and a button row, kept inside its window.

    ``fill`` makes it cover most of the window (the places browser); other
    dialogs keep their own size, never more than the window, centred on it.
    """

    def __init__(self, parent: QWidget | None, title: str, *, fill: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setModal(True)
        self.fill = fill
        if parent is None:
            # No window to inherit the look from: bring it along (sizes at scale 1).
            self.setStyleSheet(render_stylesheet(1.0))
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(20, 14, 20, 14)
        self.layout_.setSpacing(10)
        heading = QLabel(title)
        heading.setObjectName("DialogMessage")
        heading.setWordWrap(True)
        self.heading = heading
        self.layout_.addWidget(heading)
        self.error = QLabel()
        self.error.setObjectName("DialogError")
        self.error.setWordWrap(True)
        self.error.hide()
        self.buttons = QHBoxLayout()
        self.buttons.setSpacing(12)
        # A tap on a disabled button says why, in the error line.
        self.explainer = DisabledTapExplainer(self)
        self.explainer.explain.connect(self.show_error)

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def finish(
        self, ok_text: str, *, danger: bool = False, cancel_text: str = "Cancel"
    ) -> QPushButton:
        """Add the error line and the Cancel / OK row; OK is the default button (returned)."""
        if self.error.parentWidget() is None:
            self.layout_.addWidget(self.error)
        self.buttons.addStretch(1)
        cancel = QPushButton(cancel_text)
        cancel.setAccessibleName(cancel_text)
        cancel.clicked.connect(self.reject)
        ok = QPushButton(ok_text)
        ok.setAccessibleName(ok_text)
        ok.setObjectName("DangerButton" if danger else "PrimaryDialogButton")
        ok.setDefault(True)
        ok.clicked.connect(self.accept)
        self.explainer.watch(ok)
        for button in (cancel, ok):
            button.setMinimumWidth(140)
            self.buttons.addWidget(button)
        self.cancel_button, self.ok_button = cancel, ok
        self.layout_.addLayout(self.buttons)
        return ok

    # ----------------------------------------------------------------- fitting
    def area(self) -> QRect:
        """Where the dialog may be: its window's frame (or the screen), less a margin."""
        parent = self.parentWidget()
        if parent is not None:
            window = parent.window()
            rect = QRect(window.mapToGlobal(window.rect().topLeft()), window.size())
        else:
            rect = self.screen().availableGeometry()
        return rect.adjusted(FIT_MARGIN, FIT_MARGIN, -FIT_MARGIN, -FIT_MARGIN)

    def fit(self) -> None:
        """Size and place the dialog inside ``area()``."""
        area = self.area()
        self.setMaximumSize(area.size())
        if self.fill:
            # The whole of a small panel; on a big screen, a big dialog, not a wall.
            width = min(area.width(), max(760, round(area.width() * 0.6)))
            height = min(area.height(), max(460, round(area.height() * 0.72)))
            size = self.size().expandedTo(self.minimumSizeHint())
            size.setWidth(width)
            size.setHeight(height)
        else:
            self.adjustSize()
            size = self.size().boundedTo(area.size())
        self.resize(size)
        self.move(
            area.left() + (area.width() - size.width()) // 2,
            area.top() + (area.height() - size.height()) // 2,
        )

    def showEvent(self, event: QShowEvent) -> None:
        self.fit()
        super().showEvent(event)


class TextDialog(TouchDialog):
    """One big text field, e.g. a class name."""

    def __init__(
        self, parent: QWidget | None, title: str, text: str, error: str | None = None
    ) -> None:
        super().__init__(parent, title)
        self.edit = QLineEdit(text)
        self.edit.setMaxLength(64)
        self.edit.selectAll()
        self.edit.setAccessibleName("Name")
        self.layout_.addWidget(self.edit)
        self.show_error(error or "")
        self.layout_.addWidget(self.error)
        # A touch screen has no other keyboard: this one is always there.
        self.keyboard = OnScreenKeyboard(self.edit)
        self.keyboard.done.connect(self.accept)
        self.layout_.addWidget(self.keyboard)
        self.finish("OK")
        self.layout_.setSpacing(8)
        width = parent.window().width() if parent is not None else 800
        self.setMinimumWidth(max(520, min(760, width - 2 * FIT_MARGIN)))


class ConfirmDialog(TouchDialog):
    """A yes/no question with a clearly labelled (possibly red) confirm button."""

    def __init__(
        self, parent: QWidget | None, title: str, text: str, ok_text: str, danger: bool
    ) -> None:
        super().__init__(parent, title)
        body = QLabel(text)
        body.setWordWrap(True)
        self.layout_.addWidget(body)
        self.finish(ok_text, danger=danger)


class _Stepper(QWidget):
    """``[-]  value  [+]`` over a fixed list of choices: no keyboard needed."""

    def __init__(self, choices: Sequence[float], value: float, fmt: str, name: str = "") -> None:
        super().__init__()
        self.choices = sorted(set(choices) | {value})
        self.index = self.choices.index(value)
        self.fmt = fmt
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.minus = QPushButton("−")
        self.plus = QPushButton("+")
        for button in (self.minus, self.plus):
            button.setMinimumWidth(64)
            button.setAutoRepeat(True)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.label = QLabel()
        self.label.setObjectName("SettingValue")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.minus.setAccessibleName(f"Less {name.lower()}".strip())
        self.plus.setAccessibleName(f"More {name.lower()}".strip())
        self.label.setAccessibleName(name)
        row.addWidget(self.minus)
        row.addWidget(self.label, 1)
        row.addWidget(self.plus)
        self.minus.clicked.connect(self.step_down)
        self.plus.clicked.connect(self.step_up)
        self._show()

    def value(self) -> float:
        return self.choices[self.index]

    def set_value(self, value: float) -> None:
        if value not in self.choices:
            self.choices = sorted({*self.choices, value})
        self.index = self.choices.index(value)
        self._show()

    def step_down(self) -> None:
        self.index = max(0, self.index - 1)
        self._show()

    def step_up(self) -> None:
        self.index = min(len(self.choices) - 1, self.index + 1)
        self._show()

    def _show(self) -> None:
        self.label.setText(format(self.value(), self.fmt))
        self.minus.setEnabled(self.index > 0)
        self.plus.setEnabled(self.index < len(self.choices) - 1)


# Choices offered for each setting; the current and default values are always added.
_SETTINGS: tuple[tuple[str, str, tuple[float, ...], str], ...] = (
    ("num_iter", "Iterations", (20, 40, 60, 100, 200, 500, 1000, 2000), "d"),
    ("learning_rate", "Learning rate", (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5), "g"),
    ("batch_size", "Batch size", (64, 256, 1024, 4096, 16384), "d"),
    ("reg", "Regularization", (0.0, 1e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1.0), "g"),
)


def _setting_values(config: TrainingConfig) -> dict[str, float]:
    """The values of ``_SETTINGS``' fields in ``config``."""
    return {
        "num_iter": config.num_iter,
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "reg": config.reg,
    }


class SettingsDialog(TouchDialog):
    """Advanced training settings: optional, the defaults converge on their own."""

    def __init__(
        self, parent: QWidget | None, config: TrainingConfig, default: TrainingConfig
    ) -> None:
        super().__init__(parent, "Training settings")
        self.default = default
        hint = QLabel("The defaults suit most projects: change them only if training struggles.")
        hint.setWordWrap(True)
        hint.setObjectName("ThumbHint")
        self.layout_.addWidget(hint)
        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(10)
        self.steppers: dict[str, _Stepper] = {}
        currents, defaults = _setting_values(config), _setting_values(default)
        for row, (field, label, choices, fmt) in enumerate(_SETTINGS):
            stepper = _Stepper((*choices, defaults[field]), currents[field], fmt, label)
            grid.addWidget(QLabel(label), row, 0)
            grid.addWidget(stepper, row, 1)
            self.steppers[field] = stepper
        self.layout_.addLayout(grid)
        reset = QPushButton("Defaults")
        reset.setAccessibleName("Default settings")
        reset.clicked.connect(self.reset)
        self.buttons.addWidget(reset)
        self.finish("Use these")
        self.config = config

    def reset(self) -> None:
        defaults = _setting_values(self.default)
        for field, stepper in self.steppers.items():
            stepper.set_value(defaults[field])

    def result_config(self) -> TrainingConfig:
        value = {field: stepper.value() for field, stepper in self.steppers.items()}
        return dataclasses.replace(
            self.config,
            num_iter=int(value["num_iter"]),
            learning_rate=float(value["learning_rate"]),
            batch_size=int(value["batch_size"]),
            reg=float(value["reg"]),
        )


class PinPadDialog(TouchDialog):
    """A phone-style PIN pad: 0-9, delete, OK, with digits shown as dots.

    The buttons are finger-sized (``PIN_KEY_PX`` or more); a keyboard's digits,
    Backspace and Enter work too.
    """

    def __init__(self, parent: QWidget | None, title: str, error: str | None = None) -> None:
        super().__init__(parent, title)
        self.display = QLineEdit()
        self.display.setObjectName("PinDisplay")
        self.display.setEchoMode(QLineEdit.EchoMode.Password)
        self.display.setReadOnly(True)
        self.display.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.display.setMaxLength(PIN_MAX_DIGITS)
        self.display.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.layout_.addWidget(self.display)
        self.show_error(error or "")
        self.layout_.addWidget(self.error)
        grid = QGridLayout()
        grid.setSpacing(8)
        self.keys: dict[str, QPushButton] = {}
        labels = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "OK"]
        for position, label in enumerate(labels):
            button = QPushButton(label)
            button.setMinimumSize(PIN_KEY_PX + 44, PIN_KEY_PX)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setAccessibleName(
                {"⌫": "Delete last digit", "OK": "OK"}.get(label, f"Digit {label}")
            )
            if label.isdigit():
                button.clicked.connect(functools.partial(self.press, label))
            self.keys[label] = button
            grid.addWidget(button, position // 3, position % 3)
        self.keys["⌫"].clicked.connect(self.backspace)
        self.keys["OK"].setObjectName("PrimaryDialogButton")
        self.keys["OK"].clicked.connect(self.accept)
        self.layout_.addLayout(grid)
        self.buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.setAccessibleName("Cancel")
        cancel.setMinimumSize(140, PIN_KEY_PX)
        cancel.clicked.connect(self.reject)
        self.buttons.addWidget(cancel)
        self.layout_.addLayout(self.buttons)

    def pin(self) -> str:
        return self.display.text()

    def press(self, digit: str) -> None:
        if len(self.display.text()) < PIN_MAX_DIGITS:
            self.display.setText(self.display.text() + digit)

    def backspace(self) -> None:
        self.display.setText(self.display.text()[:-1])

    def keyPressEvent(self, event: QKeyEvent) -> None:
        text = event.text()
        if text.isdigit() and text.isascii():
            self.press(text)
        elif event.key() == Qt.Key.Key_Backspace:
            self.backspace()
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.accept()
        else:
            super().keyPressEvent(event)


def run_modal(dialog: QDialog) -> bool:
    """Show ``dialog`` modally; whether it was accepted. Every modal loop runs here."""
    return dialog.exec() == QDialog.DialogCode.Accepted


def ask_text(
    parent: QWidget | None, title: str, text: str = "", error: str | None = None
) -> str | None:
    """The text the operator typed, or ``None`` when they cancelled."""
    dialog = TextDialog(parent, title, text, error)
    accepted = run_modal(dialog)
    value = dialog.edit.text()
    dialog.deleteLater()
    return value if accepted else None


def ask_confirm(
    parent: QWidget | None, title: str, text: str, ok_text: str = "OK", danger: bool = False
) -> bool:
    """Whether the operator confirmed."""
    dialog = ConfirmDialog(parent, title, text, ok_text, danger)
    accepted = run_modal(dialog)
    dialog.deleteLater()
    return accepted


def ask_settings(
    parent: QWidget | None, config: TrainingConfig, default: TrainingConfig
) -> TrainingConfig | None:
    """New training settings, or ``None`` when cancelled."""
    dialog = SettingsDialog(parent, config, default)
    accepted = run_modal(dialog)
    result = dialog.result_config()
    dialog.deleteLater()
    return result if accepted else None


def ask_pin(parent: QWidget | None, title: str, error: str | None = None) -> str | None:
    """The PIN typed on the pad, or ``None`` when cancelled."""
    dialog = PinPadDialog(parent, title, error)
    accepted = run_modal(dialog)
    pin = dialog.pin()
    dialog.deleteLater()
    return pin if accepted else None


def ask_place(
    parent: QWidget | None, places: Places, request: PlaceRequest, *, whole_computer: bool = False
) -> PlaceChoice | None:
    """A model, project or folder in one of the named places, or None when cancelled.

    ``whole_computer`` adds the Home and Computer places: never in kiosk mode.
    """
    from kiosk.ui.places_view import ask_place as ask

    return ask(parent, places, request, whole_computer=whole_computer)


def inform(parent: QWidget | None, title: str, text: str) -> None:
    """A message the operator has to acknowledge."""
    dialog = TouchDialog(parent, title)
    body = QLabel(text)
    body.setWordWrap(True)
    dialog.layout_.insertWidget(1, body)
    dialog.buttons.addStretch(1)
    ok = QPushButton("OK")
    ok.setAccessibleName("OK")
    ok.setObjectName("PrimaryDialogButton")
    ok.setMinimumWidth(140)
    ok.clicked.connect(dialog.accept)
    dialog.buttons.addWidget(ok)
    dialog.layout_.addLayout(dialog.buttons)
    run_modal(dialog)
    dialog.deleteLater()
