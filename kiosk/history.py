"""Undo and redo that match what people did: a burst, a deleted class, a rename.

``History`` keeps the steps an operator or visitor took through the session
(``TeachingSession`` records them) and can take each back and redo it:

* ``Captured``: the samples of one gesture (a tap, or a hold that recorded a
  burst): undo removes them all, redo puts the same samples back;
* ``ClassAdded`` / ``ClassRemoved``: a class (with its samples) goes or comes back
  at its old place;
* ``ClassCleared``: the samples of a class go or come back;
* ``ClassRenamed``: the old name or the new one;
* ``Imported``: the images of an import, and the classes made for them.

``mark()`` is called at every Train and Save. ``is_recent(step)`` tells whether a
step came after the last mark: a kiosk lets visitors undo their own recent
captures without the operator's PIN.

A step that can no longer be undone (its class was deleted meanwhile, the store
is full) raises ``ValueError``/``StoreFullError`` and stays where it was. A load
(``TeachingSession.replace``) clears the history. Thread-safe; no Qt.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from kiosk.store import ClassRecord, EmbeddingStore, Sample

__all__ = [
    "Captured",
    "ClassAdded",
    "ClassCleared",
    "ClassRemoved",
    "ClassRenamed",
    "History",
    "Imported",
    "Step",
]

# Steps kept for undo: enough for a session, bounded for an unattended day.
MAX_STEPS = 200


class Step(Protocol):
    """One undoable change."""

    generation: int
    kind: str

    def undo(self, store: EmbeddingStore) -> None: ...

    def redo(self, store: EmbeddingStore) -> None: ...

    def describe(self) -> str: ...


def _index_of(store: EmbeddingStore, class_id: int) -> int:
    index = store.class_index(class_id)
    if index is None:
        raise ValueError("Its class has been deleted")
    return index


@dataclass
class Captured:
    """Samples captured by one gesture (they all share its ``group``)."""

    class_id: int
    class_name: str
    group: object
    samples: list[Sample] = field(default_factory=list, repr=False)
    generation: int = 0
    kind: str = "capture"

    def undo(self, store: EmbeddingStore) -> None:
        store.remove_samples([s.id for s in self.samples])

    def redo(self, store: EmbeddingStore) -> None:
        _index_of(store, self.class_id)
        store.insert_samples(self.samples)

    def describe(self) -> str:
        count = len(self.samples)
        what = "1 sample" if count == 1 else f"{count} samples"
        return f"{what} of “{self.class_name}”"


@dataclass
class ClassAdded:
    """A new, empty class."""

    record: ClassRecord
    index: int
    generation: int = 0
    kind: str = "add class"

    def undo(self, store: EmbeddingStore) -> None:
        index = _index_of(store, self.record.id)
        if store.counts()[index]:
            raise ValueError(f"“{self.record.name}” has samples now")
        store.remove_class(index)

    def redo(self, store: EmbeddingStore) -> None:
        store.restore_class(self.record, self.index)

    def describe(self) -> str:
        return f"adding “{self.record.name}”"


@dataclass
class ClassRemoved:
    """A deleted class with its samples, and where it stood."""

    record: ClassRecord
    index: int
    generation: int = 0
    kind: str = "delete class"

    def undo(self, store: EmbeddingStore) -> None:
        store.restore_class(self.record, self.index)

    def redo(self, store: EmbeddingStore) -> None:
        store.remove_class(_index_of(store, self.record.id))

    def describe(self) -> str:
        return f"deleting “{self.record.name}”"


@dataclass
class ClassCleared:
    """The samples a Clear took out of a class."""

    class_id: int
    class_name: str
    samples: tuple[Sample, ...] = field(repr=False)
    generation: int = 0
    kind: str = "clear class"

    def undo(self, store: EmbeddingStore) -> None:
        _index_of(store, self.class_id)
        store.insert_samples(self.samples)

    def redo(self, store: EmbeddingStore) -> None:
        store.remove_samples([s.id for s in self.samples])

    def describe(self) -> str:
        return f"clearing “{self.class_name}”"


@dataclass
class ClassRenamed:
    """A class's old and new name."""

    class_id: int
    old: str
    new: str
    generation: int = 0
    kind: str = "rename class"

    def undo(self, store: EmbeddingStore) -> None:
        store.rename_class(_index_of(store, self.class_id), self.old)

    def redo(self, store: EmbeddingStore) -> None:
        store.rename_class(_index_of(store, self.class_id), self.new)

    def describe(self) -> str:
        return f"renaming “{self.old}” to “{self.new}”"


