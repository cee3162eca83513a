"""Named places: listing, names, and nothing outside the roots."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from kiosk.places import (
    Entry,
    PlaceError,
    Places,
    check_name,
    describe_image_folder,
    describe_project,
    propose_name,
)


@pytest.fixture
def places(tmp_path) -> Places:
    media = tmp_path / "media"
    (media / "kiosk" / "STICK").mkdir(parents=True)  # /media/<user>/<label>
    (media / "BACKUP").mkdir()  # /media/<label>
    (media / "kiosk" / "not-mounted").mkdir()
    mounts = {media / "kiosk" / "STICK", media / "BACKUP"}
    return Places(
        tmp_path / "models",
        tmp_path / "projects",
        media_roots=[media, tmp_path / "no-run-media"],
        is_mount=lambda path: path in mounts,
    )


def write_project(folder: Path, classes: int, samples: int, saved: float = 1.7e9) -> None:
    folder.mkdir(parents=True)
    manifest = {
        "format": "kiosk-project",
        "version": 1,
        "saved_at": saved,
        "classes": [{"name": f"c{i}"} for i in range(classes)],
        "samples": {"file": "samples-x.npz", "count": samples},
        "extractor": {"name": "mobilenet.tflite"},
        "head": None,
    }
    (folder / "project.json").write_text(json.dumps(manifest))


def test_places_are_the_two_folders_and_mounted_drives(places, tmp_path):
    labels = [place.label for place in places.all()]
    assert labels == ["Models", "Projects", "USB: BACKUP", "USB: STICK"]
    assert [p.removable for p in places.all()] == [False, False, True, True]
    places.ensure(places.models)
    assert (tmp_path / "models").is_dir()
    assert (tmp_path / "models").stat().st_mode & 0o777 == 0o700


def test_proposed_names_are_dated_and_free():
    now = dt.datetime(2026, 12, 1, 14, 32)
    assert propose_name("model", [], now) == "model-2026-12-01-1432"
    taken = ["MODEL-2026-12-01-1432", "model-2026-12-01-1432-2"]
    assert propose_name("model", taken, now) == "model-2026-12-01-1432-3"


@pytest.mark.parametrize(
    "name", ["", "  ", "..", ".", ".hidden", "a/b", "../x", "a\\b", "x" * 65, "a\nb", "\u200b"]
)
def test_bad_names_are_refused_with_a_message(name):
    with pytest.raises(PlaceError) as error:
        check_name(name)
    assert str(error.value) and "\n" not in str(error.value)


def test_targets_never_leave_the_place(places, tmp_path):
    models = places.models
    places.ensure(models)
    assert places.target(models, " fruit ") == tmp_path / "models" / "fruit"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "models" / "link").symlink_to(outside)
    with pytest.raises(PlaceError):
        places.target(models, "link")
    with pytest.raises(PlaceError):
        places.target(models, "x", folder=tmp_path)
    with pytest.raises(PlaceError):
        places.check_inside("/")
    with pytest.raises(PlaceError):
        places.entries(models, "models", folder=tmp_path)
    assert places.place_of(tmp_path / "models" / "fruit") == models
    assert places.place_of(Path.home() / ".config") is None


def test_models_list_with_classes_and_samples(places, tmp_path, cpu_extractor_path):
    from kiosk.learn.metadata import embed_metadata

    places.ensure(places.models)
    folder = tmp_path / "models" / "fruit"
    folder.mkdir()
    model = embed_metadata(
        cpu_extractor_path.read_bytes(),
        {"schema": 1, "class_names": ["apple", "pear"], "sample_counts": [12, 9]},
    )
    (folder / "model.tflite").write_bytes(model)
    (tmp_path / "models" / "loose.tflite").write_bytes(b"not a model")
    (tmp_path / "models" / "empty-folder").mkdir()
    (tmp_path / "models" / "notes.txt").write_text("not a model")
    os.utime(tmp_path / "models" / "loose.tflite", (1e9, 1e9))
    os.utime(tmp_path / "models" / "empty-folder", (1.5e9, 1.5e9))
    entries = places.entries(places.models, "models")
    assert [(e.name, e.kind, e.classes, e.samples) for e in entries] == [
        ("fruit", "model", 2, 21),
        ("empty-folder", "folder", None, None),  # to go into: models can sit deeper
        ("loose.tflite", "model", None, None),
    ]
    assert entries[0].detail() == "2 classes · 21 samples"
    assert entries[2].date_text() == dt.datetime.fromtimestamp(1e9).strftime("%Y-%m-%d %H:%M")


def test_home_and_computer_are_offered_apart_from_the_kiosk_places(places, tmp_path):
    home, computer = places.computer()
    assert (home.key, home.label, home.path, home.kind) == ("home", "Home", Path.home(), "computer")
    assert (computer.label, computer.path) == ("Computer", Path("/"))
    assert not {home.key, computer.key} & {p.key for p in places.all()}
    assert places.place_of(Path.home() / ".config") is None  # the kiosk's own check
    places.ensure(home)
    places.ensure(computer)
    assert not (tmp_path / "models").exists()  # ensure creates only the kiosk's folders
    (tmp_path / "set" / "cat").mkdir(parents=True)
    (tmp_path / "set" / "cat" / "a.jpg").write_bytes(b"")
    listed = {
        e.name: (e.kind, e.classes, e.samples)
        for e in places.entries(computer, "folders", tmp_path)
    }
    assert listed["set"] == ("folder", 1, 1)


def test_without_a_home_folder_the_computer_is_still_offered(places, monkeypatch):
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert [(p.label, p.path) for p in places.computer()] == [("Computer", Path("/"))]


def test_projects_list_from_their_manifests(places, tmp_path):
    root = tmp_path / "projects"
    write_project(root / "booth", 3, 45, saved=1.8e9)
    write_project(root / "older", 1, 1, saved=1.6e9)
    (root / "plain").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "project.json").write_text("{not json")
    (root / ".hidden").mkdir()
    entries = places.entries(places.projects, "projects")
    kinds = {e.name: (e.kind, e.detail()) for e in entries}
    assert kinds == {
        "booth": ("project", "3 classes · 45 samples"),
        "older": ("project", "1 class · 1 sample"),
        "plain": ("folder", ""),
        "broken": ("folder", ""),
    }
    assert entries[0].name == "booth"  # newest first
    summary = describe_project(root / "booth")
    assert summary is not None and summary.saved == dt.datetime.fromtimestamp(1.8e9)
    assert describe_project(root / "plain") is None
    assert describe_project(tmp_path / "missing") is None


def test_manifest_that_is_a_fifo_or_huge_is_not_read(tmp_path):
    fifo_project = tmp_path / "fifo"
    fifo_project.mkdir()
    os.mkfifo(fifo_project / "project.json")
    assert describe_project(fifo_project) is None
    huge = tmp_path / "huge"
    huge.mkdir()
    with open(huge / "project.json", "wb") as handle:
        handle.truncate(64 * 2**20)
    assert describe_project(huge) is None


def test_image_sets_on_a_drive(places, tmp_path):
    drive = next(p for p in places.drives() if p.label == "USB: STICK")
    dataset = drive.path / "fruit"
    for name, count in (("apple", 3), ("pear", 2)):
        (dataset / name).mkdir(parents=True)
        for i in range(count):
            (dataset / name / f"{i}.jpg").write_bytes(b"x")
    (dataset / "notes").mkdir()
    (dataset / "notes" / "readme.txt").write_text("hi")
    assert describe_image_folder(dataset) == (2, 5)
    (entry,) = places.entries(drive, "folders")
    assert entry == Entry("fruit", dataset, "folder", entry.modified, 2, 5)
    assert places.target(drive, "kiosk-export") == drive.path / "kiosk-export"
