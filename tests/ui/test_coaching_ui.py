"""Coaching in the running kiosk: the novelty meter, notes on the class cards, the
near-duplicate flag, and "Not sure" (with screenshots at 800x480 and 1920x1080
written to test-artifacts/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from kiosk.dataset import read_rgb
from kiosk.learn.gate import NOVELTY_CAP, NotSureGate
from kiosk.ui.video_view import NOVELTY_FULL
from kiosk.vision.sources import DemoSource, ImageFolderSource

from .conftest import at_screen_sizes, wait_for_new_frames

pytestmark = pytest.mark.slow


def _click_capture(qtbot, kiosk, index: int) -> None:
    card = kiosk.window.classes.cards[index]
    with qtbot.waitSignal(kiosk.controller.sampleCaptured, timeout=5000):
        qtbot.mouseClick(card.capture_button, Qt.MouseButton.LeftButton)
    wait_for_new_frames(qtbot, kiosk.controller.grabber, count=1)


def _teach(qtbot, kiosk, source: DemoSource, objects: tuple[str, ...], samples: int) -> None:
    for index, name in enumerate(objects):
        kiosk.controller.rename_class(index, name)
        source.show(name)
        wait_for_new_frames(qtbot, kiosk.controller.grabber)
        for _ in range(samples):
            _click_capture(qtbot, kiosk, index)


def test_novelty_meter_and_card_notes(make_kiosk, qtbot, artifacts) -> None:
    source = DemoSource()
    kiosk = make_kiosk(source)
    window, controller = kiosk.window, kiosk.controller
    video, cards = window.video, window.classes.cards
    qtbot.waitUntil(lambda: video.has_frame, timeout=5000)
    assert video.novelty is None  # nothing captured: no meter
    novelties: list = []
    controller.noveltyChanged.connect(novelties.append)

    _teach(qtbot, kiosk, source, ("red disc",), samples=6)
    source.show("red disc")
    wait_for_new_frames(qtbot, controller.grabber, count=3)
    qtbot.waitUntil(lambda: bool(novelties) and novelties[-1] is not None, timeout=5000)
    qtbot.waitUntil(lambda: novelties[-1] < 0.05, timeout=5000)  # captured: low
    assert video.novelty is not None and video.novelty < 0.2
    source.show("blue square")
    # A new object: beyond any head's novelty limit, the meter past half ("New view").
    qtbot.waitUntil(lambda: novelties[-1] > NOVELTY_CAP, timeout=5000)
    qtbot.waitUntil(lambda: video.novelty is not None and video.novelty > 0.5, timeout=2000)
    assert NOVELTY_FULL == 2 * NOVELTY_CAP

    # One class with samples: nothing to compare yet. Two samples of another: it
    # needs three more; the first class is fine.
    assert [card.note for card in cards] in (["", ""], ["⚠ duplicate", ""]), [
        card.note for card in cards
    ]
    controller.rename_class(1, "blue square")
    for _ in range(2):
        _click_capture(qtbot, kiosk, 1)
    # (A near-duplicate flag, if the scene stood still, covers the note for a moment.)
    qtbot.waitUntil(lambda: cards[1].note == "⚠ needs 3 more", timeout=5000)
    assert cards[1].note_label.isVisible()
    qtbot.waitUntil(lambda: cards[0].note == "", timeout=5000)
    # Enough samples, but under a third of the other class's: "too few".
    for _ in range(10):
        _click_capture(qtbot, kiosk, 0)
    for _ in range(3):
        _click_capture(qtbot, kiosk, 1)
    qtbot.waitUntil(lambda: cards[1].note == "⚠ too few", timeout=5000)
    qtbot.waitUntil(lambda: cards[0].note == "", timeout=5000)
    window.resize(800, 480)
    qtbot.waitUntil(lambda: window.size().toTuple() == (800, 480), timeout=2000)
    window.classes.scroll_to(1)
    qtbot.wait(200)
    assert window.grab().save(str(artifacts / "kiosk_card_notes_800x480.png"))


def test_capturing_the_same_still_frame_twice_is_flagged(
    make_kiosk, qtbot, tmp_path: Path, demo_still: Path
) -> None:
    kiosk = make_kiosk(ImageFolderSource(demo_still, fps=30.0))
    window, controller = kiosk.window, kiosk.controller
    qtbot.waitUntil(lambda: window.video.has_frame, timeout=5000)
    card = window.classes.cards[0]
    duplicates: list = []
    controller.duplicateCaptured.connect(lambda index, text: duplicates.append((index, text)))
    _click_capture(qtbot, kiosk, 0)
    assert not duplicates and not card.duplicate_flagged
    _click_capture(qtbot, kiosk, 0)
    qtbot.waitUntil(lambda: bool(duplicates), timeout=3000)
    assert duplicates[0][0] == 0 and "move" in duplicates[0][1]
    assert "move" in window.status.text()
    assert card.duplicate_flagged and "duplicate" in card.note
    qtbot.waitUntil(lambda: not card.duplicate_flagged, timeout=5000)
    assert "duplicate" not in card.note


@pytest.fixture
def demo_still(tmp_path: Path) -> Path:
    """A folder with one demo picture: a source that shows the same frame forever."""
    import cv2

    source = DemoSource(fps=None)
    source.open()
    source.show("yellow star")
    folder = tmp_path / "still"
    folder.mkdir()
    path = folder / "star.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(source.read(), cv2.COLOR_RGB2BGR))
    assert read_rgb(path) is not None
    return folder


def test_not_sure_bars_banner_and_screenshots(make_kiosk, qtbot, artifacts) -> None:
    source = DemoSource()
    kiosk = make_kiosk(source)
    window, controller = kiosk.window, kiosk.controller
    qtbot.waitUntil(lambda: window.video.has_frame, timeout=5000)
    _teach(qtbot, kiosk, source, ("red disc", "blue square"), samples=5)
    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000):
        qtbot.mouseClick(window.train_button, Qt.MouseButton.LeftButton)
    session = controller.session
    # A threshold no answer reaches: every prediction is "not sure".
    contents = session.contents()
    head = dataclasses.replace(session.head, gate=NotSureGate(threshold=1.01))
    session.replace(dataclasses.replace(contents, head=head))
    source.show(None)  # the empty table
    predictions: list = []
    controller.predictionChanged.connect(predictions.append)
    qtbot.waitUntil(
        lambda: bool(predictions) and predictions[-1] is not None and not predictions[-1].sure,
        timeout=5000,
    )
    bars = window.predictions
    qtbot.waitUntil(lambda: bars.caption is not None and "Not sure" in bars.caption, timeout=3000)
    assert bars._top is None  # no class highlighted
    assert window.video._prediction is not None and not window.video._prediction.sure

    for width, height in at_screen_sizes(qtbot, window):
        assert bars.caption is not None and "Not sure" in bars.caption
        assert window.grab().save(str(artifacts / f"kiosk_not_sure_{width}x{height}.png"))
