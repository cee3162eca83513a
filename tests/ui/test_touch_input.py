"""Input by touch alone: the on-screen keyboard, flick scrolling, accessible names, F11.

Also the demo source's control (pause, choose an object, keys), and the start-up
line that only speaks of a previous session when there was one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QLineEdit, QScroller

from kiosk.ui import dialogs
from kiosk.ui.app import _restore_autosave
from kiosk.ui.demo_control import AUTO, EMPTY, PAUSE
from kiosk.ui.keyboard import OnScreenKeyboard
from kiosk.ui.places_view import PlaceRequest, PlacesDialog
from kiosk.ui.touch import find_control
from kiosk.vision.sources import DemoSource

from .conftest import visible_buttons, wait_for_new_frames


# ------------------------------------------------------------------ keyboard
def test_keyboard_types_names_with_taps(qtbot):
    edit = QLineEdit()
    keyboard = OnScreenKeyboard(edit)
    qtbot.addWidget(edit)
    qtbot.addWidget(keyboard)
    keyboard.type_text("Red disc 2-b")
    assert edit.text() == "Red disc 2-b"
    assert keyboard.page == "letters"  # it stays where the last key was
    qtbot.mouseClick(keyboard.keys["⌫"], Qt.MouseButton.LeftButton)
    assert edit.text() == "Red disc 2-"
    keyboard.type_text("&(Ok)")
    assert edit.text() == "Red disc 2-&(Ok)"
    done: list[bool] = []
    keyboard.done.connect(lambda: done.append(True))
    qtbot.mouseClick(keyboard.keys["Done"], Qt.MouseButton.LeftButton)
    assert done == [True]
    # Keys never take the focus from the field (its cursor stays).
    assert all(
        k.focusPolicy() == Qt.FocusPolicy.NoFocus for k in keyboard.findChildren(QAbstractButton)
    )


def test_every_text_entry_brings_the_keyboard(make_kiosk, qtbot, monkeypatch):
    kiosk = make_kiosk(size=(800, 480))
    window = kiosk.window
    entries: list[str] = []

    def run_modal(dialog) -> bool:
        # Whatever dialog opens: each of its text fields has a keyboard that
        # shows when the field is tapped, and the keys fit the screen.
        for edit in dialog.findChildren(QLineEdit):
            if edit.isReadOnly():
                continue  # the PIN display: its dialog is a keypad
            keyboards = [k for k in dialog.findChildren(OnScreenKeyboard) if k.target is edit]
            assert len(keyboards) == 1, f"{dialog.windowTitle()}: no keyboard for a field"
            keyboard = keyboards[0]
            dialog.show()
            qtbot.waitExposed(dialog)
            QTest.mouseClick(edit, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(keyboard.isVisible)
            for key in visible_buttons(keyboard):
                assert key.height() >= 48 and key.width() >= 48
            assert dialog.frameGeometry().height() <= window.height()
            entries.append(dialog.windowTitle())
            keyboard.type_text("x")
        dialog.close()
        return False

    monkeypatch.setattr(dialogs, "run_modal", run_modal)
    window.classes.rename(0)
    window.project.save_project()
    window.project.export_samples()
    kiosk.controller.output = None
    places = window.places
    dialogs.ask_place(
        window,
        places,
        PlaceRequest("Save model", "models", (places.models,), "Save", name_prefix="model"),
    )
    assert entries == ["Rename “Class 1”", "Save project", "Export samples", "Save model"]


def test_places_browser_lists_names_and_replaces_by_tap(make_kiosk, qtbot, artifacts):
    kiosk = make_kiosk(size=(800, 480))
    places = kiosk.window.places
    for name, saved in (("booth", 1.8e9), ("school", 1.7e9)):
        folder = places.projects_dir / name
        folder.mkdir(parents=True)
        manifest = {
            "format": "kiosk-project",
            "saved_at": saved,
            "classes": [{"name": "a"}, {"name": "b"}],
            "samples": {"count": 12},
            "extractor": {"name": "mobilenet.tflite"},
            "head": None,
        }
        (folder / "project.json").write_text(json.dumps(manifest))
    (Path(places.projects_dir).parent / "media" / "STICK").mkdir(parents=True)
    request = PlaceRequest(
        "Save project",
        "projects",
        (places.projects,),
        "Save",
        name_prefix="project",
        replace_kinds=("project",),
    )
    dialog = PlacesDialog(kiosk.window, places, request)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert [row.entry.name for row in dialog.rows] == ["booth", "school"]
    assert dialog.rows[0].detail_label.text().endswith("2 classes · 12 samples")
    assert dialog.name_edit.text().startswith("project-20")
    assert dialog.ok_button.text() == "Save"
    dialog.grab().save(str(artifacts / "places_save_project_800x480.png"))
    qtbot.mouseClick(dialog.rows[1].button, Qt.MouseButton.LeftButton)
    assert dialog.name_edit.text() == "school" and dialog.ok_button.text() == "Replace"
    dialog.name_edit.setText("../etc")
    assert not dialog.ok_button.isEnabled() and "/" in dialog.error.text()
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)  # disabled: says why
    assert dialog.error.isVisible()
    # The USB drive is one tap away; nothing above a place can be reached.
    qtbot.mouseClick(
        dialog.place_buttons["drive:" + str(places.drives()[0].path)], Qt.MouseButton.LeftButton
    )
    assert dialog.place.removable and not dialog.up_button.isVisible()
    dialog.name_edit.setText("to-take-home")
    with qtbot.waitSignal(dialog.accepted):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.choice.path == places.drives()[0].path / "to-take-home"
    assert not dialog.choice.replace


@pytest.mark.slow
def test_a_drive_plugged_in_appears_and_one_pulled_out_goes(make_kiosk, qtbot):
    kiosk = make_kiosk(size=(800, 480))
    places = kiosk.window.places
    request = PlaceRequest("Export samples", "folders", (places.projects,), "Export",
                           name_prefix="samples", drives="first")  # fmt: skip
    dialog = PlacesDialog(kiosk.window, places, request)
    qtbot.addWidget(dialog)
    assert list(dialog.place_buttons) == ["projects"] and dialog.drive_hint.isVisibleTo(dialog)
    drive = places.projects_dir.parent / "media" / "STICK"
    drive.mkdir(parents=True)
    qtbot.waitUntil(lambda: len(dialog.place_buttons) == 2, timeout=5000)  # polled
    key = f"drive:{drive}"
    assert list(dialog.place_buttons) == [key, "projects"]
    assert not dialog.drive_hint.isVisibleTo(dialog)
    qtbot.mouseClick(dialog.place_buttons[key], Qt.MouseButton.LeftButton)
    assert dialog.place.removable
    drive.rmdir()
    dialog.refresh_drives()
    assert dialog.place.key == "projects" and "STICK was removed" in dialog.error.text()


# ---------------------------------------------------------------------- flick
@pytest.mark.slow
def test_a_flick_scrolls_the_classes_and_captures_nothing(make_kiosk, qtbot):
    kiosk = make_kiosk(size=(800, 480))
    window, controller = kiosk.window, kiosk.controller
    while controller.class_count() < 12:
        controller.add_class()
    panel = window.classes
    qtbot.waitUntil(lambda: panel.scroll.verticalScrollBar().maximum() > 0)
    panel.scroll.verticalScrollBar().setValue(0)
    qtbot.waitUntil(lambda: window.video.has_frame, timeout=5000)
    captured: list[int] = []
    controller.sampleCaptured.connect(captured.append)
    viewport = panel.scroll.viewport()
    handle = window.windowHandle()
    # A finger lands on a capture button and swipes up.
    button = panel.cards[3].capture_button
    start = button.mapTo(window, button.rect().center())
    QTest.mousePress(handle, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    # The finger moves at once (before the press would reach the button), then on.
    for step in range(1, 11):
        QTest.mouseMove(handle, start - QPoint(0, 18 * step))
        if step > 2:
            qtbot.wait(8)
    QTest.mouseRelease(
        handle, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start - QPoint(0, 180)
    )
    scroller = QScroller.scroller(viewport)
    qtbot.waitUntil(lambda: scroller.state() == QScroller.State.Inactive, timeout=5000)
    assert panel.scroll.verticalScrollBar().value() > 0
    assert captured == [] and controller.snapshot().counts == (0,) * 12
    # A tap (no movement) still captures.
    card = next(
        c
        for c in panel.cards
        if viewport.rect().contains(
            c.capture_button.mapTo(viewport, c.capture_button.rect().center())
        )
    )
    with qtbot.waitSignal(controller.sampleCaptured, timeout=5000) as got:
        QTest.mouseClick(
            handle,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
            card.capture_button.mapTo(window, card.capture_button.rect().center()),
        )
    assert got.args == [card.index]


# ------------------------------------------------------------ accessible names
def test_every_control_has_a_name_and_tests_find_them_by_it(make_kiosk, qtbot):
    source = DemoSource()
    kiosk = make_kiosk(source, size=(800, 480))
    window, controller = kiosk.window, kiosk.controller
    controller.session.store.rename_class(0, "red disc")
    unnamed = [b.text() for b in visible_buttons(window) if not b.accessibleName()]
    assert unnamed == []
    for name in ("Train", "Save model", "Undo", "Redo", "Menu", "Add class", "Demo scene"):
        find_control(window, name)
    source.show("red disc")
    wait_for_new_frames(qtbot, controller.grabber)
    with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
        qtbot.mouseClick(find_control(window, "Capture into red disc"), Qt.MouseButton.LeftButton)
    assert controller.snapshot().counts[0] == 1
    with pytest.raises(LookupError, match="Capture into"):
        find_control(window, "Capture into nothing")


def test_dialog_controls_are_named(make_kiosk, qtbot):
    kiosk = make_kiosk(size=(800, 480))
    window = kiosk.window
    from tests.ui.test_touch_geometry import open_dialogs

    for dialog, _ in open_dialogs(window):
        try:
            unnamed = [
                b.text() for b in dialog.findChildren(QAbstractButton) if not b.accessibleName()
            ]
            assert unnamed == [], dialog.windowTitle()
        finally:
            dialog.deleteLater()


# ------------------------------------------------------------------------ F11
def test_f11_covers_the_screen_and_comes_back(make_kiosk, qtbot):
    kiosk = make_kiosk(size=(900, 600))
    window = kiosk.window
    before = window.geometry()
    window.toggle_fullscreen()
    qtbot.waitUntil(window.isFullScreen)
    assert window.geometry() == window.screen().geometry()
    window.toggle_fullscreen()
    qtbot.waitUntil(lambda: not window.isFullScreen())
    assert window.geometry().size() == before.size()


# ----------------------------------------------------------------------- demo
def test_demo_control_pauses_and_chooses_objects(make_kiosk, qtbot, monkeypatch):
    source = DemoSource()
    kiosk = make_kiosk(source, size=(800, 480))
    window, controller = kiosk.window, kiosk.controller
    demo = window.demo
    assert demo is not None and demo.text() == "Demo · cycling"
    answers = iter(["blue square", PAUSE])
    monkeypatch.setattr(
        "kiosk.ui.demo_control.ask_demo_choice", lambda parent, source: next(answers)
    )
    qtbot.mouseClick(demo, Qt.MouseButton.LeftButton)
    assert source.current == "blue square" and not source.auto
    qtbot.mouseClick(demo, Qt.MouseButton.LeftButton)
    assert source.paused and demo.text() == "Demo ❚❚ blue square"
    assert "blue square" in window.status.text()
    # Paused, two captures see the very same picture: scripted captures repeat.
    wait_for_new_frames(qtbot, controller.grabber)
    for _ in range(2):
        with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
            controller.capture_once(0)
    first, second = controller.session.store.embeddings(0)
    assert np.array_equal(first, second)
    # Keys: P resumes, N the next object, A cycles again.
    for key, check in (
        (Qt.Key.Key_P, lambda: not source.paused),
        (Qt.Key.Key_N, lambda: source.current == "green triangle"),
        (Qt.Key.Key_A, lambda: source.auto),
    ):
        QTest.keyClick(window, key)
        assert check(), key
    demo.apply(EMPTY)
    assert source.current is None
    demo.apply(AUTO)
    assert source.auto


# ------------------------------------------------------------------ start-up
def test_started_fresh_only_when_there_was_a_session(extractor, tmp_path):
    from kiosk.persist.journal import STATE
    from kiosk.session import TeachingSession

    folder = tmp_path / "autosave"
    _, message = _restore_autosave(TeachingSession(extractor), folder, fresh=True)
    assert message is None  # nothing to replace: nothing said
    folder.mkdir()
    (folder / STATE).write_text("{}")
    _, message = _restore_autosave(TeachingSession(extractor), folder, fresh=True)
    assert message is not None and message[0].startswith("Started fresh")


def test_status_line_reads_whole_in_its_tooltip(make_kiosk, qtbot):
    kiosk = make_kiosk(size=(800, 480))
    text = "Saved model.tflite + labels.txt to /a/very/long/path/" + "x" * 120
    kiosk.window.show_message(text, "ok")
    QApplication.processEvents()
    assert kiosk.window.status.toolTip() == text and kiosk.window.status.is_elided()
