"""Does a horizontally flipped copy of each capture help? Real CORe50 mini embeddings.

Every one of the 90 CORe50 mini frames is embedded as is and mirrored
left-right (the extra inference a capture would pay). Over many random splits
by frame (two thirds train, one third test, stratified), the head is trained
on the training frames alone or on them plus their mirrored copies (never the
test frames' copies), and scored on the unmirrored test frames. Also times the
extra inference.

Run: python bench/bench_flip.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embeddings import CORE50, EXTRACTOR

from kiosk.embedding import EmbeddingExtractor
from kiosk.learn import DEFAULT_TRAINING, SoftmaxRegression

SPLITS = 30
TRAIN_PER_CLASS = (2, 3, 5)


def main() -> None:
    extractor = EmbeddingExtractor(EXTRACTOR, num_threads=2, edgetpu=False)
    names = sorted(p.name for p in CORE50.iterdir() if p.is_dir())
    x, xf, y = [], [], []
    flip_seconds = []
    for label, name in enumerate(names):
        for path in sorted((CORE50 / name).glob("*.png")):
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            model_input = extractor.preprocess(rgb)
            x.append(extractor.embed_input(model_input))
            started = time.perf_counter()
            xf.append(extractor.embed_input(np.ascontiguousarray(model_input[:, ::-1])))
            flip_seconds.append(time.perf_counter() - started)
            y.append(label)
    x, xf, y = np.stack(x), np.stack(xf), np.asarray(y)
    c = len(names)
    print(f"REAL MobileNet v1 embeddings of CORe50 mini: {len(y)} frames, {c} classes")
    print(f"extra inference for the flipped copy: {1000 * np.median(flip_seconds):.1f} ms median")
    print(f"test accuracy, mean +- s.e. over {SPLITS} splits by frame (test = the rest)\n")
    header = f"{'train frames/class':>18}{'originals':>12}{'+ flipped':>12}{'gain':>8}"
    print(header)
    print("-" * len(header))
    for per_class in TRAIN_PER_CLASS:
        plain, flipped = [], []
        for split in range(SPLITS):
            rng = np.random.default_rng(split)
            train = np.zeros(len(y), bool)
            for label in range(c):
                train[rng.choice(np.flatnonzero(y == label), per_class, replace=False)] = True
            for extra, out in ((False, plain), (True, flipped)):
                xs = np.concatenate([x[train], xf[train]]) if extra else x[train]
                ys = np.concatenate([y[train], y[train]]) if extra else y[train]
                model = SoftmaxRegression(x.shape[1], c, weight_scale=0.0, seed=0)
                model.fit({"data_train": xs, "labels_train": ys}, DEFAULT_TRAINING)
                out.append(model.get_accuracy(x[~train], y[~train]))
        gain = np.asarray(flipped) - np.asarray(plain)
        se = gain.std(ddof=1) / np.sqrt(len(gain))
        print(
            f"{per_class:>18}{100 * np.mean(plain):>11.1f}%{100 * np.mean(flipped):>11.1f}%"
            f"{100 * gain.mean():>+7.1f} (+-{100 * se:.1f})"
        )


if __name__ == "__main__":
    main()
