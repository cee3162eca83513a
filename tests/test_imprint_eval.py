"""Imprinting, evaluation and the "not sure" threshold, on real MobileNet embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kiosk.learn import DEFAULT_TRAINING, SoftmaxRegression
from kiosk.learn.evaluation import confidence_threshold, evaluate, per_class_agreement
from kiosk.learn.imprint import ImprintedHead, l2_normalize


@pytest.fixture(scope="module")
def core50(extractor, core50_dir: Path):
    """(x (90, 1024), y (90,), names, train mask): real embeddings, 1/3 of each class held out."""
    from kiosk.dataset import read_rgb

    names = sorted(p.name for p in core50_dir.iterdir() if p.is_dir())
    xs, ys = [], []
    for label, name in enumerate(names):
        for path in sorted((core50_dir / name).glob("*.png")):
            xs.append(extractor.embed(read_rgb(path)))
            ys.append(label)
    y = np.asarray(ys)
    train = np.ones(len(y), bool)
    for c in range(len(names)):
        train[np.flatnonzero(y == c)[::3]] = False
    return np.stack(xs).astype(np.float32), y, names, train


def test_imprinted_weights_are_unit_class_means(core50) -> None:
    x, y, names, train = core50
    head = ImprintedHead.from_data(x[train], y[train], len(names), temperature=20.0)
    assert head.weights.shape == (1024, len(names))
    np.testing.assert_allclose(np.linalg.norm(head.weights, axis=0), 1.0, rtol=1e-5)
    mean0 = l2_normalize(x[train][y[train] == 0]).mean(axis=0)
    np.testing.assert_allclose(head.weights[:, 0], mean0 / np.linalg.norm(mean0), atol=1e-6)
    p = head.predict_proba(x[~train])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    # Far better than chance (10 %) from a handful of real captures, no training.
    assert np.mean(head.predict(x[~train]) == y[~train]) >= 0.5


def test_raw_parameters_match_the_cosine_head(core50) -> None:
    x, y, names, train = core50
    head = ImprintedHead.from_data(x[train], y[train], len(names))
    w, b = head.raw_parameters()
    # Exactly equal logits for an embedding whose norm is the mean norm...
    probe = l2_normalize(x[0]) * head.mean_norm
    np.testing.assert_allclose(probe @ w + b, head.logits(probe), rtol=1e-4, atol=1e-4)
    # ...and nearly the same answers on real ones (norms vary by ~10 %).
    same = np.mean(np.argmax(x @ w + b, axis=1) == head.predict(x))
    assert same >= 0.95


def test_warm_start_reaches_the_trained_accuracy(core50) -> None:
    x, y, names, train = core50
    data = {"data_train": x[train], "labels_train": y[train]}
    head = ImprintedHead.from_data(x[train], y[train], len(names))
    cold = SoftmaxRegression(1024, len(names), weight_scale=0.0, seed=0)
    warm = SoftmaxRegression(1024, len(names), weight_scale=0.0, seed=0)
    warm.weights, warm.biases = head.raw_parameters()
    cold.fit(data, DEFAULT_TRAINING)
    warm.fit(data, DEFAULT_TRAINING)
    acc_cold = cold.get_accuracy(x[~train], y[~train])
    acc_warm = warm.get_accuracy(x[~train], y[~train])
    assert acc_warm >= 0.7 and acc_warm >= acc_cold - 0.05


def test_imprint_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        ImprintedHead.from_data(np.zeros((0, 4)), np.zeros(0), 2)
    with pytest.raises(ValueError):
        ImprintedHead.from_data(np.ones((2, 4)), np.array([0, 2]), 2)
    with pytest.raises(ValueError):
        ImprintedHead.from_data(np.ones((2, 4)), np.array([0, 1]), 2, temperature=0.0)
    # A class without samples gets a zero weight (logit 0), not NaN.
    head = ImprintedHead.from_data(np.ones((2, 4)), np.array([0, 0]), 2)
    assert np.isfinite(head.predict_proba(np.ones(4))).all()


def test_evaluate_counts_confusions_and_names_the_pair() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    predicted = np.array([0, 0, 1, 1, 0, 0, 2, 2])
    evaluation = evaluate(np.eye(3)[predicted], labels, ["cup", "mug", "ball"])
    assert evaluation.confusion.tolist() == [[2, 1, 0], [2, 1, 0], [0, 0, 2]]
    assert evaluation.per_class_accuracy == pytest.approx((2 / 3, 1 / 3, 1.0))
    assert evaluation.accuracy == pytest.approx(5 / 8)
    assert evaluation.balanced_accuracy == pytest.approx((2 / 3 + 1 / 3 + 1) / 3)
    assert evaluation.most_confused == (0, 1, 3)
    assert evaluation.weakest_class == 1
    assert "add more examples of cup and mug" in evaluation.hint
    # A class with no held-out sample has no accuracy, and perfect results no hint.
    clean = evaluate(np.eye(3)[[0, 1]], np.array([0, 1]), ["a", "b", "c"])
    assert clean.per_class_accuracy[2] is None and clean.hint is None


def test_evaluation_on_real_embeddings(core50) -> None:
    x, y, names, train = core50
    model = SoftmaxRegression(1024, len(names), weight_scale=0.0, seed=0)
    model.fit({"data_train": x[train], "labels_train": y[train]}, DEFAULT_TRAINING)
    evaluation = evaluate(model.predict_proba(x[~train]), y[~train], names)
    assert evaluation.num_samples == int((~train).sum())
    assert evaluation.accuracy == pytest.approx(model.get_accuracy(x[~train], y[~train]))
    assert all(a is not None for a in evaluation.per_class_accuracy)


def test_confidence_threshold_from_validation() -> None:
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.95, 0.05], [0.7, 0.3], [0.2, 0.8], [0.9, 0.1]])
    # Correct ones: 0.95, 0.7, 0.8 -> the lowest is 0.7 with quantile 0.
    lowest = confidence_threshold(probabilities, labels, quantile=0.0, prior=0)
    assert lowest == pytest.approx(0.7)
    # Three answers against a prior of three at the floor: half-way up from 0.4.
    halfway = confidence_threshold(probabilities, labels, quantile=0.0, floor=0.4, prior=3)
    assert halfway == pytest.approx(0.55)
    more = np.tile(probabilities, (10, 1)), np.tile(labels, 10)  # the same answers, 30 of them
    assert halfway < confidence_threshold(*more, quantile=0.0, floor=0.4, prior=3) < lowest
    assert confidence_threshold(probabilities, labels, quantile=0.0, floor=0.75) == 0.75
    assert confidence_threshold(probabilities, labels, quantile=1.0, ceiling=0.9, prior=0) == 0.9
    assert confidence_threshold(np.zeros((0, 2)), np.zeros(0), floor=0.3) == 0.3
    for bad in ({"floor": 0.9, "ceiling": 0.5}, {"prior": -1}):
        with pytest.raises(ValueError):
            confidence_threshold(probabilities, labels, **bad)


def test_per_class_agreement() -> None:
    expected = np.array([0, 0, 1, 1, 1, 2])
    observed = np.array([0, 1, 1, 1, 1, 2])
    groups = np.array([0, 0, 1, 1, 1, 2])
    assert per_class_agreement(expected, observed, groups, 4) == (0.5, 1.0, 1.0, None)
