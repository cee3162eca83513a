"""Few-shot accuracy of kiosk's head beside the usual baselines, on real photos.

Two sets, embedded once through kiosk's own extractor and capture path (cached):
sign digits (``shared/data/sign_digits_40``: 10 hand signs, 40 photos each) and
CORe50 mini (``shared/data/core50_mini``: 10 objects, 5-13 frames each, nine
backgrounds). For every k, random splits take k photos a class for training and
test on all the others.

* kiosk, exactly as the window trains: the training photos are captures (the model
  input goes through the stored JPEG), with mirrored copies embedded from the
  real mirrored images; ``fit_head`` with the default ``TrainingSettings``; the
  live prediction averages the frame and its mirror image
  (``kiosk.learn.live.average_views``). "kiosk 1 view" is the same head on the
  frame alone.
* baselines (bench/fewshot_baselines.py) on the photos' embeddings: pycoral's
  defaults, logistic regression (C=1), Teachable Machine's recipe, kNN-3.
* saved-model agreement: the head saved as a .tflite (extractor + uint8 head) run
  by the real interpreter on the test photos, top-1 against the float head.
* "not sure" (``kiosk.learn.gate.is_sure``): correct answers on the test photos
  that are flagged, and photos of the *other* set that are flagged.
* training time: ``fit_head`` (hold-out fit + refit) at 17 classes x 10 samples.

CORe50 mini has 5 frames in its smallest class, so k stops at 4 there (k = 1, 2, 4).

Run: python bench/bench_fewshot.py [--splits N]   (exit status 1 on a missed target)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embeddings import (
    CORE50,
    EXTRACTOR,
    SIGN_DIGITS,
    CaptureEmbeddings,
    capture_embeddings,
    read_rgb,
)
from fewshot_baselines import BASELINES

from kiosk.learn.fit_process import FitProcess
from kiosk.learn.gate import activation_patterns, is_sure, novelty
from kiosk.learn.live import average_views
from kiosk.learn.recipe import HeadFit, LabelledEmbeddings, TrainingSettings, fit_head

SETS = {"sign digits": (SIGN_DIGITS, (1, 2, 5, 10, 20)), "CORe50 mini": (CORE50, (1, 2, 4))}
# CORe50 mini's test sets are small (about 80 frames), so it gets more splits.
SPLITS = {"sign digits": 10, "CORe50 mini": 30}
# The saved model runs on every test photo of this many splits per k (sign
# digits: 2,000-3,900 photos a k; CORe50 mini: 2,100-2,400). A disagreement is
# then 0.03-0.05 points: fewer photos left single near-ties deciding a target.
AGREEMENT_SPLITS = {"sign digits": 10, "CORe50 mini": 30}
TARGET_MARGIN = 0.3  # kiosk >= best baseline - 0.3 points
TARGET_AGREEMENT = 99.5  # % top-1 agreement of the saved model on new images
TARGET_TRAIN_MS = 150.0  # hold-out fit + refit, 17 classes x 10 samples
TARGET_CORRECT_FLAGGED = 15.0  # % of correct answers called "not sure", at most
TARGET_FOREIGN_FLAGGED = 70.0  # % of another set's photos called "not sure", at least


@dataclass
class Cell:
    """Scores of one set at one k, one list entry per split."""

    accuracy: dict[str, list[float]] = field(default_factory=dict)
    agreement: list[float] = field(default_factory=list)
    disagreements: int = 0
    ties: int = 0  # disagreements where the saved model's top two outputs are equal
    # answers that would differ even if the fully-connected output were exact:
    # the float head's probabilities rounded to the uint8 softmax output
    # (level 1/256, the lower class index winning a tie, as every argmax does)
    exact_fc_disagreements: int = 0
    agreement_photos: int = 0
    # per test photo: the largest difference between a saved and a float probability
    probability_difference: list[float] = field(default_factory=list)
    correct_flagged: list[float] = field(default_factory=list)
    foreign_flagged: list[float] = field(default_factory=list)

    def add(self, name: str, value: float) -> None:
        self.accuracy.setdefault(name, []).append(100.0 * value)


def split(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(N,) bool: k random training rows of every class."""
    rng = np.random.default_rng(seed)
    train = np.zeros(len(y), bool)
    for label in np.unique(y):
        train[rng.choice(np.flatnonzero(y == label), k, replace=False)] = True
    return train


