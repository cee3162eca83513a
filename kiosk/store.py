"""The in-memory embedding store: named classes and their captured samples.

Classes have a position (the ``class_index`` the UI and labels use, which
shifts when a class before it is removed) and a stable ``class_id`` that never
changes and is never reused, so a trained head can tell which classes it knew.
Samples have a stable ``id`` too, increasing with capture order; within a class
they are kept in id order.

A ``Sample`` owns everything about one capture: the embedding, the embedding of
the mirrored image, the thumbnail, the JPEG model input and the capture time.
Samples are immutable (their arrays are read-only), so a snapshot handed to a
training thread stays valid while captures go on, and a removed sample can be
put back unchanged (undo).

Every change bumps ``version`` and then emits one of ``events`` (psygnal
signals carrying what changed) outside the lock, on the thread that made the
change. ``replace`` swaps in everything at once (a load) and emits only
``events.replaced``.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SAMPLES_PER_CLASS",
    "MAX_CLASSES",
    "MAX_NAME_LENGTH",
    "ClassRecord",
    "EmbeddingStore",
    "Sample",
    "StoreEvents",
    "StoreFullError",
    "StoreSnapshot",
    "class_name_key",
    "frozen_sample",
    "listen",
    "normalize_class_name",
]

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 64
# Limits that keep an unattended kiosk from filling its memory: a burst held
# down for an hour stops at the cap with a message instead of swapping.
DEFAULT_MAX_SAMPLES_PER_CLASS = 2000
DEFAULT_MAX_BYTES = 1 << 30  # stored embeddings (and mirrored ones), thumbnails, images
# The most classes a store (and so any file read into one) may hold: far above
# what a screen shows, low enough that a file claiming millions is refused
# before anything is allocated for them.
MAX_CLASSES = 10_000


class StoreFullError(Exception):
    """A sample was refused because a store limit is reached; ``str(error)`` says which."""


# Characters that would break labels.txt (one "index name" per line) or cannot
# be written as UTF-8: control characters (newline, tab, NUL...), line and
# paragraph separators, lone surrogates.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def normalize_class_name(name: str) -> str:
    """The name as it will be stored (NFC, stripped), or ``ValueError`` saying what is wrong.

    Unicode (accents, CJK, emoji) and punctuation, including "/", are fine: a
    name is only ever written into labels.txt, never used as a file name.
    """
    if not isinstance(name, str):
        raise ValueError(f"a class name must be text, not {type(name).__name__}")
    text = unicodedata.normalize("NFC", name).strip()
    if not text:
        raise ValueError("A class name cannot be empty")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text):
        raise ValueError(
            "A class name cannot contain line breaks, tabs or other control characters"
        )
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(
            f"A class name can have at most {MAX_NAME_LENGTH} characters (this one has {len(text)})"
        )
    return text


def class_name_key(name: str) -> str:
    """What two class names are compared by: equal keys are the same name to a person."""
    return name.casefold()


@dataclass(frozen=True, eq=False)
class Sample:
    """One capture.

    Attributes:
        id: unique within the store, increasing with capture order.
        class_id: the stable id of the class it belongs to.
        embedding: (D,) float32, read-only.
        thumbnail: (h, w, 3) uint8 RGB, read-only.
        image: the encoded model input (JPEG) the embedding was computed from, if kept.
        created: capture time (seconds since the epoch).
        flipped: (D,) float32 embedding of the mirrored image (read-only), or None.
    """

    id: int
    class_id: int
    embedding: np.ndarray
    thumbnail: np.ndarray
    image: bytes | None
    created: float
    flipped: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Bytes this sample holds (what the store's ``max_bytes`` counts)."""
        flipped = 0 if self.flipped is None else self.flipped.nbytes
        image = len(self.image) if self.image else 0
        return int(self.embedding.nbytes + flipped + self.thumbnail.nbytes + image)


@dataclass(frozen=True, eq=False)
class ClassRecord:
    """A class with its samples, as a value: what a load puts in and a delete takes out.

    Attributes:
        id: the stable class id.
        name: its (normalized) name.
        samples: its samples in id order (each with ``class_id == id``).
    """

    id: int
    name: str
    samples: tuple[Sample, ...] = ()


