"""Every guarded action in kiosk mode, without the PIN (refused, nothing changes) and with it.

What a visitor may do without the PIN (capture, train, save a new model to the
models folder, undo their own recent captures) is tested to never ask. No stock
file dialog is ever created: files go through the places browser, which offers
Home and Computer outside kiosk mode only.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from kiosk.learn import DEFAULT_TRAINING
from kiosk.persist import save_project
from kiosk.pin import hash_pin
from kiosk.places import describe_project
from kiosk.ui import dialogs, project_menu
from kiosk.ui.controller import AppState
from kiosk.ui.places_view import PlaceChoice, PlacesDialog
from tests.conftest import CORE50
from tests.fakes import picture

PIN = "2468"
PIN_HASH = hash_pin(PIN)
FAST = dataclasses.replace(DEFAULT_TRAINING, num_iter=20)


class PinPad:
    """Stands in for ``dialogs.ask_pin``: answers from a list (then cancels), records titles."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.titles: list[str] = []

    def __call__(self, parent, title: str, error: str | None = None) -> str | None:
        self.titles.append(title)
        return self.answers.pop(0) if self.answers else None


def capture(controller, class_index: int, n: int = 3, seed: int = 0) -> None:
    """``n`` real captures (MobileNet embeddings of small pictures) into a class."""
    for k in range(n):
        controller.session.capture(class_index, picture(seed + 100 * class_index + k))


def wait_idle(qtbot, controller) -> None:
    qtbot.waitUntil(
        lambda: controller.state not in (AppState.WORKING, AppState.SAVING), timeout=60_000
    )


def train(qtbot, controller) -> None:
    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000):
        assert controller.train()


def choose(monkeypatch, choice: PlaceChoice) -> None:
    monkeypatch.setattr(dialogs, "ask_place", lambda *a, **k: choice)


# Each guarded action: (what the PIN pad says, set up -> (do it, did it happen?)).
Setup = Callable[..., tuple[Callable[[], object], Callable[[], bool]]]


def delete_class(kiosk, qtbot, monkeypatch, tmp_path):
    return lambda: kiosk.window.classes.delete(1), lambda: kiosk.controller.class_count() == 1


def clear_class(kiosk, qtbot, monkeypatch, tmp_path):
    counts = kiosk.controller.session.store.counts
    return lambda: kiosk.window.classes.clear(0), lambda: counts()[0] == 0


def rename_class(kiosk, qtbot, monkeypatch, tmp_path):
    monkeypatch.setattr(dialogs, "ask_text", lambda *a, **k: "Mug")
    store = kiosk.controller.session.store
    card = kiosk.window.classes.cards[0]

    def act() -> None:
        qtbot.mouseClick(card.name_button, Qt.MouseButton.LeftButton)

    return act, lambda: store.class_names[0] == "Mug"


def settings(kiosk, qtbot, monkeypatch, tmp_path):
    chosen = dataclasses.replace(FAST, num_iter=77)
    monkeypatch.setattr(dialogs, "ask_settings", lambda *a: chosen)
    monkeypatch.setattr(project_menu, "ask_menu_action", lambda parent, kiosk: "edit_settings")
    button = kiosk.window.menu_button
    return lambda: qtbot.mouseClick(
        button, Qt.MouseButton.LeftButton
    ), lambda: kiosk.controller.training_config.num_iter == 77


def save_project_(kiosk, qtbot, monkeypatch, tmp_path):
    places = kiosk.window.places
    folder = places.projects_dir / "booth"
    choose(monkeypatch, PlaceChoice(places.projects, folder))

    def act() -> None:
        kiosk.window.project.save_project()
        wait_idle(qtbot, kiosk.controller)

    return act, lambda: describe_project(folder) is not None


