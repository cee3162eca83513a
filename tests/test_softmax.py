"""Tests for the softmax head: math, training, progress, cancel, validation."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading

import numpy as np
import pytest

from kiosk.learn import (
    DEFAULT_TRAINING,
    PYCORAL_TRAINING,
    SoftmaxRegression,
    TrainingConfig,
    TrainingProgress,
    TrainingResult,
)
from kiosk.learn.training import Normalizer, _Objective


def gaussian_classes(
    rng: np.random.Generator, n_per_class: int, means: np.ndarray, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 samples around each (D,) row of ``means``, and (N,) labels."""
    c, d = means.shape
    y = np.repeat(np.arange(c), n_per_class)
    x = means[y] + spread * rng.standard_normal((len(y), d))
    return x.astype(np.float32), y


def embedding_like(
    rng: np.random.Generator, classes: int, per_class: int, dim: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative, MobileNet-like vectors (norms of about 30), one cluster a class."""
    means = np.abs(rng.standard_normal((classes, dim))) * 0.8
    x, y = gaussian_classes(rng, per_class, means, spread=0.5)
    return np.maximum(x, 0.0), y


def pycoral_data(x, y, x_val=None, y_val=None) -> dict[str, np.ndarray]:
    d = x.shape[1]
    return {
        "data_train": x,
        "labels_train": y,
        "data_val": np.zeros((0, d), np.float32) if x_val is None else x_val,
        "labels_val": np.zeros(0, np.int64) if y_val is None else y_val,
    }


def reference_loss(x, y, w, b, reg) -> float:
    """pycoral's loss in float64: mean cross-entropy + 0.5 * reg * ||W||^2."""
    z = x.astype(np.float64) @ w + b
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean() + 0.5 * reg * np.sum(w * w))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def separable(rng):
    """3 well separated 8-d Gaussian classes: train, validation, test."""
    means = 6.0 * rng.standard_normal((3, 8))
    return [gaussian_classes(rng, n, means) for n in (60, 20, 200)]


# -- math ------------------------------------------------------------------------


def test_gradient_matches_finite_differences_with_reg(rng):
    x, y = gaussian_classes(rng, 7, rng.standard_normal((4, 5)))
    model = SoftmaxRegression(5, 4, weight_scale=0.5, reg=0.3, seed=0)
    model.biases = rng.standard_normal(4)
    loss, grad_w, grad_b = model.loss_and_gradient(x, y)
    w = model.weights.astype(np.float64)
    b = model.biases.astype(np.float64)
    assert loss == pytest.approx(reference_loss(x, y, w, b, 0.3), rel=1e-5)
    eps = 1e-5
    numeric_w = np.zeros_like(w)
    for i, j in np.ndindex(*w.shape):
        step = np.zeros_like(w)
        step[i, j] = eps
        up = reference_loss(x, y, w + step, b, 0.3)
        down = reference_loss(x, y, w - step, b, 0.3)
        numeric_w[i, j] = (up - down) / (2 * eps)
    numeric_b = np.array(
        [
            (
                reference_loss(x, y, w, b + eps * np.eye(4)[k], 0.3)
                - reference_loss(x, y, w, b - eps * np.eye(4)[k], 0.3)
            )
            / (2 * eps)
            for k in range(4)
        ]
    )
    np.testing.assert_allclose(grad_w, numeric_w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad_b, numeric_b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block", [1000, 7])  # one block, and several with a ragged end
def test_fit_objective_gradient_matches_finite_differences(rng, block):
    # The default schedule's loss lives in normalized coordinates; check its
    # gradient (regularization and the centering/scaling chain rule included).
    x, y = embedding_like(rng, 3, 10, dim=6)
    norm = Normalizer.from_data(x)
    objective = _Objective(x, y, 3, norm, reg=0.7, block=block, cancelled=lambda: False)
    theta = rng.standard_normal(6 * 3 + 3)
    grad = np.empty(theta.size, np.float32)
    objective(theta.astype(np.float32), grad)

    def loss64(t: np.ndarray) -> float:
        w_n, b_n = t[:18].reshape(6, 3), t[18:]
        w = w_n * norm.scale
        b = b_n - norm.mean.astype(np.float64) @ w
        return reference_loss(x, y, w, b, 0.0) + 0.5 * 0.7 / len(y) * np.sum(w_n * w_n)

    eps = 1e-6
    numeric = np.array(
        [(loss64(theta + eps * e) - loss64(theta - eps * e)) / (2 * eps) for e in np.eye(21)]
    )
    np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-5)
    assert objective(theta.astype(np.float32), grad) == pytest.approx(loss64(theta), rel=1e-5)


