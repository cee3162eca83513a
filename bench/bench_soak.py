"""Soak: the capture and inference pipeline at full speed, watching resident memory.

The equivalent of 30 minutes of a 30 fps camera (54,000 frames) goes through
the real pipeline as fast as it runs:

* a ``FrameGrabber`` over a ``DemoSource`` paced at 120 fps, well above what
  the pipeline takes, so it never waits for a frame (``--source-fps 0``
  renders unpaced, which only burns a core on frames nobody looks at);
* the MobileNet v1 CPU ``EmbeddingExtractor`` (2 threads);
* ``TeachingSession.predict`` on every frame once the first head is trained;
* a capture every 50 frames into the next of four classes, a retrain every
  5,000 frames, and an ``Autosaver`` journaling everything to a temp folder.

Each class is kept at ``--per-class`` samples (the oldest is removed before a
capture beyond it), so the store, and the data the autosave writes, stop
growing after warm-up: what grows after that is a leak, not data. The store's
own growth (``store.nbytes``) is also subtracted from the RSS growth and both
figures are shown.

Resident memory (VmRSS from /proc/self/status) is sampled every 1,000 frames.
Target: RSS at the end at most 5 % above RSS after warm-up (3,000 frames).
Prints a table; exits 1 if the target is missed.

    python bench/bench_soak.py [--frames 54000] [--threads 2] [--model PATH] [--source-fps 120]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("KIOSK_SHARED_DIR", ROOT.parent / "shared")).resolve()
DEFAULT_MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"

from kiosk.embedding import EmbeddingExtractor  # noqa: E402
from kiosk.persist import Autosaver  # noqa: E402
from kiosk.session import TeachingSession  # noqa: E402
from kiosk.store import EmbeddingStore  # noqa: E402
from kiosk.vision.grabber import FrameGrabber  # noqa: E402
from kiosk.vision.sources import DemoSource  # noqa: E402

NUM_CLASSES = 4
TARGET_GROWTH = 0.05


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line in /proc/self/status (not Linux?)")


@dataclass
class Sample:
    """One memory reading."""

    frame: int
    seconds: float
    rss: int
    store: int
    captures: int
    retrains: int


@dataclass
class SoakResult:
    samples: list[Sample]
    warmup_frames: int
    frames: int
    seconds: float
    captures: int
    retrains: int
    autosave_error: str | None

    def at_warmup(self) -> Sample:
        """The first reading at or after the warm-up frame count."""
        return next(s for s in self.samples if s.frame >= self.warmup_frames)

    @property
    def end(self) -> Sample:
        return self.samples[-1]

    @property
    def raw_growth(self) -> float:
        return (self.end.rss - self.at_warmup().rss) / self.at_warmup().rss

    @property
    def net_growth(self) -> float:
        """RSS growth minus the store's own growth (captured data is not a leak)."""
        warm = self.at_warmup()
        return ((self.end.rss - warm.rss) - (self.end.store - warm.store)) / warm.rss

    @property
    def peak(self) -> int:
        return max(s.rss for s in self.samples)


