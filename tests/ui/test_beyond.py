"""Instant predictions, the evaluation view and the fidelity gate in the running kiosk.

Writes screenshots of the trained kiosk showing the per-class view, at 800x480
and 1920x1080, to test-artifacts/.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

import kiosk.export
from kiosk.ui import dialogs
from kiosk.vision.sources import DemoSource

from .conftest import at_screen_sizes, wait_for_new_frames

OBJECTS = ("red disc", "blue square")
SAMPLES = 6

pytestmark = pytest.mark.slow


def _capture(qtbot, kiosk, source: DemoSource) -> None:
    window, controller = kiosk.window, kiosk.controller
    for index, name in enumerate(OBJECTS):
        controller.rename_class(index, name)
        source.show(name)
        wait_for_new_frames(qtbot, controller.grabber)
        for _ in range(SAMPLES):
            with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
                qtbot.mouseClick(
                    window.classes.cards[index].capture_button, Qt.MouseButton.LeftButton
                )
            wait_for_new_frames(qtbot, controller.grabber, count=1)


def test_instant_predictions_evaluation_and_fidelity_gate(
    make_kiosk, qtbot, monkeypatch, artifacts, tmp_path
):
    output = tmp_path / "out" / "model.tflite"
    source = DemoSource()
    kiosk = make_kiosk(source, output=output)
    window, controller = kiosk.window, kiosk.controller
    qtbot.waitUntil(lambda: window.video.has_frame, timeout=5000)
    _capture(qtbot, kiosk, source)

    # Before any training the imprinted head already names the object.
    predictions: list = []
    controller.predictionChanged.connect(predictions.append)
    for index, name in enumerate(OBJECTS):
        source.show(name)

        def instant(index=index) -> None:
            assert predictions and predictions[-1] is not None
            assert predictions[-1].source == "imprinted"
            assert predictions[-1].class_index == index

        qtbot.waitUntil(instant, timeout=5000)
    assert window.predictions.caption is not None and "Instant" in window.predictions.caption
    assert controller.session.head is None

    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000):
        qtbot.mouseClick(window.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.training.view_toggle.isVisible(), timeout=3000)
    panel = window.training
    assert panel.stack.currentWidget() is panel.evaluation_area
    assert panel.evaluation.evaluation is controller.session.head.evaluation
    assert "Trained" in window.status.text()
    qtbot.mouseClick(panel.view_toggle, Qt.MouseButton.LeftButton)
    assert panel.stack.currentWidget() is panel.plot
    qtbot.mouseClick(panel.view_toggle, Qt.MouseButton.LeftButton)
    assert panel.stack.currentWidget() is panel.evaluation_area
    qtbot.waitUntil(
        lambda: predictions[-1] is not None and predictions[-1].source == "trained", timeout=5000
    )

    for width, height in at_screen_sizes(qtbot, window):
        assert window.grab().save(str(artifacts / f"kiosk_evaluation_{width}x{height}.png"))
    window.resize(1280, 800)

    # Fidelity gate: every class counts as low, the operator declines, nothing is written.
    monkeypatch.setattr(kiosk_export_module(), "FIDELITY_THRESHOLD", 1.01)
    asked: list[str] = []

    def decline(parent, title, text, *args, **kwargs) -> bool:
        asked.append(text)
        return False

    monkeypatch.setattr(dialogs, "ask_confirm", decline)
    failed: list = []
    controller.saveFailed.connect(failed.append)
    qtbot.mouseClick(window.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(failed), timeout=30_000)
    assert len(asked) == 1 and "red disc" in asked[0]
    assert not output.exists() and not (output.parent / "labels.txt").exists()
    assert "Not saved" in window.status.text()

    # Saving anyway writes the files, and the status line warns.
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *args, **kwargs: True)
    with qtbot.waitSignal(controller.saveFinished, timeout=30_000) as done:
        qtbot.mouseClick(window.save_button, Qt.MouseButton.LeftButton)
    assert output.is_file()
    assert done.args[0].low_fidelity_classes() == list(OBJECTS)
    assert "warning" in window.status.text()


def kiosk_export_module():
    return kiosk.export