def test_normalizer_folds_back_exactly(rng):
    x, _ = embedding_like(rng, 2, 20, dim=32)
    norm = Normalizer.from_data(x)
    w_n = rng.standard_normal((32, 2)).astype(np.float32)
    b_n = rng.standard_normal(2).astype(np.float32)
    w, b = norm.to_raw(w_n, b_n)
    normalized = norm.scale * (x - norm.mean)
    np.testing.assert_allclose(x @ w + b, normalized @ w_n + b_n, rtol=1e-4, atol=1e-4)
    back_w, back_b = norm.to_normalized(w, b)
    np.testing.assert_allclose(back_w, w_n, rtol=1e-5)
    np.testing.assert_allclose(back_b, b_n, rtol=1e-4, atol=1e-4)


# -- convergence -----------------------------------------------------------------


def test_fit_separable_classes(separable):
    (x, y), (xv, yv), (xt, yt) = separable
    model = SoftmaxRegression(8, 3, seed=0)
    result = model.fit(pycoral_data(x, y, xv, yv))
    assert result.iterations == DEFAULT_TRAINING.num_iter
    assert result.train_accuracy == 1.0 and result.val_accuracy == 1.0
    assert model.get_accuracy(xt, yt) >= 0.99
    assert not (result.cancelled or result.diverged)


def test_train_with_sgd_separable_classes(separable):
    (x, y), (xv, yv), (xt, yt) = separable
    model = SoftmaxRegression(8, 3, seed=0)
    result = model.train_with_sgd(pycoral_data(x, y, xv, yv), 300, 0.01, batch_size=32)
    assert result.optimizer == "sgd" and result.iterations == 300
    assert result.loss_history.shape == (300,) and result.loss_history.dtype == np.float32
    assert result.loss_history[-20:].mean() < result.loss_history[:20].mean()
    assert model.get_accuracy(xt, yt) >= 0.99


def test_non_separable_classes_reach_the_bayes_rate(rng):
    # Two unit-variance Gaussians 2 apart along one axis: the best possible
    # accuracy is Phi(1) = 0.841.
    d = 10
    means = np.zeros((2, d))
    means[0, 0], means[1, 0] = -1.0, 1.0
    x, y = gaussian_classes(rng, 1000, means + 3.0)
    xt, yt = gaussian_classes(rng, 5000, means + 3.0)
    bayes = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    fit = SoftmaxRegression(d, 2, seed=0)
    fit.fit(pycoral_data(x, y))
    assert fit.get_accuracy(xt, yt) >= bayes - 0.02
    sgd = SoftmaxRegression(d, 2, seed=0)
    sgd.train_with_sgd(pycoral_data(x, y), 2000, 0.05)
    assert sgd.get_accuracy(xt, yt) >= bayes - 0.03


def test_default_training_on_a_kiosk_sized_set(rng):
    x, y = embedding_like(rng, 3, 10)
    assert 20 < np.linalg.norm(x, axis=1).mean() < 40
    model = SoftmaxRegression(1024, 3, weight_scale=DEFAULT_TRAINING.weight_scale, seed=0)
    result = model.fit({"data_train": x, "labels_train": y})
    assert result.train_accuracy == 1.0
    assert model.get_accuracy(x, y) == 1.0
    assert result.val_accuracy is None


def test_pycoral_config_runs_train_with_sgd(separable):
    (x, y), _, _ = separable
    model = SoftmaxRegression(8, 3, seed=0)
    result = model.fit(pycoral_data(x, y), PYCORAL_TRAINING)
    assert result.optimizer == "sgd" and result.iterations == PYCORAL_TRAINING.num_iter


def test_fit_keeps_iterating_after_converging(rng):
    # Tiny data converges to float32 resolution quickly; the run still does all
    # its iterations (callers size progress bars and cancel tests on num_iter).
    x, y = gaussian_classes(rng, 2, 4.0 * np.eye(3))
    config = dataclasses.replace(DEFAULT_TRAINING, num_iter=400)
    result = SoftmaxRegression(3, 3, seed=0).fit(pycoral_data(x, y), config)
    assert result.iterations == 400 and not result.diverged
    history = result.loss_history
    assert np.all(np.isfinite(history)) and history[-1] <= history[0]


