"""Time writing a trained head into the MobileNet extractor's .tflite.

Usage::

    python bench/bench_serialize.py [--model PATH] [--repeat N] [--classes C]

The model bytes are read once; each repeat runs ``inspect_extractor`` or
``append_softmax_head`` on them (parse, edit, repack), the work done when the kiosk
saves a model. Target: at most 100 ms for the append.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from kiosk.learn.tflite_head import (  # noqa: E402 - needs the path above
    append_softmax_head,
    inspect_extractor,
    read_model_bytes,
)

SHARED = Path(os.environ.get("KIOSK_SHARED_DIR", ROOT.parent / "shared")).resolve()
DEFAULT_MODEL = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
TARGET_MS = 100.0


def _time_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up: imports, first allocations
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def run(
    model_path: str | os.PathLike[str] = DEFAULT_MODEL, repeat: int = 20, classes: int = 10
) -> list[dict]:
    """Times the head writer; returns one row per operation.

    Each row: ``operation``, ``model`` (file name), ``median_ms``, ``min_ms``,
    ``target_ms`` (None when the operation has no target) and ``ok`` (median within
    target).
    """
    model = read_model_bytes(model_path)
    info = inspect_extractor(model)
    rng = np.random.default_rng(0)
    weights = rng.normal(scale=0.05, size=(info.feature_dim, classes)).astype(np.float32)
    biases = rng.normal(scale=0.1, size=classes).astype(np.float32)
    name = Path(model_path).name
    cases: list[tuple[str, Callable[[], object], float | None]] = [
        ("inspect_extractor", lambda: inspect_extractor(model), None),
        (
            f"append_softmax_head (C={classes})",
            lambda: append_softmax_head(model, weights, biases, -8.0, 8.0),
            TARGET_MS,
        ),
    ]
    rows = []
    for label, fn, target in cases:
        times = _time_ms(fn, repeat)
        median = statistics.median(times)
        rows.append(
            {
                "operation": label,
                "model": name,
                "median_ms": median,
                "min_ms": min(times),
                "target_ms": target,
                "ok": target is None or median <= target,
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"model: {rows[0]['model']}")
    width = max(len(r["operation"]) for r in rows)
    print(f"{'operation':<{width}}  {'median ms':>9}  {'min ms':>7}  {'target':>8}")
    for r in rows:
        target = "-" if r["target_ms"] is None else f"<= {r['target_ms']:.0f}"
        flag = "" if r["ok"] else "  MISSED"
        print(
            f"{r['operation']:<{width}}  {r['median_ms']:9.1f}  {r['min_ms']:7.1f}  "
            f"{target:>8}{flag}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="extractor .tflite")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per operation")
    parser.add_argument("--classes", type=int, default=10, help="number of classes C")
    args = parser.parse_args(argv)
    try:
        rows = run(args.model, args.repeat, args.classes)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    print_table(rows)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