@dataclass
class Imported:
    """Samples added at once (an image import), and the classes made for them."""

    created: tuple[ClassRecord, ...]
    samples: tuple[Sample, ...] = field(repr=False)
    generation: int = 0
    kind: str = "import"

    def undo(self, store: EmbeddingStore) -> None:
        store.remove_samples([s.id for s in self.samples])
        for record in self.created:
            index = store.class_index(record.id)
            if index is not None and not store.counts()[index]:
                store.remove_class(index)

    def redo(self, store: EmbeddingStore) -> None:
        for record in self.created:
            if store.class_index(record.id) is None:
                store.restore_class(record, store.num_classes)
        store.insert_samples(self.samples)

    def describe(self) -> str:
        return f"importing {len(self.samples)} images"


class History:
    """The undo and redo stacks of one session.

    Attributes:
        store: the store the steps change.
    """

    def __init__(self, store: EmbeddingStore, max_steps: int = MAX_STEPS) -> None:
        self.store = store
        self.max_steps = max_steps
        self._lock = threading.RLock()
        self._done: list[Step] = []
        self._undone: list[Step] = []
        self._generation = 0  # bumped by mark(): steps of the current one are "recent"

    # -- recording --------------------------------------------------------------

    def record(self, step: Step) -> None:
        """A new change: it goes on the undo stack and the redo stack is emptied."""
        with self._lock:
            step.generation = self._generation
            self._done.append(step)
            del self._done[: -self.max_steps]
            self._undone.clear()

    def record_capture(self, sample: Sample, class_name: str, group: object = None) -> None:
        """A captured sample; consecutive ones of the same ``group`` and class are one step."""
        with self._lock:
            last = self._done[-1] if self._done else None
            if (
                group is not None
                and isinstance(last, Captured)
                and last.group == group
                and last.class_id == sample.class_id
                and last.generation == self._generation
                and not self._undone
            ):
                last.samples.append(sample)
                return
            self.record(Captured(sample.class_id, class_name, group, [sample]))

    def mark(self) -> None:
        """A Train or a Save: what was done before is no longer "recent"."""
        with self._lock:
            self._generation += 1

    def clear(self) -> None:
        """Forget every step (after a load)."""
        with self._lock:
            self._done.clear()
            self._undone.clear()
            self._generation += 1

    # -- reading ----------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def next_undo(self) -> Step | None:
        with self._lock:
            return self._done[-1] if self._done else None

    def next_redo(self) -> Step | None:
        with self._lock:
            return self._undone[-1] if self._undone else None

    def is_recent(self, step: Step | None) -> bool:
        """Whether ``step`` is a capture made since the last ``mark`` (a visitor's own work)."""
        return step is not None and step.kind == "capture" and step.generation == self._generation

    # -- acting -----------------------------------------------------------------

    def undo(self) -> Step | None:
        """Take back the newest step; returns it (None when there is none).

        Raises ValueError or StoreFullError when it cannot be undone now; it then
        stays on the stack.
        """
        with self._lock:
            if not self._done:
                return None
            step = self._done[-1]
            step.undo(self.store)
            self._done.pop()
            self._undone.append(step)
            return step

    def redo(self) -> Step | None:
        """Do again the step undone last; returns it (None when there is none)."""
        with self._lock:
            if not self._undone:
                return None
            step = self._undone[-1]
            step.redo(self.store)
            self._undone.pop()
            self._done.append(step)
            return step
