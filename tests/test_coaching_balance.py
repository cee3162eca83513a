"""Capture coaching and class-balanced training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from kiosk.coaching import (
    capture_feedback,
    card_hints,
    class_hint,
    imbalanced_classes,
)
from kiosk.learn import DEFAULT_TRAINING, PYCORAL_TRAINING, SoftmaxRegression
from kiosk.learn.gate import activation_patterns
from kiosk.learn.gate import novelty as gate_novelty
from kiosk.learn.training import balanced_sample_weights, softmax_xent_


def test_capture_feedback_flags_near_duplicates() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 6, 64).astype(np.float32)
    earlier = np.stack([base, rng.uniform(0, 6, 64).astype(np.float32)])
    first = capture_feedback(base, earlier[:0])
    assert first.similarity is None and not first.duplicate and first.message is None
    same = capture_feedback(base * 1.001 + 1e-4, earlier)
    assert same.duplicate and "move" in same.message
    other = capture_feedback(rng.uniform(0, 6, 64).astype(np.float32), earlier)
    assert not other.duplicate and other.similarity < 0.995


def novelty(embedding: np.ndarray, captured: np.ndarray) -> float | None:
    """The meter's novelty of a (D,) embedding next to (N, D) captured ones."""
    return gate_novelty(activation_patterns(captured), embedding)


def test_novelty() -> None:
    a = np.array([1.0, 0.0, 0.0], np.float32)
    b = np.array([0.0, 1.0, 0.0], np.float32)
    assert novelty(a, np.zeros((0, 3))) is None
    assert novelty(a, np.stack([a])) == pytest.approx(0.0, abs=1e-6)
    assert novelty(a, np.stack([b])) == pytest.approx(1.0)


def test_class_hint_names_small_and_unbalanced_classes() -> None:
    names = ("cup", "mug", "ball")
    assert class_hint(names, (3, 0, 0)) is None  # one class: nothing to compare
    assert "“mug”" in class_hint(names, (12, 3, 0))  # fewer than 5
    hint = class_hint(names, (30, 9, 12))
    assert hint.startswith("“mug” has 9 samples, “cup” 30")
    assert class_hint(names, (12, 10, 0)) is None
    assert imbalanced_classes([30, 9, 12, 0]) == [1]


def test_card_hints_mark_each_affected_class() -> None:
    assert card_hints([3, 0, 0]) == [None, None, None]  # one class: nothing to compare
    assert card_hints([12, 3, 0]) == [None, "needs 2 more", None]
    assert card_hints([2, 1, 9]) == ["needs 3 more", "needs 4 more", None]
    assert card_hints([30, 9, 12]) == [None, "too few", None]
    assert card_hints([12, 10, 0]) == [None, None, None]


def test_balanced_weights_and_weighted_kernel() -> None:
    y = np.array([0, 0, 0, 1])
    w = balanced_sample_weights(y, 3)
    assert w.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0])
    assert w.sum() == pytest.approx(len(y))
    logits = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    plain, weighted = logits.copy(), logits.copy()
    index = y * 4 + np.arange(4)
    loss_plain, _, _ = softmax_xent_(plain, index)
    loss_ones, _, _ = softmax_xent_(weighted, index, np.ones(4, np.float32))
    assert loss_ones == pytest.approx(loss_plain)
    np.testing.assert_allclose(plain, weighted)


@pytest.fixture(scope="module")
def imbalanced(extractor, core50_dir: Path):
    """Real embeddings of 4 CORe50 classes; two keep only 2 training images."""
    from kiosk.dataset import read_rgb

    names = sorted(p.name for p in core50_dir.iterdir() if p.is_dir())[:4]
    xs, ys, train = [], [], []
    for label, name in enumerate(names):
        paths = sorted((core50_dir / name).glob("*.png"))
        for k, path in enumerate(paths):
            xs.append(extractor.embed(read_rgb(path)))
            ys.append(label)
            held_out = k % 3 == 0
            minority_cut = label >= 2 and k > 3  # minority classes: 2 training images
            train.append(not held_out and not minority_cut)
    return np.stack(xs), np.asarray(ys), np.asarray(train), (np.asarray(ys) >= 0)


def test_balanced_loss_is_the_default_and_pycoral_stays_plain(imbalanced) -> None:
    assert DEFAULT_TRAINING.class_balance and not PYCORAL_TRAINING.class_balance
    x, y, train, _ = imbalanced
    test = np.asarray([k % 3 == 0 for k in range(len(y))])
    data = {"data_train": x[train], "labels_train": y[train]}
    counts = np.bincount(y[train])
    assert counts[2] == counts[3] == 2 and counts[0] >= 3 * counts[2]
    plain = SoftmaxRegression(1024, 4, weight_scale=0.0, seed=0)
    plain.fit(data, dataclasses.replace(DEFAULT_TRAINING, class_balance=False))
    balanced = SoftmaxRegression(1024, 4, weight_scale=0.0, seed=0)
    balanced.fit(data, DEFAULT_TRAINING)
    # Balancing moves the biases towards the minority classes.
    p_plain = plain.predict_proba(x[test])[:, 2:].sum()
    p_balanced = balanced.predict_proba(x[test])[:, 2:].sum()
    assert p_balanced > p_plain
    # Balanced data: the same kernel as without balancing, bit for bit.
    even = np.concatenate([np.flatnonzero(y == c)[:4] for c in range(4)])
    even_data = {"data_train": x[even], "labels_train": y[even]}
    a = SoftmaxRegression(1024, 4, weight_scale=0.0, seed=0)
    b = SoftmaxRegression(1024, 4, weight_scale=0.0, seed=0)
    a.fit(even_data, DEFAULT_TRAINING)
    b.fit(even_data, dataclasses.replace(DEFAULT_TRAINING, class_balance=False))
    np.testing.assert_array_equal(a.weights, b.weights)


def test_sgd_balanced_batches_only_when_asked(imbalanced) -> None:
    x, y, train, _ = imbalanced
    data = {"data_train": x[train], "labels_train": y[train]}
    uniform = SoftmaxRegression(1024, 4, weight_scale=0.01, seed=3)
    uniform_again = SoftmaxRegression(1024, 4, weight_scale=0.01, seed=3)
    balanced = SoftmaxRegression(1024, 4, weight_scale=0.01, seed=3)
    uniform.train_with_sgd(data, 50, 0.01, print_every=0)
    uniform_again.train_with_sgd(data, 50, 0.01, print_every=0, balanced=False)
    balanced.train_with_sgd(data, 50, 0.01, print_every=0, balanced=True)
    np.testing.assert_array_equal(uniform.weights, uniform_again.weights)
    assert not np.array_equal(uniform.weights, balanced.weights)