def open_project(kiosk, qtbot, monkeypatch, tmp_path):
    places = kiosk.window.places
    folder = places.projects_dir / "other"
    other = kiosk.controller.session.__class__(kiosk.controller.session.extractor)
    other.store.add_class("Saved A")
    other.store.add_class("Saved B")
    save_project(other, folder)
    choose(monkeypatch, PlaceChoice(places.projects, folder))

    def act() -> None:
        kiosk.window.project.open_project()
        wait_idle(qtbot, kiosk.controller)

    return act, lambda: kiosk.controller.session.store.class_names == ["Saved A", "Saved B"]


def import_images(kiosk, qtbot, monkeypatch, tmp_path):
    drive = tmp_path / "media" / "STICK"
    for name in ("cup", "ball"):
        (drive / "photos" / name).mkdir(parents=True)
        for path in sorted((CORE50 / name).glob("*.png"))[:2]:
            shutil.copyfile(path, drive / "photos" / name / path.name)
    (place,) = kiosk.window.places.drives()
    choose(monkeypatch, PlaceChoice(place, drive / "photos"))

    def act() -> None:
        kiosk.window.project.import_images()
        wait_idle(qtbot, kiosk.controller)

    return act, lambda: "cup" in kiosk.controller.session.store.class_names


def export_samples(kiosk, qtbot, monkeypatch, tmp_path):
    drive = tmp_path / "media" / "STICK"
    drive.mkdir(parents=True)
    (place,) = kiosk.window.places.drives()
    choose(monkeypatch, PlaceChoice(place, drive / "samples"))

    def act() -> None:
        kiosk.window.project.export_samples()
        wait_idle(qtbot, kiosk.controller)

    return act, lambda: len(list((drive / "samples").glob("*/*.jpg"))) == 3


def undo_earlier_work(kiosk, qtbot, monkeypatch, tmp_path):
    controller = kiosk.controller
    controller.reset_recent_work()  # the samples are an earlier visitor's now
    return kiosk.window.undo, lambda: controller.session.store.counts()[0] == 2


def replace_model(kiosk, qtbot, monkeypatch, tmp_path):
    controller = kiosk.controller
    capture(controller, 1)
    train(qtbot, controller)
    controller.output = None  # no configured output: Save asks where
    places = kiosk.window.places
    folder = places.models_dir / "fruit"
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(b"an earlier model")
    choose(monkeypatch, PlaceChoice(places.models, folder, replace=True))

    def act() -> None:
        kiosk.window.save()
        wait_idle(qtbot, controller)

    return act, lambda: (folder / "model.tflite").read_bytes() != b"an earlier model"


def save_model_to_a_drive(kiosk, qtbot, monkeypatch, tmp_path):
    controller = kiosk.controller
    capture(controller, 1)
    train(qtbot, controller)
    controller.output = None  # no configured output: Save asks where
    drive = tmp_path / "media" / "STICK"
    drive.mkdir(parents=True)
    (place,) = kiosk.window.places.drives()
    choose(monkeypatch, PlaceChoice(place, drive / "model-1"))

    def act() -> None:
        kiosk.window.save()
        wait_idle(qtbot, controller)

    return act, lambda: (drive / "model-1" / "model.tflite").is_file()


def quit_by_menu(kiosk, qtbot, monkeypatch, tmp_path):
    monkeypatch.setattr(project_menu, "ask_menu_action", lambda parent, kiosk: "quit")
    button = kiosk.window.menu_button
    return lambda: qtbot.mouseClick(
        button, Qt.MouseButton.LeftButton
    ), lambda: not kiosk.window.isVisible()


def quit_by_key(kiosk, qtbot, monkeypatch, tmp_path):
    window = kiosk.window
    (key,) = [s for s in window._shortcuts if s.key().toString() == "Ctrl+Q"]
    return key.activated.emit, lambda: not window.isVisible()


