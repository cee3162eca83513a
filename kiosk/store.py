"""The in-memory embedding store: named classes and their captured samples.

Classes have a position (the ``class_index`` the UI and labels use, which
shifts when a class before it is removed) and a stable ``class_id`` that never
changes and is never reused, so a trained head can tell which classes it knew.

Every change bumps ``version`` and then calls each of ``listeners`` (plain
callables, no arguments) outside the lock, on the thread that made the change.
Samples are immutable: their arrays are read-only, so a snapshot handed to a
training thread stays valid while captures go on.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SAMPLES_PER_CLASS",
    "MAX_NAME_LENGTH",
    "EmbeddingStore",
    "Sample",
    "StoreFullError",
    "StoreSnapshot",
    "class_name_key",
    "normalize_class_name",
]

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 64
# Limits that keep an unattended kiosk from filling its memory: a burst held
# down for an hour stops at the cap with a message instead of swapping.
DEFAULT_MAX_SAMPLES_PER_CLASS = 2000
DEFAULT_MAX_BYTES = 1 << 30  # stored embeddings + thumbnails + images


class StoreFullError(Exception):
    """A sample was refused because a store limit is reached; ``str(error)`` says which."""


# Characters that would break labels.txt (one "index name" per line) or cannot
# be written as UTF-8: control characters (newline, tab, NUL...), line and
# paragraph separators, lone surrogates.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
# Characters a reader cannot see or that reorder the text around them. Category
# Cf holds the zero-width space and joiners, the soft hyphen, the byte order
# mark, and the bidirectional overrides and isolates; Co is private use, which
# no standard font draws. (Unassigned code points, Cn, are let through: this
# Python's Unicode tables may predate an emoji a phone keyboard already offers.)
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Co"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")  # fmt: skip
# Letters and marks that render as blank space (Hangul and Khmer fillers, the
# combining grapheme joiner, Mongolian selectors, the blank Braille pattern).
_BLANK_CHARACTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f"
                              "\u2800\u3164\uffa0")  # fmt: skip
# Something a reader sees: a letter, digit, punctuation mark or symbol (or a
# code point newer than this Python's tables, most likely an emoji).
_VISIBLE_CATEGORIES = ("L", "N", "P", "S", "Cn")


def normalize_class_name(name: str) -> str:
    """The name as it will be stored (NFC, stripped), or ``ValueError`` saying what is wrong.

    Unicode (accents, CJK, emoji) and punctuation, including "/", are fine: a
    name is only ever written into labels.txt, never used as a file name.
    Refused: control characters, invisible characters (zero-width space and
    joiners, soft hyphen, byte order mark, fillers), direction overrides and
    isolates, private-use and unassigned code points, and names with nothing
    visible in them.
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
    for ch in text:
        if ch in _BIDI_CONTROLS:
            raise ValueError(
                "A class name cannot contain text-direction controls "
                f"({_describe_character(ch)}): they make it read differently than it is stored"
            )
        if ch in _BLANK_CHARACTERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            raise ValueError(
                f"A class name cannot contain invisible characters ({_describe_character(ch)})"
            )
    if not any(unicodedata.category(ch).startswith(_VISIBLE_CATEGORIES) for ch in text):
        raise ValueError("A class name needs at least one visible letter, digit or symbol")
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(
            f"A class name can have at most {MAX_NAME_LENGTH} characters (this one has {len(text)})"
        )
    return text


def class_name_key(name: str) -> str:
    """What two class names must not share: "Cat", "CAT", "ｃａｔ" and " cat " give one key.

    Unicode's compatibility caseless match (NFKD of casefold, twice, after
    NFD), without variation selectors ("☕" and the emoji-style "☕️" look
    alike), with whitespace runs folded to one space as labels.txt writes them.
    Compare keys, never names, wherever a duplicate class is looked for.
    """
    text = unicodedata.normalize("NFD", name)
    for _ in range(2):
        text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not _is_variation_selector(ch))
    return " ".join(text.split())


