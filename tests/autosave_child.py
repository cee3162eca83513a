"""Child process for the kill -9 test: capture into an autosaved session until killed.

Usage: python -m tests.autosave_child MODEL FOLDER LOG
Writes "<sample count> <time>" to LOG after every capture (line-buffered, fsynced
enough for the parent to know roughly how many captures were made before the kill).
"""

from __future__ import annotations

import os
import sys
import time

from kiosk.autosave import Autosaver
from kiosk.embedding import EmbeddingExtractor
from kiosk.session import TeachingSession
from kiosk.vision.demo import DemoScene


def main() -> None:
    model, folder, log_path = sys.argv[1:4]
    extractor = EmbeddingExtractor(model, num_threads=1)
    session = TeachingSession(extractor)
    saver = Autosaver(session, folder, interval=0.5)
    saver.start()
    scene = DemoScene(seed=0)
    for name in ("red", "blue"):
        session.store.add_class(name)
    trained = False
    with open(log_path, "w", buffering=1) as log:
        k = 0
        while True:
            index = k % 2
            session.capture(index, scene.render(0.1 * k, index, k))
            k += 1
            log.write(f"{k} {time.time():.3f}\n")
            os.fsync(log.fileno())
            if k == 20 and not trained:
                session.train()  # a head to restore, then captures go on
                trained = True


if __name__ == "__main__":
    main()