@dataclass(frozen=True, eq=False)
class StoreSnapshot:
    """A consistent, immutable view of the store at one ``version``.

    ``samples[i]`` holds the samples of class ``i`` in capture order.
    """

    version: int
    feature_dim: int
    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    samples: tuple[tuple[Sample, ...], ...]

    def counts(self) -> list[int]:
        """Samples per class, in class order."""
        return [len(s) for s in self.samples]

    @property
    def total(self) -> int:
        return sum(len(s) for s in self.samples)

    def embeddings(self, class_index: int) -> np.ndarray:
        """(n, D) float32 embeddings of one class."""
        return _stack([s.embedding for s in self.samples[class_index]], self.feature_dim)

    def as_arrays(self, classes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All samples as (X (N, D) float32, y (N,) int64).

        Args:
            classes: class indices to include; ``y`` is the position in this list.
                Default: every class, ``y`` = class index.
        """
        chosen = range(len(self.samples)) if classes is None else classes
        xs = [self.embeddings(c) for c in chosen]
        ys = [np.full(len(x), label, np.int64) for label, x in enumerate(xs)]
        if not xs:
            return np.zeros((0, self.feature_dim), np.float32), np.zeros(0, np.int64)
        return np.concatenate(xs), np.concatenate(ys)

    def records(self) -> tuple[ClassRecord, ...]:
        """Every class with its samples, in class order."""
        return tuple(
            ClassRecord(i, n, s)
            for i, n, s in zip(self.class_ids, self.class_names, self.samples, strict=True)
        )


class StoreEvents(SignalGroup):
    """What changed in an ``EmbeddingStore``; emitted after the change, outside its lock."""

    samplesAdded = Signal(tuple)  # tuple[Sample, ...]
    samplesRemoved = Signal(tuple)  # tuple[Sample, ...]
    classAdded = Signal(int)  # class id
    classRemoved = Signal(int, tuple)  # class id, its samples (also in samplesRemoved)
    classRenamed = Signal(int, str)  # class id, new name
    classCleared = Signal(int)  # class id (after samplesRemoved)
    extended = Signal(tuple, tuple)  # new class ids, added samples: one bulk addition
    replaced = Signal()  # everything was swapped at once (a load)


class _Class:
    __slots__ = ("id", "ids", "name", "samples")

    def __init__(self, class_id: int, name: str, samples: Iterable[Sample] = ()) -> None:
        self.id = class_id
        self.name = name
        self.samples: list[Sample] = list(samples)
        self.ids: list[int] = [s.id for s in self.samples]  # sorted: bisect by id


class EmbeddingStore:
    """Thread-safe store of classes and their samples.

    Attributes:
        feature_dim: D, the length every embedding must have.
        events: ``StoreEvents`` (psygnal), emitted on the thread that made the change.
        max_samples_per_class: adding beyond it raises ``StoreFullError``.
        max_bytes: the same for the bytes the samples hold (``Sample.nbytes``).
    """

    def __init__(
        self,
        feature_dim: int,
        *,
        max_samples_per_class: int = DEFAULT_MAX_SAMPLES_PER_CLASS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive int, got {feature_dim!r}")
        if max_samples_per_class < 1 or max_bytes < 1:
            raise ValueError("store limits must be positive")
        self.feature_dim = feature_dim
        self.max_samples_per_class = int(max_samples_per_class)
        self.max_bytes = int(max_bytes)
        self.events = StoreEvents()
        self._lock = threading.Lock()
        self._classes: list[_Class] = []
        self._by_id: dict[int, _Class] = {}
        self._keys: dict[str, int] = {}  # class_name_key -> class id
        self._where: dict[int, _Class] = {}  # sample id -> its class
        self._bytes = 0
        self._next_class_id = 0
        self._next_sample_id = 0
        self._version = 0

    def __repr__(self) -> str:
        return f"EmbeddingStore(D={self.feature_dim}, counts={self.counts()})"

    # -- reading ----------------------------------------------------------------

    @property
    def version(self) -> int:
        """Increases by one with every change."""
        return self._version

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @property
    def class_names(self) -> list[str]:
        with self._lock:
            return [c.name for c in self._classes]

    @property
    def class_ids(self) -> list[int]:
        """Stable ids of the classes, in class order."""
        with self._lock:
            return [c.id for c in self._classes]

    def classes(self) -> list[tuple[int, str]]:
        """(stable id, name) of every class, in class order, read at one moment."""
        with self._lock:
            return [(c.id, c.name) for c in self._classes]

    @property
    def next_ids(self) -> tuple[int, int]:
        """(next class id, next sample id): what a load must carry on from."""
        with self._lock:
            return self._next_class_id, self._next_sample_id

    def class_index(self, class_id: int) -> int | None:
        """The current position of the class with this stable id, or None if removed."""
        with self._lock:
            target = self._by_id.get(class_id)
            return None if target is None else self._classes.index(target)

    def counts(self) -> list[int]:
        """Samples per class, in class order."""
        with self._lock:
            return [len(c.samples) for c in self._classes]

    @property
    def total_samples(self) -> int:
        with self._lock:
            return len(self._where)

    @property
    def nbytes(self) -> int:
        """Bytes held by the samples (what ``max_bytes`` caps)."""
        return self._bytes

    def sample(self, sample_id: int) -> Sample | None:
        """The sample with this id, or None."""
        with self._lock:
            owner = self._where.get(sample_id)
            if owner is None:
                return None
            return owner.samples[bisect.bisect_left(owner.ids, sample_id)]

    def samples(self, class_index: int) -> list[Sample]:
        """The samples of one class, oldest first."""
        with self._lock:
            return list(self._get(class_index).samples)

    def embeddings(self, class_index: int) -> np.ndarray:
        """(n, D) float32 embeddings of one class, oldest first."""
        with self._lock:
            samples = list(self._get(class_index).samples)
        return _stack([s.embedding for s in samples], self.feature_dim)

    def latest_thumbnails(self, class_index: int, n: int = 4) -> list[np.ndarray]:
        """Up to ``n`` thumbnails of one class, newest first; each (h, w, 3) uint8, read-only."""
        with self._lock:
            samples = self._get(class_index).samples
            return [s.thumbnail for s in reversed(samples[-n:])] if n > 0 else []

    def snapshot(self) -> StoreSnapshot:
        """An immutable view of everything at this moment (cheap: no arrays are copied)."""
        with self._lock:
            return StoreSnapshot(
                version=self._version,
                feature_dim=self.feature_dim,
                class_ids=tuple(c.id for c in self._classes),
                class_names=tuple(c.name for c in self._classes),
                samples=tuple(tuple(c.samples) for c in self._classes),
            )

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All samples as (X (N, D) float32, y (N,) int64 class indices)."""
        return self.snapshot().as_arrays()

    def check_name(self, name: str, class_index: int | None = None) -> str:
        """The normalized name if ``class_index`` (or a new class) may take it, else ValueError.

        Lets a dialog validate while the user types.
        """
        with self._lock:
            except_id = None if class_index is None else self._get(class_index).id
            return self._check_name(name, except_id)

    # -- changing classes -------------------------------------------------------

    def add_class(self, name: str | None = None) -> int:
        """Append a class; returns its index. Default names: "Class 1", "Class 2", ..."""
        with self._lock:
            if len(self._classes) >= MAX_CLASSES:
                raise ValueError(f"A store holds at most {MAX_CLASSES} classes")
            if name is None:
                number = len(self._classes) + 1
                while class_name_key(f"Class {number}") in self._keys:
                    number += 1
                text = f"Class {number}"
            else:
                text = self._check_name(name, None)
            added = _Class(self._next_class_id, text)
            self._next_class_id += 1
            self._insert_class(added, len(self._classes))
            index = len(self._classes) - 1
            self._version += 1
        _emit(self.events.classAdded, added.id)
        return index

    def rename_class(self, class_index: int, name: str) -> str:
        """Rename a class; returns its old name.

        Raises ValueError for an empty, too long, duplicate or invalid name.
        """
        with self._lock:
            target = self._get(class_index)
            text = self._check_name(name, target.id)
            old = target.name
            if text == old:
                return old
            del self._keys[class_name_key(old)]
            self._keys[class_name_key(text)] = target.id
            target.name = text
            self._version += 1
        _emit(self.events.classRenamed, target.id, text)
        return old

    def remove_class(self, class_index: int) -> ClassRecord:
        """Remove a class and its samples; later classes move up one place.

        Returns the class as a record (``restore_class`` puts it back).
        """
        with self._lock:
            removed = self._classes.pop(self._check_index(class_index))
            del self._by_id[removed.id]
            del self._keys[class_name_key(removed.name)]
            for sample in removed.samples:
                del self._where[sample.id]
                self._bytes -= sample.nbytes
            self._version += 1
        record = ClassRecord(removed.id, removed.name, tuple(removed.samples))
        if record.samples:
            _emit(self.events.samplesRemoved, record.samples)
        _emit(self.events.classRemoved, record.id, record.samples)
        return record

    def restore_class(self, record: ClassRecord, class_index: int) -> int:
        """Put back a class ``remove_class`` returned, at ``class_index`` (clipped); its index.

        Raises:
            ValueError: its id or name is in use, or a sample id is.
            StoreFullError: its samples no longer fit the limits.
        """
        with self._lock:
            if record.id in self._by_id:
                raise ValueError("That class is already in the store")
            if len(self._classes) >= MAX_CLASSES:
                raise ValueError(f"A store holds at most {MAX_CLASSES} classes")
            name = self._check_name(record.name, None)
            samples = sorted(record.samples, key=lambda s: s.id)
            self._check_samples_fit(len(samples), sum(s.nbytes for s in samples), record.name)
            if any(s.id in self._where or s.class_id != record.id for s in samples):
                raise ValueError("Those samples do not belong to that class or are in use")
            index = min(max(0, int(class_index)), len(self._classes))
            restored = _Class(record.id, name, samples)
            self._insert_class(restored, index)
            for sample in samples:
                self._where[sample.id] = restored
                self._bytes += sample.nbytes
            self._version += 1
        _emit(self.events.classAdded, record.id)
        if samples:
            _emit(self.events.samplesAdded, tuple(samples))
        return index

    def clear_class(self, class_index: int) -> tuple[Sample, ...]:
        """Remove every sample of a class, keeping the class; returns them (oldest first)."""
        with self._lock:
            target = self._get(class_index)
            removed = tuple(target.samples)
            if not removed:
                return ()
            for sample in removed:
                del self._where[sample.id]
                self._bytes -= sample.nbytes
            target.samples, target.ids = [], []
            self._version += 1
        _emit(self.events.samplesRemoved, removed)
        _emit(self.events.classCleared, target.id)
        return removed

    # -- changing samples -------------------------------------------------------

    def add_sample(
        self,
        class_index: int,
        embedding: np.ndarray,
        thumbnail: np.ndarray,
        image: bytes | None = None,
        *,
        flipped: np.ndarray | None = None,
        created: float | None = None,
    ) -> int:
        """Store one capture; returns its sample id.

        Args:
            class_index: the class it belongs to.
            embedding: (D,) float, finite.
            thumbnail: (h, w, 3) uint8 RGB (copied).
            image: the encoded model input, kept for re-embedding and checks.
            flipped: (D,) float, finite: the embedding of the mirrored image.
            created: capture time (default: now).

        Raises:
            ValueError: wrong embedding length, NaN/inf, or a malformed thumbnail.
            IndexError: no such class.
            StoreFullError: the class or the whole store is at its limit.
        """
        vector = self._checked_vector(embedding, "embedding")
        mirror = None if flipped is None else self._checked_vector(flipped, "mirrored embedding")
        thumb = _checked_thumbnail(thumbnail)
        stamp = time.time() if created is None else float(created)
        with self._lock:
            target = self._get(class_index)
            sample = Sample(
                id=self._next_sample_id,
                class_id=target.id,
                embedding=vector,
                thumbnail=thumb,
                image=None if image is None else bytes(image),
                created=stamp,
                flipped=mirror,
            )
            self._check_samples_fit(1, sample.nbytes, target.name, len(target.samples))
            self._next_sample_id += 1
            target.samples.append(sample)
            target.ids.append(sample.id)
            self._where[sample.id] = target
            self._bytes += sample.nbytes
            self._version += 1
        _emit(self.events.samplesAdded, (sample,))
        return sample.id

    def insert_samples(self, samples: Sequence[Sample]) -> None:
        """Put back samples removed earlier (same ids, into their classes, in id order).

        All or nothing. Raises ValueError (a class is gone, an id is in use) or
        ``StoreFullError`` (they no longer fit the limits).
        """
        samples = tuple(samples)
        if not samples:
            return
        with self._lock:
            by_class: dict[int, list[Sample]] = {}
            for sample in samples:
                if sample.id in self._where or sample.class_id not in self._by_id:
                    raise ValueError("Those samples cannot be put back: their class is gone")
                by_class.setdefault(sample.class_id, []).append(sample)
            for class_id, group in by_class.items():
                target = self._by_id[class_id]
                self._check_samples_fit(
                    len(group), sum(s.nbytes for s in group), target.name, len(target.samples)
                )
            if self._bytes + sum(s.nbytes for s in samples) > self.max_bytes:
                raise StoreFullError(self._full_store_text())
            for class_id, group in by_class.items():
                target = self._by_id[class_id]
                for sample in sorted(group, key=lambda s: s.id):
                    position = bisect.bisect_left(target.ids, sample.id)
                    target.ids.insert(position, sample.id)
                    target.samples.insert(position, sample)
                    self._where[sample.id] = target
                    self._bytes += sample.nbytes
            self._version += 1
        _emit(self.events.samplesAdded, samples)

    def remove_samples(self, sample_ids: Iterable[int]) -> tuple[Sample, ...]:
        """Remove the samples with these ids that are present; returns them."""
        removed = []
        with self._lock:
            for sample_id in sample_ids:
                owner = self._where.pop(sample_id, None)
                if owner is None:
                    continue
                position = bisect.bisect_left(owner.ids, sample_id)
                del owner.ids[position]
                sample = owner.samples.pop(position)
                self._bytes -= sample.nbytes
                removed.append(sample)
            if removed:
                self._version += 1
        if removed:
            _emit(self.events.samplesRemoved, tuple(removed))
        return tuple(removed)

    def remove_sample(self, sample_id: int) -> int:
        """Remove one sample by id; returns the index of the class it was in.

        Raises:
            KeyError: no such sample.
        """
        with self._lock:
            owner = self._where.get(sample_id)
            index = None if owner is None else self._classes.index(owner)
        if index is None or not self.remove_samples([sample_id]):
            raise KeyError(f"no sample {sample_id}")
        return index

    def extend(
        self, additions: Sequence[tuple[str, Sequence[Sample]]]
    ) -> tuple[tuple[int, ...], tuple[Sample, ...]]:
        """Add many samples at once, into existing classes (matched by name) or new ones.

        All or nothing, under one lock, announced by one ``events.extended``.
        The samples get new ids here (their given ``id``/``class_id`` are ignored).

        Args:
            additions: (class name, samples) pairs, in order; new names become
                classes at the end.

        Returns:
            (ids of the classes created, the samples as stored).

        Raises:
            ValueError: a bad name or embedding. StoreFullError: it does not fit.
        """
        named = [(normalize_class_name(name), list(samples)) for name, samples in additions]
        for _, samples in named:
            for sample in samples:
                if sample.embedding.shape != (self.feature_dim,):
                    raise ValueError(f"an embedding does not have {self.feature_dim} values")
        with self._lock:
            targets: list[_Class] = []
            created: list[_Class] = []
            pending_keys: dict[str, _Class] = {}
            for name, _ in named:
                key = class_name_key(name)
                owner = pending_keys.get(key)
                if owner is None:
                    class_id = self._keys.get(key)
                    if class_id is not None:
                        owner = self._by_id[class_id]
                    else:
                        owner = _Class(self._next_class_id + len(created), name)
                        created.append(owner)
                    pending_keys[key] = owner
                targets.append(owner)
            if len(self._classes) + len(created) > MAX_CLASSES:
                raise ValueError(f"A store holds at most {MAX_CLASSES} classes")
            counts: dict[int, int] = {}
            size = 0
            for owner, (_, samples) in zip(targets, named, strict=True):
                counts[owner.id] = counts.get(owner.id, len(owner.samples)) + len(samples)
                if counts[owner.id] > self.max_samples_per_class:
                    raise StoreFullError(self._full_class_text(owner.name, len(owner.samples)))
                size += sum(s.nbytes for s in samples)
            if self._bytes + size > self.max_bytes:
                raise StoreFullError(self._full_store_text())
            # Checked: now change, and nothing below can fail.
            for owner in created:
                self._insert_class(owner, len(self._classes))
            self._next_class_id += len(created)
            added: list[Sample] = []
            for owner, (_, samples) in zip(targets, named, strict=True):
                for sample in samples:
                    stored = dataclasses.replace(sample, id=self._next_sample_id, class_id=owner.id)
                    self._next_sample_id += 1
                    owner.samples.append(stored)
                    owner.ids.append(stored.id)
                    self._where[stored.id] = owner
                    self._bytes += stored.nbytes
                    added.append(stored)
            self._version += 1
        new_ids = tuple(c.id for c in created)
        _emit(self.events.extended, new_ids, tuple(added))
        return new_ids, tuple(added)

    # -- loading ----------------------------------------------------------------

    def replace(
        self,
        classes: Sequence[ClassRecord],
        next_ids: tuple[int, int] | None = None,
        *,
        on_swap: Callable[[], None] | None = None,
    ) -> None:
        """Swap in new contents at once (a load); emits ``events.replaced`` once.

        Everything is checked before anything changes: on an error the store is
        as it was.

        Args:
            classes: the classes in order, with their samples.
            next_ids: (next class id, next sample id); at least one past the
                largest id in ``classes`` (default: exactly that).
            on_swap: called under the store's lock right after the swap, before
                the event: an owner swaps its own facts in the same moment
                (it must not call the store).

        Raises:
            ValueError: duplicate or invalid ids/names, a sample in the wrong
                class or with the wrong embedding length.
            StoreFullError: the contents exceed the limits.
        """
        prepared = self._prepare(classes, next_ids)
        self._install(prepared, on_swap)
        _emit(
            self.events.replaced,
        )

    def _prepare(
        self, classes: Sequence[ClassRecord], next_ids: tuple[int, int] | None
    ) -> tuple[list[_Class], dict[str, int], int, int, int]:
        """Checked new contents: (classes, name keys, bytes, next class id, next sample id)."""
        if len(classes) > MAX_CLASSES:
            raise ValueError(f"A store holds at most {MAX_CLASSES} classes, not {len(classes)}")
        built: list[_Class] = []
        keys: dict[str, int] = {}
        seen_samples: set[int] = set()
        seen_classes: set[int] = set()
        total = 0
        last_class, last_sample = -1, -1
        for record in classes:
            name = normalize_class_name(record.name)
            key = class_name_key(name)
            if key in keys:
                raise ValueError(f"There is already a class called {name!r}")
            if record.id < 0 or record.id in seen_classes:
                raise ValueError(f"class id {record.id} is used twice or negative")
            seen_classes.add(record.id)
            samples = sorted(record.samples, key=lambda s: s.id)
            if len(samples) > self.max_samples_per_class:
                raise StoreFullError(self._full_class_text(name, len(samples)))
            for sample in samples:
                if sample.class_id != record.id or sample.id in seen_samples or sample.id < 0:
                    raise ValueError(f"sample {sample.id} is used twice or in the wrong class")
                if sample.embedding.shape != (self.feature_dim,):
                    raise ValueError(
                        f"a sample has {sample.embedding.shape} values, this store holds "
                        f"{self.feature_dim}-d embeddings"
                    )
                seen_samples.add(sample.id)
                total += sample.nbytes
                last_sample = max(last_sample, sample.id)
            keys[key] = record.id
            last_class = max(last_class, record.id)
            built.append(_Class(record.id, name, samples))
        if total > self.max_bytes:
            raise StoreFullError(
                f"The samples take {total / 2**20:.0f} MiB, more than the "
                f"{self.max_bytes / 2**20:.0f} MiB this kiosk holds"
            )
        next_class, next_sample = next_ids if next_ids is not None else (0, 0)
        return (
            built,
            keys,
            total,
            max(next_class, last_class + 1),
            max(next_sample, last_sample + 1),
        )

    def _install(
        self,
        prepared: tuple[list[_Class], dict[str, int], int, int, int],
        on_swap: Callable[[], None] | None,
    ) -> None:
        built, keys, total, next_class, next_sample = prepared
        with self._lock:
            if on_swap is not None:
                on_swap()
            self._classes = built
            self._by_id = {c.id: c for c in built}
            self._keys = keys
            self._where = {s.id: c for c in built for s in c.samples}
            self._bytes = total
            self._next_class_id, self._next_sample_id = next_class, next_sample
            self._version += 1

    # -- internals (call with the lock held) ------------------------------------

    def _checked_vector(self, value: np.ndarray, what: str) -> np.ndarray:
        vector = np.array(value, dtype=np.float32, copy=True)
        if vector.shape != (self.feature_dim,):
            raise ValueError(f"{what} must have shape ({self.feature_dim},), got {np.shape(value)}")
        if not np.isfinite(vector).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        vector.flags.writeable = False
        return vector

    def _check_index(self, class_index: int) -> int:
        if isinstance(class_index, bool) or not isinstance(class_index, int | np.integer):
            raise TypeError(f"class index must be an int, got {type(class_index).__name__}")
        if not 0 <= class_index < len(self._classes):
            raise IndexError(f"no class {class_index} (there are {len(self._classes)})")
        return int(class_index)

    def _get(self, class_index: int) -> _Class:
        return self._classes[self._check_index(class_index)]

    def _check_name(self, name: str, except_id: int | None) -> str:
        text = normalize_class_name(name)
        owner = self._keys.get(class_name_key(text))
        if owner is not None and owner != except_id:
            raise ValueError(f"There is already a class called {text!r}")
        return text

    def _insert_class(self, added: _Class, index: int) -> None:
        self._classes.insert(index, added)
        self._by_id[added.id] = added
        self._keys[class_name_key(added.name)] = added.id

    def _check_samples_fit(self, count: int, size: int, name: str, have: int = 0) -> None:
        if have + count > self.max_samples_per_class:
            raise StoreFullError(self._full_class_text(name, have))
        if self._bytes + size > self.max_bytes:
            raise StoreFullError(self._full_store_text())

    def _full_class_text(self, name: str, count: int) -> str:
        return (
            f"{name!r} has {count} samples, the most a class may hold is "
            f"{self.max_samples_per_class}: remove some or clear the class to capture more"
        )

    def _full_store_text(self) -> str:
        return (
            f"The store is full ({self._bytes / 2**20:.0f} MiB of "
            f"{self.max_bytes / 2**20:.0f} MiB): remove samples or classes to capture more"
        )


def listen(signal: Any, callback: Callable[..., object]) -> Callable[..., None]:
    """Connect ``callback`` to a psygnal ``signal`` so that its exceptions are logged.

    psygnal ends an emit at the first callback that raises, so one broken
    listener would silence the others (the autosave, the window). Returns the
    connected wrapper, to pass to ``signal.disconnect``.
    """

    def guarded(*args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("a listener of %s failed", getattr(signal, "name", signal))

    signal.connect(guarded)
    return guarded


def _emit(signal: Any, *args: object) -> None:
    """Emit, so that a broken listener is logged and never undoes or blocks the change."""
    try:
        signal.emit(*args)
    except Exception:
        log.exception("a listener of %s failed", getattr(signal, "name", signal))


def frozen_sample(
    sample_id: int,
    class_id: int,
    embedding: np.ndarray,
    thumbnail: np.ndarray,
    image: bytes | None,
    created: float,
    flipped: np.ndarray | None = None,
) -> Sample:
    """A ``Sample`` from arrays read elsewhere (a file), checked and made read-only, not copied.

    Raises ValueError for a non-finite or non-vector embedding or a malformed thumbnail.
    """
    vectors = [np.asarray(embedding, np.float32)]
    if flipped is not None:
        vectors.append(np.asarray(flipped, np.float32))
    for vector in vectors:
        if vector.ndim != 1 or not np.isfinite(vector).all():
            raise ValueError("an embedding is not a finite vector")
        vector.flags.writeable = False
    thumb = np.asarray(thumbnail)
    if thumb.dtype != np.uint8 or thumb.ndim != 3 or thumb.shape[2] != 3 or thumb.size == 0:
        raise ValueError(f"thumbnail must be (h, w, 3) uint8, got {thumb.shape} {thumb.dtype}")
    thumb.flags.writeable = False
    return Sample(
        id=int(sample_id),
        class_id=int(class_id),
        embedding=vectors[0],
        thumbnail=thumb,
        image=image,
        created=float(created),
        flipped=vectors[1] if flipped is not None else None,
    )


def _checked_thumbnail(thumbnail: np.ndarray) -> np.ndarray:
    thumb = np.array(thumbnail, copy=True)
    if thumb.dtype != np.uint8 or thumb.ndim != 3 or thumb.shape[2] != 3 or thumb.size == 0:
        raise ValueError(f"thumbnail must be (h, w, 3) uint8, got {thumb.shape} {thumb.dtype}")
    thumb.flags.writeable = False
    return thumb


def _stack(rows: Sequence[np.ndarray], feature_dim: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, feature_dim), np.float32)
    return np.stack(rows)
