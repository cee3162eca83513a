"""A kiosk session that never stops, to be killed with SIGKILL (tests/test_kill.py, bench/).

Usage: python -m tests.kill_child MODEL FOLDER OUTPUT LOG [SEED]

Captures demo frames into two classes through the real extractor with the
autosave on (compaction made frequent), undoes a capture now and then, trains
now and then, and saves a model now and then. Every event goes to LOG as one
fsynced line, "<event> <time> <details>":

    capture <t> <sample id>        the sample is in the session
    removed <t> <sample id>        it was undone
    flushed <t0> <t1>              a flush that started at t0 succeeded at t1
    head <t> <fingerprint> <ids>   a new head (fingerprint of its weights, its class ids)
    compact-start <t> / compact-end <t>
    save-start <t> / save-end <t>
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from typing import Any

import kiosk.persist.writer as writer
from kiosk.embedding import EmbeddingExtractor
from kiosk.persist import Autosaver
from kiosk.session import TeachingSession
from kiosk.vision.demo import DemoScene


def fingerprint(head: Any) -> str:
    """What identifies a head: its weights and biases."""
    digest = hashlib.sha256(head.model.weights.tobytes() + head.model.biases.tobytes())
    return digest.hexdigest()[:16]


def main() -> None:
    model, folder, output, log_path = sys.argv[1:5]
    rng = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    # Compact all the time, so kills land in compactions too.
    writer.MAX_SEGMENTS = 3
    writer.MIN_DEAD_TO_COMPACT = 2
    log = open(log_path, "w", buffering=1)  # noqa: SIM115 (open until killed)

    def say(*parts: object) -> None:
        log.write(" ".join(str(p) for p in parts) + "\n")
        os.fsync(log.fileno())

    session = TeachingSession(EmbeddingExtractor(model, num_threads=1))
    saver = Autosaver(session, folder, interval=0.4)
    flush, compact = saver.flush, saver.journal.compact

    def logged_flush() -> bool:
        started = time.time()
        ok = flush()
        if ok:
            say("flushed", f"{started:.4f}", f"{time.time():.4f}")
        return ok

    def logged_compact() -> bool:
        say("compact-start", f"{time.time():.4f}")
        done = compact()
        say("compact-end", f"{time.time():.4f}")
        return done

    saver.flush = logged_flush  # type: ignore[method-assign]
    saver.journal.compact = logged_compact  # type: ignore[method-assign]
    saver.restore()
    saver.start()
    for name in ("red", "blue"):
        session.add_class(name)
    scene = DemoScene(seed=0)
    k = 0
    while True:
        index = k % 2
        sample_id = session.capture(index, scene.render(0.1 * k, index, k), group=k)
        say("capture", f"{time.time():.4f}", sample_id)
        k += 1
        if k % 7 == 0:
            step = session.undo()
            if step is not None:
                for sample in getattr(step, "samples", []):
                    say("removed", f"{time.time():.4f}", sample.id)
        if k % 25 == 0:
            session.train()
            head = session.head
            say("head", f"{time.time():.4f}", fingerprint(head), ",".join(map(str, head.class_ids)))
        if k % 30 == 0 and session.head_is_usable and not session.head_is_stale:
            say("save-start", f"{time.time():.4f}")
            staged = session.stage_save(os.path.join(output, "model.tflite"))
            session.commit_save(staged)
            say("save-end", f"{time.time():.4f}")
        time.sleep(rng.uniform(0, 0.02))


if __name__ == "__main__":
    main()