def _is_variation_selector(ch: str) -> bool:
    code = ord(ch)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _describe_character(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, '')}".rstrip()


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
    """

    id: int
    class_id: int
    embedding: np.ndarray
    thumbnail: np.ndarray
    image: bytes | None
    created: float


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

    def embeddings(self, class_index: int) -> np.ndarray:
        """(n, D) float32 embeddings of one class."""
        return _stack(self.samples[class_index], self.feature_dim)

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

    def training_data(
        self,
        val_fraction: float = 0.15,
        seed: int | None = 0,
        classes: Sequence[int] | None = None,
        min_class_size_for_val: int = 5,
        extra_train: Mapping[int, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """A stratified train/validation split in pycoral's data dict format.

        Each class with at least ``min_class_size_for_val`` samples gives
        ``round(n * val_fraction)`` of them (at least one) to validation; smaller
        classes keep all their samples for training. Validation may be empty.

        Args:
            val_fraction: share held out, 0 <= val_fraction < 1.
            seed: fixes which samples are held out.
            classes: class indices to include; labels are positions in this list.
                Default: every class, label = class index.
            extra_train: {sample id: (D,) embedding} derived from that sample
                (e.g. its mirrored copy), appended to training *only* when the
                sample itself is in training, so a copy never sits beside its
                held-out original. The split is the same with or without them.

        Returns:
            ``data_train`` (N, D) float32, ``labels_train`` (N,) int64,
            ``data_val`` (M, D) float32, ``labels_val`` (M,) int64.
        """
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        rng = np.random.default_rng(seed)
        chosen = range(len(self.samples)) if classes is None else classes
        parts: dict[str, list[np.ndarray]] = {"xt": [], "yt": [], "xv": [], "yv": []}
        for label, class_index in enumerate(chosen):
            x = self.embeddings(class_index)
            n = len(x)
            n_val = 0
            if n >= min_class_size_for_val and val_fraction > 0:
                n_val = min(n - 1, max(1, round(n * val_fraction)))
            order = rng.permutation(n)
            parts["xv"].append(x[order[:n_val]])
            parts["xt"].append(x[order[n_val:]])
            parts["yv"].append(np.full(n_val, label, np.int64))
            parts["yt"].append(np.full(n - n_val, label, np.int64))
            if extra_train:
                samples = self.samples[class_index]
                found = (extra_train.get(samples[i].id) for i in order[n_val:])
                kept = [copy for copy in found if copy is not None]
                if kept:
                    parts["xt"].append(np.stack(kept).astype(np.float32))
                    parts["yt"].append(np.full(len(kept), label, np.int64))

        def join(key: str, empty: np.ndarray) -> np.ndarray:
            return np.concatenate(parts[key]) if parts[key] else empty

        no_rows = np.zeros((0, self.feature_dim), np.float32)
        no_labels = np.zeros(0, np.int64)
        return {
            "data_train": join("xt", no_rows),
            "labels_train": join("yt", no_labels),
            "data_val": join("xv", no_rows),
            "labels_val": join("yv", no_labels),
        }


class _Class:
    __slots__ = ("id", "name", "samples")

    def __init__(self, class_id: int, name: str) -> None:
        self.id = class_id
        self.name = name
        self.samples: list[Sample] = []


class EmbeddingStore:
    """Thread-safe store of classes and their (embedding, thumbnail, image) samples.

    Attributes:
        feature_dim: D, the length every embedding must have.
        listeners: callables run with no arguments after every change.
        max_samples_per_class: ``add_sample`` raises ``StoreFullError`` beyond it.
        max_bytes: the same for the bytes held by embeddings, thumbnails and images.
    """

    def __init__(
        self,
        feature_dim: int,
        *,
        max_samples_per_class: int = DEFAULT_MAX_SAMPLES_PER_CLASS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive int, got {feature_dim!r}")
        if max_samples_per_class < 1 or max_bytes < 1:
            raise ValueError("store limits must be positive")
        self.feature_dim = feature_dim
        self.max_samples_per_class = int(max_samples_per_class)
        self.max_bytes = int(max_bytes)
        self._bytes = 0
        self.listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._classes: list[_Class] = []
        self._where: dict[int, _Class] = {}  # sample id -> its class
        self._history: list[int] = []  # sample ids in capture order, for undo
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

    def class_index(self, class_id: int) -> int | None:
        """The current position of the class with this stable id, or None if removed."""
        with self._lock:
            for index, c in enumerate(self._classes):
                if c.id == class_id:
                    return index
        return None

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
        """Bytes held by stored embeddings, thumbnails and images (what ``max_bytes`` caps)."""
        return self._bytes

    def samples(self, class_index: int) -> list[Sample]:
        """The samples of one class, oldest first."""
        with self._lock:
            return list(self._get(class_index).samples)

    def embeddings(self, class_index: int) -> np.ndarray:
        """(n, D) float32 embeddings of one class, oldest first."""
        with self._lock:
            samples = list(self._get(class_index).samples)
        return _stack(samples, self.feature_dim)

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

    def training_data(self, val_fraction: float = 0.15, seed: int | None = 0) -> dict:
        """Stratified split of every class; see ``StoreSnapshot.training_data``."""
        return self.snapshot().training_data(val_fraction=val_fraction, seed=seed)

    def check_name(self, name: str, class_index: int | None = None) -> str:
        """The normalized name if ``class_index`` (or a new class) may take it, else ValueError.

        Lets a dialog validate while the user types.
        """
        with self._lock:
            return self._check_name(name, class_index)

    # -- changing ---------------------------------------------------------------

    def add_class(self, name: str | None = None) -> int:
        """Append a class; returns its index. Default names: "Class 1", "Class 2", ..."""
        with self._lock:
            if name is None:
                number = len(self._classes) + 1
                while self._name_taken(f"Class {number}", None):
                    number += 1
                text = f"Class {number}"
            else:
                text = self._check_name(name, None)
            self._classes.append(_Class(self._next_class_id, text))
            self._next_class_id += 1
            index = len(self._classes) - 1
            self._version += 1
        self._notify()
        return index

    def rename_class(self, class_index: int, name: str) -> None:
        """Rename a class. Raises ValueError for an empty, too long, duplicate or invalid name."""
        with self._lock:
            target = self._get(class_index)
            text = self._check_name(name, class_index)
            if text == target.name:
                return
            target.name = text
            self._version += 1
        self._notify()

    def remove_class(self, class_index: int) -> None:
        """Remove a class and all its samples; later classes move up one place."""
        with self._lock:
            removed = self._classes.pop(self._check_index(class_index))
            for sample in removed.samples:
                del self._where[sample.id]
                self._bytes -= _sample_bytes(sample.embedding, sample.thumbnail, sample.image)
            self._prune_history()
            self._version += 1
        self._notify()

    def clear_class(self, class_index: int) -> None:
        """Remove every sample of a class, keeping the class."""
        with self._lock:
            target = self._get(class_index)
            if not target.samples:
                return
            for sample in target.samples:
                del self._where[sample.id]
                self._bytes -= _sample_bytes(sample.embedding, sample.thumbnail, sample.image)
            target.samples = []
            self._prune_history()
            self._version += 1
        self._notify()

    def add_sample(
        self,
        class_index: int,
        embedding: np.ndarray,
        thumbnail: np.ndarray,
        image: bytes | None = None,
    ) -> int:
        """Store one capture; returns its sample id.

        Args:
            class_index: the class it belongs to.
            embedding: (D,) float, finite.
            thumbnail: (h, w, 3) uint8 RGB (copied).
            image: the encoded model input, kept for re-embedding and checks.

        Raises:
            ValueError: wrong embedding length, NaN/inf, or a malformed thumbnail.
            IndexError: no such class.
            StoreFullError: the class or the whole store is at its limit.
        """
        vector = np.array(embedding, dtype=np.float32, copy=True)
        if vector.shape != (self.feature_dim,):
            raise ValueError(
                f"embedding must have shape ({self.feature_dim},), got {np.shape(embedding)}"
            )
        if not np.isfinite(vector).all():
            raise ValueError("embedding contains NaN or infinite values")
        thumb = np.array(thumbnail, copy=True)
        if thumb.dtype != np.uint8 or thumb.ndim != 3 or thumb.shape[2] != 3 or thumb.size == 0:
            raise ValueError(f"thumbnail must be (h, w, 3) uint8, got {thumb.shape} {thumb.dtype}")
        if image is not None:
            image = bytes(image)
        vector.flags.writeable = False
        thumb.flags.writeable = False
        size = _sample_bytes(vector, thumb, image)
        with self._lock:
            target = self._get(class_index)
            if len(target.samples) >= self.max_samples_per_class:
                raise StoreFullError(
                    f"{target.name!r} has {len(target.samples)} samples, the most a class "
                    "may hold: remove some or clear the class to capture more"
                )
            if self._bytes + size > self.max_bytes:
                raise StoreFullError(
                    f"The store is full ({self._bytes / 2**20:.0f} MiB of "
                    f"{self.max_bytes / 2**20:.0f} MiB): remove samples or classes to capture more"
                )
            sample = Sample(
                id=self._next_sample_id,
                class_id=target.id,
                embedding=vector,
                thumbnail=thumb,
                image=image,
                created=time.time(),
            )
            self._next_sample_id += 1
            target.samples.append(sample)
            self._where[sample.id] = target
            self._bytes += size
            self._history.append(sample.id)
            self._version += 1
        self._notify()
        return sample.id

    def remove_sample(self, sample_id: int) -> int:
        """Remove one sample by id; returns the index of the class it was in.

        Raises:
            KeyError: no such sample.
        """
        with self._lock:
            owner = self._where.pop(sample_id, None)
            if owner is None:
                raise KeyError(f"no sample {sample_id}")
            self._forget(owner, sample_id)
            index = self._classes.index(owner)
            self._version += 1
        self._notify()
        return index

    def undo_last(self) -> int | None:
        """Remove the most recent capture still present (any class); returns its class index.

        Returns None when there is nothing to undo.
        """
        with self._lock:
            while self._history:
                sample_id = self._history.pop()
                owner = self._where.pop(sample_id, None)
                if owner is None:
                    continue  # removed some other way already
                self._forget(owner, sample_id)
                index = self._classes.index(owner)
                self._version += 1
                break
            else:
                return None
        self._notify()
        return index

    # -- internals (call with the lock held) ------------------------------------

    def _check_index(self, class_index: int) -> int:
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)):
            raise TypeError(f"class index must be an int, got {type(class_index).__name__}")
        if not 0 <= class_index < len(self._classes):
            raise IndexError(f"no class {class_index} (there are {len(self._classes)})")
        return int(class_index)

    def _get(self, class_index: int) -> _Class:
        return self._classes[self._check_index(class_index)]

    def _name_taken(self, text: str, except_index: int | None) -> bool:
        key = class_name_key(text)
        return any(
            class_name_key(c.name) == key for i, c in enumerate(self._classes) if i != except_index
        )

    def _check_name(self, name: str, class_index: int | None) -> str:
        text = normalize_class_name(name)
        if self._name_taken(text, class_index):
            raise ValueError(f"There is already a class called {text!r}")
        return text

    def _forget(self, owner: _Class, sample_id: int) -> None:
        kept = []
        for s in owner.samples:
            if s.id == sample_id:
                self._bytes -= _sample_bytes(s.embedding, s.thumbnail, s.image)
            else:
                kept.append(s)
        owner.samples = kept

    def _prune_history(self) -> None:
        self._history = [i for i in self._history if i in self._where]

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                # A broken listener must not undo or block the change itself.
                log.exception("store listener %r failed", listener)


def _sample_bytes(embedding: np.ndarray, thumbnail: np.ndarray, image: bytes | None) -> int:
    return int(embedding.nbytes + thumbnail.nbytes + (len(image) if image else 0))


def _stack(samples: Sequence[Sample], feature_dim: int) -> np.ndarray:
    if not samples:
        return np.zeros((0, feature_dim), np.float32)
    return np.stack([s.embedding for s in samples])
