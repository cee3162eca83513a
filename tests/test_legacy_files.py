"""Files written by kiosk 0.1 (project and autosave version 1) open in this version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kiosk.persist import Autosaver, ProjectError, load_project, save_project
from kiosk.session import TeachingSession
from tests.fakes import FakeExtractor, picture


def _v1_samples(session: TeachingSession, keys: list[int], mirrored: bool) -> dict:
    """The version-1 sample arrays of every sample, in class then capture order."""
    samples = [s for c in session.store.snapshot().samples for s in c]
    images = [s.image or b"" for s in samples]
    offsets = np.zeros(len(samples) + 1, np.int64)
    offsets[1:] = np.cumsum([len(i) for i in images])
    arrays = {
        "keys": np.array(keys, np.int64),
        "embeddings": np.stack([s.embedding for s in samples]),
        "thumbnails": np.stack([s.thumbnail for s in samples]),
        "image_data": np.frombuffer(b"".join(images), np.uint8),
        "image_offsets": offsets,
        "created": np.array([s.created for s in samples]),
    }
    if mirrored:
        arrays["flipped"] = np.stack([s.flipped for s in samples])
        arrays["has_flipped"] = np.ones(len(samples), bool)
    return arrays


def _extractor_entry(session: TeachingSession) -> dict:
    extractor = session.extractor
    return {"name": extractor.model_path.name, "sha256": extractor.sha256, "feature_dim": 12}


def _head_facts(session: TeachingSession) -> dict:
    head = session.head
    result = head.result
    return {
        "logit_min": head.model.logit_min,
        "logit_max": head.model.logit_max,
        "weight_scale": 0.0,
        "reg": 0.0,
        "trained_names": list(head.trained_names),
        "trained_at": head.trained_at,
        "result": {
            "iterations": result.iterations,
            "num_iter": result.num_iter,
            "loss": result.loss,
            "train_accuracy": result.train_accuracy,
            "val_accuracy": result.val_accuracy,
            "seconds": result.seconds,
            "optimizer": result.optimizer,
        },
    }


def _taught() -> TeachingSession:
    session = TeachingSession(FakeExtractor())
    for c, name in enumerate(("red", "blue")):
        index = session.add_class(name)
        for k in range(3):
            session.capture(index, picture(50 * c + k))
    session.train()
    return session


def write_v1_project(session: TeachingSession, folder: Path, mirrored: bool) -> None:
    folder.mkdir()
    counts = session.store.counts()
    keys = [c for c, n in enumerate(counts) for _ in range(n)]
    arrays = _v1_samples(session, keys, mirrored)
    arrays["trained"] = np.ones(len(keys), bool)
    np.savez(folder / "samples-ab12.npz", **arrays)
    np.savez(
        folder / "head-ab12.npz",
        weights=session.head.model.weights,
        biases=session.head.model.biases,
        loss_history=session.head.result.loss_history,
    )
    manifest = {
        "format": "kiosk-project",
        "version": 1,
        "saved_at": 1.0,
        "extractor": _extractor_entry(session),
        "classes": [{"name": n} for n in session.store.class_names],
        "samples": {"file": "samples-ab12.npz", "count": len(keys)},
        "head": {"file": "head-ab12.npz", "classes": [0, 1], **_head_facts(session)},
        "training": {"config": {"num_iter": 11}, "val_fraction": 0.2, "seed": 3},
    }
    (folder / "project.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("mirrored", [True, False])
def test_a_version_1_project_opens_with_its_head_and_mirrors(
    tmp_path: Path, mirrored: bool
) -> None:
    session = _taught()
    write_v1_project(session, tmp_path / "old", mirrored)
    opened = load_project(tmp_path / "old", FakeExtractor())
    assert opened.store.class_names == ["red", "blue"] and opened.store.counts() == [3, 3]
    assert opened.head_is_usable and not opened.head_is_stale
    assert opened.settings.config.num_iter == 11 and opened.settings.seed == 3
    for old, new in zip(session.store.samples(0), opened.store.samples(0), strict=True):
        np.testing.assert_array_equal(old.flipped, new.flipped)  # kept or re-created
        assert old.created == new.created
    # Saving again writes the journal format and drops the old files it named.
    save_project(opened, tmp_path / "old")
    names = sorted(p.name for p in (tmp_path / "old").iterdir())
    assert "project.json" not in names and "journal.json" in names
    assert load_project(tmp_path / "old", FakeExtractor()).store.counts() == [3, 3]


def test_a_version_1_autosave_is_restored_and_kept_whole(tmp_path: Path) -> None:
    session = _taught()
    folder = tmp_path / "autosave"
    folder.mkdir()
    np.savez(folder / "seg-00000001.npz", **_v1_samples(session, list(range(6)), True))
    state = {
        "format": "kiosk-autosave",
        "version": 1,
        "extractor": _extractor_entry(session),
        "segments": ["seg-00000001.npz"],
        "classes": [
            {"id": 5, "name": "red", "samples": [[0, 0], [0, 1], [0, 2]]},
            {"id": 9, "name": "blue", "samples": [[0, 3], [0, 4], [0, 5]]},
        ],
        "head": None,
        "training": None,
    }
    (folder / "state.json").write_text(json.dumps(state))
    back = TeachingSession(FakeExtractor())
    saver = Autosaver(back, folder)
    report = saver.restore()
    assert report.samples == 6 and "older autosave" in report.message()
    assert back.store.class_names == ["red", "blue"]
    saver.start()
    saver.close()
    assert saver.kept_aside is not None and (saver.kept_aside / "state.json").exists()
    assert Autosaver(TeachingSession(FakeExtractor()), folder).restore().samples == 6


def test_a_damaged_version_1_project_is_a_clear_error(tmp_path: Path) -> None:
    session = _taught()
    write_v1_project(session, tmp_path / "old", True)
    (tmp_path / "old" / "samples-ab12.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ProjectError, match=r"samples-ab12\.npz"):
        load_project(tmp_path / "old", FakeExtractor())
