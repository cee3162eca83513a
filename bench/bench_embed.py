"""Embedding time: EmbeddingExtractor.embed beside a bare interpreter invoke.

    python bench/bench_embed.py [--model PATH] [--threads 2] [--repeat 200]

The bare reference is the least any caller can do per frame: copy a ready
(1, 224, 224, 3) input in, invoke, copy the uint8 output out. ``embed`` adds the
square crop/resize check, dequantisation and the interpreter lock. A 640x480
camera frame adds the crop and resize, shown on a separate row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kiosk.embedding import EmbeddingExtractor
from kiosk.vision.runtime import load_interpreter

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KIOSK_SHARED_DIR", ROOT.parent / "shared"))
DEFAULT_MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def _time_interleaved(
    calls: dict[str, Callable[[], object]], repeat: int
) -> dict[str, list[float]]:
    """Run the calls round-robin so machine noise hits each of them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def run(model_path: Path = DEFAULT_MODEL, threads: int = 2, repeat: int = 200) -> list[dict]:
    """Time bare invoke, embed(224x224) and embed(640x480); rows of ms figures."""
    rng = np.random.default_rng(0)
    extractor = EmbeddingExtractor(model_path, num_threads=threads)
    bare = load_interpreter(model_path, num_threads=threads)
    (inp,), (out,) = bare.get_input_details(), bare.get_output_details()
    ready = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    camera = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    batch = ready[np.newaxis]

    def bare_invoke() -> np.ndarray:
        bare.set_tensor(inp["index"], batch)
        bare.invoke()
        return bare.get_tensor(out["index"])

    calls = {
        "bare invoke (224x224 input)": bare_invoke,
        "embed (224x224 image)": lambda: extractor.embed(ready),
        "embed (640x480 frame)": lambda: extractor.embed(camera),
    }
    _time_interleaved(calls, 10)  # warm-up
    times = _time_interleaved(calls, repeat)
    reference = statistics.median(times["bare invoke (224x224 input)"])
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        rows.append(
            {
                "case": name,
                "median_ms": median * 1e3,
                "min_ms": min(samples) * 1e3,
                "overhead_pct": 100 * (median / reference - 1),
            }
        )
    return rows


def print_table(rows: list[dict], threads: int) -> None:
    print(f"Embedding, MobileNet v1 extractor, {threads} threads (target: embed <= +10%)")
    print(f"{'case':<30} {'median ms':>10} {'min ms':>8} {'vs bare':>8}")
    for row in rows:
        print(
            f"{row['case']:<30} {row['median_ms']:>10.2f} {row['min_ms']:>8.2f} "
            f"{row['overhead_pct']:>+7.1f}%"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    print_table(run(args.model, args.threads, args.repeat), args.threads)


if __name__ == "__main__":
    main()
