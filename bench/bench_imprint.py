"""Imprinting-only head vs trained head on real CORe50 mini embeddings.

Prints a table: test accuracy (split by source image, so augmented copies of a
test frame are never trained on) of

* the imprinted head (normalized class means, ``kiosk.learn.imprint``) in
  cosine form, and mapped to a raw fully-connected layer (what the warm start
  and a saved head would use),
* the trained head (``DEFAULT_TRAINING``, L-BFGS) from zero weights (cold) and
  warm-started from the imprinted head, after 5 and 60 iterations,

for k training images per class (k source frames, each with its augmented
copies, as a kiosk user's burst of captures of one pose would be), averaged
over five random splits and draws.

Run: python bench/bench_imprint.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embeddings import core50_embeddings, resplit

from kiosk.learn import DEFAULT_TRAINING, SoftmaxRegression
from kiosk.learn.imprint import ImprintedHead

SHOTS = (1, 2, 3, 5, None)  # source frames per class; None: every training frame
SPLITS = 5


def pick_sources(ds, train_mask: np.ndarray, k: int | None, rng: np.random.Generator):
    """(N,) bool: training rows of k random source frames per class (all when None)."""
    if k is None:
        return train_mask
    keep = np.zeros(len(ds.y), bool)
    for c in np.unique(ds.y):
        sources = np.unique(ds.groups[train_mask & (ds.y == c)])
        chosen = rng.choice(sources, min(k, len(sources)), replace=False)
        keep |= train_mask & np.isin(ds.groups, chosen)
    return keep


def train(x, y, c, warm: ImprintedHead | None, iters: int) -> SoftmaxRegression:
    model = SoftmaxRegression(x.shape[1], c, weight_scale=0.0, seed=0)
    if warm is not None:
        model.weights, model.biases = warm.raw_parameters()
    config = dataclasses.replace(DEFAULT_TRAINING, num_iter=iters)
    model.fit({"data_train": x, "labels_train": y}, config)
    return model


def main() -> None:
    base = core50_embeddings()
    num_classes = len(base.class_names)
    print(base.description)
    print(f"test accuracy, mean over {SPLITS} splits (test = 30% of source frames)\n")
    header = "frames/class  train rows  imprint(cos)  imprint(FC)  cold@5  warm@5  cold@60  warm@60"
    print(header)
    print("-" * len(header))
    for k in SHOTS:
        rows = []
        for split in range(SPLITS):
            ds = resplit(base, seed=split)
            rng = np.random.default_rng(100 + split)
            chosen = pick_sources(ds, ds.train, k, rng)
            x, y = ds.x[chosen], ds.y[chosen]
            xt, yt = ds.x[~ds.train], ds.y[~ds.train]
            head = ImprintedHead.from_data(x, y, num_classes)
            w, b = head.raw_parameters()
            scores = [
                np.mean(head.predict(xt) == yt),
                np.mean(np.argmax(xt @ w + b, axis=1) == yt),
            ]
            for iters in (5, 60):
                for warm in (None, head):
                    scores.append(train(x, y, num_classes, warm, iters).get_accuracy(xt, yt))
            # order: cos, FC, cold5, warm5, cold60, warm60
            rows.append([scores[0], scores[1], scores[2], scores[3], scores[4], scores[5]])
            n_rows = len(y)
        m = 100 * np.mean(rows, axis=0)
        label = "all" if k is None else str(k)
        print(
            f"{label:>12}  {n_rows:>10}  {m[0]:>11.1f}%  {m[1]:>10.1f}%  {m[2]:>5.1f}%"
            f"  {m[3]:>5.1f}%  {m[4]:>6.1f}%  {m[5]:>6.1f}%"
        )


if __name__ == "__main__":
    main()
