"""Class-balanced loss vs plain loss on an imbalanced split of real embeddings.

CORe50 mini embeddings (real MobileNet v1, split by source frame). To imitate a
kiosk user who captured some classes far less than others, the training split
of half the classes ("minority") keeps only ``MINORITY_SOURCES`` source frames
(each with its augmented copies); the other half keep all of theirs (about six).
The test split is untouched, so every class is scored on the same footing.

Prints, averaged over splits: balanced accuracy, overall accuracy, the mean
recall of the minority classes and of the majority classes, for
``DEFAULT_TRAINING`` with ``class_balance`` off and on (L-BFGS), and for
pycoral-style SGD with uniform vs balanced batches.

Run: python bench/bench_balance.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embeddings import core50_embeddings, resplit

from kiosk.learn import DEFAULT_TRAINING, PYCORAL_TRAINING, SoftmaxRegression
from kiosk.learn.evaluation import evaluate

SPLITS = 8
MINORITY_SOURCES = (1, 2)


def imbalanced(ds, rng: np.random.Generator, kept: int) -> tuple[np.ndarray, np.ndarray]:
    """(training mask, minority class ids) with half the classes cut to a few sources."""
    classes = np.unique(ds.y)
    minority = rng.choice(classes, len(classes) // 2, replace=False)
    keep = ds.train.copy()
    for c in minority:
        sources = np.unique(ds.groups[ds.train & (ds.y == c)])
        chosen = rng.choice(sources, kept, replace=False)
        keep &= ~((ds.y == c) & ~np.isin(ds.groups, chosen))
    return keep, minority


def main() -> None:
    base = core50_embeddings()
    print(base.description)
    for kept in MINORITY_SOURCES:
        table(base, kept)


def table(base, kept: int) -> None:
    c = len(base.class_names)
    runs = {
        "L-BFGS, plain loss": dataclasses.replace(DEFAULT_TRAINING, class_balance=False),
        "L-BFGS, balanced loss (default)": DEFAULT_TRAINING,
        "pycoral SGD, uniform batches": PYCORAL_TRAINING,
        "pycoral SGD, balanced batches": dataclasses.replace(PYCORAL_TRAINING, class_balance=True),
    }
    scores: dict[str, list[list[float]]] = {name: [] for name in runs}
    ratio = []
    for split in range(SPLITS):
        ds = resplit(base, seed=split)
        train, minority = imbalanced(ds, np.random.default_rng(50 + split), kept)
        counts = np.bincount(ds.y[train], minlength=c)
        ratio.append(counts.max() / counts.min())
        xt, yt = ds.x[~ds.train], ds.y[~ds.train]
        majority = np.setdiff1d(np.arange(c), minority)
        for name, config in runs.items():
            model = SoftmaxRegression(
                ds.x.shape[1], c, weight_scale=config.weight_scale, reg=config.reg, seed=split
            )
            model.fit({"data_train": ds.x[train], "labels_train": ds.y[train]}, config)
            ev = evaluate(model.predict_proba(xt), yt, base.class_names)
            recall = np.array(ev.per_class_accuracy, dtype=float)
            scores[name].append(
                [
                    ev.balanced_accuracy,
                    ev.accuracy,
                    recall[minority].mean(),
                    recall[majority].mean(),
                ]
            )
    print(
        f"\n{SPLITS} splits; half the classes keep {kept} training source frame(s); "
        f"largest/smallest class ratio {np.mean(ratio):.1f}x on average\n"
    )
    header = (
        f"{'training':<34}{'balanced acc':>13}{'accuracy':>10}"
        f"{'minority rec':>14}{'majority rec':>14}"
    )
    print(header)
    print("-" * len(header))
    for name, rows in scores.items():
        m = 100 * np.mean(rows, axis=0)
        print(f"{name:<34}{m[0]:>12.1f}%{m[1]:>9.1f}%{m[2]:>13.1f}%{m[3]:>13.1f}%")


if __name__ == "__main__":
    main()
