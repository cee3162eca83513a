"""The journal: one on-disk format for the autosave and for projects.

A journal folder holds::

    journal.json     the state record: small, replaced atomically on every flush
    seg-<n>.npz      samples (``kiosk.persist.records``), one file per flush or compaction
    head-<n>.npz     the current head's arrays

``journal.json``::

    {"format": "kiosk-journal", "version": 2, "role": "autosave" | "project",
     "saved_at": <unix time>, "kiosk_version": "...",
     "extractor": {"name": ..., "sha256": ..., "feature_dim": D},
     "classes": [{"id": <stable class id>, "name": ...}, ...],      # class order
     "next_ids": [<next class id>, <next sample id>],
     "segments": [{"file": "seg-<n>.npz", "rows": N}, ...],
     "removed": [[first, end], ...],   # sample-id ranges gone from the session but
                                       # still inside segments (until a compaction)
     "head": null | {"file": "head-<n>.npz", ...head facts},
     "settings": {...}, "default_settings": {...}}

A sample's class is the ``class_ids`` row in its segment; a segment row is live
unless its id is in ``removed`` or its class is not in ``classes``. Within a
class, samples are in id (capture) order.

The cost of a flush follows the change, not the store: it writes the samples
captured since the last flush as one new segment, the head only when it is
new, and the state record, whose size follows the number of classes and
segments. A compaction (when segments pile up or are mostly dead) streams the
live rows of every segment into one new segment, file to file, while flushes go
on; it never holds a second copy of the store. Files are only ever created
under new names, and ``journal.json`` names them only once they are durable.

Reading checks everything before anything is built (counts, names, sizes,
every array's header), reads only the rows it loads, and applies the store's
limits: an autosave keeps samples beyond (lowered) limits on disk and reports
them as held; a project that does not fit is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.learn.recipe import TrainingSettings
from kiosk.persist.files import (
    OtherModelError,
    ProjectError,
    read_json,
)
from kiosk.persist.npz import iter_byte_rows, iter_rows, member_shapes, read_npz
from kiosk.persist.records import (
    SEGMENT_SPEC,
    read_head,
)
from kiosk.session import SessionContents
from kiosk.store import (
    MAX_CLASSES,
    MAX_NAME_LENGTH,
    ClassRecord,
    EmbeddingStore,
    Sample,
    class_name_key,
    clean_class_name,
    frozen_sample,
)

__all__ = [
    "FORMAT",
    "MAX_FILE_BYTES",
    "OUR_FILE",
    "OUR_TEMP",
    "ROLES",
    "STATE",
    "VERSION",
    "JournalSummary",
    "Limits",
    "LoadedJournal",
    "extractor_facts",
    "is_our_file",
    "ranges",
    "read_journal",
    "read_summary",
]

FORMAT = "kiosk-journal"
VERSION = 2
STATE = "journal.json"
ROLES = ("autosave", "project")
OUR_FILE = re.compile(r"^(seg|head)-\d{8,}\.npz$")
OUR_TEMP = re.compile(r"^\.(journal\.json|(seg|head)-\d{8,}\.npz)\..+\.tmp$")
# Anything bigger is not a kiosk file (the largest store a config allows is 64 GiB).
MAX_FILE_BYTES = 80 * 2**30
# Ids and counts beyond this are not ours (and would not fit numpy's int64).
MAX_ID = 2**62
# The longest embedding a journal may hold.
MAX_FEATURE_DIM = 1 << 16
# Thumbnails are written 96 pixels square; anything far bigger is not one of ours.
MAX_THUMBNAIL_SIDE = 512
# A state record may name at most this many segments (compaction keeps them to dozens).
MAX_SEGMENT_FILES = 1024
# A state record may list at most this many removed ranges (a compaction comes first).
MAX_REMOVED_RANGES = 1_000_000


def is_our_file(name: str) -> bool:
    """Whether a file name is one a journal writes (a segment, a head, or their temporaries)."""
    return bool(OUR_FILE.match(name) or OUR_TEMP.match(name) or name == STATE)


def extractor_facts(extractor: Any) -> dict[str, Any]:
    """{"name", "sha256", "feature_dim"}: which model made a journal's embeddings."""
    return {
        "name": extractor.model_path.name,
        # Duck-typed extractors (tests, wrappers) may not carry a digest.
        "sha256": getattr(extractor, "sha256", None),
        "feature_dim": int(extractor.feature_dim),
    }


