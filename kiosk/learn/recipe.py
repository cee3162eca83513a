"""How the kiosk turns labelled embeddings into a head: the one training recipe.

The window's Train, ``kiosk-train`` and the benchmarks all call ``fit_head``, so
a learning improvement is made once. The recipe:

1. split off a stratified hold-out (``TrainingSettings.val_fraction`` of every
   class with at least ``MIN_CLASS_SIZE_FOR_VAL`` samples);
2. warm-start from the head imprinted on the training rows, and fit on them plus
   their mirrored copies (a copy joins only with its original, never beside a
   held-out original);
3. score the fit on the hold-out: the ``Evaluation`` and the "not sure" threshold
   (with the novelty limit, the head's ``NotSureGate``);
4. refit on every sample and its mirrored copy, warm-started from the hold-out
   fit, for half the schedule's iterations: the head that predicts and is
   saved (with 5 training images a class the hold-out is a fifth of the data:
   refitting gained 5 points of test accuracy on sign digits,
   bench/bench_fewshot.py);
5. centre its logits over the classes and set the saved head's logit range
   from every sample (``SoftmaxRegression.center_logits``).

``TrainingSettings`` is the value the session owns as "the current training
settings"; a trained head keeps the settings it was trained with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from kiosk.learn.evaluation import (
    DEFAULT_THRESHOLD_FLOOR,
    DEFAULT_THRESHOLD_QUANTILE,
    Evaluation,
    confidence_threshold,
    evaluate,
)
from kiosk.learn.fit_process import Fitter, fit_here
from kiosk.learn.gate import SPREAD_SAMPLE_ROWS, NotSureGate, novelty_limit, spread_rows
from kiosk.learn.imprint import DEFAULT_TEMPERATURE, ImprintedHead
from kiosk.learn.softmax import SoftmaxRegression
from kiosk.learn.training import (
    DEFAULT_TRAINING,
    CancelFlag,
    TrainingConfig,
    TrainingProgress,
    TrainingResult,
)

__all__ = [
    "MIN_CLASS_SIZE_FOR_VAL",
    "HeadFit",
    "LabelledEmbeddings",
    "TrainingSettings",
    "fit_head",
    "holdout_split",
]

# A class needs this many samples before one of them is held out for validation.
MIN_CLASS_SIZE_FOR_VAL = 5
# The refit runs this share of the schedule's iterations. Warm-started from the
# hold-out fit, 30 L-BFGS passes reach the training loss of 60 on sign digits
# at k = 5, 10 and 20 (same test accuracy); re-imprinting needs all 60. Twenty
# passes keep the accuracy too, but the less settled head has more near-ties:
# the saved model's agreement at k = 20 fell from 99.85 to 99.25 % (bench_fewshot).
REFIT_SHARE = 0.5
# The "not sure" threshold never asks for more than this many times chance:
# with the novelty limit catching untaught objects, a higher floor mostly
# flags right answers (2.5 / C flagged 10 % of them on CORe50 mini at one
# sample a class, 1.5 / C 0.1 %; bench/bench_fewshot.py).
THRESHOLD_CHANCE_MULTIPLE = 1.5


@dataclass(frozen=True)
class TrainingSettings:
    """Everything that decides how a head is trained (a value; change with ``replace``).

    Attributes:
        config: the optimizer's schedule (``TrainingConfig``).
        val_fraction: share of each class held out to evaluate the head and set
            its "not sure" threshold, 0 <= val_fraction < 1.
        seed: fixes the hold-out split and the initial weights (None: random).
        warm_start: start from the imprinted head instead of random weights.
        imprint_temperature: T of the imprinted head (warm start, instant guesses).
        flip_augment: captures are also embedded mirrored and trained on.
        threshold_quantile, threshold_floor: how the "not sure" threshold is
            read off the hold-out (``kiosk.learn.evaluation.confidence_threshold``);
            the floor in effect is at most 1.5 / C for C classes.
        refit: after the hold-out fit has been scored, fit again on every sample
            (and its mirrored copy); that refit is the head that predicts and is
            saved. Nothing is refitted when nothing was held out.
        fixed_novelty_limit: views more novel than this are "not sure" (the
            head's ``NotSureGate``); None sets each head's limit from the
            spread of its samples (``kiosk.learn.gate.novelty_limit``).
    """

    config: TrainingConfig = DEFAULT_TRAINING
    val_fraction: float = 0.15
    seed: int | None = 0
    warm_start: bool = True
    imprint_temperature: float = DEFAULT_TEMPERATURE
    flip_augment: bool = True
    threshold_quantile: float = DEFAULT_THRESHOLD_QUANTILE
    threshold_floor: float = DEFAULT_THRESHOLD_FLOOR
    refit: bool = True
    fixed_novelty_limit: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, TrainingConfig):
            raise ValueError(f"config must be a TrainingConfig, got {type(self.config).__name__}")
        if not (isinstance(self.val_fraction, int | float) and 0 <= self.val_fraction < 1):
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
        if not (math.isfinite(self.imprint_temperature) and self.imprint_temperature > 0):
            raise ValueError(f"imprint_temperature must be > 0, got {self.imprint_temperature!r}")
        if not (0 <= self.threshold_floor <= 1 and 0 <= self.threshold_quantile <= 1):
            raise ValueError("threshold_quantile and threshold_floor must be in [0, 1]")
        limit = self.fixed_novelty_limit
        if limit is not None and not (
            isinstance(limit, int | float) and not isinstance(limit, bool) and 0 <= limit <= 1
        ):
            raise ValueError(f"fixed_novelty_limit must be in [0, 1] or None, got {limit!r}")

    def with_config(self, **changes: Any) -> TrainingSettings:
        """These settings with some ``TrainingConfig`` fields changed."""
        return replace(self, config=replace(self.config, **changes))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict that ``from_json`` reads back exactly."""
        document = asdict(self)
        document["config"] = asdict(self.config)
        return document

    @classmethod
    def from_json(cls, document: Any) -> TrainingSettings:
        """Settings from ``to_json`` output; unknown keys are ignored, missing ones default.

        Raises:
            ValueError: not a dict, or a value out of range.
        """
        if not isinstance(document, Mapping):
            raise ValueError("training settings must be a JSON object")
        known = {f for f in cls.__dataclass_fields__ if f != "config"}
        values = {k: v for k, v in document.items() if k in known}
        config_doc = document.get("config", {})
        if not isinstance(config_doc, Mapping):
            raise ValueError("training settings: 'config' must be a JSON object")
        config_fields = set(TrainingConfig.__dataclass_fields__)
        try:
            config = TrainingConfig(**{k: v for k, v in config_doc.items() if k in config_fields})
            return cls(config=config, **values)
        except TypeError as error:
            raise ValueError(f"training settings are wrong: {error}") from None


@dataclass(frozen=True, eq=False)
class LabelledEmbeddings:
    """What a head is trained on.

    Attributes:
        x: (N, D) float32 embeddings.
        y: (N,) int64 labels in [0, num_classes).
        num_classes: C; every class must have at least one row.
        mirrored: (N, D) float32 embeddings of the mirrored images (rows where
            ``has_mirror`` is False are ignored), or None.
        has_mirror: (N,) bool, or None.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    mirrored: np.ndarray | None = None
    has_mirror: np.ndarray | None = None

    def __post_init__(self) -> None:
        x = np.asarray(self.x, np.float32)
        y = np.asarray(self.y, np.int64).reshape(-1)
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"need (N, D) embeddings and (N,) labels, got {x.shape}, {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes})")
        if (self.mirrored is None) != (self.has_mirror is None):
            raise ValueError("mirrored and has_mirror come together")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        if self.mirrored is not None:
            mirrored = np.asarray(self.mirrored, np.float32)
            has = np.asarray(self.has_mirror, bool).reshape(-1)
            if mirrored.shape != x.shape or has.shape != y.shape:
                raise ValueError("mirrored embeddings must match the embeddings row for row")
            object.__setattr__(self, "mirrored", mirrored)
            object.__setattr__(self, "has_mirror", has)

    @property
    def feature_dim(self) -> int:
        return int(self.x.shape[1])

    def counts(self) -> np.ndarray:
        """(C,) rows per class."""
        return np.bincount(self.y, minlength=self.num_classes)


@dataclass(frozen=True, eq=False)
class HeadFit:
    """What ``fit_head`` made.

    Attributes:
        model: the trained head (the one that predicts and is saved): the refit
            on every sample when there was a hold-out, else the one fit. Its
            logits are centred over the classes and its logit range covers
            every sample and mirrored copy.
        result: the run as one ``TrainingResult``: loss history of both fits
            (for the plot), the final model's training accuracy, the hold-out
            fit's validation accuracy, cancelled/diverged if either fit was.
        evaluation: scores of the hold-out fit on the hold-out (None when
            nothing was held out).
        confidence_threshold: below it a prediction is "not sure".
        train_rows: indices into the input of the rows trained on (originals).
        val_rows: indices into the input of the held-out rows.
        settings: the settings it was trained with.
        holdout_model: the hold-out fit (trained on ``train_rows`` and their
            mirrored copies only), kept for checks that need a head which has
            not seen ``val_rows``; None when no refit followed it.
        gate: when the head's answers are "not sure" (threshold and novelty
            limit; ``kiosk.learn.gate.is_sure``); None when training stopped.
    """

    model: SoftmaxRegression
    result: TrainingResult
    evaluation: Evaluation | None
    confidence_threshold: float | None
    train_rows: np.ndarray
    val_rows: np.ndarray
    settings: TrainingSettings = field(default_factory=TrainingSettings)
    holdout_model: SoftmaxRegression | None = None
    gate: NotSureGate | None = None


def holdout_split(
    y: np.ndarray, num_classes: int, val_fraction: float, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified hold-out: (train rows, val rows), each (n,) int64 sorted per class.

    A class with at least ``MIN_CLASS_SIZE_FOR_VAL`` rows gives
    ``round(n * val_fraction)`` of them (at least one, never all) to validation;
    smaller classes keep every row for training.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y, np.int64)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for label in range(num_classes):
        rows = np.flatnonzero(y == label)
        n = len(rows)
        n_val = 0
        if n >= MIN_CLASS_SIZE_FOR_VAL and val_fraction > 0:
            n_val = min(n - 1, max(1, round(n * val_fraction)))
        order = rows[rng.permutation(n)]
        val.append(order[:n_val])
        train.append(order[n_val:])
    empty = np.zeros(0, np.int64)
    return (
        np.concatenate(train) if train else empty,
        np.concatenate(val) if val else empty,
    )


def _training_rows(
    data: LabelledEmbeddings, train: np.ndarray, val: np.ndarray, with_mirrors: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """pycoral's data dicts for the hold-out fit and for the refit on everything.

    The rows are gathered once into one array: the training rows and their
    mirrored copies first, then the hold-out rows and theirs. The hold-out fit
    trains on the first part (a view, no copy) and is scored on the hold-out;
    the refit trains on all of it. At the store's limit the rows are hundreds
    of MB, so gathering them once instead of once a fit is worth it.
    """
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (source (N, D), row indices)
    for rows in (train, val):
        parts.append((data.x, rows))
        if with_mirrors and data.mirrored is not None and data.has_mirror is not None:
            parts.append((data.mirrored, rows[data.has_mirror[rows]]))
    x_all = np.empty((sum(len(rows) for _, rows in parts), data.feature_dim), np.float32)
    y_all = np.concatenate([data.y[rows] for _, rows in parts])
    at = 0
    for source, rows in parts:
        np.take(source, rows, axis=0, out=x_all[at : at + len(rows)])
        at += len(rows)
    first = sum(len(rows) for _, rows in parts[: len(parts) // 2])
    holdout = {
        "data_train": x_all[:first],
        "labels_train": y_all[:first],
        "data_val": np.ascontiguousarray(data.x[val]),
        "labels_val": data.y[val],
    }
    everything = {
        "data_train": x_all,
        "labels_train": y_all,
        "data_val": x_all[:0],
        "labels_val": y_all[:0],
    }
    return holdout, everything


def fit_head(
    data: LabelledEmbeddings,
    settings: TrainingSettings,
    *,
    class_names: Sequence[str] | None = None,
    fitter: Fitter | None = None,
    callback: Callable[[TrainingProgress], Any] | None = None,
    cancel: CancelFlag = None,
) -> HeadFit:
    """Train a head the way the kiosk does (see the module docstring).

    Progress: one iteration count runs across both fits (``num_iter`` is the
    total, ``1.5 * config.num_iter`` when a refit follows); ``phase`` says which
    fit a report belongs to, and the refit's reports have no validation accuracy.

    Args:
        data: the labelled embeddings (every class needs a row).
        settings: how to train.
        class_names: (C,) names for the evaluation (default "0", "1", ...).
        fitter: runs each fit (``fit_here`` by default; the kiosk passes a
            ``FitProcess`` so the GUI process never holds the fit's interpreter lock).
        callback: receives ``TrainingProgress``.
        cancel: stops early (in either fit); the returned fit then has
            ``result.cancelled`` and must not replace a working head.

    Raises:
        ValueError: fewer than two classes, or a class without rows.
    """
    if data.num_classes < 2:
        raise ValueError("Training needs at least two classes with samples")
    if (data.counts() == 0).any():
        raise ValueError("every class needs at least one sample")
    names = (
        tuple(str(n) for n in class_names)
        if class_names is not None
        else tuple(str(i) for i in range(data.num_classes))
    )
    config = settings.config
    fit = fitter or fit_here
    train, val = holdout_split(data.y, data.num_classes, settings.val_fraction, settings.seed)
    refit = settings.refit and len(val) > 0
    refit_config = replace(config, num_iter=max(1, round(config.num_iter * REFIT_SHARE)))
    total = config.num_iter + (refit_config.num_iter if refit else 0)
    split, everything = _training_rows(data, train, val, settings.flip_augment)
    model = _start_model(data, split, settings)
    phase = "holdout" if refit else "fit"
    model, result = fit(
        model, split, config, callback=_relay(callback, phase, 0, total), cancel=cancel
    )
    holdout_model, holdout_result = None, None
    evaluation, threshold = None, None
    if not (result.cancelled or result.diverged):
        evaluation, threshold = _evaluate(model, split, names, settings)
    if refit and not (result.cancelled or result.diverged):
        holdout_model, holdout_result = model, result
        # Warm start from the hold-out fit: it already sits near the optimum of a
        # problem that only gained a few rows, and reaches it in half the passes.
        model = _copy_model(holdout_model)
        model, refit_result = fit(
            model,
            everything,
            refit_config,
            callback=_relay(callback, "refit", config.num_iter, total),
            cancel=cancel,
        )
        result = _joined(holdout_result, refit_result)
    if not (result.cancelled or result.diverged):
        model.center_logits(*_logit_rows(data, settings.flip_augment))
    return HeadFit(
        model,
        result,
        evaluation,
        threshold,
        train,
        val,
        settings,
        holdout_model=holdout_model,
        gate=None if threshold is None else NotSureGate(threshold, _novelty_limit(data, settings)),
    )


def _start_model(
    data: LabelledEmbeddings, split: dict[str, np.ndarray], settings: TrainingSettings
) -> SoftmaxRegression:
    config = settings.config
    model = SoftmaxRegression(
        data.feature_dim,
        data.num_classes,
        weight_scale=config.weight_scale,
        reg=config.reg,
        seed=settings.seed,
    )
    if settings.warm_start:
        # Imprinted from the training rows only: the hold-out stays unseen.
        imprinted = ImprintedHead.from_data(
            split["data_train"], split["labels_train"], data.num_classes,
            settings.imprint_temperature,
        )  # fmt: skip
        model.weights, model.biases = imprinted.raw_parameters()
    return model


def _copy_model(model: SoftmaxRegression) -> SoftmaxRegression:
    """A fresh model with ``model``'s hyper-parameters and parameters (seeded alike)."""
    copy = SoftmaxRegression(
        model.feature_dim, model.num_classes, model.weight_scale, model.reg, seed=model.seed
    )
    copy.weights, copy.biases = model.weights, model.biases
    return copy


def _novelty_limit(data: LabelledEmbeddings, settings: TrainingSettings) -> float:
    """The head's novelty limit: the fixed one, or one from the spread of the
    samples and their mirrored copies (what the predictor measures novelty against).

    A big set is thinned first (``spread_rows``: half the budget for the
    originals, half for their mirrors), without copying every row."""
    if settings.fixed_novelty_limit is not None:
        return float(settings.fixed_novelty_limit)
    rows = spread_rows(len(data.y), SPREAD_SAMPLE_ROWS // 2)
    x, y = data.x[rows], data.y[rows]
    if data.mirrored is not None and data.has_mirror is not None:
        mirrored = rows[data.has_mirror[rows]]
        x = np.concatenate([x, data.mirrored[mirrored]])
        y = np.concatenate([y, data.y[mirrored]])
    return novelty_limit(x, y)


def _logit_rows(data: LabelledEmbeddings, with_mirrors: bool) -> tuple[np.ndarray, ...]:
    """Every row the saved head's logit range must cover: (N, D) originals, (M, D) mirrors."""
    if with_mirrors and data.mirrored is not None and data.has_mirror is not None:
        if data.has_mirror.all():
            return data.x, data.mirrored
        return data.x, data.mirrored[data.has_mirror]
    return (data.x,)


def _relay(
    callback: Callable[[TrainingProgress], Any] | None, phase: str, offset: int, total: int
) -> Callable[[TrainingProgress], Any] | None:
    """Passes a fit's progress on as part of the recipe's one iteration count."""
    if callback is None:
        return None

    def relay(progress: TrainingProgress) -> Any:
        return callback(
            progress._replace(iteration=progress.iteration + offset, num_iter=total, phase=phase)
        )

    return relay


def _joined(first: TrainingResult, second: TrainingResult) -> TrainingResult:
    """The two fits as one run: the refit's final state, the hold-out's validation score."""
    return TrainingResult(
        iterations=first.iterations + second.iterations,
        num_iter=first.num_iter + second.num_iter,
        loss=second.loss,
        train_accuracy=second.train_accuracy,
        val_accuracy=first.val_accuracy,
        cancelled=second.cancelled,
        diverged=second.diverged,
        seconds=first.seconds + second.seconds,
        loss_history=np.concatenate([first.loss_history, second.loss_history]),
        optimizer=second.optimizer,
    )


def _evaluate(
    model: SoftmaxRegression,
    split: dict[str, np.ndarray],
    names: tuple[str, ...],
    settings: TrainingSettings,
) -> tuple[Evaluation | None, float]:
    """The hold-out evaluation and the "not sure" threshold it gives.

    The threshold's floor is ``settings.threshold_floor`` or
    ``THRESHOLD_CHANCE_MULTIPLE`` times chance (1 / C), whichever is lower: with
    ten classes a top probability of 0.3 is three times chance, and flagging it
    called 19 % of the right answers "not sure" at one sample a class, where
    the novelty limit already catches untaught objects (bench/bench_fewshot.py).
    """
    x_val, y_val = split["data_val"], split["labels_val"]
    num_classes = model.num_classes
    floor = min(settings.threshold_floor, THRESHOLD_CHANCE_MULTIPLE / num_classes)
    if len(y_val) == 0:
        return None, floor
    probabilities = np.asarray(model.predict_proba(x_val)).reshape(len(y_val), -1)
    threshold = confidence_threshold(
        probabilities,
        y_val,
        quantile=settings.threshold_quantile,
        floor=floor,
    )
    return evaluate(probabilities, y_val, names), threshold
