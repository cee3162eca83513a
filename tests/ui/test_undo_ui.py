"""Undo and Redo in the window: what a visitor did, taken back the way they did it.

A burst is one step; Delete class and Clear samples come back with their
samples; Redo does it all again (the core's ``kiosk.history``).
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from kiosk.ui import dialogs
from kiosk.vision.sources import DemoSource

from .conftest import wait_for_new_frames


def tap(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def burst(qtbot, kiosk, class_index: int, at_least: int = 4) -> int:
    """Hold a capture button until it recorded ``at_least`` samples; returns how many."""
    controller = kiosk.controller
    start = controller.snapshot().counts[class_index]
    controller.begin_capture(class_index)
    qtbot.waitUntil(
        lambda: controller.snapshot().counts[class_index] >= start + at_least, timeout=10_000
    )
    controller.end_capture()
    qtbot.wait(150)  # a capture already asked for may still land
    return controller.snapshot().counts[class_index] - start


@pytest.fixture
def kiosk(make_kiosk, qtbot, monkeypatch):
    source = DemoSource()
    made = make_kiosk(source, size=(800, 480))
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *a, **k: True)
    qtbot.waitUntil(lambda: made.window.video.has_frame, timeout=5000)
    wait_for_new_frames(qtbot, made.controller.grabber)
    return made


def test_undo_takes_back_a_tap(kiosk, qtbot):
    window, controller = kiosk.window, kiosk.controller
    for _ in range(2):
        with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
            tap(qtbot, window.classes.cards[0].capture_button)
    assert window.undo_button.isEnabled()
    tap(qtbot, window.undo_button)
    assert controller.snapshot().counts[0] == 1


@pytest.mark.slow
def test_one_undo_takes_back_a_whole_burst(kiosk, qtbot):
    window, controller = kiosk.window, kiosk.controller
    with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
        tap(qtbot, window.classes.cards[1].capture_button)
    assert burst(qtbot, kiosk, 0) >= 4
    tap(qtbot, window.undo_button)
    assert controller.snapshot().counts[:2] == (0, 1)


@pytest.mark.slow
def test_undo_brings_a_deleted_class_back_with_its_samples(kiosk, qtbot):
    window, controller = kiosk.window, kiosk.controller
    store = controller.session.store
    store.rename_class(1, "blue square")
    burst(qtbot, kiosk, 0, at_least=2)
    burst(qtbot, kiosk, 1, at_least=3)
    counts = controller.snapshot().counts
    window.classes.delete(1)
    assert store.class_names == ["Class 1"]
    tap(qtbot, window.undo_button)
    assert store.class_names == ["Class 1", "blue square"]
    assert controller.snapshot().counts == counts  # nothing of class 1 was taken instead


@pytest.mark.slow
def test_undo_brings_cleared_samples_back(kiosk, qtbot):
    window, controller = kiosk.window, kiosk.controller
    burst(qtbot, kiosk, 0, at_least=3)
    before = controller.snapshot().counts
    window.classes.clear(0)
    assert controller.snapshot().counts[0] == 0
    tap(qtbot, window.undo_button)
    assert controller.snapshot().counts == before


@pytest.mark.slow
def test_redo_does_again_what_undo_took_back(kiosk, qtbot):
    window, controller = kiosk.window, kiosk.controller
    done = burst(qtbot, kiosk, 0, at_least=2)
    assert not window.redo_button.isEnabled()
    tap(qtbot, window.undo_button)
    assert controller.snapshot().counts[0] == 0
    assert window.redo_button.isEnabled()
    tap(qtbot, window.redo_button)
    assert controller.snapshot().counts[0] == done
    # Ctrl+Shift+Z is the same as the button.
    (undo,) = [s for s in window._shortcuts if s.key().toString() == "Ctrl+Z"]
    (redo,) = [s for s in window._shortcuts if s.key().toString() == "Ctrl+Shift+Z"]
    undo.activated.emit()
    redo.activated.emit()
    assert controller.snapshot().counts[0] == done
