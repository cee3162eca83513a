"""The trained head and how it maps to the store's classes: the head room.

A head covers exactly the classes that had at least one sample when training
started, in class order. It records their stable class ids, so

* renaming a class changes nothing but the name shown (and saved);
* adding or removing samples, clearing a trained class, or giving samples to a
  new class makes the head *stale* (``is_stale``): it still predicts, but no
  longer reflects the data, so the UI suggests retraining;
* removing a trained class makes the head *unusable* (``head_indices`` is
  None): it cannot predict or be saved, because one of its outputs no longer
  has a class to name. Retraining fixes both.

A ``TrainedHead`` is the one owner of everything that describes a head: its
weights and logit range (in ``model``), its classes, what it was trained on and
with which ``TrainingSettings``, its evaluation and its "not sure" threshold.
Metadata, projects and the autosave are all written from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kiosk.learn import SoftmaxRegression, TrainingResult
from kiosk.learn.evaluation import Evaluation
from kiosk.learn.gate import NotSureGate
from kiosk.learn.recipe import TrainingSettings
from kiosk.store import StoreSnapshot

__all__ = ["TrainedHead", "head_indices", "is_stale", "trained_signature"]


@dataclass(frozen=True, eq=False)
class TrainedHead:
    """A trained head and what it was trained on.

    Attributes:
        model: the trained ``SoftmaxRegression`` (weights (D, C), biases (C,),
            logit range); never changed afterwards.
        class_ids: stable store ids of the head's classes, in output order.
        trained_names: their names when training started.
        sample_ids: per head class, the ids of the samples it was trained on.
        result: the ``TrainingResult`` of the run (loss history, accuracies).
        trained_at: ``time.time()`` when it was made.
        settings: the ``TrainingSettings`` it was trained with.
        evaluation: per-class accuracy and confusion on the hold-out (None when
            nothing was held out).
        gate: when an answer is "not sure": its confidence threshold and the
            novelty limit (None: always sure).
        mirrored_counts: per head class, how many mirrored copies it trained on.
    """

    model: SoftmaxRegression
    class_ids: tuple[int, ...]
    trained_names: tuple[str, ...]
    sample_ids: tuple[tuple[int, ...], ...]
    result: TrainingResult
    trained_at: float
    settings: TrainingSettings
    evaluation: Evaluation | None = None
    gate: NotSureGate | None = None
    mirrored_counts: tuple[int, ...] = ()

    @property
    def confidence_threshold(self) -> float | None:
        """The top-1 probability below which an answer is "not sure" (part of ``gate``)."""
        return None if self.gate is None else self.gate.threshold

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def sample_counts(self) -> tuple[int, ...]:
        """Samples per head class it was trained on (hold-out included), in output order."""
        return tuple(len(ids) for ids in self.sample_ids)


def head_indices(head: TrainedHead | None, class_ids: Sequence[int]) -> tuple[int, ...] | None:
    """The current store index of each of the head's outputs, or None (no head, or
    one of its classes is gone). ``class_ids``: the store's ids in class order."""
    if head is None:
        return None
    position = {class_id: i for i, class_id in enumerate(class_ids)}
    try:
        return tuple(position[class_id] for class_id in head.class_ids)
    except KeyError:
        return None


def trained_signature(snapshot: StoreSnapshot) -> dict[int, tuple[int, ...]]:
    """{class id: its sample ids} for every class with samples: what a head trains on."""
    return {
        class_id: tuple(s.id for s in samples)
        for class_id, samples in zip(snapshot.class_ids, snapshot.samples, strict=True)
        if samples
    }


def is_stale(head: TrainedHead | None, snapshot: StoreSnapshot) -> bool:
    """The samples changed since ``head`` was trained (False without a head).

    Renames do not count; see the module docstring for what does.
    """
    if head is None:
        return False
    trained = dict(zip(head.class_ids, head.sample_ids, strict=True))
    return trained_signature(snapshot) != trained
