"""When to say "not sure": the confidence threshold and the novelty of the view.

A head's top probability alone cannot tell an untaught object from a taught
one: a softmax always shares 100 % among the classes it knows, and with one or
two samples a class the head is no surer of the right class than of a stranger
(bench/bench_fewshot.py: a sign-digits model gives CORe50 objects a median top
probability of 0.30-0.66). What does tell them apart is how far the view is from
every stored sample: the session's novelty, 1 - the largest cosine similarity
of the embedding to the stored samples (``TeachingSession.novelty``). New views
of taught hand signs sit at a median novelty of 0.09-0.13, objects from another
set at 0.36-0.39, from the first sample on.

``NotSureGate`` is the small value a trained head keeps (persist it with
``to_json``/``from_json``), and ``is_sure`` the pure function the predictor calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["DEFAULT_NOVELTY_LIMIT", "NotSureGate", "is_sure"]

# Novelty above which a view is "not sure" whatever the head says. Between the
# new views of taught classes (95th percentile 0.14-0.23 on sign digits) and
# other objects (5th percentile 0.28-0.31), bench/bench_fewshot.py.
DEFAULT_NOVELTY_LIMIT = 0.30


@dataclass(frozen=True)
class NotSureGate:
    """What decides "not sure" for one trained head.

    Attributes:
        threshold: top-1 probability below which an answer is not sure (the
            head's confidence threshold, from its hold-out).
        novelty_limit: novelty above which an answer is not sure.
    """

    threshold: float
    novelty_limit: float = DEFAULT_NOVELTY_LIMIT

    def __post_init__(self) -> None:
        for name in ("threshold", "novelty_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict that ``from_json`` reads back exactly."""
        return asdict(self)

    @classmethod
    def from_json(cls, document: Any) -> NotSureGate:
        """A gate from ``to_json`` output; unknown keys are ignored.

        Raises:
            ValueError: not a dict, no threshold, or a value out of range.
        """
        if not isinstance(document, Mapping) or "threshold" not in document:
            raise ValueError("a not-sure gate must be a JSON object with a threshold")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in document.items() if k in known})
        except TypeError as error:
            raise ValueError(f"the not-sure gate is wrong: {error}") from None


def is_sure(probabilities: np.ndarray, novelty: float | None, gate: NotSureGate) -> bool:
    """Whether to show an answer as sure.

    Args:
        probabilities: (C,) class probabilities of one view (a mirror average is fine).
        novelty: the view's novelty in [0, 1], or None when unknown (then only
            the probability decides).
        gate: the head's ``NotSureGate``.
    """
    top = float(np.max(probabilities))
    if not top >= gate.threshold:
        return False
    return novelty is None or novelty <= gate.novelty_limit