def test_fit_survives_a_far_too_big_learning_rate(separable):
    # Even the shortest step of the first line search overflows; the schedule
    # falls back to plain gradient steps, halves them until they stop raising
    # the loss, then hands back to L-BFGS.
    (x, y), _, (xt, yt) = separable
    model = SoftmaxRegression(8, 3, seed=0)
    config = dataclasses.replace(DEFAULT_TRAINING, learning_rate=1e10)
    result = model.fit(pycoral_data(x, y), config)
    assert not result.diverged and result.iterations == config.num_iter
    assert result.train_accuracy == 1.0 and model.get_accuracy(xt, yt) >= 0.99


def test_warm_start_reaches_the_same_optimum(separable):
    (x, y), _, _ = separable
    cold = SoftmaxRegression(8, 3, seed=0)
    config = dataclasses.replace(DEFAULT_TRAINING, num_iter=150)
    cold.fit(pycoral_data(x, y), config)
    warm = SoftmaxRegression(8, 3, seed=1)
    warm.fit(pycoral_data(x, y), dataclasses.replace(config, num_iter=20))
    warm.fit(pycoral_data(x, y), config)
    np.testing.assert_allclose(warm.predict_proba(x), cold.predict_proba(x), atol=2e-3)


# -- reproducibility, progress, cancel -------------------------------------------


