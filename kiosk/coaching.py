"""Capture coaching: tell the user what would make the samples better. (Qt-free.)

* A near-duplicate capture (cosine similarity above ``DUPLICATE_SIMILARITY`` to
  an earlier sample of the same class) adds almost nothing: it is stored, but
  the UI says "move the object".
* Class balance and size: a class with fewer than a third of the largest
  class's samples, or fewer than ``MIN_SAMPLES`` before training, is named
  (``class_hint`` for the status line, ``card_hints`` for a note on each card).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kiosk.learn.imprint import l2_normalize

__all__ = [
    "DUPLICATE_SIMILARITY",
    "IMBALANCE_RATIO",
    "MIN_SAMPLES",
    "CaptureFeedback",
    "capture_feedback",
    "card_hints",
    "class_hint",
]

# Consecutive frames of a still object are ~0.99+ similar; a moved or turned
# object drops well below (measured on demo scenes and CORe50 frames).
DUPLICATE_SIMILARITY = 0.995
IMBALANCE_RATIO = 1 / 3
MIN_SAMPLES = 5


@dataclass(frozen=True)
class CaptureFeedback:
    """What one capture adds.

    Attributes:
        similarity: largest cosine similarity to an earlier sample of the same
            class (None for the class's first sample).
        duplicate: ``similarity`` is above the duplicate threshold.
    """

    similarity: float | None
    duplicate: bool

    @property
    def message(self) -> str | None:
        if not self.duplicate:
            return None
        return "Looks the same as an earlier sample: move or turn the object"


def _max_cosine(embedding: np.ndarray, others: np.ndarray) -> float | None:
    """Largest cosine similarity of a (D,) embedding to (N, D) others; None if N == 0."""
    if len(others) == 0:
        return None
    return float(np.max(l2_normalize(others) @ l2_normalize(embedding)))


def capture_feedback(
    embedding: np.ndarray, earlier: np.ndarray, threshold: float = DUPLICATE_SIMILARITY
) -> CaptureFeedback:
    """Feedback on a new (D,) embedding given its class's (N, D) earlier embeddings."""
    similarity = _max_cosine(embedding, earlier)
    return CaptureFeedback(similarity, similarity is not None and similarity > threshold)


def class_hint(
    names: Sequence[str],
    counts: Sequence[int],
    *,
    ratio: float = IMBALANCE_RATIO,
    minimum: int = MIN_SAMPLES,
) -> str | None:
    """A status-line hint about too few or unbalanced samples, or None.

    Only classes that have samples are considered (an empty class is left out
    of training anyway); needs two of them.
    """
    used = [(name, n) for name, n in zip(names, counts, strict=True) if n > 0]
    if len(used) < 2:
        return None
    few = [name for name, n in used if n < minimum]
    if few:
        listed = ", ".join(f"“{name}”" for name in few[:3])
        return f"Capture at least {minimum} samples of {listed} for a reliable model"
    largest_name, largest = max(used, key=lambda item: item[1])
    small = [(name, n) for name, n in used if n < ratio * largest]
    if small:
        name, n = min(small, key=lambda item: item[1])
        return (
            f"“{name}” has {n} samples, “{largest_name}” {largest}: "
            f"capture more of “{name}” so the model does not favour “{largest_name}”"
        )
    return None


def imbalanced_classes(counts: Sequence[int], ratio: float = IMBALANCE_RATIO) -> list[int]:
    """Indices of classes with samples but fewer than ``ratio`` x the largest class's."""
    largest = max(counts, default=0)
    return [i for i, n in enumerate(counts) if 0 < n < ratio * largest]


def card_hints(
    counts: Sequence[int], *, ratio: float = IMBALANCE_RATIO, minimum: int = MIN_SAMPLES
) -> list[str | None]:
    """A short note per class for its card: "needs 3 more", "too few", or None.

    The same rules as ``class_hint`` (only classes with samples count, and
    there must be two of them), but every affected class gets its note.
    """
    notes: list[str | None] = [None] * len(counts)
    if sum(1 for n in counts if n > 0) < 2:
        return notes
    small = set(imbalanced_classes(counts, ratio))
    for i, n in enumerate(counts):
        if 0 < n < minimum:
            notes[i] = f"needs {minimum - n} more"
        elif i in small:
            notes[i] = "too few"
    return notes