def train_kiosk(data: CaptureEmbeddings, train: np.ndarray) -> HeadFit:
    """``fit_head`` on captures, exactly as ``TeachingSession.train`` calls it."""
    rows = np.flatnonzero(train)
    labelled = LabelledEmbeddings(
        data.captured[rows],
        data.y[rows],
        len(data.class_names),
        data.captured_mirror[rows],
        np.ones(len(rows), bool),
    )
    return fit_head(labelled, TrainingSettings(), class_names=data.class_names)


def live_probabilities(fit: HeadFit, data: CaptureEmbeddings, rows: np.ndarray) -> np.ndarray:
    """(M, C) what the live picture shows: the frame and its mirror, averaged."""
    return average_views(
        fit.model.predict_proba(data.live[rows]), fit.model.predict_proba(data.live_mirror[rows])
    )


def novelties(
    data: CaptureEmbeddings, train: np.ndarray, source: CaptureEmbeddings, rows: np.ndarray
) -> np.ndarray:
    """(M,) what the predictor measures: ``kiosk.learn.gate.novelty`` of each live
    view and its mirror against the stored captures and their mirrored copies."""
    stored = activation_patterns(
        np.concatenate([data.captured[train], data.captured_mirror[train]])
    )
    result = [novelty(stored, source.live[r], source.live_mirror[r]) for r in rows]
    return np.asarray(result, np.float64)


class SavedModelRunner:
    """Saves a head as a real .tflite and runs the interpreter on model inputs."""

    def __init__(self, data: CaptureEmbeddings) -> None:
        from kiosk.embedding import EmbeddingExtractor

        extractor = EmbeddingExtractor(EXTRACTOR, num_threads=2, edgetpu=False)
        self.inputs = np.stack([extractor.preprocess(read_rgb(Path(f))) for f in data.files])

    def run(self, fit: HeadFit, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M, C) the saved model's probabilities (output / 256) and (M,) bool:
        its top two outputs are equal."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=fit.model.serialize_model(EXTRACTOR), num_threads=2)
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]["index"]
        sink = interpreter.get_output_details()[0]["index"]
        outputs = np.empty((len(rows), len(fit.model.biases)), np.float64)
        tied = np.empty(len(rows), bool)
        for i, row in enumerate(rows):
            interpreter.set_tensor(source, self.inputs[row][None])
            interpreter.invoke()
            output = interpreter.get_tensor(sink).reshape(-1)
            outputs[i] = output / 256.0
            top_two = np.sort(output)[-2:]
            tied[i] = top_two[0] == top_two[1]
        return outputs, tied


def exact_fc_disagreements(probabilities: np.ndarray) -> int:
    """How many of (M, C) float probabilities change their top-1 once rounded to
    the uint8 softmax output: what a saved model in this format would get wrong
    even with an exact fully-connected output. (TFLite's softmax uses a fixed-point
    exp, so this is an estimate of that bound, not the interpreter's own figure.)"""
    levels = np.clip(np.rint(probabilities * 256.0), 0, 255)
    return int(np.count_nonzero(levels.argmax(axis=1) != probabilities.argmax(axis=1)))