def test_same_seed_same_weights(separable):
    (x, y), _, _ = separable
    data = pycoral_data(x, y)
    runs = []
    for seed in (7, 7, 8):
        model = SoftmaxRegression(8, 3, seed=seed)
        model.train_with_sgd(data, 50, 0.01, batch_size=16)
        runs.append(model.weights.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    fits = []
    for _ in range(2):
        model = SoftmaxRegression(8, 3, seed=3)
        model.fit(data)
        fits.append((model.weights.copy(), model.biases.copy()))
    np.testing.assert_array_equal(fits[0][0], fits[1][0])
    np.testing.assert_array_equal(fits[0][1], fits[1][1])


@pytest.mark.parametrize("optimizer", ["lbfgs", "sgd"])
def test_callback_reports_monotone_iterations_and_the_last_one(separable, optimizer):
    (x, y), (xv, yv), _ = separable
    reports: list[TrainingProgress] = []
    config = TrainingConfig(num_iter=95, report_every=10, optimizer=optimizer, batch_size=32)
    if optimizer == "sgd":
        config = dataclasses.replace(config, learning_rate=0.01, reg=0.0)
    model = SoftmaxRegression(8, 3, seed=0)
    result = model.fit(pycoral_data(x, y, xv, yv), config, callback=reports.append)
    iterations = [r.iteration for r in reports]
    assert iterations == [*range(10, 95, 10), 95]
    assert all(r.num_iter == 95 for r in reports)
    assert all(0.0 <= r.train_accuracy <= 1.0 and 0.0 <= r.val_accuracy <= 1.0 for r in reports)
    assert all(math.isfinite(r.loss) for r in reports)
    assert reports[-1].loss == pytest.approx(float(result.loss_history[-1]))
    assert result.iterations == 95 and len(result.loss_history) == 95


def test_default_report_period_is_about_a_hundred_reports(separable):
    (x, y), _, _ = separable
    reports: list[TrainingProgress] = []
    model = SoftmaxRegression(8, 3, seed=0)
    model.train_with_sgd(pycoral_data(x, y), 1000, 0.01, callback=reports.append)
    assert len(reports) == 100 and reports[-1].iteration == 1000


def test_print_every_logs_instead_of_printing(separable, caplog, capsys):
    (x, y), _, _ = separable
    caplog.set_level(logging.INFO, logger="kiosk.learn.softmax")
    SoftmaxRegression(8, 3, seed=0).train_with_sgd(pycoral_data(x, y), 30, 0.01, print_every=10)
    assert [r.message.split(":")[0] for r in caplog.records] == [
        "iteration 1/30",
        "iteration 11/30",
        "iteration 21/30",
    ]
    assert capsys.readouterr().out == ""
    caplog.clear()
    SoftmaxRegression(8, 3, seed=0).train_with_sgd(pycoral_data(x, y), 30, 0.01, print_every=0)
    assert not caplog.records


@pytest.mark.parametrize("optimizer", ["lbfgs", "sgd"])
def test_cancel_from_the_callback_stops_early(separable, optimizer):
    (x, y), _, _ = separable
    stop = threading.Event()
    seen: list[int] = []

    def callback(progress: TrainingProgress) -> None:
        seen.append(progress.iteration)
        if progress.iteration >= 5:
            stop.set()

    config = TrainingConfig(num_iter=10_000, report_every=1, optimizer=optimizer)
    if optimizer == "sgd":
        config = dataclasses.replace(config, learning_rate=0.01, batch_size=16)
    model = SoftmaxRegression(8, 3, seed=0)
    result = model.fit(pycoral_data(x, y), config, callback=callback, cancel=stop)
    assert result.cancelled and not result.diverged
    assert result.iterations == 5 and seen == [1, 2, 3, 4, 5]
    assert len(result.loss_history) == 5
    assert np.isfinite(model.weights).all()
    assert model.logit_min <= model.logit_max


def test_cancel_accepts_a_callable_and_a_preset_flag(separable):
    (x, y), _, _ = separable
    model = SoftmaxRegression(8, 3, seed=0)
    before = model.weights.copy()
    result = model.train_with_sgd(pycoral_data(x, y), 100, 0.01, cancel=lambda: True)
    assert result.cancelled and result.iterations == 0 and math.isnan(result.loss)
    np.testing.assert_array_equal(model.weights, before)
    preset = threading.Event()
    preset.set()
    result = model.fit(pycoral_data(x, y), cancel=preset)
    assert result.cancelled and result.iterations == 0
    np.testing.assert_array_equal(model.weights, before)
    calls = iter([False, False, True])
    result = model.fit(pycoral_data(x, y), cancel=lambda: next(calls))
    assert result.cancelled and result.iterations >= 1


# -- validation data, inference, logit range -------------------------------------


def test_empty_or_missing_validation_set(separable):
    (x, y), _, _ = separable
    reports: list[TrainingProgress] = []
    model = SoftmaxRegression(8, 3, seed=0)
    result = model.train_with_sgd(pycoral_data(x, y), 20, 0.01, callback=reports.append)
    assert result.val_accuracy is None and all(r.val_accuracy is None for r in reports)
    result = model.fit({"data_train": x, "labels_train": y}, callback=reports.append)
    assert result.val_accuracy is None and reports[-1].val_accuracy is None


def test_predict_and_predict_proba_shapes(separable):
    (x, y), _, _ = separable
    model = SoftmaxRegression(8, 3, seed=0)
    model.fit(pycoral_data(x, y))
    proba = model.predict_proba(x)
    assert proba.shape == (len(x), 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    predicted = model.predict(x)
    assert predicted.shape == (len(x),) and predicted.dtype == np.int64
    np.testing.assert_array_equal(predicted, proba.argmax(axis=1))
    assert model.predict_proba(x[0]).shape == (3,)
    assert model.predict(x[0]) == predicted[0]
    assert model.run_inference(x).tolist() == predicted.tolist()
    assert 0.0 <= model.get_accuracy(x, y) <= 1.0
    assert math.isnan(model.get_accuracy(np.zeros((0, 8)), np.zeros(0, int)))


def test_logit_range_covers_the_final_model_on_the_training_data(separable):
    (x, y), (xv, yv), _ = separable
    model = SoftmaxRegression(8, 3, seed=0)
    assert model.logit_min == math.inf and model.logit_max == -math.inf
    model.fit(pycoral_data(x, y, xv, yv))
    for data in (x, xv):
        logits = model.logits(data)
        assert model.logit_min <= logits.min() and logits.max() <= model.logit_max
    # The fit range is the final model's own (tight, no stale widening).
    both = model.logits(np.concatenate([x, xv]))
    assert model.logit_min == pytest.approx(both.min(), abs=1e-4)
    assert model.logit_max == pytest.approx(both.max(), abs=1e-4)
    # A warm-started SGD run covers its final weights too, not just its batches.
    model.weights = model.weights * 3
    model.train_with_sgd(pycoral_data(x, y), 5, 0.001, batch_size=4)
    logits = model.logits(x)
    assert model.logit_min <= logits.min() and logits.max() <= model.logit_max


def test_parameter_setters_validate_and_cast():
    model = SoftmaxRegression(4, 2)
    model.weights = np.ones((4, 2), np.float64)
    assert model.weights.dtype == np.float32
    model.biases = [1, 2]
    assert model.biases.dtype == np.float32 and model.biases.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="shape"):
        model.weights = np.ones((2, 4))
    with pytest.raises(ValueError, match="shape"):
        model.biases = np.ones(3)
    with pytest.raises(ValueError, match="NaN"):
        model.logit_min = float("nan")
    model.logit_min, model.logit_max = -2, 3
    assert (model.logit_min, model.logit_max) == (-2.0, 3.0)


def test_serialize_refuses_an_empty_logit_range(tmp_path):
    with pytest.raises(ValueError, match="logit range"):
        SoftmaxRegression(4, 2).serialize_model(tmp_path / "missing.tflite")


# -- input validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data_train": np.zeros((5, 7), np.float32)}, "7 features"),
        ({"labels_train": np.array([0, 1, 2, 3, 0])}, r"in \[0, 2\]"),
        ({"labels_train": np.array([0, -1, 2, 1, 0])}, r"in \[0, 2\]"),
        ({"labels_train": np.array([0, 1, 2])}, "shape"),
        ({"labels_train": np.array([0.5, 1, 2, 1, 0])}, "integer"),
        ({"data_train": np.full((5, 8), np.nan)}, "NaN"),
        ({"data_train": np.zeros((0, 8)), "labels_train": np.zeros(0, int)}, "at least 1"),
        ({"data_val": np.zeros((2, 9)), "labels_val": np.zeros(2, int)}, "9 features"),
        ({"data_val": np.zeros((2, 8))}, "labels_val"),
    ],
)
def test_bad_data_is_rejected(rng, change, message):
    data = {"data_train": rng.standard_normal((5, 8)), "labels_train": np.array([0, 1, 2, 1, 0])}
    data.update(change)
    model = SoftmaxRegression(8, 3)
    with pytest.raises(ValueError, match=message):
        model.train_with_sgd(data, 10, 0.1)
    with pytest.raises(ValueError, match=message):
        model.fit(data)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 0.1, 10), "num_iter"),
        ((10, 0.0, 10), "learning_rate"),
        ((10, -1.0, 10), "learning_rate"),
        ((10, float("inf"), 10), "learning_rate"),
        ((10, 0.1, 0), "batch_size"),
    ],
)
def test_bad_arguments_are_rejected(rng, args, message):
    data = {"data_train": rng.standard_normal((5, 8)), "labels_train": np.array([0, 1, 2, 1, 0])}
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression(8, 3).train_with_sgd(data, *args)


