"""Fitting in a child process: same numbers as in-process, progress, cancel, failures."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading

import numpy as np
import pytest

from kiosk.learn import DEFAULT_TRAINING, SoftmaxRegression
from kiosk.learn.fit_process import FitProcess, TrainingProcessError, fit_here

FEATURES, CLASSES = 64, 3
# Long enough that cancel and kill always land mid-fit.
ENDLESS = dataclasses.replace(
    DEFAULT_TRAINING, optimizer="sgd", num_iter=10_000_000, learning_rate=0.01, report_every=50
)


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, 240)
    x = rng.normal(size=(240, FEATURES)).astype(np.float32)
    x[:, :CLASSES] += 2.5 * np.eye(CLASSES, dtype=np.float32)[y]
    return {
        "data_train": x[:180],
        "labels_train": y[:180],
        "data_val": x[180:],
        "labels_val": y[180:],
    }


@pytest.fixture(scope="module")
def fitter():
    with FitProcess() as process:
        yield process


def test_same_weights_as_fitting_here(fitter):
    data = _data()
    progress: list = []
    remote, result = fitter(
        SoftmaxRegression(FEATURES, CLASSES, seed=3),
        data,
        DEFAULT_TRAINING,
        callback=progress.append,
    )
    local, expected = fit_here(SoftmaxRegression(FEATURES, CLASSES, seed=3), data, DEFAULT_TRAINING)
    np.testing.assert_allclose(remote.weights, local.weights, atol=1e-6)
    np.testing.assert_allclose(remote.biases, local.biases, atol=1e-6)
    assert (remote.logit_min, remote.logit_max) == pytest.approx((local.logit_min, local.logit_max))
    assert result.loss == pytest.approx(expected.loss)
    assert progress and [p.iteration for p in progress] == sorted(p.iteration for p in progress)
    assert remote.get_accuracy(data["data_val"], data["labels_val"]) > 0.8


def test_cancel_reaches_the_child(fitter):
    cancel = threading.Event()
    seen: list = []

    def cancel_after_first_report(progress) -> None:
        seen.append(progress)
        cancel.set()

    _, result = fitter(
        SoftmaxRegression(FEATURES, CLASSES, seed=0),
        _data(),
        ENDLESS,
        callback=cancel_after_first_report,
        cancel=cancel,
    )
    assert result.cancelled and seen


def test_errors_from_fit_come_back_as_they_are(fitter):
    pid = fitter.pid
    with pytest.raises(ValueError, match="features"):
        fitter(SoftmaxRegression(FEATURES + 1, CLASSES), _data(), DEFAULT_TRAINING)
    assert fitter.pid == pid  # the child carries on


def test_a_killed_child_fails_the_fit_and_is_replaced(fitter):
    fitter.warm_up()
    victim = fitter.pid

    def kill_on_first_report(progress) -> None:
        os.kill(victim, signal.SIGKILL)

    with pytest.raises(TrainingProcessError, match="stopped unexpectedly"):
        fitter(
            SoftmaxRegression(FEATURES, CLASSES), _data(), ENDLESS, callback=kill_on_first_report
        )
    _, result = fitter(SoftmaxRegression(FEATURES, CLASSES, seed=0), _data(), DEFAULT_TRAINING)
    assert not result.cancelled and fitter.pid not in (None, victim)


def test_a_failing_callback_replaces_the_child_mid_fit(fitter):
    fitter.warm_up()
    before = fitter.pid

    def broken(progress) -> None:
        raise KeyError("plot gone")

    with pytest.raises(KeyError):
        fitter(SoftmaxRegression(FEATURES, CLASSES), _data(), ENDLESS, callback=broken)
    # No stale messages from the abandoned fit reach the next one.
    _, result = fitter(SoftmaxRegression(FEATURES, CLASSES, seed=0), _data(), DEFAULT_TRAINING)
    assert not result.cancelled and result.loss > 0
    assert fitter.pid != before


def test_closed_fitter_says_so():
    process = FitProcess()
    process.warm_up()
    assert process.pid is not None
    process.close()
    assert process.pid is None
    with pytest.raises(TrainingProcessError, match="shut down"):
        process(SoftmaxRegression(FEATURES, CLASSES), _data(), DEFAULT_TRAINING)


def test_the_child_uses_one_blas_thread(fitter):
    # Read back inside the child with threadpoolctl: every BLAS library it loaded.
    threads = fitter.child_blas_threads()
    assert threads and all(n == 1 for n in threads)