def run_set(
    name: str, data: CaptureEmbeddings, other: CaptureEmbeddings, ks: tuple[int, ...], splits: int
) -> dict[int, Cell]:
    runner = SavedModelRunner(data)
    cells: dict[int, Cell] = {}
    for k in ks:
        cell = cells[k] = Cell()
        for seed in range(splits):
            train = split(data.y, k, seed)
            test = np.flatnonzero(~train)
            truth = data.y[test]
            fit = train_kiosk(data, train)
            probabilities = live_probabilities(fit, data, test)
            answers = probabilities.argmax(axis=1)
            cell.add("kiosk", np.mean(answers == truth))
            cell.add("kiosk 1 view", np.mean(fit.model.predict(data.live[test]) == truth))
            for baseline, make in BASELINES.items():
                predict = make(data.live[train], data.y[train], len(data.class_names), seed)
                cell.add(baseline, np.mean(predict(data.live[test]) == truth))
            if seed < AGREEMENT_SPLITS[name]:
                saved_probabilities, tied = runner.run(fit, test)
                float_probabilities = fit.model.predict_proba(data.live[test])
                differ = saved_probabilities.argmax(axis=1) != float_probabilities.argmax(axis=1)
                bend = np.abs(saved_probabilities - float_probabilities).max(axis=1)
                cell.probability_difference.extend(bend.tolist())
                cell.agreement.append(100.0 * np.mean(~differ))
                cell.disagreements += int(differ.sum())
                cell.ties += int((differ & tied).sum())
                cell.exact_fc_disagreements += int(exact_fc_disagreements(float_probabilities))
                cell.agreement_photos += len(test)
            assert fit.gate is not None
            correct = answers == truth
            sure = [
                is_sure(p, v, fit.gate)
                for p, v in zip(probabilities, novelties(data, train, data, test), strict=True)
            ]
            cell.correct_flagged.append(100.0 * np.mean(~np.asarray(sure)[correct]))
            everyone = np.arange(len(other.y))
            foreign = live_probabilities(fit, other, everyone)
            foreign_sure = [
                is_sure(p, v, fit.gate)
                for p, v in zip(foreign, novelties(data, train, other, everyone), strict=True)
            ]
            cell.foreign_flagged.append(100.0 * np.mean(~np.asarray(foreign_sure)))
        print(f"  {name}: k={k} done ({splits} splits)", file=sys.stderr, flush=True)
    return cells


def mean_se(values: list[float]) -> tuple[float, float]:
    mean = float(np.mean(values))
    se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return mean, se


def training_time(data: CaptureEmbeddings, other: CaptureEmbeddings) -> tuple[float, float]:
    """Median ms of fit_head (hold-out fit + refit) at 17 classes x 10 samples:
    in this process, and through the window's FitProcess."""
    x, xm, y = [], [], []
    for label in range(17):
        source, offset = (data, label) if label < 10 else (other, label - 10)
        rows = np.flatnonzero(source.y == offset)
        rows = np.resize(rows, 10)  # CORe50 classes under 10 frames repeat some
        x.append(source.captured[rows])
        xm.append(source.captured_mirror[rows])
        y.append(np.full(10, label))
    labelled = LabelledEmbeddings(
        np.concatenate(x), np.concatenate(y), 17, np.concatenate(xm), np.ones(170, bool)
    )
    settings = TrainingSettings()
    here, child = [], []
    with FitProcess() as process:
        fit_head(labelled, settings, fitter=process)  # start the child, warm caches
        for _ in range(15):
            started = time.perf_counter()
            fit_head(labelled, settings)
            here.append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            fit_head(labelled, settings, fitter=process)
            child.append(1000 * (time.perf_counter() - started))
    return statistics.median(here), statistics.median(child)


