"""Fuzz loop for model loading, run in a child process by ``test_fuzz_models.py``.

A crash in native code (the LiteRT interpreter, the flatbuffer reader) would
take pytest down with it; in a child process it is a negative return code the
test can report instead. Before each mutant is tried, its description and bytes
are written to ``--last`` so a crash can be reproduced from the file.

Every mutant goes through ``load_interpreter`` (plus one ``invoke`` when it
loads), ``inspect_extractor``, ``append_softmax_head`` and ``EmbeddingExtractor``
(plus one ``embed``). The only acceptable failure is ``ValueError``.

    python tests/fuzz_models_child.py --seed 0 --count 100 --budget 60 MODEL [MODEL...]

Prints one JSON object on stdout: per-model outcome counts and every unclean
exception (type and message). Exit status 0 when all were clean, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kiosk.embedding import EmbeddingExtractor  # noqa: E402
from kiosk.learn.tflite_head import append_softmax_head, inspect_extractor  # noqa: E402
from kiosk.vision import runtime  # noqa: E402

# Mutated shapes could ask for huge inputs; never allocate more than this to invoke.
_MAX_INPUT_ELEMENTS = 4_000_000


def structure_spans(model: bytes) -> list[tuple[int, int]]:
    """(start, end) byte ranges outside buffer payloads: the flatbuffer's tables.

    Weights make up >90 % of a model; flipping their bits only changes numbers.
    The fuzz aims most of its mutations at the structure instead.
    """
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(model, 0)
    payloads = []
    for i in range(root.BuffersLength()):
        buffer = root.Buffers(i)
        length = buffer.DataLength() if buffer is not None else 0
        if length:
            start = buffer._tab.Vector(buffer._tab.Offset(4))
            payloads.append((start, start + length))
    spans, cursor = [], 0
    for start, end in sorted(payloads):
        if start > cursor:
            spans.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < len(model):
        spans.append((cursor, len(model)))
    return spans


class Mutator:
    """Seeded mutations of one model: bit flips, byte overwrites, truncations, splices."""

    def __init__(self, model: bytes, seed: int) -> None:
        self.model = model
        self.rng = np.random.default_rng(seed)
        self.spans = structure_spans(model)
        self.weights = np.array([end - start for start, end in self.spans], float)
        self.weights /= self.weights.sum()

    def position(self) -> int:
        """A byte offset: 85 % in the structure, 15 % anywhere."""
        if self.rng.random() < 0.85:
            start, end = self.spans[self.rng.choice(len(self.spans), p=self.weights)]
            return int(self.rng.integers(start, end))
        return int(self.rng.integers(0, len(self.model)))

    def mutate(self) -> tuple[str, bytes]:
        data = bytearray(self.model)
        kind = self.rng.choice(
            ["bitflip", "overwrite", "truncate", "splice"], p=[0.4, 0.3, 0.1, 0.2]
        )
        if kind == "bitflip":
            flips = [
                (self.position(), int(self.rng.integers(8))) for _ in range(self.rng.integers(1, 9))
            ]
            for at, bit in flips:
                data[at] ^= 1 << bit
            return f"bitflip {flips}", bytes(data)
        if kind == "overwrite":
            at = self.position()
            # Extreme values are what break offsets and counts.
            value = bytes(
                self.rng.choice([0x00, 0xFF, 0x7F, 0x80], size=int(self.rng.integers(1, 9)))
            )
            data[at : at + len(value)] = value
            return f"overwrite {at} {value.hex()}", bytes(data[: len(self.model)])
        if kind == "truncate":
            keep = int(self.rng.integers(0, len(self.model)))
            return f"truncate {keep}", bytes(data[:keep])
        # Splice: copy a run of the file over another place (valid-looking offsets, wrong spot).
        source, target = self.position(), self.position()
        length = int(self.rng.integers(4, 256))
        data[target : target + length] = self.model[source : source + length]
        return f"splice {source}->{target} len {length}", bytes(data[: len(self.model)])


def _attempt(
    outcomes: Counter, unclean: list[dict], stage: str, what: str, call: Callable
) -> object:
    """Run one call; count ok / ValueError; record anything else as unclean."""
    try:
        result = call()
    except ValueError:
        outcomes[f"{stage}: ValueError"] += 1
        return None
    except Exception as error:
        outcomes[f"{stage}: {type(error).__name__}"] += 1
        unclean.append(
            {
                "stage": stage,
                "mutant": what,
                "error": f"{type(error).__name__}: {error}"[:500],
                "traceback": traceback.format_exc()[-1500:],
            }
        )
        return None
    outcomes[f"{stage}: ok"] += 1
    return result


def _invoke_once(interpreter: object) -> None:
    detail = interpreter.get_input_details()[0]  # type: ignore[attr-defined]
    shape = [int(d) for d in detail["shape"]]
    if any(d < 0 for d in shape) or int(np.prod(shape)) > _MAX_INPUT_ELEMENTS:
        return
    interpreter.set_tensor(detail["index"], np.zeros(shape, detail["dtype"]))  # type: ignore[attr-defined]
    interpreter.invoke()  # type: ignore[attr-defined]


def fuzz_one(
    mutant: bytes, what: str, folder: Path, outcomes: Counter, unclean: list[dict]
) -> None:
    interpreter = _attempt(
        outcomes,
        unclean,
        "load_interpreter",
        what,
        lambda: runtime.load_interpreter(mutant, num_threads=1, name="mutant"),
    )
    if interpreter is not None:
        # A model that loads must also run, or fail cleanly; the runtime raises
        # RuntimeError for a failed invoke, which the kiosk reports as an error.
        try:
            _invoke_once(interpreter)
        except (ValueError, RuntimeError):
            outcomes["invoke: error"] += 1
        else:
            outcomes["invoke: ok"] += 1
    info = _attempt(outcomes, unclean, "inspect_extractor", what, lambda: inspect_extractor(mutant))
    dim = info.feature_dim if info is not None else 1024
    if dim <= 1_000_000:
        weights = np.ones((dim, 2), np.float32) * 0.01
        _attempt(
            outcomes,
            unclean,
            "append_softmax_head",
            what,
            lambda: append_softmax_head(mutant, weights, np.zeros(2, np.float32), -1.0, 1.0),
        )
    path = folder / "mutant.tflite"
    path.write_bytes(mutant)
    extractor = _attempt(
        outcomes,
        unclean,
        "EmbeddingExtractor",
        what,
        lambda: EmbeddingExtractor(path, num_threads=1),
    )
    if extractor is not None:
        _attempt(
            outcomes,
            unclean,
            "embed",
            what,
            lambda: extractor.embed(np.zeros((64, 64, 3), np.uint8)),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=100, help="mutants per model")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per model at most")
    parser.add_argument("--last", type=Path, default=None, help="where to keep the current mutant")
    args = parser.parse_args(argv)
    os.environ["KIOSK_NO_EDGETPU"] = "1"
    report: dict[str, object] = {}
    unclean: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="kiosk-fuzz-") as folder:
        for number, model_path in enumerate(args.models):
            model = model_path.read_bytes()
            mutator = Mutator(model, args.seed * 1000 + number)
            outcomes: Counter = Counter()
            started, done = time.monotonic(), 0
            while done < args.count and time.monotonic() - started < args.budget:
                what, mutant = mutator.mutate()
                what = f"{model_path.name} #{done} {what}"
                if args.last is not None:
                    args.last.with_suffix(".txt").write_text(what + "\n")
                    args.last.write_bytes(mutant)
                fuzz_one(mutant, what, Path(folder), outcomes, unclean)
                done += 1
            report[model_path.name] = {"mutants": done, "outcomes": dict(sorted(outcomes.items()))}
    report["unclean"] = unclean
    print(json.dumps(report, indent=1))
    return 1 if unclean else 0


if __name__ == "__main__":
    raise SystemExit(main())