def test_bad_configs_and_models_are_rejected():
    for change in (
        {"num_iter": 0},
        {"learning_rate": 0},
        {"batch_size": 0},
        {"reg": -1},
        {"optimizer": "adam"},
        {"report_every": 0},
    ):
        with pytest.raises(ValueError):
            dataclasses.replace(DEFAULT_TRAINING, **change)
    with pytest.raises(ValueError):
        SoftmaxRegression(0, 3)
    with pytest.raises(ValueError):
        SoftmaxRegression(8, 3, weight_scale=-1)
    with pytest.raises(ValueError, match="TrainingConfig"):
        SoftmaxRegression(8, 3).fit({}, config={"num_iter": 3})


def test_config_is_frozen_and_json_friendly():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_TRAINING.num_iter = 3
    assert json.loads(json.dumps(dataclasses.asdict(DEFAULT_TRAINING)))["optimizer"] == "lbfgs"


# -- divergence ------------------------------------------------------------------


def test_divergence_is_reported_and_rolled_back(separable):
    (x, y), _, _ = separable
    # lr * reg > 2 makes every step multiply the weights by about -9: they
    # overflow float32 within a few dozen steps.
    model = SoftmaxRegression(8, 3, reg=1.0, seed=0)
    result = model.train_with_sgd(pycoral_data(x, y), 1000, 10.0)
    assert isinstance(result, TrainingResult)
    assert result.diverged and not result.cancelled
    assert 0 < result.iterations < 1000
    assert np.isfinite(model.weights).all() and np.isfinite(model.biases).all()
    assert np.isfinite(result.loss_history).all()