def mirror_inference_ms() -> float:
    """Median ms of the extra extractor inference a mirrored view costs (2 threads)."""
    from kiosk.embedding import EmbeddingExtractor

    extractor = EmbeddingExtractor(EXTRACTOR, num_threads=2, edgetpu=False)
    frame = np.random.default_rng(0).integers(0, 256, (224, 224, 3), np.uint8)
    times = []
    for _ in range(40):
        started = time.perf_counter()
        extractor.embed_input(np.ascontiguousarray(frame[:, ::-1]))
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times[5:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, help="splits per k for both sets (>= 10)")
    args = parser.parse_args()
    data = {name: capture_embeddings(root) for name, (root, _) in SETS.items()}
    names = list(SETS)
    misses: list[str] = []
    results = {}
    for name in names:
        other = data[names[1 - names.index(name)]]
        splits = args.splits or SPLITS[name]
        results[name] = run_set(name, data[name], other, SETS[name][1], splits)

    methods = ["kiosk", "kiosk 1 view", *BASELINES]
    print("\nTest accuracy (%), mean over random splits; k = training photos a class")
    for name in names:
        first = next(iter(results[name].values()))
        print(f"\n{name} ({len(first.correct_flagged)} splits)")
        header = (
            f"{'k':>3} " + "".join(f"{m:>13}" for m in methods) + f"{'best base':>11}{'gap':>7}"
        )
        print(header)
        print("-" * len(header))
        for k, cell in results[name].items():
            means = {m: mean_se(cell.accuracy[m])[0] for m in methods}
            best = max(means[m] for m in BASELINES)
            gap = means["kiosk"] - best
            ok = gap >= -TARGET_MARGIN
            if not ok:
                misses.append(f"{name} k={k}: kiosk {means['kiosk']:.1f} vs best {best:.1f}")
            row = "".join(f"{means[m]:>13.1f}" for m in methods)
            print(f"{k:>3} {row}{best:>11.1f}{gap:>+7.1f} {'ok' if ok else 'MISS'}")
        se = mean_se(first.accuracy["kiosk"])[1]
        print(f"(s.e. of kiosk's mean at k={next(iter(results[name]))}: {se:.1f} points)")
    print(f"target: kiosk >= best baseline - {TARGET_MARGIN} points at every k")

    print("\nSaved model (.tflite, real interpreter) vs float head: top-1 agreement on test photos")
    print(
        f"{'set':>12}{'k':>4}{'splits':>7}{'mean %':>9}{'lowest split %':>16}"
        f"{'differ':>8}{'of them ties':>14}{'exact FC':>10}{'bound %':>9}{'prob. diff.':>13}"
    )
    for name in names:
        for k, cell in results[name].items():
            mean, low = float(np.mean(cell.agreement)), float(np.min(cell.agreement))
            ok = mean >= TARGET_AGREEMENT
            if not ok:
                misses.append(f"{name} k={k}: saved-model agreement {mean:.2f} %")
            splits = len(cell.agreement)
            bound = 100.0 * (1 - cell.exact_fc_disagreements / cell.agreement_photos)
            print(
                f"{name:>12}{k:>4}{splits:>7}{mean:>9.2f}{low:>16.2f}"
                f"{cell.disagreements:>8}{cell.ties:>14}{cell.exact_fc_disagreements:>10}"
                f"{bound:>9.2f}"
                f"{100 * np.mean(cell.probability_difference):>13.2f}"
                f" {'ok' if ok else 'MISS'}"
            )
    print(f"target: >= {TARGET_AGREEMENT} % at every k")
    print("(a tie: the uint8 softmax output gives the top two classes the same level;")
    print(" exact FC: answers that would differ even with an exact fully-connected")
    print(" output, the float probabilities rounded to the uint8 softmax output;")
    print(" bound %: the agreement those leave, about the most this format reaches;")
    print(" prob. diff.: the largest difference between a class's saved and float")
    print(" probability, in points, mean over the test photos)")

    print('\n"Not sure" (confidence threshold + novelty limit, kiosk.learn.gate)')
    print(f"{'model':>12}{'k':>4}{'correct flagged %':>19}{'other set flagged %':>21}")
    for name in names:
        for k, cell in results[name].items():
            flagged, foreign = np.mean(cell.correct_flagged), np.mean(cell.foreign_flagged)
            ok = flagged <= TARGET_CORRECT_FLAGGED and foreign >= TARGET_FOREIGN_FLAGGED
            if not ok:
                misses.append(f"{name} k={k}: not sure {flagged:.1f} % / {foreign:.1f} %")
            print(f"{name:>12}{k:>4}{flagged:>19.1f}{foreign:>21.1f} {'ok' if ok else 'MISS'}")
    print(
        f"target: correct answers flagged <= {TARGET_CORRECT_FLAGGED:.0f} %, "
        f"the other set's photos flagged >= {TARGET_FOREIGN_FLAGGED:.0f} %"
    )

    here, child = training_time(data[names[0]], data[names[1]])
    ok = child <= TARGET_TRAIN_MS
    if not ok:
        misses.append(f"training {child:.0f} ms")
    print("\nTraining time, 17 classes x 10 samples (+ mirrored copies), hold-out fit + refit")
    print(f"  in this process:              {here:6.1f} ms (median of 15)")
    print(f"  in the window's FitProcess:   {child:6.1f} ms {'ok' if ok else 'MISS'}")
    print(f"target: <= {TARGET_TRAIN_MS:.0f} ms on 2 cores")
    print(
        "\nMirror-averaged live prediction costs one more inference: "
        f"{mirror_inference_ms():.1f} ms"
    )

    if misses:
        print("\nMISSED: " + "; ".join(misses))
        return 1
    print("\nAll targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
