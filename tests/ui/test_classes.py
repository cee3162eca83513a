"""Classes: add, rename, delete, clear, undo; tap, hold and number keys capture."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from kiosk.ui import dialogs
from kiosk.ui.controller import MAX_CLASSES, AppState

from .conftest import visible_buttons, wait_for_new_frames


def _counts(kiosk) -> tuple[int, ...]:
    return kiosk.controller.snapshot().counts


def test_starts_with_two_classes_and_adds_ten_more(make_kiosk, qtbot):
    kiosk = make_kiosk(size=(800, 480))
    panel = kiosk.window.classes
    assert [card.name for card in panel.cards] == ["Class 1", "Class 2"]
    for _ in range(10):
        qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert len(panel.cards) == 12
    assert panel.cards[-1].name == "Class 12"
    # At 800x480 the list scrolls; the newest card was scrolled into view.
    bar = panel.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    assert bar.value() > 0
    # Every control is finger-sized.
    for button in visible_buttons(kiosk.window):
        assert button.height() >= 48, f"{button.text()!r} is {button.height()} px high"


@pytest.mark.slow
def test_add_stops_at_the_maximum(make_kiosk, qtbot):
    kiosk = make_kiosk(size=None)
    while kiosk.controller.class_count() < MAX_CLASSES:
        assert kiosk.controller.add_class() is not None
    assert not kiosk.window.classes.add_button.isEnabled()
    assert kiosk.controller.add_class() is None


def test_rename_retries_until_the_name_is_accepted(make_kiosk, qtbot, monkeypatch):
    kiosk = make_kiosk(size=None)
    answers = iter(["Class 2", "   ", "Apple"])
    seen_errors: list = []

    def ask_text(parent, title, text="", error=None):
        seen_errors.append(error)
        return next(answers)

    monkeypatch.setattr(dialogs, "ask_text", ask_text)
    card = kiosk.window.classes.cards[0]
    qtbot.mouseClick(card.name_button, Qt.MouseButton.LeftButton)
    assert card.name == "Apple"
    assert seen_errors[0] is None
    assert "already" in seen_errors[1]  # duplicate name, said why
    assert "empty" in seen_errors[2]
    # Cancel leaves the name alone.
    monkeypatch.setattr(dialogs, "ask_text", lambda *args, **kwargs: None)
    card.rename_action.trigger()
    assert card.name == "Apple"


@pytest.mark.slow
def test_tap_hold_undo_clear_delete(make_kiosk, qtbot, monkeypatch):
    kiosk = make_kiosk()
    window, controller = kiosk.window, kiosk.controller
    qtbot.waitUntil(lambda: window.video.has_frame, timeout=5000)
    card = window.classes.cards[0]

    # Tap: exactly one sample.
    with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
        qtbot.mouseClick(card.capture_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: card.count == 1)

    # Hold: a burst at about 10 a second, which ends on release.
    qtbot.mousePress(card.capture_button, Qt.MouseButton.LeftButton)
    assert controller.state == AppState.CAPTURING
    assert card.capture_button.text().endswith("Recording…")
    qtbot.waitUntil(lambda: card.count >= 6, timeout=5000)
    qtbot.mouseRelease(card.capture_button, Qt.MouseButton.LeftButton)
    assert controller.state == AppState.IDLE
    stopped_at = _counts(kiosk)[0]
    wait_for_new_frames(qtbot, controller.grabber, count=6)
    assert _counts(kiosk)[0] <= stopped_at + 1  # one request may have been in flight
    assert card.thumb_labels[3].isVisible()

    # Undo takes back what was done: the whole burst, then the tap.
    qtbot.mouseClick(window.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: card.count == 1)
    qtbot.mouseClick(window.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: card.count == 0)
    controller.redo()
    qtbot.waitUntil(lambda: card.count == 1)
    before = 1

    # Clear asks first; "no" keeps the samples.
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *args, **kwargs: False)
    card.clear_action.trigger()
    assert card.count == before
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *args, **kwargs: True)
    card.clear_action.trigger()
    qtbot.waitUntil(lambda: window.classes.cards[0].count == 0)
    assert window.classes.cards[0].hint.isVisibleTo(window)
    # Undo brings the cleared samples back; redo clears them again.
    qtbot.mouseClick(window.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.classes.cards[0].count == 1)
    controller.redo()
    qtbot.waitUntil(lambda: window.classes.cards[0].count == 0)

    # Delete asks first, then removes the class.
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *args, **kwargs: False)
    window.classes.cards[1].delete_action.trigger()
    assert len(window.classes.cards) == 2
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *args, **kwargs: True)
    window.classes.cards[1].delete_action.trigger()
    assert [c.name for c in window.classes.cards] == ["Class 1"]
    # Undo brings a deleted class back, in its place.
    qtbot.mouseClick(window.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: [c.name for c in window.classes.cards] == ["Class 1", "Class 2"])


@pytest.mark.slow
def test_number_keys_capture_into_their_class(make_kiosk, qtbot):
    kiosk = make_kiosk()
    window, controller = kiosk.window, kiosk.controller
    controller.add_class()
    qtbot.waitUntil(lambda: window.video.has_frame, timeout=5000)
    for key, index in ((Qt.Key.Key_1, 0), (Qt.Key.Key_3, 2), (Qt.Key.Key_2, 1)):
        with qtbot.waitSignal(controller.sampleCaptured, timeout=5000) as captured:
            qtbot.keyClick(window, key)
        assert captured.args == [index]
    qtbot.waitUntil(lambda: _counts(kiosk) == (1, 1, 1))
    # Key 9 with no class 9 does nothing.
    qtbot.keyClick(window, Qt.Key.Key_9)
    assert controller.state == AppState.IDLE

    # Holding a key records a burst until it is released.
    qtbot.keyPress(window, Qt.Key.Key_2)
    qtbot.waitUntil(lambda: _counts(kiosk)[1] >= 4, timeout=5000)
    qtbot.keyRelease(window, Qt.Key.Key_2)
    assert controller.state == AppState.IDLE


def test_capture_is_disabled_while_training(make_kiosk, qtbot):
    kiosk = make_kiosk(size=None)
    controller = kiosk.controller
    snapshot = controller.snapshot()
    assert snapshot.can_capture and not snapshot.can_train
    # Fake a busy state the way training sets it.
    controller._set_state(AppState.TRAINING)
    card = kiosk.window.classes.cards[0]
    assert not card.capture_button.isEnabled()
    assert not card.menu_button.isEnabled()
    assert not kiosk.window.classes.add_button.isEnabled()
    controller.begin_capture(0)
    assert controller.snapshot().capturing_class is None
    controller._set_state(AppState.IDLE)
    assert card.capture_button.isEnabled()
