"""The operator lock: guarded actions need the PIN in kiosk mode; visitors never see it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from kiosk.learn import DEFAULT_TRAINING
from kiosk.pin import hash_pin
from kiosk.ui import dialogs
from kiosk.ui.dialogs import PIN_KEY_PX, PinPadDialog
from kiosk.ui.lock import OperatorLock

PIN = "1234"
PIN_HASH = hash_pin(PIN)
FAST = dataclasses.replace(DEFAULT_TRAINING, num_iter=10)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class PinPad:
    """Stands in for ``dialogs.ask_pin``: answers from a list, records each call."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, parent, title: str, error: str | None = None) -> str | None:
        self.calls.append((title, error))
        return self.answers.pop(0) if self.answers else None


def fill(controller, class_index: int, n: int = 3) -> None:
    """Put ``n`` synthetic samples into a class (no camera needed)."""
    store = controller.session.store
    dim = controller.session.extractor.feature_dim
    rng = np.random.default_rng(class_index)
    for _ in range(n):
        embedding = rng.normal(class_index * 5.0, 1.0, dim).astype(np.float32)
        store.add_sample(class_index, embedding, np.zeros((8, 8, 3), np.uint8))


@pytest.fixture
def locked(make_kiosk, monkeypatch):
    """A kiosk-mode kiosk with a PIN, a fake clock, and confirmations answered yes."""
    kiosk = make_kiosk(fullscreen=True, pin_hash=PIN_HASH, config=FAST)
    clock = Clock()
    kiosk.window.lock.clock = clock
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *args, **kwargs: True)
    return kiosk, clock


def test_guarded_actions_refused_without_the_pin(locked, monkeypatch):
    kiosk, _ = locked
    window, controller = kiosk.window, kiosk.controller
    pad = PinPad()  # every PIN request is cancelled
    monkeypatch.setattr(dialogs, "ask_pin", pad)
    monkeypatch.setattr(dialogs, "ask_settings", lambda *a: pytest.fail("settings opened"))
    fill(controller, 0)

    window.classes.delete(1)
    window.classes.clear(0)
    window.edit_settings()
    window.quit()
    assert controller.session.store.class_names == ["Class 1", "Class 2"]
    assert controller.session.store.counts() == [3, 0]
    assert window.isVisible() and not window._quitting
    titles = [title for title, _ in pad.calls]
    assert titles == [
        "Operator PIN to delete a class",
        "Operator PIN to clear a class",
        "Operator PIN to change the settings",
        "Operator PIN to quit the kiosk",
    ]


@pytest.mark.slow
def test_guarded_actions_allowed_with_the_pin_until_idle(locked, monkeypatch, qtbot):
    kiosk, clock = locked
    window, controller = kiosk.window, kiosk.controller
    pad = PinPad(PIN)
    monkeypatch.setattr(dialogs, "ask_pin", pad)
    fill(controller, 0)
    fill(controller, 1)
    said: list[str] = []
    window.lock.message.connect(lambda text, level: said.append(text))

    window.classes.clear(0)
    assert controller.session.store.counts() == [0, 3]
    assert len(pad.calls) == 1 and window.lock.is_unlocked()
    assert said == ["Operator mode: locks again after 60 s without a touch"]

    # Still unlocked a little later: no second question.
    clock.now += 30
    window.classes.delete(1)
    assert controller.session.store.class_names == ["Class 1"]
    assert len(pad.calls) == 1

    # A touch restarts the idle time...
    clock.now += 50
    qtbot.mouseClick(window.undo_button, Qt.MouseButton.LeftButton)
    clock.now += 50
    assert window.lock.is_unlocked()
    # ...and a minute without one locks again, also without anyone asking.
    clock.now += 61
    with qtbot.waitSignal(window.lock.lockedChanged, timeout=3000) as relocked:
        pass
    assert relocked.args == [True] and not window.lock.is_unlocked()
    window.edit_settings()  # cancelled at the PIN pad
    assert len(pad.calls) == 2


def test_wrong_pins_then_lockout(locked, monkeypatch):
    kiosk, clock = locked
    window, controller = kiosk.window, kiosk.controller
    pad = PinPad("0000", "1111", "2222", "3333")
    monkeypatch.setattr(dialogs, "ask_pin", pad)

    window.classes.delete(0)
    assert controller.class_count() == 2
    # Asked again after each wrong PIN, with what went wrong, until the lockout.
    assert [error for _, error in pad.calls] == [
        None,
        "Wrong PIN: 2 tries left",
        "Wrong PIN: 1 try left",
    ]
    assert window.status.text().startswith("Too many wrong PINs: try again in 30 s")

    # During the lockout the pad does not even open, right PIN or not.
    pad.answers = [PIN]
    clock.now += 20
    window.classes.delete(0)
    assert len(pad.calls) == 3 and controller.class_count() == 2
    assert "try again in 10 s" in window.status.text()

    clock.now += 11
    window.classes.delete(0)
    assert controller.class_count() == 1
    assert len(pad.calls) == 4


