"""Geometry at 800x480 and 1920x1080: everything a finger needs is on screen, whole, apart.

Six classes' capture buttons without scrolling, 16-character names whole in the
banner and the bars, overlays that never cover each other, dialogs inside the
window, a status line that elides, touch targets of 48 px, disabled buttons
that look disabled and say why, and an evaluation readable at 20 classes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import QAbstractButton, QApplication, QWidget

from kiosk.learn import DEFAULT_TRAINING
from kiosk.learn.evaluation import Evaluation
from kiosk.predict import Prediction
from kiosk.ui import dialogs
from kiosk.ui.badge import CornerBadge
from kiosk.ui.controller import MAX_CLASSES
from kiosk.ui.demo_control import DemoPanel
from kiosk.ui.places_view import PlaceRequest, PlacesDialog
from kiosk.ui.project_menu import MenuPanel
from kiosk.vision.sources import DemoSource

from .conftest import SCREEN_SIZES, at_screen_sizes, visible_buttons

NAMES16 = ("red disc on wood", "blue square tile", "green triangle!", "yellow star 1234")
TOUCH = 48


def rect_in(widget: QWidget, ancestor: QWidget) -> QRect:
    """``widget``'s rectangle in ``ancestor``'s coordinates."""
    return QRect(widget.mapTo(ancestor, QPoint(0, 0)), widget.size())


def six_named_classes(controller) -> None:
    store = controller.session.store
    while controller.class_count() < 6:
        store.add_class()
    for index, name in enumerate(NAMES16):
        store.rename_class(index, name)


def prediction(names: tuple[str, ...], top: int = 0) -> Prediction:
    probabilities = np.full(len(names), 0.02, np.float32)
    probabilities[top] = 1.0 - 0.02 * (len(names) - 1)
    return Prediction(
        class_index=top,
        class_name=names[top],
        confidence=float(probabilities[top]),
        probabilities=probabilities,
        class_names=names,
        class_indices=tuple(range(len(names))),
    )


@pytest.mark.slow
def test_six_capture_buttons_whole_names_and_apart_overlays(make_kiosk, qtbot, artifacts):
    source = DemoSource()
    kiosk = make_kiosk(source, size=(800, 480))
    window, controller = kiosk.window, kiosk.controller
    six_named_classes(controller)
    qtbot.waitUntil(lambda: len(window.classes.cards) == 6)
    CornerBadge("Running on the CPU: Edge TPU not found", window)
    for width, height in at_screen_sizes(qtbot, window):
        panel = window.classes
        qtbot.waitUntil(lambda p=panel: p.compact)
        viewport = panel.scroll.viewport()
        assert panel.scroll.verticalScrollBar().value() == 0
        for card in panel.cards:
            button = card.capture_button
            assert button.isVisible()
            assert viewport.rect().contains(rect_in(button, viewport)), (
                f"{button.accessibleName()} not fully visible at {width}x{height}"
            )
            assert button.height() >= TOUCH
        # A prediction naming a 16-character class, a burst being recorded into
        # another, the novelty meter, the demo control and the CPU badge: all at once.
        names = NAMES16[:4]
        for top, name in enumerate(names):
            window.video.set_prediction(prediction(names, top))
            window.predictions.set_prediction(prediction(names, top))
            window.video.set_capturing(NAMES16[3 - top])
            window.video.set_novelty(0.2)
            window.video.repaint()
            window.predictions.repaint()
            assert window.video.banner_text == name, f"banner elided at {width}x{height}"
            assert window.predictions.drawn_labels == list(names)
            rects = window.video.overlay_rects()
            assert set(rects) == {"banner", "recording", "novelty", "top-left", "top-right"}
            for (a, first), (b, second) in itertools.combinations(rects.items(), 2):
                assert not first.intersects(second), f"{a} overlaps {b} at {width}x{height}"
            for name_, box in rects.items():
                assert window.video.rect().toRectF().contains(box), f"{name_} leaves the picture"
        assert window.grab().save(str(artifacts / f"kiosk_six_classes_{width}x{height}.png"))
    window.video.set_capturing(None)


@pytest.mark.slow
def test_status_line_elides_and_targets_are_finger_sized(make_kiosk, qtbot):
    kiosk = make_kiosk(size=(800, 480))
    window = kiosk.window
    six_named_classes(kiosk.controller)
    for width, height in at_screen_sizes(qtbot, window):
        window.show_message("A message far too long for one line " * 8, "error")
        QApplication.processEvents()
        status = window.status
        assert status.is_elided() and status.elided_text().endswith("…")
        assert rect_in(status, window).right() <= window.width()
        assert window.size().toTuple() == (width, height)  # the text did not widen the window
        for button in visible_buttons(window):
            if window.classes.scroll.isAncestorOf(button):
                continue  # checked through the cards above
            assert button.height() >= TOUCH and button.width() >= TOUCH, (
                f"{button.accessibleName()!r} is {button.width()}x{button.height()}"
            )
            assert window.rect().contains(rect_in(button, window)), button.accessibleName()


def open_dialogs(window) -> list[tuple[QWidget, bool]]:
    """Every dialog the window can show, built on ``window`` (not run), and whether to type."""
    places = window.places
    save = PlaceRequest(
        "Save project",
        "projects",
        (places.projects,),
        "Save",
        name_prefix="project",
        replace_kinds=("project",),
    )
    confirm = dialogs.ConfirmDialog(window, "Delete “Class 1”?", "Deleted. " * 12, "Delete", True)
    return [
        (dialogs.TextDialog(window, "Rename “Class 1”", "Class 1", "That name is taken"), False),
        (confirm, False),
        (dialogs.SettingsDialog(window, DEFAULT_TRAINING, DEFAULT_TRAINING), False),
        (dialogs.PinPadDialog(window, "Operator PIN to quit the kiosk", "Wrong PIN"), False),
        (PlacesDialog(window, places, save), False),
        (PlacesDialog(window, places, save), True),
        (PlacesDialog(window, places, save, whole_computer=True), False),  # at a desk
        (MenuPanel(window, kiosk=False), False),
        (DemoPanel(window, DemoSource()), False),
    ]


@pytest.mark.parametrize("size", SCREEN_SIZES)
def test_dialogs_fit_the_window_with_finger_sized_buttons(make_kiosk, qtbot, size, artifacts):
    kiosk = make_kiosk(size=size)
    window = kiosk.window
    (window.places.projects_dir / "booth").mkdir(parents=True)
    frame = QRect(window.mapToGlobal(QPoint(0, 0)), window.size())
    for dialog, typing in open_dialogs(window):
        dialog.show()
        qtbot.waitExposed(dialog)
        name = dialog.windowTitle()
        try:
            if typing:
                assert isinstance(dialog, PlacesDialog) and dialog.keyboard is not None
                dialog.keyboard.open_keys()
                QApplication.processEvents()
                name += " (typing)"
            geometry = QRect(dialog.mapToGlobal(QPoint(0, 0)), dialog.size())
            assert frame.contains(geometry), f"{name} {geometry} leaves the window {frame}"
            for button in dialog.findChildren(QAbstractButton):
                if not button.isVisibleTo(dialog):
                    continue
                assert button.height() >= TOUCH and button.width() >= TOUCH, (
                    f"{name}: {button.accessibleName()!r} is {button.width()}x{button.height()}"
                )
                assert dialog.rect().contains(rect_in(button, dialog)), (
                    f"{name}: {button.accessibleName()!r} is cut off"
                )
            slug = "".join(c for c in name.lower() if c.isalnum())[:24]
            dialog.grab().save(str(artifacts / f"dialog_{slug}_{size[0]}x{size[1]}.png"))
        finally:
            dialog.close()
            dialog.deleteLater()


@pytest.mark.slow
def test_disabled_buttons_look_disabled_and_a_tap_says_why(make_kiosk, qtbot):
    kiosk = make_kiosk(size=(800, 480))
    window, controller = kiosk.window, kiosk.controller
    said: list[str] = []
    window.explainer.explain.connect(said.append)
    train = window.train_button
    assert not train.isEnabled()
    disabled_look = train.grab().toImage()
    qtbot.mouseClick(train, Qt.MouseButton.LeftButton)
    assert said == ["Capture samples for at least two classes first"]
    assert "two classes" in window.status.text()
    qtbot.mouseClick(window.save_button, Qt.MouseButton.LeftButton)
    assert said[-1] == "Train first: Save writes the trained model"
    qtbot.mouseClick(window.redo_button, Qt.MouseButton.LeftButton)
    assert said[-1] == "Nothing to redo"

    # "+ Add class" at the limit: greyed, and it says why.
    add = window.classes.add_button
    enabled_look = add.grab().toImage()
    while controller.class_count() < MAX_CLASSES:
        controller.add_class()
    assert not add.isEnabled()
    qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    assert said[-1] == f"At most {MAX_CLASSES} classes: delete one to add another"
    assert add.accessibleDescription() == said[-1]
    assert brightness(add.grab().toImage()) < 0.7 * brightness(enabled_look)

    # The same Train button, enabled, is clearly brighter than disabled.
    store = controller.session.store
    dim = controller.session.extractor.feature_dim
    for index in (0, 1):
        for k in range(2):
            vector = np.full(dim, float(index + k), np.float32)
            store.add_sample(index, vector, np.zeros((8, 8, 3), np.uint8))
    qtbot.waitUntil(train.isEnabled)
    assert brightness(train.grab().toImage()) > brightness(disabled_look) + 20


def brightness(image) -> float:
    """Mean of R, G and B over a QImage: how light it looks."""
    image = image.convertToFormat(image.Format.Format_RGB888)
    data = np.frombuffer(image.constBits(), np.uint8)
    rows = data.reshape(image.height(), image.bytesPerLine())[:, : 3 * image.width()]
    return float(rows.mean())


def evaluation(count: int) -> Evaluation:
    rng = np.random.default_rng(0)
    confusion = np.diag(rng.integers(3, 9, count)).astype(np.int64)
    confusion[1, 2] = 2
    totals = confusion.sum(axis=1)
    per_class = tuple(float(confusion[i, i] / totals[i]) for i in range(count))
    names = tuple(f"object {i + 1} long name"[:16] for i in range(count))
    accuracy = float(np.trace(confusion) / confusion.sum())
    return Evaluation(names, confusion, per_class, accuracy, float(np.mean(per_class)), (1, 2, 2))


@pytest.mark.parametrize("size", SCREEN_SIZES)
def test_evaluation_is_labelled_and_readable_at_20_classes(make_kiosk, qtbot, size, artifacts):
    kiosk = make_kiosk(size=size)
    panel = kiosk.window.training
    panel.show_evaluation(evaluation(20), tuple(range(20)))
    view, area = panel.evaluation, panel.evaluation_area
    # Taller than its panel: it scrolls.
    qtbot.waitUntil(lambda: view.isVisible() and view.height() > area.viewport().height())
    view.update()
    qtbot.waitUntil(lambda: view.font_px > 0)
    assert view.font_px >= 12 and view.row_px >= 20
    assert "predicted class →" in view.drawn_text and "← true class" in view.drawn_text
    assert [str(i) for i in range(1, 21)] == view.drawn_text[1:61:3]  # numbered rows
    bar = area.verticalScrollBar()
    bar.setValue(bar.maximum())  # the matrix at the bottom, in full
    QApplication.processEvents()
    kiosk.window.grab().save(str(artifacts / f"kiosk_evaluation20_{size[0]}x{size[1]}.png"))
