"""Autosave: journal, restore, crash leftovers, write failures, and a real kill -9."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kiosk.autosave import STATE, Autosaver, default_autosave_dir
from kiosk.persist import ProjectError
from kiosk.session import TeachingSession
from tests.fakes import FakeExtractor, picture

ROOT = Path(__file__).resolve().parents[1]


def capture(session: TeachingSession, index: int, n: int, seed: int = 0) -> None:
    for k in range(n):
        session.capture(index, picture(seed + 100 * index + k))


def restored(folder: Path) -> tuple[TeachingSession, object]:
    session = TeachingSession(FakeExtractor())
    report = Autosaver(session, folder).restore()
    return session, report


def test_default_folder_honours_the_environment(tmp_path: Path) -> None:
    assert default_autosave_dir({"KIOSK_DATA_DIR": str(tmp_path)}) == tmp_path / "autosave"
    assert default_autosave_dir({}).name == "autosave"


def test_nothing_to_restore(tmp_path: Path) -> None:
    assert restored(tmp_path)[1] is None


def test_changes_are_journaled_and_restored(tmp_path: Path) -> None:
    session = TeachingSession(FakeExtractor())
    saver = Autosaver(session, tmp_path, interval=0.05)
    saver.start()
    a, b = session.store.add_class("a"), session.store.add_class("b / ü")
    capture(session, a, 5)
    capture(session, b, 4)
    session.train()
    session.store.undo_last()
    session.store.rename_class(a, "renamed")
    session.store.add_class("empty")
    saver.close()
    back, report = restored(tmp_path)
    assert report.samples == 8 and report.classes == 3 and report.head
    assert "Restored 8 samples in 3 classes" in report.message()
    assert back.store.class_names == ["renamed", "b / ü", "empty"]
    for i in range(2):
        np.testing.assert_array_equal(back.store.embeddings(i), session.store.embeddings(i))
    # The undo happened after training: the head is restored, and stale as it was.
    assert back.head_is_usable and back.head_is_stale == session.head_is_stale
    np.testing.assert_array_equal(back.head.model.weights, session.head.model.weights)
    frame = picture(7)
    assert back.predict(frame).class_index == session.predict(frame).class_index


def test_restored_session_keeps_journaling(tmp_path: Path) -> None:
    session = TeachingSession(FakeExtractor())
    saver = Autosaver(session, tmp_path)
    capture(session, session.store.add_class("a"), 3)
    saver.flush()
    back = TeachingSession(FakeExtractor())
    saver2 = Autosaver(back, tmp_path)
    saver2.restore()
    saver2.start()
    capture(back, 0, 2, seed=50)
    back.store.remove_sample(back.store.samples(0)[0].id)
    saver2.close()
    again, report = restored(tmp_path)
    assert report.samples == 4
    np.testing.assert_array_equal(again.store.embeddings(0), back.store.embeddings(0))


def test_compaction_drops_dead_rows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("kiosk.autosave.MAX_SEGMENTS", 3)
    session = TeachingSession(FakeExtractor())
    saver = Autosaver(session, tmp_path)
    a = session.store.add_class("a")
    for round_ in range(6):
        capture(session, a, 2, seed=10 * round_)
        saver.flush()
    segments = json.loads((tmp_path / STATE).read_text())["segments"]
    assert len(segments) <= 3
    assert len(list(tmp_path.glob("seg-*.npz"))) == len(segments)
    back, report = restored(tmp_path)
    assert report.samples == 12
    np.testing.assert_array_equal(back.store.embeddings(0), session.store.embeddings(0))


def test_crash_leftovers_are_ignored_and_removed(tmp_path: Path) -> None:
    session = TeachingSession(FakeExtractor())
    saver = Autosaver(session, tmp_path)
    capture(session, session.store.add_class("a"), 3)
    saver.flush()
    # What a kill between writing a segment and the state leaves behind.
    (tmp_path / "seg-99999999.npz").write_bytes(b"half a segment")
    (tmp_path / ".state.json.abc.tmp").write_bytes(b"{")
    _, report = restored(tmp_path)
    assert report.samples == 3
    assert not (tmp_path / "seg-99999999.npz").exists()
    assert not (tmp_path / ".state.json.abc.tmp").exists()


def test_write_failure_is_reported_and_keeps_the_last_good_state(
    tmp_path: Path, monkeypatch
) -> None:
    errors: list[str | None] = []
    session = TeachingSession(FakeExtractor())
    saver = Autosaver(session, tmp_path, on_error=errors.append)
    capture(session, session.store.add_class("a"), 3)
    assert saver.flush()
    real_replace = os.replace

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", disk_full)
    capture(session, 0, 2, seed=40)
    assert not saver.flush()
    assert saver.error and "No space left" in saver.error and errors[-1] == saver.error
    assert restored(tmp_path)[1].samples == 3  # the earlier state is intact
    monkeypatch.setattr(os, "replace", real_replace)
    assert saver.flush() and saver.error is None and errors[-1] is None
    assert restored(tmp_path)[1].samples == 5


def test_damaged_state_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    session = TeachingSession(FakeExtractor())
    saver = Autosaver(session, tmp_path)
    capture(session, session.store.add_class("a"), 3)
    saver.flush()
    (tmp_path / STATE).write_text("{broken", "utf-8")
    target = TeachingSession(FakeExtractor())
    target.store.add_class("keep")
    with pytest.raises(ProjectError):
        Autosaver(target, tmp_path).restore()
    assert target.store.class_names == ["keep"]


def test_other_extractor_is_refused(tmp_path: Path) -> None:
    session = TeachingSession(FakeExtractor())
    saver = Autosaver(session, tmp_path)
    capture(session, session.store.add_class("a"), 2)
    saver.flush()
    other = TeachingSession(FakeExtractor(name="other.tflite"))
    with pytest.raises(ProjectError, match="different model"):
        Autosaver(other, tmp_path).restore()


def test_kill_9_during_capture_and_training_loses_at_most_a_second(
    tmp_path: Path, cpu_extractor_path: Path
) -> None:
    from kiosk.embedding import EmbeddingExtractor

    folder, log = tmp_path / "autosave", tmp_path / "log.txt"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.autosave_child", str(cpu_extractor_path), str(folder),
         str(log)],
        cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = log.read_text().split() if log.exists() else []
            if len(lines) >= 2 * 60:  # 60+ captures: well past the training at 20
                break
            time.sleep(0.05)
        else:
            pytest.fail("the child made no captures")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    entries = [line.split() for line in log.read_text().splitlines() if len(line.split()) == 2]
    captured, killed_at = int(entries[-1][0]), float(entries[-1][1])
    captured_by = {int(n): float(t) for n, t in entries}
    session = TeachingSession(EmbeddingExtractor(cpu_extractor_path, num_threads=2))
    report = Autosaver(session, folder).restore()
    assert report is not None and report.head
    assert session.head_is_usable
    assert report.samples <= captured
    # Everything captured more than a second before the kill is on disk.
    older = sum(1 for t in captured_by.values() if t < killed_at - 1.0)
    assert report.samples >= older, (report.samples, older, captured)
    assert session.store.class_names == ["red", "blue"]


def test_a_refused_autosave_is_kept_aside_not_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "autosave"
    first = TeachingSession(FakeExtractor())
    saver = Autosaver(first, folder)
    capture(first, first.store.add_class("a"), 3)
    saver.flush()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    # Another model refuses it; the new session then autosaves in the same place.
    second = TeachingSession(FakeExtractor(name="other.tflite"))
    other = Autosaver(second, folder)
    with pytest.raises(ProjectError, match="kept"):
        other.restore()
    capture(second, second.store.add_class("b"), 2)
    assert other.flush()
    assert other.kept_aside is not None and other.kept_aside.parent == tmp_path
    assert {p.name: p.read_bytes() for p in other.kept_aside.iterdir()} == before
    # The folder now holds the new session only, and the old one still restores.
    third = TeachingSession(FakeExtractor(name="other.tflite"))
    Autosaver(third, folder).restore()
    assert third.store.class_names == ["b"] and third.store.counts() == [2]
    old = TeachingSession(FakeExtractor())
    Autosaver(old, other.kept_aside).restore()
    assert old.store.class_names == ["a"] and old.store.counts() == [3]


def test_starting_fresh_keeps_the_previous_autosave(tmp_path: Path) -> None:
    folder = tmp_path / "autosave"
    first = TeachingSession(FakeExtractor())
    saver = Autosaver(first, folder)
    capture(first, first.store.add_class("a"), 2)
    saver.flush()
    fresh = Autosaver(TeachingSession(FakeExtractor()), folder)  # restore() never called
    assert fresh.flush()
    assert fresh.kept_aside is not None and (fresh.kept_aside / STATE).is_file()
