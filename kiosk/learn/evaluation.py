"""How good is the trained head, class by class? (Qt-free.)

After each training the session scores the head on its stratified hold-out
split (``TeachingSession.val_fraction``, 15 % of every class with at least five
samples, as Teachable Machine does) and keeps an ``Evaluation``: per-class
accuracy, the confusion matrix, the most-confused pair of classes and a hint
that names them. The same split sets the "not sure" threshold
(``confidence_threshold``). ``per_class_agreement`` serves the fidelity check
of a saved (quantized) model against the float head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLD_CEILING",
    "DEFAULT_THRESHOLD_FLOOR",
    "DEFAULT_THRESHOLD_QUANTILE",
    "Evaluation",
    "confidence_threshold",
    "evaluate",
    "evaluation_from_confusion",
    "per_class_agreement",
]

# "Not sure" threshold: a low quantile of the confidences the head gives its
# correct validation answers. The floor keeps it from vanishing when validation
# is tiny or the head is poor; the ceiling keeps a head that is 99.9 % sure of
# every validation sample from calling a slightly different live frame "not sure".
DEFAULT_THRESHOLD_QUANTILE = 0.05
DEFAULT_THRESHOLD_FLOOR = 0.4
DEFAULT_THRESHOLD_CEILING = 0.9
# A low quantile read off a handful of held-out answers sits too high: with 9
# correct ones, the 5 % quantile flagged 14 % of the right answers on new sign
# digit photos (bench/bench_fewshot.py, k = 5). The quantile counts as n answers
# against a prior of this many at the floor, so a small hold-out moves the
# threshold only part of the way up (about 1 % flagged at k = 5, 4 % at k = 20).
DEFAULT_THRESHOLD_PRIOR = 10.0


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The head's results on held-out samples.

    Attributes:
        class_names: (C,) names, in head order.
        confusion: (C, C) int64; ``confusion[t, p]`` counts samples of class t
            predicted as p.
        per_class_accuracy: (C,) recall of each class, None where the class had
            no held-out sample.
        accuracy: overall share correct (None without samples).
        balanced_accuracy: mean of the per-class accuracies that exist.
        most_confused: (a, b, count) for the pair of classes mistaken for each
            other most often (both directions added), or None when nothing was.
    """

    class_names: tuple[str, ...]
    confusion: np.ndarray
    per_class_accuracy: tuple[float | None, ...]
    accuracy: float | None
    balanced_accuracy: float | None
    most_confused: tuple[int, int, int] | None

    @property
    def num_samples(self) -> int:
        return int(self.confusion.sum())

    @property
    def weakest_class(self) -> int | None:
        """Index of the class with the lowest accuracy (None without any)."""
        scored = [(a, i) for i, a in enumerate(self.per_class_accuracy) if a is not None]
        return min(scored)[1] if scored else None

    @property
    def hint(self) -> str | None:
        """One line for the status bar naming the most-confused pair, or None."""
        if self.most_confused is None:
            return None
        a, b, count = self.most_confused
        names = self.class_names
        return (
            f"“{names[a]}” and “{names[b]}” were mixed up {count}× on held-out samples: "
            f"add more examples of {names[a]} and {names[b]}"
        )


def evaluate(
    probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> Evaluation:
    """Score predictions against true labels.

    Args:
        probabilities: (M, C) class probabilities (or logits: only the argmax is used).
        labels: (M,) int true classes in [0, C).
        class_names: (C,) names in head order.
    """
    names = tuple(str(n) for n in class_names)
    c = len(names)
    labels = np.asarray(labels, np.int64).reshape(-1)
    probabilities = np.asarray(probabilities).reshape(len(labels), c)
    predicted = probabilities.argmax(axis=1) if len(labels) else np.zeros(0, np.int64)
    confusion = np.zeros((c, c), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return evaluation_from_confusion(confusion, names)


def evaluation_from_confusion(confusion: np.ndarray, class_names: Sequence[str]) -> Evaluation:
    """The ``Evaluation`` a (C, C) confusion matrix (true x predicted counts) stands for."""
    names = tuple(str(n) for n in class_names)
    c = len(names)
    confusion = np.asarray(confusion, np.int64).reshape(c, c)
    totals = confusion.sum(axis=1)
    per_class = tuple(float(confusion[i, i] / totals[i]) if totals[i] else None for i in range(c))
    scored = [a for a in per_class if a is not None]
    mixed = confusion + confusion.T
    np.fill_diagonal(mixed, 0)
    most: tuple[int, int, int] | None = None
    if mixed.any():
        row, col = np.unravel_index(int(np.argmax(mixed)), mixed.shape)
        a, b = sorted((int(row), int(col)))
        most = (a, b, int(mixed[a, b]))
    total = int(totals.sum())
    return Evaluation(
        class_names=names,
        confusion=confusion,
        per_class_accuracy=per_class,
        accuracy=float(np.trace(confusion) / total) if total else None,
        balanced_accuracy=float(np.mean(scored)) if scored else None,
        most_confused=most,
    )


def confidence_threshold(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    quantile: float = DEFAULT_THRESHOLD_QUANTILE,
    floor: float = DEFAULT_THRESHOLD_FLOOR,
    ceiling: float = DEFAULT_THRESHOLD_CEILING,
    prior: float = DEFAULT_THRESHOLD_PRIOR,
) -> float:
    """The confidence below which a prediction is shown as "not sure".

    The ``quantile`` q of the top-1 confidences of the n correctly classified
    held-out samples (0 gives the lowest of them), weighed against ``prior``
    answers at the floor: ``floor + (q - floor) * n / (n + prior)``, clipped to
    ``[floor, ceiling]``. Without any correct held-out sample it is ``floor``.

    Args:
        probabilities: (M, C) held-out class probabilities.
        labels: (M,) true classes.
    """
    if not (0.0 <= quantile <= 1.0 and 0.0 <= floor <= ceiling <= 1.0 and prior >= 0.0):
        raise ValueError("need 0 <= quantile <= 1, 0 <= floor <= ceiling <= 1 and prior >= 0")
    labels = np.asarray(labels, np.int64).reshape(-1)
    if len(labels) == 0:
        return float(floor)
    probabilities = np.asarray(probabilities, np.float64).reshape(len(labels), -1)
    top = probabilities.argmax(axis=1)
    correct = probabilities.max(axis=1)[top == labels]
    if len(correct) == 0:
        return float(floor)
    value = float(np.quantile(correct, quantile))
    value = floor + (value - floor) * len(correct) / (len(correct) + prior)
    return float(min(ceiling, max(floor, value)))


def per_class_agreement(
    expected: np.ndarray, observed: np.ndarray, groups: np.ndarray, num_groups: int
) -> tuple[float | None, ...]:
    """Share of rows where ``observed == expected``, per group.

    Args:
        expected: (N,) reference top-1 (e.g. the float head's).
        observed: (N,) top-1 to compare (e.g. the saved quantized model's).
        groups: (N,) group of each row in [0, num_groups) (e.g. its class).

    Returns:
        (num_groups,) agreement in 0..1, None for a group without rows.
    """
    expected = np.asarray(expected).reshape(-1)
    observed = np.asarray(observed).reshape(-1)
    groups = np.asarray(groups, np.int64).reshape(-1)
    agree = np.bincount(groups, weights=(expected == observed), minlength=num_groups)
    total = np.bincount(groups, minlength=num_groups)
    return tuple(float(agree[g] / total[g]) if total[g] else None for g in range(num_groups))


def lowest(values: Sequence[float | None]) -> float | None:
    """The smallest value that is not None (or NaN), else None."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return min(kept) if kept else None
