"""The one training recipe: settings round trip, hold-out split, fit_head."""

from __future__ import annotations

import numpy as np
import pytest

from kiosk.learn import TrainingConfig
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
