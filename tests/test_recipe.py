"""The one training recipe: settings round trip, hold-out split, fit_head."""

from __future__ import annotations

import numpy as np
import pytest

from kiosk.learn import SoftmaxRegression, TrainingConfig
from kiosk.learn.fit_process import fit_here
from kiosk.learn.recipe import LabelledEmbeddings, TrainingSettings, fit_head, holdout_split


def _blobs(n_per_class: int, num_classes: int = 3, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (num_classes, dim))
    x = np.concatenate([c + rng.normal(0, 1, (n_per_class, dim)) for c in centres])
    y = np.repeat(np.arange(num_classes), n_per_class)
    return np.abs(x).astype(np.float32), y


def test_settings_round_trip_through_json():
    settings = TrainingSettings(
        config=TrainingConfig(num_iter=7, reg=0.5), val_fraction=0.2, seed=3, warm_start=False
    )
    assert TrainingSettings.from_json(settings.to_json()) == settings
    assert settings.with_config(num_iter=9).config.num_iter == 9


@pytest.mark.parametrize(
    "document",
    [[], {"config": []}, {"val_fraction": 1.5}, {"config": {"num_iter": 0}}, {"seed": "x"}],
)
def test_bad_settings_documents_are_value_errors(document):
    with pytest.raises(ValueError):
        TrainingSettings.from_json(document)


def test_holdout_keeps_small_classes_whole_and_never_empties_one():
    y = np.array([0] * 4 + [1] * 10 + [2] * 5)
    train, val = holdout_split(y, 3, 0.15, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(y)))
    assert np.bincount(y[val], minlength=3).tolist() == [0, 2, 1]
    again = holdout_split(y, 3, 0.15, seed=0)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)


def test_fit_head_learns_and_evaluates_on_the_holdout():
    x, y = _blobs(20)
    mirrored = x + np.float32(0.1)
    data = LabelledEmbeddings(x, y, 3, mirrored, np.ones(len(y), bool))
    fit = fit_head(data, TrainingSettings(), class_names=["a", "b", "c"])
    assert fit.result.train_accuracy == 1.0
    assert fit.evaluation is not None and fit.evaluation.accuracy == 1.0
    assert fit.evaluation.class_names == ("a", "b", "c")
    assert 0.4 <= fit.confidence_threshold <= 0.9
    assert len(fit.val_rows) == 9 and not set(fit.val_rows) & set(fit.train_rows)


def test_fit_head_refuses_one_class_and_empty_classes():
    x, y = _blobs(3, num_classes=2)
    with pytest.raises(ValueError):
        fit_head(LabelledEmbeddings(x, np.zeros(len(y), np.int64), 1), TrainingSettings())
    with pytest.raises(ValueError):
        fit_head(LabelledEmbeddings(x, np.zeros(len(y), np.int64), 2), TrainingSettings())


def test_the_refit_trains_on_every_sample_and_its_mirror():
    x, y = _blobs(20)
    mirrored = x + np.float32(0.1)
    data = LabelledEmbeddings(x, y, 3, mirrored, np.ones(len(y), bool))
    seen: list[int] = []

    def recording(model, split, config, **kwargs):
        seen.append(len(split["labels_train"]))
        return fit_here(model, split, config, **kwargs)

    fit = fit_head(data, TrainingSettings(), fitter=recording)
    held_out = len(fit.val_rows)
    assert held_out == 9
    # Hold-out fit: the training rows and their copies; refit: all 60 rows and 60 copies.
    assert seen == [2 * (60 - held_out), 120]
    assert fit.holdout_model is not None and fit.holdout_model is not fit.model
    # The hold-out fit never saw the held-out rows; the returned head did.
    assert fit.evaluation is not None and fit.result.val_accuracy == fit.evaluation.accuracy


def test_no_refit_without_a_holdout_or_when_turned_off():
    x, y = _blobs(3)  # classes under 5 samples: nothing is held out
    data = LabelledEmbeddings(x, y, 3)
    fit = fit_head(data, TrainingSettings())
    assert len(fit.val_rows) == 0 and fit.holdout_model is None
    x, y = _blobs(20)
    fit = fit_head(LabelledEmbeddings(x, y, 3), TrainingSettings(refit=False))
    assert len(fit.val_rows) and fit.holdout_model is None


def test_progress_runs_on_across_both_fits():
    x, y = _blobs(20)
    reports = []
    settings = TrainingSettings(config=TrainingConfig(num_iter=10, report_every=1))
    fit_head(LabelledEmbeddings(x, y, 3), settings, callback=reports.append)
    assert [r.iteration for r in reports] == list(range(1, 16))
    assert {r.num_iter for r in reports} == {15}
    assert [r.phase for r in reports] == ["holdout"] * 10 + ["refit"] * 5
    assert all(r.val_accuracy is not None for r in reports[:10])
    assert all(r.val_accuracy is None for r in reports[10:])


def test_cancel_during_the_refit_cancels_the_fit():
    x, y = _blobs(20)
    reports = []
    settings = TrainingSettings(config=TrainingConfig(num_iter=10, report_every=1))

    def cancel() -> bool:
        return any(r.phase == "refit" for r in reports)

    fit = fit_head(LabelledEmbeddings(x, y, 3), settings, callback=reports.append, cancel=cancel)
    assert fit.result.cancelled


def test_the_head_is_centred_and_its_range_covers_every_sample():
    x, y = _blobs(20)
    mirrored = x + np.float32(0.1)
    fit = fit_head(LabelledEmbeddings(x, y, 3, mirrored, np.ones(len(y), bool)), TrainingSettings())
    logits = fit.model.logits(np.concatenate([x, mirrored]))
    np.testing.assert_allclose(logits.mean(axis=1), 0, atol=1e-4)
    assert fit.model.logit_max == pytest.approx(float(logits.max()), rel=1e-5)
    assert fit.model.logit_min <= float(logits.max(axis=1).min())
    assert fit.gate is not None and fit.gate.threshold == fit.confidence_threshold


def test_centring_keeps_the_probabilities():
    x, y = _blobs(20)
    model = SoftmaxRegression(x.shape[1], 3, seed=0)
    model.fit({"data_train": x, "labels_train": y})
    model.biases = model.biases + np.float32(25.0)  # an offset every logit shares
    before = model.predict_proba(x)
    model.center_logits(x)
    np.testing.assert_allclose(model.predict_proba(x), before, atol=1e-5)
    assert abs(float(model.biases.mean())) < 1e-4
    assert np.allclose(model.weights.mean(axis=1), 0, atol=1e-5)
