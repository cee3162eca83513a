"""Projects in the window: the Project panel, save/open, import/export, store limits."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect

from kiosk.learn import DEFAULT_TRAINING
from kiosk.store import EmbeddingStore
from kiosk.ui import dialogs, project_menu
from kiosk.ui.app import build
from kiosk.ui.controller import AppState, store_full_message
from kiosk.ui.places_view import PlaceChoice
from kiosk.ui.project_menu import ROW_PX, MenuPanel
from kiosk.vision.sources import DemoSource
from tests.conftest import CORE50
from tests.fakes import picture

FAST = dataclasses.replace(DEFAULT_TRAINING, num_iter=20)


def wait_idle(qtbot, controller, timeout: int = 60_000) -> None:
    """Wait until the running project task (if any) has finished."""
    qtbot.waitUntil(lambda: controller.state != AppState.WORKING, timeout=timeout)


def capture_two_classes(controller, n: int = 3) -> None:
    for k in range(n):
        controller.session.capture(0, picture(k))
        controller.session.capture(1, picture(100 + k))


def train(qtbot, controller) -> None:
    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000):
        assert controller.train()
    assert controller.state == AppState.TRAINED


def last_message(controller):
    seen: list[tuple[str, str]] = []
    controller.message.connect(lambda text, level: seen.append((text, level)))
    return seen


@pytest.fixture
def core50_subset(tmp_path) -> Path:
    """Two CORe50 classes of three images each, and one file that is not an image."""
    root = tmp_path / "dataset"
    for name in ("cup", "ball"):
        (root / name).mkdir(parents=True)
        for path in sorted((CORE50 / name).glob("*.png"))[:3]:
            shutil.copyfile(path, root / name / path.name)
    (root / "cup" / "broken.png").write_bytes(b"not a picture")
    return root


def test_menu_panel_is_touch_sized_and_fits_800x480(make_kiosk, qtbot, artifacts):
    kiosk = make_kiosk(size=(800, 480))
    window = kiosk.window
    button = window.menu_button
    assert button.isVisible() and button.isEnabled()
    assert button.height() >= 48
    assert window.rect().contains(QRect(button.mapTo(window, QPoint(0, 0)), button.size()))
    window.grab().save(str(artifacts / "kiosk_menu_button_800x480.png"))

    panel = MenuPanel(window)
    panel.show()
    qtbot.waitExposed(panel)
    try:
        rows = [*panel.rows, panel.cancel_button]
        assert [b.text() for b in panel.rows] == [
            "Save project…",
            "Open project…",
            "Import images…",
            "Export samples…",
            "Settings…",
            "Full screen",
            "Quit",
        ]
        assert all(b.height() >= ROW_PX >= 48 and b.isVisible() for b in rows)
        assert panel.height() <= 480 and panel.width() <= 800
        panel.grab().save(str(artifacts / "kiosk_menu_panel_800x480.png"))
        with qtbot.waitSignal(panel.finished):
            panel.open_button.click()
        assert panel.choice == "open_project"
    finally:
        panel.deleteLater()


@pytest.mark.slow
def test_save_project_then_open_it_in_a_fresh_kiosk(make_kiosk, qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "booth-project"
    first = make_kiosk(config=FAST)
    controller = first.controller
    capture_two_classes(controller)
    controller.session.store.rename_class(0, "Mug")
    controller.session.store.rename_class(1, "Ball ⚽")
    train(qtbot, controller)
    # Through the menu, as the operator does it: pick the row, then the place.
    monkeypatch.setattr(project_menu, "ask_menu_action", lambda parent, kiosk: "save_project")
    projects = first.window.places.projects
    monkeypatch.setattr(dialogs, "ask_place", lambda *a, **k: PlaceChoice(projects, folder))
    seen = last_message(controller)
    first.window.menu_button.click()
    assert controller.state == AppState.WORKING
    assert seen[-1][1] == "busy" and "Saving the project" in seen[-1][0]
    wait_idle(qtbot, controller)
    assert seen[-1] == (f"Saved the project (6 samples in 2 classes) to {folder}", "ok")
    assert (folder / "journal.json").is_file()

    second = make_kiosk()
    other = second.controller
    assert other.session.store.counts() == [0, 0]
    seen = last_message(other)
    assert second.window.project.open_project(folder)
    wait_idle(qtbot, other)
    assert other.session.store.class_names == ["Mug", "Ball ⚽"]
    assert other.session.store.counts() == [3, 3]
    assert other.state == AppState.TRAINED
    assert "live predictions are on" in seen[-1][0]
    # Predictions resume straight away: no training needed.
    with qtbot.waitSignal(
        other.predictionChanged, check_params_cb=lambda p: p is not None, timeout=10_000
    ):
        pass


def _retag(folder: Path, name: str = "other_edgetpu.tflite") -> None:
    manifest = json.loads((folder / "journal.json").read_text())
    manifest["extractor"].update(name=name, sha256="0" * 64)
    (folder / "journal.json").write_text(json.dumps(manifest))


@pytest.mark.slow
def test_open_a_project_from_another_extractor(make_kiosk, qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "tpu-project"
    source = make_kiosk(config=FAST)
    capture_two_classes(source.controller)
    train(qtbot, source.controller)
    assert source.window.project.save_project(folder)
    wait_idle(qtbot, source.controller)
    _retag(folder)

    kiosk = make_kiosk()
    controller = kiosk.controller
    seen = last_message(controller)
    questions: list[str] = []

    def decline(parent, title, text, **kwargs):
        questions.append(title)
        return False

    monkeypatch.setattr(dialogs, "ask_confirm", decline)
    kiosk.window.project.open_project(folder)
    wait_idle(qtbot, controller)
    assert questions == ["Re-embed 6 samples with this model?"]
    assert "Not opened" in seen[-1][0] and "other_edgetpu.tflite" in seen[-1][0]
    assert controller.session.store.counts() == [0, 0]

    monkeypatch.setattr(dialogs, "ask_confirm", lambda *a, **k: True)
    kiosk.window.project.open_project(folder)
    qtbot.waitUntil(lambda: "re-embedded" in seen[-1][0], timeout=60_000)
    wait_idle(qtbot, controller)
    assert controller.session.store.counts() == [3, 3]
    assert controller.state == AppState.IDLE  # the head was the other model's: train again
    # The same embeddings the original session had (it used this very model).
    expected = source.controller.session.store.snapshot().samples[0][0].embedding
    stored = controller.session.store.snapshot().samples[0][0].embedding
    assert np.allclose(stored, expected, atol=1e-5)


def test_a_project_without_images_is_refused_clearly(make_kiosk, qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "no-images"
    source = make_kiosk()
    store = source.controller.session.store
    for _ in range(2):
        store.add_sample(0, np.ones(store.feature_dim, np.float32), np.zeros((8, 8, 3), np.uint8))
    source.window.project.save_project(folder)
    wait_idle(qtbot, source.controller)
    _retag(folder)
    kiosk = make_kiosk()
    seen = last_message(kiosk.controller)
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *a, **k: pytest.fail("asked"))
    kiosk.window.project.open_project(folder)
    wait_idle(qtbot, kiosk.controller)
    assert "no stored images to re-embed" in seen[-1][0] and seen[-1][1] == "error"
    assert kiosk.controller.session.store.counts() == [0, 0]


def test_import_a_folder_then_export_it(make_kiosk, qtbot, tmp_path, core50_subset, heartbeat):
    kiosk = make_kiosk()
    controller = kiosk.controller
    seen = last_message(controller)
    heartbeat.start()
    assert kiosk.window.project.import_images(core50_subset)
    assert controller.state == AppState.WORKING
    assert not kiosk.window.menu_button.isEnabled()
    wait_idle(qtbot, controller)
    heartbeat.stop()
    assert seen[-1] == (
        "Imported 6 images into 2 classes, skipped 1 unreadable files (Undo takes it back)",
        "ok",
    )
    store = controller.session.store
    assert store.class_names == ["Class 1", "Class 2", "ball", "cup"]
    assert store.counts() == [0, 0, 3, 3]
    # Embedding ran on the task thread: the GUI kept ticking meanwhile.
    assert heartbeat.beats >= 2

    out = tmp_path / "exported"
    assert kiosk.window.project.export_samples(out)
    wait_idle(qtbot, controller)
    assert seen[-1] == (f"Exported 6 sample images to {out}", "ok")
    assert sorted(p.name for p in out.iterdir()) == ["Class 1", "Class 2", "ball", "cup"]
    assert len(list((out / "cup").glob("*.jpg"))) == 3


def test_a_burst_stops_at_the_per_class_cap_and_says_how_to_raise_it(qtbot, extractor):
    kiosk = build(extractor, DemoSource(), max_samples_per_class=3, burst_hz=30)
    qtbot.addWidget(kiosk.window)
    controller = kiosk.controller
    try:
        assert controller.session.store.max_samples_per_class == 3
        controller.start()
        seen = last_message(controller)
        controller.begin_capture(0)  # held down: a burst
        assert controller.state == AppState.CAPTURING
        qtbot.waitUntil(lambda: controller.state != AppState.CAPTURING, timeout=10_000)
        assert controller.session.store.counts()[0] == 3
        errors = [text for text, level in seen if level == "error"]
        assert errors and "max_samples_per_class" in errors[-1]
        assert "--max-samples-per-class" in errors[-1] and "3 samples a class" in errors[-1]
        controller.end_capture()  # the finger comes up later: nothing happens
        assert controller.state == AppState.IDLE
    finally:
        kiosk.close()


def test_the_memory_cap_message_names_its_setting(extractor) -> None:
    store = EmbeddingStore(extractor.feature_dim, max_bytes=32 * 2**20)
    store.add_class()
    text = store_full_message(store, 0, "The store is full (32 MiB of 32 MiB)")
    assert "max_memory_mb" in text and "--max-memory-mb" in text and "32 MB" in text


def test_build_passes_the_memory_cap_to_the_store(qtbot, extractor) -> None:
    kiosk = build(extractor, DemoSource(), max_samples_per_class=7, max_memory_mb=64)
    qtbot.addWidget(kiosk.window)
    try:
        store = kiosk.controller.session.store
        assert (store.max_samples_per_class, store.max_bytes) == (7, 64 * 2**20)
    finally:
        kiosk.close()