def same_extractor(facts: Mapping[str, Any], extractor: Any) -> bool:
    """Whether embeddings described by ``facts`` came from ``extractor``."""
    if facts.get("feature_dim") != extractor.feature_dim:
        return False
    sha = getattr(extractor, "sha256", None)
    return sha is None or facts.get("sha256") in (None, sha)


@dataclass(frozen=True)
class Limits:
    """The store limits a load must respect."""

    max_samples_per_class: int
    max_bytes: int

    @classmethod
    def of(cls, store: EmbeddingStore) -> Limits:
        return cls(store.max_samples_per_class, store.max_bytes)


# -- reading ---------------------------------------------------------------------


@dataclass(frozen=True)
class JournalSummary:
    """What a journal folder holds, read from its state record only (for lists).

    Attributes:
        folder: the folder.
        role: "autosave" or "project".
        saved_at: when it was last written (seconds since the epoch).
        class_names: in class order.
        num_samples: samples in segments (an upper bound: removed ones are not counted out).
        has_head: it holds a trained head.
        extractor: {"name", "sha256", "feature_dim"}.
    """

    folder: Path
    role: str
    saved_at: float
    class_names: tuple[str, ...]
    num_samples: int
    has_head: bool
    extractor: dict[str, Any]


@dataclass
class _Index:
    """The small arrays of one segment, read before any big one."""

    name: str
    ids: np.ndarray  # (N,) int64
    class_ids: np.ndarray  # (N,) int64
    has_flipped: np.ndarray  # (N,) bool
    created: np.ndarray  # (N,) float64
    image_offsets: np.ndarray  # (N+1,) int64
    row_bytes: int  # embedding + thumbnail bytes of one row (flipped added where present)
    feature_dim: int
    load: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass(frozen=True, eq=False)
class LoadedJournal:
    """A journal read from disk and checked, not yet in any session.

    Attributes:
        folder, role, extractor: where and what it is.
        contents: what to swap into a session (``TeachingSession.replace``).
        held: samples left on disk because they exceed the limits, per class name.
        notes: things the reader skipped (a damaged head...), one line each.
        segments: {segment name: (N,) int64 ids of its rows}, for a writer to go on.
        removed: ids inside segments that are no longer in the session.
        held_ids: {class id: ids of its samples held on disk}.
        counter: the highest file number in use.
    """

    folder: Path
    role: str
    extractor: dict[str, Any]
    contents: SessionContents
    held: dict[str, int]
    notes: tuple[str, ...]
    segments: dict[str, np.ndarray]
    removed: frozenset[int]
    held_ids: dict[int, set[int]]
    counter: int
    head_entry: dict[str, Any] | None

    @property
    def num_held(self) -> int:
        return sum(self.held.values())


