"""The journal's writer: keeps a journal folder in step with a session, change by change.

The format is ``kiosk.persist.journal``'s. A flush writes what changed since the
last one: the samples captured meanwhile as one new segment, the head when it
is new, and the state record, which names a file only once it is durable. A
compaction streams the live rows of every segment into one, file to file, while
flushes go on: samples added meanwhile stay in their own segments, samples
removed meanwhile stay listed as removed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kiosk import __version__
from kiosk.heads import TrainedHead
from kiosk.persist.files import PRIVATE_FILE, remove_quietly, write_json
from kiosk.persist.journal import (
    FORMAT,
    MAX_FILE_BYTES,
    OUR_FILE,
    OUR_TEMP,
    ROLES,
    STATE,
    VERSION,
    LoadedJournal,
    extractor_facts,
    ranges,
)
from kiosk.persist.npz import read_npz
from kiosk.persist.records import (
    SegmentRows,
    head_facts,
    write_head,
    write_segment,
    write_segment_from_files,
)
from kiosk.session import TeachingSession
from kiosk.store import Sample, listen

__all__ = ["JournalWriter"]

# Compact when there are more segments than this, or more dead rows than live ones.
MAX_SEGMENTS = 64
MIN_DEAD_TO_COMPACT = 256


class JournalWriter:
    """Keeps a journal folder in step with a session, change by change.

    ``attach()`` subscribes to the session's events (cheap: handlers only
    record what changed); ``flush()`` writes it (the ``Autosaver`` calls it
    from its thread); ``compact()`` may run in another thread meanwhile.

    Args:
        session: the session to follow.
        folder: the journal folder (must exist).
        role: "autosave" or "project".
        file_mode: permissions of the files written.
    """

    def __init__(
        self,
        session: TeachingSession,
        folder: Path,
        role: str = "autosave",
        file_mode: int | None = PRIVATE_FILE,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.session = session
        self.folder = Path(folder)
        self.role = role
        self.file_mode = file_mode
        self.dirty = threading.Event()
        self._lock = threading.Lock()  # the structures below
        self._write_lock = threading.Lock()  # one state record written at a time
        self._segments: dict[str, np.ndarray] = {}  # name -> ids, in file order
        self._on_disk: set[int] = set()
        self._removed: set[int] = set()
        self._held: dict[int, set[int]] = {}
        self._pending: dict[int, Sample] = {}
        self._in_flight: dict[int, Sample] = {}
        self._removed_in_flight: set[int] = set()
        self._rewrite = True  # until ``adopt``: everything in the session is new here
        self._head: tuple[TrainedHead, dict[str, Any]] | None = None
        self._counter = 0
        self._connections: list[tuple[Any, Any]] = []

    # -- following the session ---------------------------------------------------

    def adopt(self, loaded: LoadedJournal) -> None:
        """Go on writing the journal ``loaded`` was read from (after the session took it)."""
        with self._lock:
            self._segments = dict(loaded.segments)
            self._on_disk = {int(i) for ids in loaded.segments.values() for i in ids}
            self._removed = set(loaded.removed)
            self._held = {c: set(ids) for c, ids in loaded.held_ids.items()}
            self._pending.clear()
            self._rewrite = False
            self._counter = max(self._counter, loaded.counter)
            head = loaded.contents.head
            self._head = (head, loaded.head_entry) if head and loaded.head_entry else None

    def _signals(self) -> list[tuple[Any, Any]]:
        events = self.session.store.events
        return [
            (events.samplesAdded, self._added),
            (events.samplesRemoved, self._removed_samples),
            (events.extended, self._extended),
            (events.classRemoved, self._class_gone),
            (events.classCleared, self._class_gone),
            (events.classAdded, self._changed),
            (events.classRenamed, self._changed),
            (events.replaced, self._replaced),
            (self.session.events.headChanged, self._changed),
            (self.session.events.settingsChanged, self._changed),
        ]

    def attach(self) -> None:
        """Start following the session's changes."""
        if self._connections:
            return
        self._connections = [(signal, listen(signal, slot)) for signal, slot in self._signals()]
        self.dirty.set()

    def detach(self) -> None:
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections = []

    def _added(self, samples: tuple[Sample, ...]) -> None:
        with self._lock:
            for sample in samples:
                if sample.id in self._removed:
                    self._removed.discard(sample.id)  # put back (undo): it is still on disk
                elif sample.id in self._removed_in_flight:
                    self._removed_in_flight.discard(sample.id)
                elif sample.id not in self._on_disk and sample.id not in self._in_flight:
                    self._pending[sample.id] = sample
        self.dirty.set()

    def _extended(self, class_ids: tuple[int, ...], samples: tuple[Sample, ...]) -> None:
        self._added(samples)

    def _removed_samples(self, samples: tuple[Sample, ...]) -> None:
        with self._lock:
            for sample in samples:
                if self._pending.pop(sample.id, None) is not None:
                    continue
                if sample.id in self._in_flight:
                    self._removed_in_flight.add(sample.id)
                elif sample.id in self._on_disk:
                    self._removed.add(sample.id)
        self.dirty.set()

    def _class_gone(self, class_id: int, *_: object) -> None:
        # Samples held on disk beyond the limits go with their class.
        with self._lock:
            self._removed |= self._held.pop(class_id, set())
        self.dirty.set()

    def _replaced(self) -> None:
        with self._lock:
            self._rewrite = True
        self.dirty.set()

    def _changed(self, *_: object) -> None:
        self.dirty.set()

    # -- writing -----------------------------------------------------------------

    def _new_name(self, prefix: str) -> str:
        # Names are never reused within a folder, so an older state record
        # never points at a file that a later write replaced.
        with self._lock:
            while True:
                self._counter += 1
                name = f"{prefix}-{self._counter:08d}.npz"
                if not (self.folder / name).exists():
                    return name

    def flush(self) -> None:
        """Write what changed since the last flush (OSError/ProjectError on failure: then
        nothing of it is recorded, and the next flush tries again)."""
        with self._write_lock:
            self.dirty.clear()
            session = self.session
            with self._lock:
                rewrite = self._rewrite
                if rewrite:
                    snapshot = session.store.snapshot()
                    self._in_flight = {s.id: s for c in snapshot.samples for s in c}
                    self._pending.clear()
                else:
                    self._in_flight, self._pending = self._pending, {}
                self._removed_in_flight = set()
                batch = sorted(self._in_flight.values(), key=lambda s: s.id)
            head = session.head
            try:
                segment = None
                if batch:
                    segment = self._new_name("seg")
                    write_segment(
                        self.folder / segment, batch, session.store.feature_dim, self.file_mode
                    )
                written_head = self._head
                if head is not None and (written_head is None or written_head[0] is not head):
                    name = self._new_name("head")
                    write_head(self.folder / name, head, self.file_mode)
                    written_head = (head, {"file": name, **head_facts(head)})
                elif head is None:
                    written_head = None
            except BaseException:
                self._give_back()
                raise
            with self._lock:
                segments = {} if rewrite else dict(self._segments)
                removed = set() if rewrite else set(self._removed)
                if segment is not None:
                    segments[segment] = np.array([s.id for s in batch], np.int64)
                removed |= self._removed_in_flight
                state = self._state(segments, removed, written_head)
            try:
                write_json(self.folder / STATE, state, self.file_mode)
            except BaseException:
                self._give_back()
                raise
            with self._lock:
                old = set(self._segments)
                self._segments = segments
                self._on_disk = {int(i) for ids in segments.values() for i in ids}
                self._removed = removed
                if rewrite:
                    self._held = {}
                    self._rewrite = False
                self._in_flight = {}
                self._removed_in_flight = set()
                self._head = written_head
            self._remove_unnamed(old - set(segments))

    def _give_back(self) -> None:
        with self._lock:
            for sample_id, sample in self._in_flight.items():
                if sample_id not in self._removed_in_flight:
                    self._pending.setdefault(sample_id, sample)
            self._in_flight = {}
            self._removed_in_flight = set()
        self.dirty.set()

    def _state(
        self,
        segments: Mapping[str, np.ndarray],
        removed: set[int],
        head: tuple[TrainedHead, dict[str, Any]] | None,
    ) -> dict[str, Any]:
        session = self.session
        return {
            "format": FORMAT,
            "version": VERSION,
            "role": self.role,
            "saved_at": time.time(),
            "kiosk_version": __version__,
            "extractor": extractor_facts(session.extractor),
            "classes": [{"id": i, "name": name} for i, name in session.store.classes()],
            "next_ids": list(session.store.next_ids),
            "segments": [{"file": n, "rows": len(ids)} for n, ids in segments.items()],
            "removed": ranges(removed),
            "head": None if head is None else head[1],
            "settings": session.settings.to_json(),
            "default_settings": session.default_settings.to_json(),
        }

    # -- compaction --------------------------------------------------------------

    def needs_compaction(self) -> bool:
        """Segments pile up, or most rows on disk are dead."""
        with self._lock:
            dead = len(self._removed)
            live = len(self._on_disk) - dead
            return len(self._segments) > MAX_SEGMENTS or (
                dead >= MIN_DEAD_TO_COMPACT and dead > live
            )

    def compact(self) -> bool:
        """Rewrite the live rows of every segment into one, streaming; returns whether it did.

        Flushes may run meanwhile: samples they add stay in their own segments,
        and samples removed meanwhile stay marked removed.
        """
        with self._lock:
            if self._rewrite or (len(self._segments) < 2 and not self._removed):
                return False
            sources = dict(self._segments)
            gone = set(self._removed)
        name = self._new_name("seg")
        rows = []
        kept_ids = []
        for segment, ids in sources.items():
            path = self.folder / segment
            keep = ~np.isin(ids, np.fromiter(gone, np.int64, len(gone)))
            offsets = read_npz(path, {"image_offsets": ("iu", 1)}, MAX_FILE_BYTES)["image_offsets"]
            rows.append(SegmentRows(path, keep, offsets.astype(np.int64)))
            kept_ids.append(ids[keep])
        write_segment_from_files(
            self.folder / name,
            rows,
            self.session.store.feature_dim,
            MAX_FILE_BYTES,
            self.file_mode,
        )
        kept = np.concatenate(kept_ids) if kept_ids else np.zeros(0, np.int64)
        with self._write_lock:
            with self._lock:
                if self._rewrite:  # a load replaced everything meanwhile
                    remove_quietly(self.folder / name)
                    return False
                segments = {name: kept}
                segments.update((n, ids) for n, ids in self._segments.items() if n not in sources)
                removed = self._removed - gone
                state = self._state(segments, removed, self._head)
            write_json(self.folder / STATE, state, self.file_mode)
            with self._lock:
                self._segments = segments
                self._on_disk = {int(i) for ids in segments.values() for i in ids}
                self._removed = removed
        self._remove_unnamed(set(sources))
        return True

    # -- housekeeping ------------------------------------------------------------

    def _remove_unnamed(self, names: Iterable[str] = ()) -> None:
        """Remove the given files and heads the state no longer names."""
        for name in names:
            remove_quietly(self.folder / name)
        keep = {self._head[1]["file"]} if self._head else set()
        try:
            entries = [e.name for e in self.folder.iterdir()]
        except OSError:
            return
        for entry in entries:
            if entry.startswith("head-") and OUR_FILE.match(entry) and entry not in keep:
                remove_quietly(self.folder / entry)

    def sweep(self) -> None:
        """Remove our files the state record does not name and temporaries left by a kill
        (call before writing, in a folder this journal owns)."""
        with self._lock:
            named = set(self._segments) | ({self._head[1]["file"]} if self._head else set())
        try:
            entries = [e.name for e in self.folder.iterdir()]
        except OSError:
            return
        for entry in entries:
            if (OUR_FILE.match(entry) and entry not in named) or OUR_TEMP.match(entry):
                remove_quietly(self.folder / entry)
