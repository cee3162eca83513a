"""SIGKILL at any moment, compaction and Save included: what was flushed comes back, and
never a head paired with the wrong classes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiosk.embedding import EmbeddingExtractor
from kiosk.persist import Autosaver
from kiosk.session import TeachingSession
from tests.kill_child import fingerprint

ROOT = Path(__file__).resolve().parents[1]


def read_log(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split() for line in lines if line.strip()]


def run_until(tmp_path: Path, model: Path, moment: str, seed: int) -> list[list[str]]:
    """Start the child and SIGKILL it inside ``moment`` ("compact", "save" or "any")."""
    folder, log = tmp_path / "autosave", tmp_path / "log.txt"
    (tmp_path / "out").mkdir(exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.kill_child", str(model), str(folder), str(tmp_path / "out"),
         str(log), str(seed)],
        cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            events = read_log(log)
            open_ = [e for e in events if e[0].endswith("-start")]
            closed = [e for e in events if e[0].endswith("-end")]
            inside = (
                events
                and events[-1][0] == f"{moment}-start"
                and len(open_) > len(closed)
                and sum(e[0] == "head" for e in events) >= 1
            )
            enough = moment == "any" and sum(e[0] == "capture" for e in events) >= 60 + 7 * seed
            if inside or enough:
                break
            if child.poll() is not None:
                pytest.fail("the child stopped by itself")
            time.sleep(0.002)
        else:
            pytest.fail(f"the child never reached a {moment}")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return read_log(log)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["compact", "save", "any"])
def test_sigkill_loses_only_what_was_not_flushed(
    tmp_path: Path, cpu_extractor_path: Path, extractor: EmbeddingExtractor, moment: str
) -> None:
    events = run_until(tmp_path, cpu_extractor_path, moment, seed=1)
    flushes = [float(e[1]) for e in events if e[0] == "flushed"]
    assert flushes, "no flush finished before the kill"
    last_flush = max(flushes)  # everything in the session when it began is on disk
    captured = {int(e[2]): float(e[1]) for e in events if e[0] == "capture"}
    removed = {int(e[2]): float(e[1]) for e in events if e[0] == "removed"}
    heads = {e[2]: tuple(int(i) for i in e[3].split(",")) for e in events if e[0] == "head"}

    session = TeachingSession(extractor)
    report = Autosaver(session, tmp_path / "autosave").restore()
    assert report is not None and report.moved_to is None
    back = {s.id for c in session.store.snapshot().samples for s in c}
    durable = {
        i for i, t in captured.items() if t < last_flush and removed.get(i, 1e18) >= last_flush
    }
    assert durable <= back, sorted(durable - back)[:10]
    assert not {i for i, t in removed.items() if t < last_flush} & back
    assert back <= set(captured)
    # The restored head is one the session trained, with exactly the classes it had.
    head = session.head
    if head is not None:
        assert fingerprint(head) in heads
        assert head.class_ids == heads[fingerprint(head)]
        assert session.head_is_usable
    assert session.store.class_names == ["red", "blue"]