def _read_state(folder: Path) -> dict[str, Any]:
    state = read_json(folder / STATE)
    if state.get("format") != FORMAT:
        raise ProjectError(f"{folder} is not a kiosk journal ({STATE} has no kiosk format)")
    version = state.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 2 <= version <= VERSION:
        raise ProjectError(
            f"{folder}: format version {version!r} is not supported (this kiosk reads "
            f"up to {VERSION}; a newer kiosk wrote it)"
        )
    if state.get("role") not in ROLES:
        raise ProjectError(f"{folder / STATE}: unknown role {state.get('role')!r}")
    kinds: dict[str, type | tuple[type, ...]] = {
        "extractor": dict,
        "classes": list,
        "segments": list,
        "removed": list,
        "next_ids": list,
        "head": (dict, type(None)),
    }
    for key, kind in kinds.items():
        if key in state and not isinstance(state[key], kind):
            raise ProjectError(f"{folder / STATE}: '{key}' has the wrong type")
    for key in ("extractor", "classes", "segments"):
        if key not in state:
            raise ProjectError(f"{folder / STATE} has no '{key}'")
    dim = state["extractor"].get("feature_dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_FEATURE_DIM:
        raise ProjectError(f"{folder / STATE}: the feature size {dim!r} is not sane")
    return state


def _classes(state: Mapping[str, Any], where: Path) -> list[tuple[int, str]]:
    """(id, name) of every class. A name this version no longer accepts (an invisible
    character...) is cleaned, and made unique, rather than losing the journal."""
    raw = state.get("classes")
    if not isinstance(raw, list):
        raise ProjectError(f"{where}: 'classes' is not a list")
    if len(raw) > MAX_CLASSES:
        raise ProjectError(f"{where} lists {len(raw)} classes; a kiosk holds at most {MAX_CLASSES}")
    classes, ids, keys = [], set(), set()
    for number, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            raise ProjectError(f"{where}: a class entry is not an object")
        class_id, name = entry.get("id"), entry.get("name")
        if (
            isinstance(class_id, bool)
            or not isinstance(class_id, int)
            or not 0 <= class_id < MAX_ID
        ):
            raise ProjectError(f"{where}: a class id is not a non-negative integer")
        if not isinstance(name, str):
            raise ProjectError(f"{where}: a class name is not text")
        text = clean_class_name(name, f"Class {number}")
        base, copy = text, 2
        while class_name_key(text) in keys:
            text = f"{base[: MAX_NAME_LENGTH - 5]} ({copy})"
            copy += 1
        if class_id in ids:
            raise ProjectError(f"{where}: two classes have the same id")
        ids.add(class_id)
        keys.add(class_name_key(text))
        classes.append((class_id, text))
    return classes


def _segment_names(state: Mapping[str, Any], where: Path) -> list[tuple[str, int]]:
    raw = state.get("segments")
    if not isinstance(raw, list) or len(raw) > MAX_SEGMENT_FILES:
        raise ProjectError(f"{where}: 'segments' is not a list of a sane length")
    names = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise ProjectError(f"{where}: a segment entry is not an object")
        name, rows = entry.get("file"), entry.get("rows")
        if not isinstance(name, str) or not OUR_FILE.match(name) or not name.startswith("seg-"):
            raise ProjectError(f"{where} names a bad segment {name!r}")
        if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows < MAX_ID:
            raise ProjectError(f"{where}: segment {name} has no row count")
        names.append((name, rows))
    if len({n for n, _ in names}) != len(names):
        raise ProjectError(f"{where} names a segment twice")
    return names


def _removed_ids(state: Mapping[str, Any], where: Path) -> set[int]:
    raw = state.get("removed", [])
    if not isinstance(raw, list) or len(raw) > MAX_REMOVED_RANGES:
        raise ProjectError(f"{where}: 'removed' is not a list of a sane length")
    removed: set[int] = set()
    for pair in raw:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            or not 0 <= pair[0] < pair[1] < MAX_ID
            or pair[1] - pair[0] > 10_000_000
        ):
            raise ProjectError(f"{where}: a removed range is wrong")
        removed.update(range(pair[0], pair[1]))
    return removed


def ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted [first, end) ranges covering ``ids``."""
    ranges: list[list[int]] = []
    for value in sorted(ids):
        if ranges and ranges[-1][1] == value:
            ranges[-1][1] = value + 1
        else:
            ranges.append([value, value + 1])
    return ranges


def _read_index(folder: Path, name: str, rows: int, feature_dim: int) -> _Index:
    path = folder / name
    shapes = member_shapes(path, MAX_FILE_BYTES)
    for member, (_, ndim) in SEGMENT_SPEC.items():
        if member not in shapes or len(shapes[member][0]) != ndim:
            raise ProjectError(f"{name} is not a kiosk segment (array {member!r})")
    embeddings = shapes["embeddings"][0]
    thumbnails = shapes["thumbnails"][0]
    if embeddings[1:] != (feature_dim,) or shapes["flipped"][0] != embeddings:
        raise ProjectError(
            f"{name}: embeddings have {embeddings[1:]} values, this model makes {feature_dim}"
        )
    if (
        thumbnails[3:] != (3,)
        or not all(0 < side <= MAX_THUMBNAIL_SIDE for side in thumbnails[1:3])
        or thumbnails[0] != embeddings[0]
    ):
        raise ProjectError(f"{name}: thumbnails have shape {thumbnails}, expected (N,h,w,3)")
    small = read_npz(
        path,
        {
            k: SEGMENT_SPEC[k]
            for k in ("ids", "class_ids", "has_flipped", "created", "image_offsets")
        },
        MAX_FILE_BYTES,
    )
    ids = small["ids"].astype(np.int64)
    n = len(ids)
    offsets = small["image_offsets"].astype(np.int64)
    if n != rows or n != embeddings[0]:
        raise ProjectError(f"{name} holds {n} rows, the journal says {rows}")
    if any(len(small[k]) != n for k in ("class_ids", "has_flipped", "created")):
        raise ProjectError(f"{name}: the arrays have different numbers of samples")
    if offsets.shape != (n + 1,) or (n and offsets[0] != 0) or np.any(np.diff(offsets) < 0):
        raise ProjectError(f"{name}: image offsets are wrong")
    if offsets[-1] != shapes["image_data"][0][0]:
        raise ProjectError(f"{name}: image offsets do not match the image data")
    if n and (ids.min() < 0 or len(np.unique(ids)) != n):
        raise ProjectError(f"{name}: sample ids repeat or are negative")
    if not np.isfinite(small["created"]).all():
        raise ProjectError(f"{name}: capture times are not numbers")
    row_bytes = 4 * feature_dim + math.prod(thumbnails[1:])
    return _Index(
        name,
        ids,
        small["class_ids"].astype(np.int64),
        small["has_flipped"].astype(bool),
        small["created"].astype(np.float64),
        offsets,
        row_bytes,
        feature_dim,
    )


def _choose(
    indexes: Sequence[_Index],
    classes: list[tuple[int, str]],
    removed: set[int],
    limits: Limits | None,
    hold: bool,
) -> dict[int, set[int]]:
    """Mark the rows to load (``_Index.load``); returns {class id: held ids}.

    Within the limits everything live loads. Beyond them the oldest samples of
    each class load first, and when bytes run short every class loses its
    newest samples alike. With ``hold`` False a journal beyond the limits is a
    ProjectError instead.
    """
    known = {class_id for class_id, _ in classes}
    per_class: dict[int, list[tuple[int, int, int]]] = {}  # id, segment, row
    sizes: dict[int, int] = {}
    for s, index in enumerate(indexes):
        live = ~np.isin(index.ids, np.fromiter(removed, np.int64, len(removed)))
        live &= np.isin(index.class_ids, np.fromiter(known, np.int64, len(known)))
        image = np.diff(index.image_offsets)
        for row in np.flatnonzero(live).tolist():
            sample_id = int(index.ids[row])
            per_class.setdefault(int(index.class_ids[row]), []).append((sample_id, s, int(row)))
            sizes[sample_id] = (
                index.row_bytes
                + int(image[row])
                + 4 * index.feature_dim * bool(index.has_flipped[row])
            )
        index.load = np.zeros(len(index.ids), bool)
    for rows in per_class.values():
        rows.sort()
    cap = math.inf if limits is None else limits.max_samples_per_class
    budget = math.inf if limits is None else limits.max_bytes
    # Rank within class: round r loads every class's r-th oldest sample.
    ranked = sorted(
        (rank, sample_id, s, row)
        for rows in per_class.values()
        for rank, (sample_id, s, row) in enumerate(rows)
    )
    held: dict[int, set[int]] = {}
    used = 0
    names = dict(classes)
    for rank, sample_id, s, row in ranked:
        if rank < cap and used + sizes[sample_id] <= budget:
            used += sizes[sample_id]
            indexes[s].load[row] = True
            continue
        class_id = int(indexes[s].class_ids[row])
        if not hold:
            count = len(per_class[class_id])
            if count > cap:
                raise ProjectError(
                    f"“{names[class_id]}” has {count} samples; this kiosk holds at most "
                    f"{limits.max_samples_per_class if limits else count} a class "
                    "(raise max_samples_per_class to open it)"
                )
            total = sum(sizes.values())
            raise ProjectError(
                f"The samples take {total / 2**20:.0f} MiB; this kiosk holds at most "
                f"{budget / 2**20:.0f} MiB (raise max_memory_mb to open it)"
            )
        held.setdefault(class_id, set()).add(sample_id)
    return held


def _load_rows(folder: Path, index: _Index) -> list[Sample]:
    """The rows of a segment marked to load, as ``Sample``s (arrays shared by them)."""
    keep = index.load
    if not keep.any():
        return []
    path = folder / index.name

    total = int(keep.sum())

    def kept(name: str) -> np.ndarray:
        # Filled chunk by chunk: the loaded rows exist once, never twice.
        out: np.ndarray | None = None
        start = filled = 0
        for chunk in iter_rows(path, name, 256, MAX_FILE_BYTES):
            if out is None:
                out = np.empty((total, *chunk.shape[1:]), chunk.dtype)
            rows = chunk[keep[start : start + len(chunk)]]
            start += len(chunk)
            out[filled : filled + len(rows)] = rows
            filled += len(rows)
        assert out is not None and filled == total
        return out

    embeddings, flipped, thumbnails = kept("embeddings"), kept("flipped"), kept("thumbnails")
    has = index.has_flipped[keep]
    if not (np.isfinite(embeddings).all() and np.isfinite(flipped[has]).all()):
        raise ProjectError(f"{index.name}: embeddings contain NaN or infinite values")
    images = [
        data.tobytes() if len(data) else None
        for load, data in zip(
            keep,
            iter_byte_rows(path, "image_data", np.diff(index.image_offsets), MAX_FILE_BYTES),
            strict=True,
        )
        if load
    ]
    rows = np.flatnonzero(keep)
    return [
        frozen_sample(
            int(index.ids[row]),
            int(index.class_ids[row]),
            embeddings[i],
            thumbnails[i],
            images[i],
            float(index.created[row]),
            flipped[i] if has[i] else None,
        )
        for i, row in enumerate(rows)
    ]


def read_journal(
    folder: str | Path,
    extractor: Any,
    *,
    limits: Limits | None = None,
    hold_beyond_limits: bool = False,
    default_settings: TrainingSettings | None = None,
    any_model: bool = False,
) -> LoadedJournal:
    """Read and check a journal folder (an autosave or a project).

    Args:
        folder: the journal folder.
        extractor: the model the session runs; a journal made by another is
            refused unless ``any_model`` (then the samples keep the journal's
            embeddings: re-embed them, and the head is dropped).
        limits: the store's limits (None: none).
        hold_beyond_limits: load what fits and report the rest as held
            (the autosave), instead of refusing (a project).
        default_settings: the session's defaults; a journal whose settings were
            never changed from its own defaults takes these.

    Raises:
        ProjectError: anything is missing, damaged, inconsistent, made by
            another model, or beyond the limits (see above). Nothing is built then.
    """
    folder = Path(folder)
    where = folder / STATE
    state = _read_state(folder)
    facts = state["extractor"]
    if not any_model and not same_extractor(facts, extractor):
        raise OtherModelError(
            f"The samples were made by the model {facts.get('name')!r} "
            f"(sha256 {str(facts.get('sha256'))[:12]}…); this kiosk uses "
            f"{extractor.model_path.name!r}: re-embed the stored images to use them",
            str(facts.get("name") or ""),
        )
    feature_dim = int(facts["feature_dim"])
    classes = _classes(state, where)
    segments = _segment_names(state, where)
    removed = _removed_ids(state, where)
    indexes = [_read_index(folder, name, rows, feature_dim) for name, rows in segments]
    seen: set[int] = set()
    for index in indexes:
        if seen.intersection(index.ids.tolist()):
            raise ProjectError(f"{index.name} repeats samples of another segment")
        seen.update(index.ids.tolist())
    held_ids = _choose(indexes, classes, removed, limits, hold_beyond_limits)
    by_class: dict[int, list[Sample]] = {class_id: [] for class_id, _ in classes}
    for index in indexes:
        for sample in _load_rows(folder, index):
            by_class[sample.class_id].append(sample)
    records = tuple(
        ClassRecord(class_id, name, tuple(sorted(by_class[class_id], key=lambda s: s.id)))
        for class_id, name in classes
    )
    notes: list[str] = []
    head, head_entry = None, None
    entry = state.get("head")
    if entry is not None and not any_model:
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise ProjectError("the head entry is wrong")
            name = entry["file"]
            if not OUR_FILE.match(name) or not name.startswith("head-"):
                raise ProjectError(f"bad head file name {name!r}")
            head = read_head(folder / name, entry, feature_dim, MAX_FILE_BYTES)
            head_entry = dict(entry)
        except ProjectError as error:
            notes.append(f"the trained model could not be read ({error}): train again")
    settings = _settings(state, default_settings, notes)
    next_ids = state.get("next_ids")
    if not (
        isinstance(next_ids, list)
        and len(next_ids) == 2
        and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_ID for v in next_ids
        )
    ):
        next_ids = [0, 0]
    last_sample = max(seen, default=-1)
    contents = SessionContents(
        classes=records,
        head=head,
        settings=settings,
        next_ids=(int(next_ids[0]), max(int(next_ids[1]), last_sample + 1)),
    )
    names = dict(classes)
    return LoadedJournal(
        folder=folder,
        role=str(state["role"]),
        extractor=dict(facts),
        contents=contents,
        held={names[c]: len(ids) for c, ids in held_ids.items()},
        notes=tuple(notes),
        segments={index.name: index.ids for index in indexes},
        removed=frozenset(removed & seen),
        held_ids=held_ids,
        counter=max(
            [_number(n) for n, _ in segments]
            + [_number(head_entry["file"]) if head_entry is not None else 0]
        ),
        head_entry=head_entry,
    )


def _settings(
    state: Mapping[str, Any], defaults: TrainingSettings | None, notes: list[str]
) -> TrainingSettings:
    """The journal's settings; its unchanged defaults give way to today's defaults."""
    defaults = defaults or TrainingSettings()
    stored, stored_defaults = state.get("settings"), state.get("default_settings")
    if stored is None or stored == stored_defaults:
        return defaults
    try:
        return TrainingSettings.from_json(stored)
    except ValueError as error:
        notes.append(f"the training settings could not be read ({error}): defaults are used")
        return defaults


def has_all_images(folder: str | Path) -> bool:
    """Whether every sample in a journal keeps its JPEG model input (re-embedding needs it)."""
    folder = Path(folder)
    state = _read_state(folder)
    where = folder / STATE
    feature_dim = int(state["extractor"]["feature_dim"])
    removed = _removed_ids(state, where)
    for name, rows in _segment_names(state, where):
        index = _read_index(folder, name, rows, feature_dim)
        live = ~np.isin(index.ids, np.fromiter(removed, np.int64, len(removed)))
        if (np.diff(index.image_offsets)[live] == 0).any():
            return False
    return True


def read_summary(folder: str | Path) -> JournalSummary:
    """What a journal holds, from its state record only (cheap; ProjectError if unreadable)."""
    folder = Path(folder)
    state = _read_state(folder)
    where = folder / STATE
    classes = _classes(state, where)
    segments = _segment_names(state, where)
    saved_at = state.get("saved_at")
    return JournalSummary(
        folder=folder,
        role=str(state["role"]),
        saved_at=float(saved_at) if isinstance(saved_at, int | float) else 0.0,
        class_names=tuple(name for _, name in classes),
        num_samples=sum(rows for _, rows in segments) - len(_removed_ids(state, where)),
        has_head=state.get("head") is not None,
        extractor=dict(state["extractor"]),
    )


def _number(name: str) -> int:
    digits = re.findall(r"\d+", name)
    return int(digits[-1]) if digits else 0
