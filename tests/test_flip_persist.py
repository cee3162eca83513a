"""Mirrored (flip_augment) embeddings survive project save/load and autosave restore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kiosk.autosave import Autosaver
from kiosk.persist import ProjectError, read_npz
from kiosk.project import load_project, save_project
from kiosk.session import TeachingSession
from tests.fakes import FakeExtractor, picture


def taught(per_class: int = 3) -> TeachingSession:
    session = TeachingSession(FakeExtractor())
    for c, name in enumerate(("a", "b")):
        index = session.store.add_class(name)
        for k in range(per_class):
            session.capture(index, picture(100 * c + k))
    return session


def mirrored_in_order(session: TeachingSession) -> list[np.ndarray]:
    """The mirrored embedding of every sample, in class then capture order."""
    flipped = session.flipped_embeddings()
    return [flipped[s.id] for samples in session.store.snapshot().samples for s in samples]


def assert_same_mirrors(a: TeachingSession, b: TeachingSession) -> None:
    left, right = mirrored_in_order(a), mirrored_in_order(b)
    assert len(left) == len(right) == sum(a.store.counts())
    for x, y in zip(left, right, strict=True):
        np.testing.assert_array_equal(x, y)


def _strip_flipped(path: Path) -> None:
    """Rewrite an npz as a kiosk from before the mirrored copies were saved would."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k not in ("flipped", "has_flipped")}
    np.savez(path, **arrays)


def test_project_round_trip_keeps_mirrored_embeddings(tmp_path: Path) -> None:
    session = taught()
    save_project(session, tmp_path / "p")
    (samples_file,) = (tmp_path / "p").glob("samples-*.npz")
    arrays = read_npz(samples_file, {"flipped": ("f", 2), "has_flipped": ("b", 1)})
    assert arrays["has_flipped"].all() and arrays["flipped"].shape == (6, 12)
    loaded = TeachingSession(FakeExtractor())
    loaded.flip_augment = False  # nothing may be re-created: the copies come from the file
    load_project(tmp_path / "p", FakeExtractor(), session=loaded)
    assert_same_mirrors(session, loaded)


def test_old_project_gets_its_mirrors_recreated_from_the_images(tmp_path: Path) -> None:
    session = taught()
    save_project(session, tmp_path / "p")
    for path in (tmp_path / "p").glob("samples-*.npz"):
        _strip_flipped(path)
    loaded = load_project(tmp_path / "p", FakeExtractor())
    assert_same_mirrors(session, loaded)  # exact: the same decoded JPEG is mirrored
    off = TeachingSession(FakeExtractor())
    off.flip_augment = False
    load_project(tmp_path / "p", FakeExtractor(), session=off)
    assert off.flipped_embeddings() == {}  # without flip_augment: trains on originals only


def test_damaged_mirror_arrays_are_a_clear_error(tmp_path: Path) -> None:
    session = taught()
    save_project(session, tmp_path / "p")
    (path,) = (tmp_path / "p").glob("samples-*.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["has_flipped"] = arrays["has_flipped"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(ProjectError, match="has_flipped"):
        load_project(tmp_path / "p", FakeExtractor())


def test_autosave_restore_keeps_mirrored_embeddings(tmp_path: Path) -> None:
    session = taught()
    saver = Autosaver(session, tmp_path, interval=0.05)
    saver.start()
    session.store.undo_last()
    session.capture(0, picture(7))
    saver.close()
    back = TeachingSession(FakeExtractor())
    back.flip_augment = False
    Autosaver(back, tmp_path).restore()
    assert_same_mirrors(session, back)


def test_autosave_without_mirrors_recreates_them(tmp_path: Path) -> None:
    session = taught()
    saver = Autosaver(session, tmp_path, interval=0.05)
    saver.start()
    saver.close()
    for path in tmp_path.glob("seg-*.npz"):
        _strip_flipped(path)
    back = TeachingSession(FakeExtractor())
    Autosaver(back, tmp_path).restore()
    assert_same_mirrors(session, back)
    assert back.train().train_accuracy is not None


def test_observe_gives_prediction_and_novelty_from_one_embedding() -> None:
    session = TeachingSession(FakeExtractor())
    assert session.observe(picture(1)) == (None, None)  # nothing stored: not even embedded
    session.store.add_class("a")
    session.capture(0, picture(1))
    prediction, novelty = session.observe(picture(1))
    assert prediction is None  # one class: nothing to tell apart
    assert novelty == pytest.approx(0.0, abs=0.02)
    far = session.observe(picture(999))[1]
    assert far is not None and far > novelty
    session.capture(0, picture(999))  # the cached matrix follows the store
    assert session.observe(picture(999))[1] == pytest.approx(0.0, abs=0.02)
