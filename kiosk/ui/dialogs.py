"""Every question the UI asks the operator, behind small ``ask_*`` functions.

Widgets call these through the module (``dialogs.ask_text(...)``), so a test can
``monkeypatch.setattr(dialogs, "ask_text", ...)`` and never see a modal loop.
The dialogs themselves are touch-first: big text field, big buttons, and for
numbers a stepper over sensible values instead of a tiny spin box.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
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

# PIN pad keys: comfortably above the 48 px touch-target minimum.
PIN_KEY_PX = 64


class _Dialog(QDialog):
    """A frameless-looking modal dialog with a title line and a button row."""

    def __init__(self, parent: QWidget | None, title: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setModal(True)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(24, 20, 24, 20)
        self.layout_.setSpacing(16)
        heading = QLabel(title)
        heading.setObjectName("DialogMessage")
        heading.setWordWrap(True)
        self.layout_.addWidget(heading)
        self.buttons = QHBoxLayout()
        self.buttons.setSpacing(12)

    def finish(self, ok_text: str, *, danger: bool = False, cancel_text: str = "Cancel") -> None:
        """Add the Cancel / OK row; OK is the default button."""
        self.buttons.addStretch(1)
        cancel = QPushButton(cancel_text)
        cancel.clicked.connect(self.reject)
        ok = QPushButton(ok_text)
        ok.setObjectName("DangerButton" if danger else "PrimaryDialogButton")
        ok.setDefault(True)
        ok.clicked.connect(self.accept)
        for button in (cancel, ok):
            button.setMinimumWidth(140)
            self.buttons.addWidget(button)
        self.layout_.addLayout(self.buttons)


class TextDialog(_Dialog):
    """One big text field, e.g. a class name."""

    def __init__(
        self, parent: QWidget | None, title: str, text: str, error: str | None = None
    ) -> None:
        super().__init__(parent, title)
        self.edit = QLineEdit(text)
        self.edit.setMaxLength(64)
        self.edit.selectAll()
        self.edit.setClearButtonEnabled(True)
        self.layout_.addWidget(self.edit)
        if error:
            message = QLabel(error)
            message.setObjectName("DialogError")
            message.setWordWrap(True)
            self.layout_.addWidget(message)
        self.finish("OK")
        self.setMinimumWidth(min(560, parent.width() - 40) if parent is not None else 480)


class ConfirmDialog(_Dialog):
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

    def __init__(self, choices: Sequence[float], value: float, fmt: str) -> None:
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
        self.label = QLabel()
        self.label.setObjectName("SettingValue")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
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


class SettingsDialog(_Dialog):
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
        for row, (field, label, choices, fmt) in enumerate(_SETTINGS):
            if not hasattr(config, field):
                continue
            current = getattr(config, field)
            stepper = _Stepper((*choices, getattr(default, field)), current, fmt)
            grid.addWidget(QLabel(label), row, 0)
            grid.addWidget(stepper, row, 1)
            self.steppers[field] = stepper
        self.layout_.addLayout(grid)
        reset = QPushButton("Defaults")
        reset.clicked.connect(self.reset)
        self.buttons.addWidget(reset)
        self.finish("Use these")
        self.config = config

    def reset(self) -> None:
        for field, stepper in self.steppers.items():
            stepper.set_value(getattr(self.default, field))

    def result_config(self) -> TrainingConfig:
        values = {}
        for field, stepper in self.steppers.items():
            value = stepper.value()
            values[field] = int(value) if field in ("num_iter", "batch_size") else float(value)
        return dataclasses.replace(self.config, **values)


class PinPadDialog(_Dialog):
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
        if error:
            message = QLabel(error)
            message.setObjectName("DialogError")
            message.setWordWrap(True)
            self.layout_.addWidget(message)
        grid = QGridLayout()
        grid.setSpacing(10)
        self.keys: dict[str, QPushButton] = {}
        labels = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "OK"]
        for position, label in enumerate(labels):
            button = QPushButton(label)
            button.setMinimumSize(PIN_KEY_PX + 24, PIN_KEY_PX)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
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


def ask_save_path(parent: QWidget | None, suggestion: Path) -> Path | None:
    """Where to write the model (a ``.tflite`` path), or ``None`` when cancelled."""
    dialog = QFileDialog(parent, "Save model", str(suggestion), "TFLite model (*.tflite)")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.selectFile(str(suggestion))
    dialog.resize(760, 440)  # fits an 800x480 panel
    accepted = run_modal(dialog)
    chosen = dialog.selectedFiles()
    dialog.deleteLater()
    if not accepted or not chosen:
        return None
    path = Path(chosen[0])
    return path if path.suffix == ".tflite" else path.with_suffix(".tflite")


def ask_folder(
    parent: QWidget | None, title: str, start: Path, *, existing: bool = True
) -> Path | None:
    """A folder the operator chose, or ``None`` when cancelled.

    ``existing`` False lets them name a new folder (Save project, Export).
    """
    dialog = QFileDialog(parent, title, str(start))
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    if not existing:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setLabelText(QFileDialog.DialogLabel.Accept, "Choose")
    dialog.resize(760, 440)  # fits an 800x480 panel
    accepted = run_modal(dialog)
    chosen = dialog.selectedFiles()
    dialog.deleteLater()
    return Path(chosen[0]) if accepted and chosen else None


def inform(parent: QWidget | None, title: str, text: str) -> None:
    """A message the operator has to acknowledge."""
    dialog = _Dialog(parent, title)
    body = QLabel(text)
    body.setWordWrap(True)
    dialog.layout_.insertWidget(1, body)
    dialog.buttons.addStretch(1)
    ok = QPushButton("OK")
    ok.setObjectName("PrimaryDialogButton")
    ok.setMinimumWidth(140)
    ok.clicked.connect(dialog.accept)
    dialog.buttons.addWidget(ok)
    dialog.layout_.addLayout(dialog.buttons)
    run_modal(dialog)
    dialog.deleteLater()