GUARDED: dict[str, tuple[str, Setup]] = {
    "delete a class": ("delete a class", delete_class),
    "clear a class": ("clear a class", clear_class),
    "rename a class": ("rename a class", rename_class),
    "settings": ("change the settings", settings),
    "save project": ("save the project", save_project_),
    "open project": ("open a project", open_project),
    "import images": ("import images", import_images),
    "export samples": ("export the samples", export_samples),
    "undo earlier work": ("undo earlier work", undo_earlier_work),
    "replace a saved model": ("replace a saved model", replace_model),
    "save a model to a USB drive": ("save outside the models folder", save_model_to_a_drive),
    "quit (Menu)": ("quit the kiosk", quit_by_menu),
    "quit (Ctrl+Q)": ("quit the kiosk", quit_by_key),
}


@pytest.fixture
def locked(make_kiosk, monkeypatch):
    """Kiosk mode with a PIN; three samples in class 1; every confirmation answered yes."""
    kiosk = make_kiosk(fullscreen=True, pin_hash=PIN_HASH, config=FAST)
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *a, **k: True)
    capture(kiosk.controller, 0)
    return kiosk


# A visitor without the PIN is the lock's whole point: every action, in the fast loop too.
@pytest.mark.parametrize(
    "with_pin",
    [
        pytest.param(False, id="without PIN"),
        pytest.param(True, id="with PIN", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("action", list(GUARDED))
def test_guarded_action(locked, qtbot, monkeypatch, tmp_path, action, with_pin):
    title, setup = GUARDED[action]
    act, happened = setup(locked, qtbot, monkeypatch, tmp_path)
    assert not happened()
    pad = PinPad(PIN) if with_pin else PinPad()
    monkeypatch.setattr(dialogs, "ask_pin", pad)
    act()
    assert pad.titles == [f"Operator PIN to {title}"]
    if with_pin:
        qtbot.waitUntil(happened, timeout=60_000)
    else:
        assert not happened()
        assert locked.window.isVisible()


@pytest.mark.slow
def test_a_visitor_never_meets_the_pin(locked, qtbot, monkeypatch):
    kiosk = locked
    window, controller = kiosk.window, kiosk.controller
    monkeypatch.setattr(dialogs, "ask_pin", lambda *a: pytest.fail("a visitor was asked"))
    qtbot.waitUntil(lambda: window.video.has_frame, timeout=5000)
    controller.reset_recent_work()
    for card in window.classes.cards:
        with qtbot.waitSignal(controller.sampleCaptured, timeout=5000):
            qtbot.mouseClick(card.capture_button, Qt.MouseButton.LeftButton)
    capture(controller, 1, seed=7)
    # Undo of the visitor's own captures is free.
    qtbot.mouseClick(window.undo_button, Qt.MouseButton.LeftButton)
    assert controller.session.store.counts() == [4, 3]
    qtbot.mouseClick(window.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: controller.state == AppState.TRAINED, timeout=60_000)
    # Save writes a new model into the models folder, named by the proposal.
    controller.output = None
    from tests.ui.test_operator_lock import accept_proposed_name

    monkeypatch.setattr(dialogs, "ask_place", accept_proposed_name)
    with qtbot.waitSignal(controller.saveFinished, timeout=60_000) as saved:
        qtbot.mouseClick(window.save_button, Qt.MouseButton.LeftButton)
    model = Path(saved.args[0].model_path)
    assert model.name == "model.tflite" and model.parent.name.startswith("model-")
    assert model.parent.parent == window.places.models_dir


@pytest.mark.slow
def test_no_file_dialog_is_ever_created_in_kiosk_mode(locked, qtbot, monkeypatch, tmp_path):
    kiosk = locked
    window, controller = kiosk.window, kiosk.controller
    monkeypatch.setattr(dialogs, "ask_pin", PinPad(PIN))
    browsers: list[PlacesDialog] = []

    def run_modal(dialog) -> bool:
        # The real places browser, without Home and Computer in kiosk mode; cancel it.
        assert isinstance(dialog, PlacesDialog), f"unexpected dialog {dialog.windowTitle()!r}"
        assert [p.kind for p in dialog.offered if p.kind == "computer"] == []
        assert not [w for w in QApplication.allWidgets() if isinstance(w, QFileDialog)]
        browsers.append(dialog)
        return False

    monkeypatch.setattr(dialogs, "run_modal", run_modal)
    capture(controller, 1)
    train(qtbot, controller)
    controller.output = None
    window.save()
    for action in ("save_project", "open_project", "import_images", "export_samples"):
        getattr(window.project, action)()
    assert [b.windowTitle() for b in browsers] == [
        "Save model",
        "Save project",
        "Open project",
        "Import images: a folder with one folder of images per class",
        "Export samples",
    ]
    assert not [w for w in QApplication.allWidgets() if isinstance(w, QFileDialog)]


def _walk_to(dialog: PlacesDialog, folder: Path) -> None:
    """Taps Computer, then one folder row after another down to ``folder``."""
    computer = next(p for p in dialog.offered if p.key == "computer")
    dialog.place_buttons[computer.key].click()
    for part in folder.relative_to(computer.path).parts:
        row = next(r for r in dialog.rows if r.entry.name == part)
        (row.enter_button or row.button).click()
    assert dialog.folder == folder


@pytest.mark.parametrize("show", ["folders", "models"])
def test_home_and_computer_are_places_outside_kiosk_mode(
    make_kiosk, qtbot, monkeypatch, tmp_path, show
):
    """A desk user reaches any folder by taps in the same browser: no stock dialog."""
    kiosk = make_kiosk()
    target = tmp_path / "deeper"
    target.mkdir()
    (target / "not-a-model.txt").write_text("x")
    seen: list[object] = []

    def run_modal(dialog) -> bool:
        seen.append(dialog)
        assert isinstance(dialog, PlacesDialog)
        assert [p.label for p in dialog.offered][-2:] == ["Home", "Computer"]
        _walk_to(dialog, target)
        assert [r.entry.kind for r in dialog.rows] == []  # the text file is no entry
        dialog.ok_button.click()
        return dialog.choice is not None

    monkeypatch.setattr(dialogs, "run_modal", run_modal)
    places = kiosk.window.places
    from kiosk.ui.places_view import PlaceRequest

    request = PlaceRequest("Export", show, (places.projects,), "Export", name_prefix="samples")
    choice = dialogs.ask_place(kiosk.window, places, request, whole_computer=True)
    assert len(seen) == 1
    assert choice is not None and choice.path.parent == target
    assert choice.place.kind == "computer"
    assert choice.path.name.startswith("samples-")
    assert not [w for w in QApplication.allWidgets() if isinstance(w, QFileDialog)]


@pytest.mark.slow
def test_undo_needs_no_auto_repeat_and_older_work_needs_the_pin(locked, qtbot, monkeypatch):
    kiosk = locked
    window, controller = kiosk.window, kiosk.controller
    pad = PinPad()
    monkeypatch.setattr(dialogs, "ask_pin", pad)
    controller.reset_recent_work()
    capture(controller, 1, n=2, seed=3)
    (undo_key,) = [s for s in window._shortcuts if s.key().toString() == "Ctrl+Z"]
    assert not undo_key.autoRepeat()  # holding Ctrl+Z cannot wipe a session
    undo_key.activated.emit()
    undo_key.activated.emit()
    assert controller.session.store.counts() == [3, 0] and pad.titles == []
    undo_key.activated.emit()  # the next step is older than the last Train/Save
    assert controller.session.store.counts() == [3, 0]
    assert pad.titles == ["Operator PIN to undo earlier work"]


@pytest.mark.slow
def test_data_folders_made_by_the_window_are_private(locked, qtbot, monkeypatch):
    kiosk = locked
    places = kiosk.window.places
    from tests.ui.test_operator_lock import accept_proposed_name

    capture(kiosk.controller, 1)
    train(qtbot, kiosk.controller)
    kiosk.controller.output = None
    monkeypatch.setattr(dialogs, "ask_place", accept_proposed_name)
    with qtbot.waitSignal(kiosk.controller.saveFinished, timeout=60_000):
        kiosk.window.save()
    # What the booth taught stays with the kiosk's account.
    assert places.models_dir.stat().st_mode & 0o777 == 0o700