def run(
    model_path: Path = DEFAULT_MODEL,
    *,
    frames: int = 54_000,
    threads: int = 2,
    capture_every: int = 50,
    retrain_every: int = 5_000,
    per_class: int = 15,
    sample_every: int = 1_000,
    warmup_frames: int = 3_000,
    source_fps: float | None = 120.0,
    progress: bool = True,
) -> SoakResult:
    """Push ``frames`` frames through the pipeline; memory readings every ``sample_every``."""
    extractor = EmbeddingExtractor(model_path, num_threads=threads)
    store = EmbeddingStore(extractor.feature_dim)
    session = TeachingSession(extractor, store)
    for _ in range(NUM_CLASSES):
        store.add_class()
    grabber = FrameGrabber(DemoSource(fps=source_fps), name="soak grabber")
    samples: list[Sample] = []
    captures = retrains = 0
    last_id = 0
    with tempfile.TemporaryDirectory(prefix="kiosk-soak-") as folder:
        saver = Autosaver(session, folder)
        saver.start()
        grabber.start()
        started = time.perf_counter()
        try:
            for index in range(1, frames + 1):
                got = grabber.wait_for_frame(after=last_id, timeout=10.0)
                if got is None:
                    raise RuntimeError(f"no frame for 10 s (grabber error: {grabber.error})")
                last_id, frame = got
                if index % capture_every == 0:
                    target = captures % NUM_CLASSES
                    # Keep each class at per_class samples: the store stops
                    # growing after warm-up, so later growth is not data.
                    existing = store.samples(target)
                    if len(existing) >= per_class:
                        store.remove_sample(existing[0].id)
                    session.capture(target, frame)
                    captures += 1
                if session.can_train and (session.head is None or index % retrain_every == 0):
                    session.train()
                    retrains += 1
                if session.head is not None:
                    session.predict(frame)
                if index % sample_every == 0 or index == frames:
                    elapsed = time.perf_counter() - started
                    samples.append(
                        Sample(index, elapsed, rss_bytes(), store.nbytes, captures, retrains)
                    )
                    if progress:
                        print(
                            f"  {index:>6} frames  {elapsed:7.1f} s  "
                            f"RSS {samples[-1].rss / 2**20:7.1f} MiB",
                            file=sys.stderr,
                            flush=True,
                        )
            seconds = time.perf_counter() - started
        finally:
            grabber.stop(2.0)
            saver.close()
    return SoakResult(
        samples=samples,
        warmup_frames=min(warmup_frames, frames),
        frames=frames,
        seconds=seconds,
        captures=captures,
        retrains=retrains,
        autosave_error=saver.error,
    )


def format_report(result: SoakResult) -> str:
    mib = 2**20
    lines = [
        f"{'frames':>8}  {'seconds':>8}  {'RSS MiB':>8}  {'store MiB':>9}  "
        f"{'captures':>8}  {'retrains':>8}",
    ]
    for s in result.samples:
        lines.append(
            f"{s.frame:>8}  {s.seconds:>8.1f}  {s.rss / mib:>8.1f}  {s.store / mib:>9.2f}  "
            f"{s.captures:>8}  {s.retrains:>8}"
        )
    warm, end = result.at_warmup(), result.end
    met = result.net_growth <= TARGET_GROWTH
    lines += [
        "",
        f"frames                {result.frames} in {result.seconds:.1f} s "
        f"({result.frames / result.seconds:.1f} frames/s)",
        f"captures / retrains   {result.captures} / {result.retrains}",
        f"RSS after warm-up     {warm.rss / mib:.1f} MiB (at {warm.frame} frames)",
        f"RSS at the end        {end.rss / mib:.1f} MiB",
        f"RSS peak              {result.peak / mib:.1f} MiB",
        f"store after warm-up   {warm.store / mib:.2f} MiB, at the end {end.store / mib:.2f} MiB",
        f"growth raw / net      {result.raw_growth:+.2%} / {result.net_growth:+.2%} "
        "(net = raw minus the store's growth)",
        f"target <= {TARGET_GROWTH:.0%} growth  {'met' if met else 'MISSED'}",
    ]
    if result.autosave_error:
        lines.append(f"autosave error        {result.autosave_error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=54_000, help="frames to push (54,000)")
    parser.add_argument("--threads", type=int, default=2, help="extractor threads (2)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="CPU extractor")
    parser.add_argument(
        "--per-class", type=int, default=15, help="samples kept per class (15, 4 classes)"
    )
    parser.add_argument("--retrain-every", type=int, default=5_000, help="frames (5,000)")
    parser.add_argument(
        "--source-fps", type=float, default=120.0, help="demo source rate; 0 = unpaced (120)"
    )
    args = parser.parse_args(argv)
    if args.frames < 1_000:
        parser.error("--frames must be at least 1000 (one memory reading)")
    result = run(
        args.model,
        frames=args.frames,
        threads=args.threads,
        per_class=args.per_class,
        retrain_every=args.retrain_every,
        source_fps=args.source_fps or None,
    )
    print(format_report(result))
    return 0 if result.net_growth <= TARGET_GROWTH else 1


if __name__ == "__main__":
    raise SystemExit(main())
