"""The window around the flow: a missing camera, kiosk mode, settings, save errors."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt

from kiosk.learn import DEFAULT_TRAINING
from kiosk.ui import dialogs, project_menu
from kiosk.ui.controller import AppState, save_paths
from kiosk.vision.sources import DemoSource, open_source

from .conftest import capture_two_classes


def test_missing_camera_shows_message_and_retry(make_kiosk, qtbot, artifacts):
    # No /dev/video7 here: the window must say so over the picture, not crash.
    kiosk = make_kiosk(open_source("7"), size=(800, 480))
    view = kiosk.window.video
    qtbot.waitUntil(lambda: view.overlay.isVisible(), timeout=5000)
    assert "camera 7" in view.overlay.title.text()
    assert "Camera 7" in view.overlay.text.text()
    assert view.overlay.button.height() >= 48
    assert kiosk.window.isVisible()
    retries: list = []
    kiosk.controller.grabber.retry_now = lambda: retries.append(True)
    qtbot.mouseClick(view.overlay.button, Qt.MouseButton.LeftButton)
    assert retries == [True]
    assert "again" in kiosk.window.status.text()
    assert kiosk.window.grab().save(str(artifacts / "kiosk_no_camera_800x480.png"))


def test_kiosk_mode_is_frameless_and_only_ctrl_q_quits(make_kiosk, qtbot):
    kiosk = make_kiosk(fullscreen=True, size=None)
    window = kiosk.window
    with qtbot.waitActive(window):
        window.show_for_mode()
        window.activateWindow()
    assert window.windowFlags() & Qt.WindowType.FramelessWindowHint
    assert window.windowState() & Qt.WindowState.WindowFullScreen
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.isVisible()
    window.close()  # a window-manager close or Alt+F4
    assert window.isVisible()
    assert "Ctrl+Q" in window.status.text()
    window.toggle_fullscreen()  # F11 does nothing in kiosk mode
    assert window.windowState() & Qt.WindowState.WindowFullScreen
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible())


def test_windowed_mode_closes_normally(make_kiosk, qtbot):
    kiosk = make_kiosk()
    assert not kiosk.window.windowFlags() & Qt.WindowType.FramelessWindowHint
    kiosk.window.close()
    assert not kiosk.window.isVisible()
    assert kiosk.controller.grabber.stopping


def test_settings_dialog_result_is_used_for_training(make_kiosk, qtbot, monkeypatch):
    kiosk = make_kiosk(size=None)
    chosen = dataclasses.replace(DEFAULT_TRAINING, num_iter=123)
    monkeypatch.setattr(dialogs, "ask_settings", lambda parent, config, default: chosen)
    monkeypatch.setattr(project_menu, "ask_menu_action", lambda parent, kiosk: "edit_settings")
    qtbot.mouseClick(kiosk.window.menu_button, Qt.MouseButton.LeftButton)
    assert kiosk.controller.training_config == chosen


def test_settings_dialog_steppers(qtbot):
    dialog = dialogs.SettingsDialog(None, DEFAULT_TRAINING, DEFAULT_TRAINING)
    qtbot.addWidget(dialog)
    stepper = dialog.steppers["num_iter"]
    stepper.step_up()
    assert dialog.result_config().num_iter > DEFAULT_TRAINING.num_iter
    dialog.reset()
    assert dialog.result_config() == DEFAULT_TRAINING


def test_save_paths():
    assert save_paths("/x/m.tflite").labels.as_posix() == "/x/labels.txt"
    folder = save_paths("/x/out")
    assert folder.model.as_posix() == "/x/out/model.tflite"
    assert folder.labels.as_posix() == "/x/out/labels.txt"


@pytest.mark.slow
def test_failed_save_keeps_earlier_files_and_says_why(make_kiosk, qtbot, tmp_path):
    source = DemoSource()
    output = tmp_path / "model.tflite"
    kiosk = make_kiosk(source, output=output, size=None)
    controller = kiosk.controller
    capture_two_classes(qtbot, controller, source)
    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000):
        assert controller.train()
    output.write_bytes(b"earlier model")
    (tmp_path / "labels.txt").write_text("0 earlier\n")
    # A folder where the labels file should go makes the save fail.
    (tmp_path / "labels.txt").unlink()
    (tmp_path / "labels.txt").mkdir()
    with qtbot.waitSignal(controller.saveFailed, timeout=30_000) as failed:
        assert controller.save()
    assert "folder" in failed.args[0]
    assert output.read_bytes() == b"earlier model"
    assert "untouched" in kiosk.window.status.text()
    assert controller.state == AppState.TRAINED
