"""Persistence: one journal format for the autosave and projects, one load, no lost facts.

Each test named after a defect checks what the kiosk keeps survives a restart,
an Open project or a write failure, at the store's own limits.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kiosk.persist.writer as writer_module
from kiosk.learn import TrainingConfig
from kiosk.persist import (
    Autosaver,
    Limits,
    OtherModelError,
    ProjectError,
    export_samples,
    import_image_folder,
    load_project,
    open_project,
    read_journal,
    save_project,
)
from kiosk.persist.journal import STATE
from kiosk.persist.npz import NpzWriter, read_npz
from kiosk.persist.writer import JournalWriter
from kiosk.session import TeachingSession
from kiosk.store import EmbeddingStore, StoreFullError, class_name_key, normalize_class_name
from tests.fakes import FakeExtractor, picture

NAMES = ["Red / blue", "café ☕", "日本語", "x" * 64]


def taught(names=NAMES, per_class: int = 6, train: bool = True, **kwargs) -> TeachingSession:
    session = TeachingSession(FakeExtractor(), **kwargs)
    for c, name in enumerate(names):
        index = session.add_class(name)
        for k in range(per_class):
            session.capture(index, picture(1000 * c + k))
    if train:
        assert not session.train().diverged
    return session


def restored(folder: Path, store: EmbeddingStore | None = None) -> tuple[TeachingSession, object]:
    session = TeachingSession(FakeExtractor(), store)
    report = Autosaver(session, folder).restore()
    return session, report


def assert_same(a: TeachingSession, b: TeachingSession) -> None:
    """Everything a session keeps is equal: classes, samples (all of a sample), head, settings."""
    sa, sb = a.store.snapshot(), b.store.snapshot()
    assert sa.class_names == sb.class_names and sa.class_ids == sb.class_ids
    assert sa.counts() == sb.counts()
    for xs, ys in zip(sa.samples, sb.samples, strict=True):
        for x, y in zip(xs, ys, strict=True):
            assert (x.id, x.class_id, x.image, x.created) == (y.id, y.class_id, y.image, y.created)
            np.testing.assert_array_equal(x.embedding, y.embedding)
            np.testing.assert_array_equal(x.thumbnail, y.thumbnail)
            assert (x.flipped is None) == (y.flipped is None)
            if x.flipped is not None:
                np.testing.assert_array_equal(x.flipped, y.flipped)
    assert a.settings == b.settings
    assert (a.head is None) == (b.head is None)
    if a.head is not None and b.head is not None:
        ha, hb = a.head, b.head
        np.testing.assert_array_equal(ha.model.weights, hb.model.weights)
        np.testing.assert_array_equal(ha.model.biases, hb.model.biases)
        assert (ha.model.logit_min, ha.model.logit_max) == (hb.model.logit_min, hb.model.logit_max)
        assert ha.class_ids == hb.class_ids and ha.sample_ids == hb.sample_ids
        assert ha.settings == hb.settings and ha.gate == hb.gate
        assert ha.mirrored_counts == hb.mirrored_counts
        assert (ha.evaluation is None) == (hb.evaluation is None)
        if ha.evaluation is not None and hb.evaluation is not None:
            np.testing.assert_array_equal(ha.evaluation.confusion, hb.evaluation.confusion)
            assert ha.evaluation.per_class_accuracy == hb.evaluation.per_class_accuracy
        np.testing.assert_array_equal(ha.result.loss_history, hb.result.loss_history)
        assert b.head_is_stale == a.head_is_stale and b.head_is_usable == a.head_is_usable


# -- round trips -----------------------------------------------------------------


def test_autosave_round_trip_keeps_every_fact(tmp_path: Path) -> None:
    session = taught()
    session.set_settings(session.settings.with_config(num_iter=7, reg=0.5))
    session.train()
    saver = Autosaver(session, tmp_path / "a")
    assert saver.restore() is None
    saver.start()
    saver.close()
    back, report = restored(tmp_path / "a")
    assert report.message().startswith("Restored 24 samples in 4 classes and the trained model")
    assert_same(session, back)
    # The folder is this account's only: the samples are photos of visitors.
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o700
    assert {os.stat(p).st_mode & 0o777 for p in (tmp_path / "a").iterdir()} == {0o600}


def test_project_round_trip_keeps_every_fact(tmp_path: Path) -> None:
    session = taught()
    save_project(session, tmp_path / "p")
    assert_same(session, load_project(tmp_path / "p", FakeExtractor()))


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
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    class_names=st.lists(names, min_size=0, max_size=5, unique_by=class_name_key),
    counts=st.lists(st.integers(0, 3), min_size=5, max_size=5),
    train=st.booleans(),
    undo=st.integers(0, 3),
)
@pytest.mark.slow
def test_property_round_trips(tmp_path_factory, class_names, counts, train, undo) -> None:
    session = TeachingSession(FakeExtractor())
    saver = Autosaver(session, tmp_path_factory.mktemp("a"))
    saver.restore()
    saver.start()
    for c, name in enumerate(class_names):
        index = session.add_class(name)
        for k in range(counts[c]):
            session.capture(index, picture(100 * c + k, size=20))
    if train and session.can_train:
        session.train()
    for _ in range(undo):
        session.undo()
    saver.close()
    assert_same(session, restored(saver.folder)[0])
    folder = tmp_path_factory.mktemp("p")
    save_project(session, folder)
    assert_same(session, load_project(folder, FakeExtractor()))


# -- the defects of the first version, one by one -----------------------------------


def test_not_sure_threshold_survives_restart_and_open_project(tmp_path: Path) -> None:
    session = taught()
    threshold = session.head.confidence_threshold
    assert threshold is not None
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    back, _ = restored(tmp_path / "a")
    assert back.head.confidence_threshold == threshold
    assert back.predict(picture(1)).threshold == threshold
    save_project(back, tmp_path / "p")
    opened = load_project(tmp_path / "p", FakeExtractor())
    assert opened.predict(picture(1)).threshold == threshold


def test_reembedded_restore_keeps_the_mirrored_copies(tmp_path: Path) -> None:
    from kiosk.ui.recovery import restore_reembedded  # the window's Edge TPU fall-back path

    session = taught(train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    twin = TeachingSession(FakeExtractor(name="twin.tflite"))
    assert restore_reembedded(twin, tmp_path / "a") == 24
    samples = [s for c in twin.store.snapshot().samples for s in c]
    assert all(s.flipped is not None for s in samples)
    twin.train()
    assert sum(twin.head.mirrored_counts) == 24  # 48 rows: every capture and its mirror


def test_metadata_projects_and_autosave_record_the_settings_trained_with(tmp_path: Path) -> None:
    from kiosk.export import model_metadata

    session = taught(train=False)
    session.set_settings(session.settings.with_config(num_iter=7, reg=0.5))
    session.train()
    info = model_metadata(session.head, ["a", "b", "c", "d"], session.extractor, "kiosk")
    assert (info["training"]["config"]["num_iter"], info["training"]["config"]["reg"]) == (7, 0.5)
    save_project(session, tmp_path / "p")
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    for folder in (tmp_path / "p", tmp_path / "a"):
        state = json.loads((folder / STATE).read_text())
        assert state["settings"]["config"]["num_iter"] == 7
        assert state["head"]["settings"]["config"]["reg"] == 0.5


def test_unchanged_settings_follow_todays_defaults(tmp_path: Path) -> None:
    session = taught(train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    from kiosk.learn.recipe import TrainingSettings

    defaults = TrainingSettings(config=TrainingConfig(num_iter=9))
    back = TeachingSession(FakeExtractor(), settings=defaults)
    Autosaver(back, tmp_path / "a").restore()
    assert back.settings == defaults  # the config file changed: its defaults apply


def test_a_failed_head_write_never_pairs_new_classes_with_old_weights(
    tmp_path: Path, monkeypatch
) -> None:
    session = taught()
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    assert saver.flush()
    old_head = session.head
    session.add_class("new")
    for k in range(6):
        session.capture(4, picture(9000 + k))
    real = writer_module.write_head

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module, "write_head", disk_full)
    session.train()  # a head of five classes, which cannot be written
    assert not saver.flush()
    assert "No space left" in saver.error
    assert not saver.flush() and saver.error  # still failing: the error stays
    back, _ = restored(tmp_path / "a")
    # Restored: the old head with its own classes, never the old weights under new ones.
    assert back.head.class_ids == old_head.class_ids
    np.testing.assert_array_equal(back.head.model.weights, old_head.model.weights)
    monkeypatch.setattr(writer_module, "write_head", real)
    assert saver.flush() and saver.error is None
    saver.close()
    back, _ = restored(tmp_path / "a")
    assert back.head.num_classes == 5 and not back.head_is_stale


def test_lower_limits_hold_samples_on_disk_instead_of_deleting_them(tmp_path: Path) -> None:
    session = taught(["a", "b"], per_class=10, train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    small = EmbeddingStore(12, max_samples_per_class=4)
    back, report = restored(tmp_path / "a", small)
    assert back.store.counts() == [4, 4] and report.held == 12
    assert "12 more samples" in report.message() and "max_samples_per_class" in report.message()
    # The oldest samples are the ones loaded.
    assert [s.id for s in back.store.samples(0)] == [s.id for s in session.store.samples(0)[:4]]
    # Working on goes on writing the journal; the held samples stay on disk.
    smaller = TeachingSession(FakeExtractor(), EmbeddingStore(12, max_samples_per_class=4))
    saver = Autosaver(smaller, tmp_path / "a")
    saver.restore()
    saver.start()
    with pytest.raises(StoreFullError):
        smaller.capture(1, picture(77))
    smaller.rename_class(1, "b renamed")
    saver.close()
    again, report = restored(tmp_path / "a")
    assert again.store.counts() == [10, 10] and report.held == 0
    assert again.store.class_names == ["a", "b renamed"]


def test_limits_by_bytes_keep_every_class_alive(tmp_path: Path) -> None:
    session = taught(["a", "b", "c"], per_class=8, train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    per_sample = session.store.nbytes // 24
    back, report = restored(tmp_path / "a", EmbeddingStore(12, max_bytes=per_sample * 7))
    assert back.store.counts() == [3, 2, 2] or sorted(back.store.counts()) == [2, 2, 3]
    assert report.held == 24 - sum(back.store.counts())


def test_open_project_beyond_the_limits_changes_nothing(tmp_path: Path) -> None:
    save_project(taught(["a", "b"], per_class=10), tmp_path / "p")
    small = TeachingSession(FakeExtractor(), EmbeddingStore(12, max_samples_per_class=5))
    small.add_class("mine")
    small.capture(0, picture(1))
    small.capture(0, picture(2))
    before = small.store.snapshot().samples
    with pytest.raises(ProjectError, match="at most 5"):
        load_project(tmp_path / "p", FakeExtractor(), session=small)
    assert small.store.class_names == ["mine"] and small.store.snapshot().samples == before
    assert small.history.can_undo  # not even the history was touched


def test_save_project_refuses_the_autosave_and_foreign_folders(tmp_path: Path) -> None:
    session = taught(train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    before = sorted(p.name for p in (tmp_path / "a").iterdir())
    with pytest.raises(ProjectError, match="autosave"):
        save_project(session, tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == before
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.txt").write_text("mine")
    with pytest.raises(ProjectError, match="not empty and is not a project"):
        save_project(session, tmp_path / "docs")
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["thesis.txt"]


def test_saving_again_removes_only_what_the_project_named(tmp_path: Path) -> None:
    session = taught()
    folder = tmp_path / "p"
    save_project(session, folder)
    (folder / "notes.txt").write_text("the operator's own file")
    (folder / "seg-99999999.npz").write_bytes(b"not named by the project")
    first = sorted(p.name for p in folder.iterdir())
    session.capture(0, picture(4242))
    save_project(session, folder)
    names = sorted(p.name for p in folder.iterdir())
    assert "notes.txt" in names and "seg-99999999.npz" in names
    assert len(names) == len(first)  # one segment and one head replaced theirs
    assert load_project(folder, FakeExtractor()).store.counts()[0] == 7


def test_capture_times_survive_restore_and_open(tmp_path: Path) -> None:
    session = taught(["a", "b"], per_class=2, train=False)
    times = [s.created for c in session.store.snapshot().samples for s in c]
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    back, _ = restored(tmp_path / "a")
    assert [s.created for c in back.store.snapshot().samples for s in c] == times
    save_project(back, tmp_path / "p")
    opened = load_project(tmp_path / "p", FakeExtractor())
    assert [s.created for c in opened.store.snapshot().samples for s in c] == times


def test_other_models_projects_are_refused_or_reembedded(tmp_path: Path) -> None:
    session = taught()
    save_project(session, tmp_path / "p")
    other = FakeExtractor(name="other.tflite")
    with pytest.raises(OtherModelError, match="re-embed") as refused:
        open_project(tmp_path / "p", other)
    assert refused.value.model_name == "fake.tflite" and refused.value.num_samples == 24
    contents = open_project(tmp_path / "p", other, reembed=True)
    assert contents.head is None and contents.num_samples == 24
    assert all(s.flipped is not None for c in contents.classes for s in c.samples)


# -- the journal's cost follows the change ---------------------------------------------


def test_a_one_sample_flush_writes_one_row_and_a_small_state(tmp_path: Path) -> None:
    session = taught(["a", "b"], per_class=200, train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    assert saver.flush()
    state_size = (tmp_path / "a" / STATE).stat().st_size
    segments = set((tmp_path / "a").glob("seg-*.npz"))
    session.capture(0, picture(5))
    assert saver.flush()
    (new,) = set((tmp_path / "a").glob("seg-*.npz")) - segments
    assert len(read_npz(new, {"ids": ("i", 1)}, 1 << 30)["ids"]) == 1
    # The state record does not list samples: its size does not follow the store's.
    assert (tmp_path / "a" / STATE).stat().st_size < state_size + 200
    assert state_size < 4000
    saver.close()


def test_compaction_streams_and_keeps_what_changes_meanwhile(tmp_path: Path, monkeypatch) -> None:
    session = taught(["a", "b"], per_class=40, train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    assert saver.flush()
    session.clear_class(0)
    assert saver.flush()
    journal = saver.journal
    real = writer_module.write_segment_from_files
    during: list[int] = []

    def slow_compaction(*args, **kwargs):
        # A capture and a delete land, and are flushed, while the compaction writes.
        during.append(session.capture(1, picture(31337)))
        session.store.remove_samples([session.store.samples(1)[0].id])
        assert saver.flush()
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_module, "write_segment_from_files", slow_compaction)
    assert journal.compact()
    saver.close()
    assert len(list((tmp_path / "a").glob("seg-*.npz"))) <= 2
    back, _ = restored(tmp_path / "a")
    assert back.store.counts() == [0, 40]
    assert during[0] in [s.id for s in back.store.samples(1)]
    assert_same(session, back)


def test_temporaries_left_by_a_kill_are_removed_at_the_next_start(tmp_path: Path) -> None:
    session = taught(train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    leftovers = [".seg-00000099.npz.abc.tmp", ".journal.json.xyz.tmp", "seg-00000098.npz"]
    for name in leftovers:
        (tmp_path / "a" / name).write_bytes(b"half written")
    (tmp_path / "a" / "operator-notes.txt").write_text("not ours")
    _, report = restored(tmp_path / "a")
    assert report.samples == 24
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert not names & set(leftovers) and "operator-notes.txt" in names


def test_a_damaged_autosave_is_moved_aside_and_the_kiosk_starts_fresh(tmp_path: Path) -> None:
    session = taught(train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    (segment,) = (tmp_path / "a").glob("seg-*.npz")
    segment.write_bytes(segment.read_bytes()[:5000])  # a truncated segment
    back, report = restored(tmp_path / "a")
    assert report.moved_to is not None and report.moved_to.is_dir()
    assert str(report.moved_to) in report.message() and "started fresh" in report.message()
    assert back.store.num_classes == 0 and not (tmp_path / "a").exists()
    # Nothing to restore at the next start: no crash loop.
    assert restored(tmp_path / "a")[1] is None


def test_names_an_older_version_accepted_are_cleaned_not_lost(tmp_path: Path) -> None:
    session = taught(["a", "b"], per_class=2, train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    state = json.loads((tmp_path / "a" / STATE).read_text())
    state["classes"][0]["name"] = "b\u200b"  # zero width: now refused, and "b" once cleaned
    (tmp_path / "a" / STATE).write_text(json.dumps(state))
    back, report = restored(tmp_path / "a")
    assert report.moved_to is None and back.store.counts() == [2, 2]
    assert back.store.class_names == ["b", "b (2)"]


def test_another_models_autosave_is_kept_aside_not_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    first = taught(["a"], per_class=3, train=False)
    saver = Autosaver(first, folder)
    saver.start()
    saver.close()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    second = TeachingSession(FakeExtractor(name="other.tflite"))
    other = Autosaver(second, folder)
    with pytest.raises(OtherModelError, match="kept"):
        other.restore()
    other.start()
    second.add_class("b")
    second.capture(0, picture(1))
    other.close()
    assert other.kept_aside is not None and other.kept_aside.parent == tmp_path
    assert {p.name: p.read_bytes() for p in other.kept_aside.iterdir()} == before
    old, _ = restored(other.kept_aside)
    assert old.store.class_names == ["a"] and old.store.counts() == [3]


def test_undo_of_a_delete_puts_the_samples_back_without_rewriting_them(tmp_path: Path) -> None:
    session = taught(train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    assert saver.flush()
    segments = sorted(p.name for p in (tmp_path / "a").glob("seg-*.npz"))
    session.remove_class(1)
    assert saver.flush()
    session.undo()
    assert saver.flush()
    assert sorted(p.name for p in (tmp_path / "a").glob("seg-*.npz")) == segments
    saver.close()
    assert_same(session, restored(tmp_path / "a")[0])


def test_import_is_one_step_all_or_nothing(tmp_path: Path) -> None:
    source = taught(["a", "b"], per_class=3, train=False)
    assert export_samples(source, tmp_path / "images") == 6
    (tmp_path / "images" / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    session = taught(["b"], per_class=1, train=False)
    report = import_image_folder(session, tmp_path / "images")
    assert report.added == {"a": 3, "b": 3} and len(report.skipped) == 1
    assert session.store.class_names == ["b", "a"] and session.store.counts() == [4, 3]
    session.undo()
    assert session.store.class_names == ["b"] and session.store.counts() == [1]
    full = TeachingSession(FakeExtractor(), EmbeddingStore(12, max_samples_per_class=2))
    report = import_image_folder(full, tmp_path / "images")
    assert report.left_out == 2 and "at most 2" in report.message()
    assert full.store.counts() == [2, 2]


# -- format ------------------------------------------------------------------------


def test_npz_headers_are_checked_before_anything_is_allocated(tmp_path: Path) -> None:
    path = tmp_path / "seg-00000001.npz"
    with NpzWriter(path) as out:
        out.write("ids", np.arange(3))
    assert read_npz(path, {"ids": ("i", 1)}, 1 << 30)["ids"].tolist() == [0, 1, 2]
    # A header claiming 10^12 elements over a few bytes of data: refused, not allocated.
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ids.npy", header.getvalue() + b"\0" * 24)
    with pytest.raises(ProjectError, match="does not match"):
        read_npz(path, {"ids": ("i", 1)}, 1 << 30)
    # A zip bomb: a member that declares more bytes than allowed.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ids.npy", header.getvalue() + b"\0" * 50_000_000)
    with pytest.raises(ProjectError, match="more than allowed"):
        read_npz(path, {"ids": ("i", 1)}, 1 << 20)
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(ProjectError, match="not a regular file"):
        read_npz(fifo, {"ids": ("i", 1)}, 1 << 30)


@pytest.mark.slow
def test_a_thousand_classes_round_trip(tmp_path: Path) -> None:
    session = TeachingSession(FakeExtractor())
    sample = taught(["x"], per_class=1, train=False).store.samples(0)[0]
    session.extend([(f"class {i}", [sample]) for i in range(1000)])
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    back, report = restored(tmp_path / "a")
    assert report.classes == 1000 and back.store.counts() == [1] * 1000


def test_reader_refuses_a_journal_claiming_too_many_classes(tmp_path: Path) -> None:
    session = taught(["a"], per_class=1, train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    saver.close()
    state = json.loads((tmp_path / "a" / STATE).read_text())
    state["classes"] = [{"id": i, "name": f"c{i}"} for i in range(40_000)]
    (tmp_path / "a" / STATE).write_text(json.dumps(state))
    with pytest.raises(ProjectError, match="at most"):
        read_journal(tmp_path / "a", FakeExtractor(), limits=Limits(10, 1 << 30))


def test_journal_refuses_an_unknown_role() -> None:
    with pytest.raises(ValueError):
        JournalWriter(TeachingSession(FakeExtractor()), Path("."), role="backup")


def test_store_full_is_a_clear_error() -> None:
    session = taught(["a", "b"], per_class=1, train=False)
    session.store.max_bytes = session.store.nbytes
    with pytest.raises(StoreFullError, match="full"):
        session.capture(0, picture(9))


def test_contents_are_values() -> None:
    contents = taught(["a", "b"], per_class=1).contents()
    with pytest.raises(dataclasses.FrozenInstanceError):
        contents.head = None  # type: ignore[misc]


def test_an_undo_while_a_flush_writes_is_not_lost(tmp_path: Path, monkeypatch) -> None:
    import threading

    session = taught(["a", "b"], per_class=2, train=False)
    saver = Autosaver(session, tmp_path / "a")
    saver.start()
    assert saver.flush()
    session.capture(0, picture(500))  # pending: the next flush writes it
    real = writer_module.write_json
    started = threading.Event()
    undoer: list[threading.Thread] = []

    def write_while_undoing(*args, **kwargs):
        if not undoer:  # another thread takes the capture back while the state is written
            thread = threading.Thread(target=lambda: (started.set(), session.undo()))
            undoer.append(thread)
            thread.start()
            assert started.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_module, "write_json", write_while_undoing)
    assert saver.flush()
    undoer[0].join(10)
    monkeypatch.setattr(writer_module, "write_json", real)
    saver.close()
    assert session.store.counts() == [2, 2]
    assert restored(tmp_path / "a")[0].store.counts() == [2, 2]
