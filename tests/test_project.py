"""Projects: round trips, refusal of foreign embeddings, broken folders, write failures."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.project import (
    MANIFEST,
    ProjectError,
    export_samples,
    import_image_folder,
    load_project,
    read_project,
    save_project,
)
from kiosk.session import TeachingSession
from kiosk.store import StoreFullError, class_name_key, normalize_class_name
from tests.fakes import FakeExtractor, picture

NAMES = ["Red / blue", "café ☕", "日本語", "x" * 64]


def taught(names=NAMES, per_class: int = 4, train: bool = True) -> TeachingSession:
    session = TeachingSession(FakeExtractor())
    for c, name in enumerate(names):
        index = session.store.add_class(name)
        for k in range(per_class):
            session.capture(index, picture(1000 * c + k))
    if train:
        assert not session.train().diverged
    return session


def assert_same(a: TeachingSession, b: TeachingSession) -> None:
    sa, sb = a.store.snapshot(), b.store.snapshot()
    assert sa.class_names == sb.class_names
    assert sa.counts() == sb.counts()
    for xs, ys in zip(sa.samples, sb.samples, strict=True):
        for x, y in zip(xs, ys, strict=True):
            np.testing.assert_array_equal(x.embedding, y.embedding)
            np.testing.assert_array_equal(x.thumbnail, y.thumbnail)
            assert x.image == y.image


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    session = taught()
    save_project(session, tmp_path / "p")
    loaded = load_project(tmp_path / "p", FakeExtractor())
    assert_same(session, loaded)
    head, back = session.head, loaded.head
    assert back is not None and head is not None
    np.testing.assert_array_equal(head.model.weights, back.model.weights)
    np.testing.assert_array_equal(head.model.biases, back.model.biases)
    assert back.model.logit_min == head.model.logit_min
    assert back.model.logit_max == head.model.logit_max
    assert loaded.head_is_usable and not loaded.head_is_stale
    assert loaded.config == session.config
    frame = picture(3)
    assert loaded.predict(frame).class_index == session.predict(frame).class_index


def test_saving_again_replaces_and_cleans_up(tmp_path: Path) -> None:
    session = taught(train=False)
    save_project(session, tmp_path)
    session.store.add_class("more")
    save_project(session, tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and MANIFEST in files  # manifest + one samples file, no head
    assert read_project(tmp_path).class_names[-1] == "more"


def test_load_into_existing_session_replaces_its_contents(tmp_path: Path) -> None:
    save_project(taught(), tmp_path)
    other = taught(["a", "b"], per_class=2)
    load_project(tmp_path, other.extractor, session=other)
    assert other.store.class_names == NAMES
    assert other.head_is_usable and not other.head_is_stale


def test_other_extractor_is_refused_or_reembedded(tmp_path: Path) -> None:
    session = taught()
    save_project(session, tmp_path)
    other = FakeExtractor(name="other.tflite")
    with pytest.raises(ProjectError, match="re-embed"):
        load_project(tmp_path, other)
    loaded = load_project(tmp_path, other, reembed=True)
    assert loaded.head is None  # trained on the other model's embeddings
    # The session embeds the decoded JPEG, so re-embedding is exact.
    assert_same(session, loaded)
    wrong_size = FakeExtractor(feature_dim=9)
    with pytest.raises(ProjectError):
        load_project(tmp_path, wrong_size)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text("utf-8"))


def _break(folder: Path, how: str) -> None:
    manifest = _manifest(folder)
    samples = folder / manifest["samples"]["file"]
    if how == "no manifest":
        (folder / MANIFEST).unlink()
    elif how == "bad json":
        (folder / MANIFEST).write_text("{not json", "utf-8")
    elif how == "not an object":
        (folder / MANIFEST).write_text("[1, 2]", "utf-8")
    elif how == "newer version":
        manifest["version"] = 99
        (folder / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    elif how == "missing samples":
        samples.unlink()
    elif how == "truncated npz":
        samples.write_bytes(samples.read_bytes()[:500])
    elif how == "escape path":
        manifest["samples"]["file"] = "../../etc/passwd"
        (folder / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    elif how == "wrong head shape":
        manifest["head"]["classes"] = manifest["head"]["classes"][:2]
        (folder / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    elif how == "missing key":
        del manifest["classes"]
        (folder / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    elif how == "duplicate names":
        manifest["classes"][1]["name"] = manifest["classes"][0]["name"]
        (folder / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    elif how == "wrong embedding size":
        with np.load(samples) as archive:
            arrays = dict(archive)
        arrays["embeddings"] = arrays["embeddings"][:, :5]
        np.savez(samples, **arrays)


@pytest.mark.parametrize(
    "how",
    [
        "no manifest",
        "bad json",
        "not an object",
        "newer version",
        "missing samples",
        "truncated npz",
        "escape path",
        "wrong head shape",
        "missing key",
        "duplicate names",
        "wrong embedding size",
    ],
)
def test_broken_folder_gives_a_clear_error_and_changes_nothing(tmp_path: Path, how: str) -> None:
    save_project(taught(), tmp_path)
    _break(tmp_path, how)
    target = taught(["keep me", "and me"], per_class=2)
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path, target.extractor, session=target)
    assert str(info.value)
    assert target.store.class_names == ["keep me", "and me"]
    assert target.store.counts() == [2, 2]


def test_failed_save_keeps_the_earlier_project(tmp_path: Path, monkeypatch) -> None:
    session = taught()
    save_project(session, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    session.store.add_class("new")
    real_replace = os.replace

    def disk_full(src, dst):
        if str(dst).endswith(MANIFEST):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(ProjectError, match="disk is full"):
        save_project(session, tmp_path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert read_project(tmp_path).class_names == NAMES


def test_read_only_folder_is_reported(tmp_path: Path, monkeypatch) -> None:
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(ProjectError, match="not writable"):
        save_project(taught(train=False), tmp_path)


def test_export_then_import_round_trip(tmp_path: Path) -> None:
    session = taught(train=False)
    assert export_samples(session, tmp_path / "out") == 16
    folders = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "Red _ blue" in folders and "日本語" in folders
    fresh = TeachingSession(FakeExtractor())
    report = import_image_folder(fresh, tmp_path / "out")
    assert report.total == 16 and not report.skipped
    assert sorted(fresh.store.counts()) == [4, 4, 4, 4]
    # Exported images are the stored model inputs; importing JPEG-encodes them once
    # more, which moves a pixel by at most a level or two.
    by_name = dict(zip(fresh.store.class_names, range(4), strict=True))
    np.testing.assert_allclose(
        fresh.store.embeddings(by_name["日本語"]), session.store.embeddings(2), atol=3 / 255
    )


def test_import_skips_bad_files_and_stops_when_full(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for k in range(3):
            import cv2

            cv2.imwrite(str(tmp_path / name / f"{k}.png"), picture(k))
    (tmp_path / "a" / "junk.jpg").write_bytes(b"not an image")
    session = TeachingSession(FakeExtractor())
    session.store.max_samples_per_class = 2
    report = import_image_folder(session, tmp_path)
    assert [p.name for p in report.skipped] == []
    assert report.stopped is not None and "most a class" in report.stopped
    session.store.max_samples_per_class = 10
    report = import_image_folder(session, tmp_path)
    assert [p.name for p in report.skipped] == ["junk.jpg"]
    with pytest.raises(ProjectError):
        import_image_folder(session, tmp_path / "missing")


def test_store_full_error_type() -> None:
    session = taught(["a", "b"], per_class=1, train=False)
    session.store.max_bytes = session.store.nbytes
    with pytest.raises(StoreFullError, match="full"):
        session.capture(0, picture(9))


def _valid_name(text: str) -> bool:
    try:
        normalize_class_name(text)
    except ValueError:
        return False
    return True


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Co", "Zl", "Zp", "Cs")),
    min_size=1,
    max_size=64,
).filter(_valid_name)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    class_names=st.lists(names, min_size=0, max_size=5, unique_by=class_name_key),
    counts=st.lists(st.integers(0, 3), min_size=5, max_size=5),
    train=st.booleans(),
)
def test_property_round_trip(tmp_path_factory, class_names, counts, train) -> None:
    folder = tmp_path_factory.mktemp("p")
    session = TeachingSession(FakeExtractor())
    for c, name in enumerate(class_names):
        index = session.store.add_class(name)
        for k in range(counts[c]):
            session.capture(index, picture(100 * c + k, size=20))
    if train and session.can_train:
        session.train()
    save_project(session, folder)
    loaded = load_project(folder, FakeExtractor())
    assert_same(session, loaded)
    assert (loaded.head is None) == (session.head is None)
    if loaded.head is not None:
        assert not loaded.head_is_stale and loaded.head_is_usable
