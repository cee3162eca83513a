"""How promptly the frame grabber answers while its source is slow, paused or hung.

    python bench/bench_grabber.py [--repeat 20]

The window calls the grabber from the GUI thread (latest frame, error, fps,
retry) and stops it when it closes, so none of these may wait on the camera:

* ``stop()`` with a camera that blocks 50 ms per read, a folder paced at one
  frame per 5 s, and a grabber in a 30 s pause between reopen attempts;
* 100 rounds of every call the GUI makes, while ``read()`` hangs for good,
  and ``stop(0.2)`` giving up on that hung driver;
* ``Pacer.due()`` for a frame not due for 2 s, which must return after its
  ``max_wait`` (20 ms) instead of sleeping until the frame is due.

Each row is measured ``--repeat`` times and the worst is held against the
target. Prints a table; exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kiosk.vision.grabber import FrameGrabber  # noqa: E402
from kiosk.vision.sources import FrameSource, ImageFolderSource, Pacer, SourceError  # noqa: E402
from tests.fakes import HangingSource  # noqa: E402

TARGET_STOP_MS = 500.0  # the window's close waits at most this for the grabber
TARGET_GUI_CALLS_MS = 500.0  # 100 rounds of GUI calls on a hung driver
TARGET_GIVE_UP_MS = 500.0  # stop(0.2) on a hung driver
TARGET_PACER_MS = 200.0  # due() with max_wait 20 ms


class BlockingCamera(FrameSource):
    """A camera whose ``read()`` blocks 50 ms for each frame."""

    def describe(self) -> str:
        return "blocking camera"

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        time.sleep(0.05)
        return np.zeros((16, 16, 3), np.uint8)

    def close(self) -> None:
        pass


class UnpluggedCamera(FrameSource):
    """A camera that is never there: the grabber waits between reopen attempts."""

    def describe(self) -> str:
        return "unplugged camera"

    def open(self) -> None:
        raise SourceError("Camera 7 is not connected")

    def read(self) -> np.ndarray | None:
        return None

    def close(self) -> None:
        pass


def timed(call: Callable[[], object]) -> float:
    """Milliseconds one call takes."""
    started = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - started)


def stop_ms(make_source: Callable[[], FrameSource], **grabber_options: float) -> float:
    """Start a grabber on a fresh source, let it settle, time ``stop()``."""
    grabber = FrameGrabber(make_source(), **grabber_options)
    grabber.start()
    if grabber_options:  # a failing source: wait until it is in its long pause
        while grabber.seconds_until_retry() is None:
            time.sleep(0.005)
    else:
        grabber.wait_for_frame(timeout=5)
    took = timed(grabber.stop)
    if grabber.is_alive():
        raise RuntimeError("the grabber did not stop")
    return took


def hung_driver_ms() -> tuple[float, float]:
    """(100 rounds of GUI calls, stop(0.2)) in ms while ``read()`` hangs."""
    source = HangingSource()
    grabber = FrameGrabber(source)
    grabber.start()
    source.reading.wait(5)

    def gui_calls() -> None:
        for _ in range(100):
            grabber.latest()
            _ = grabber.error, grabber.fps, grabber.frame_count, grabber.stopping
            grabber.seconds_until_retry()
            grabber.retry_now()

    try:
        calls = timed(gui_calls)
        give_up = timed(lambda: grabber.stop(0.2))
    finally:
        source.release.set()
        grabber.join(5)
    return calls, give_up


def pacer_ms() -> float:
    pacer = Pacer(0.5, max_wait=0.02)
    pacer.due()  # the first slot is immediate; the next is 2 s away
    return timed(pacer.due)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        cv2.imwrite(str(Path(folder) / "a.png"), np.full((9, 9, 3), 9, np.uint8))
        runs: dict[str, list[float]] = {
            "stop(): camera blocking 50 ms per read": [],
            "stop(): folder at one frame per 5 s": [],
            "stop(): in a 30 s pause between reopens": [],
        }
        hung_calls: list[float] = []
        hung_give_up: list[float] = []
        pacer: list[float] = []
        for _ in range(args.repeat):
            runs["stop(): camera blocking 50 ms per read"].append(stop_ms(BlockingCamera))
            runs["stop(): folder at one frame per 5 s"].append(
                stop_ms(lambda: ImageFolderSource(folder, fps=0.2))
            )
            runs["stop(): in a 30 s pause between reopens"].append(
                stop_ms(UnpluggedCamera, backoff_initial=30.0, backoff_max=30.0)
            )
            calls, give_up = hung_driver_ms()
            hung_calls.append(calls)
            hung_give_up.append(give_up)
            pacer.append(pacer_ms())

    rows = [(name, times, TARGET_STOP_MS) for name, times in runs.items()]
    rows += [
        ("100 rounds of GUI calls, read() hung", hung_calls, TARGET_GUI_CALLS_MS),
        ("stop(0.2) gives up on a hung read()", hung_give_up, TARGET_GIVE_UP_MS),
        ("Pacer.due() 2 s early, max_wait 20 ms", pacer, TARGET_PACER_MS),
    ]
    table = [("what (ms)", "median", "worst", "target")]
    ok = True
    for name, times, target in rows:
        worst = max(times)
        ok &= worst < target
        table.append((name, f"{statistics.median(times):.1f}", f"{worst:.1f}", f"< {target:g}"))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    print(f"\nframe grabber responsiveness, {args.repeat} runs each")
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