@pytest.mark.slow
def test_visitors_capture_train_and_save_without_a_pin(locked, monkeypatch, qtbot):
    kiosk, _ = locked
    window, controller = kiosk.window, kiosk.controller
    monkeypatch.setattr(dialogs, "ask_pin", lambda *a: pytest.fail("visitor asked for a PIN"))
    qtbot.waitUntil(lambda: window.video.has_frame, timeout=5000)
    for card in window.classes.cards:
        with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
            qtbot.mouseClick(card.capture_button, Qt.MouseButton.LeftButton)
    fill(controller, 0)
    fill(controller, 1)
    qtbot.mouseClick(window.undo_button, Qt.MouseButton.LeftButton)
    assert sum(controller.session.store.counts()) == 7

    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000) as finished:
        qtbot.mouseClick(window.train_button, Qt.MouseButton.LeftButton)
    assert finished.args[0] is not None
    with qtbot.waitSignal(controller.saveFinished, timeout=60_000):
        qtbot.mouseClick(window.save_button, Qt.MouseButton.LeftButton)
    assert controller.output.is_file()

    # Without a configured output the visitor saves into the models folder, no PIN.
    controller.output = None
    saved_before = controller.last_save
    monkeypatch.setattr(dialogs, "ask_place", accept_proposed_name)
    with qtbot.waitSignal(controller.saveFinished, timeout=60_000):
        window.save()
    assert controller.last_save is not saved_before
    assert window.places.models.path in Path(controller.last_save.model_path).parents


def accept_proposed_name(parent, places, request, whole_computer=False):
    """Stands in for ``dialogs.ask_place``: the real browser, its proposal accepted as is."""
    from kiosk.ui.places_view import PlacesDialog

    assert not whole_computer, "Home and Computer offered in kiosk mode"
    dialog = PlacesDialog(parent, places, request, whole_computer=whole_computer)
    dialog.ok_button.click()
    assert dialog.choice is not None, dialog.error.text()
    return dialog.choice


def test_no_lock_outside_kiosk_mode_or_without_pin(make_kiosk, monkeypatch):
    monkeypatch.setattr(dialogs, "ask_pin", lambda *a: pytest.fail("asked for a PIN"))
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *args, **kwargs: True)
    windowed = make_kiosk(fullscreen=False, pin_hash=PIN_HASH, size=None)
    windowed.window.classes.delete(0)
    assert windowed.controller.class_count() == 1
    no_pin = make_kiosk(fullscreen=True, size=None)
    no_pin.window.classes.delete(0)
    assert no_pin.controller.class_count() == 1


def test_signal_quit_skips_the_pin(locked, monkeypatch):
    kiosk, _ = locked
    monkeypatch.setattr(dialogs, "ask_pin", lambda *a: pytest.fail("asked for a PIN"))
    kiosk.window.quit(force=True)
    assert not kiosk.window.isVisible()


def test_ctrl_q_with_the_pin_quits(locked, monkeypatch, qtbot):
    kiosk, _ = locked
    window = kiosk.window
    pad = PinPad(PIN)
    monkeypatch.setattr(dialogs, "ask_pin", pad)
    # Emitted directly: windows of earlier tests may still hold the same
    # application-wide shortcut, which makes a synthetic key press ambiguous.
    (quit_key,) = [s for s in window._shortcuts if s.key().toString() == "Ctrl+Q"]
    quit_key.activated.emit()
    qtbot.waitUntil(lambda: not window.isVisible())
    assert [title for title, _ in pad.calls] == ["Operator PIN to quit the kiosk"]


def test_pin_pad_is_touch_sized_and_types_digits(qtbot):
    dialog = PinPadDialog(None, "Operator PIN", "Wrong PIN: 2 tries left")
    qtbot.addWidget(dialog)
    assert set(dialog.keys) == {*"0123456789", "⌫", "OK"}
    for button in dialog.keys.values():
        hint = button.minimumSize()
        assert hint.width() >= 48 and hint.height() >= PIN_KEY_PX >= 48
    for key in "9071":
        qtbot.mouseClick(dialog.keys[key], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.keys["⌫"], Qt.MouseButton.LeftButton)
    qtbot.keyClicks(dialog, "35")
    assert dialog.pin() == "90735"
    assert dialog.display.echoMode() == dialog.display.EchoMode.Password
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        qtbot.mouseClick(dialog.keys["OK"], Qt.MouseButton.LeftButton)


def test_lock_without_a_window():
    lock = OperatorLock(None)
    assert not lock.enabled and lock.is_unlocked()
    assert lock.request(None, "anything")
