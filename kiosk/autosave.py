"""Crash-safe autosave: every capture, class change and new head is journaled to disk.

The ``Autosaver`` listens to the store and the session; a listener only sets
a flag, and a background thread writes at most every ``interval`` seconds
(0.5 s), so capture never waits for the disk. After ``kill -9`` or a power
cut at most the last interval of captures is lost.

Folder layout (``<user data dir>/autosave``, or ``$KIOSK_DATA_DIR/autosave``)::

    state.json          written last, atomically, on every flush
    seg-<n>.npz         samples journaled by one flush (``kiosk.persist.pack_samples``
                        arrays; ``keys`` are row numbers, unused; with ``flipped`` /
                        ``has_flipped``, the mirrored embeddings of flip_augment)
    head-<n>.npz        the latest head's weights (``kiosk.persist.head_to_arrays``)

``state.json``::

    {"format": "kiosk-autosave", "version": 1, "saved_at": ...,
     "extractor": {"name", "sha256", "feature_dim"},
     "segments": ["seg-<n>.npz", ...],
     "classes": [{"id": <store class id>, "name": ..., "samples": [[segment, row], ...]}],
     "head": null | {"file": ..., "class_ids": [...], "samples": [[[segment, row], ...], ...],
                     "logit_min": ..., "result": {...}, ...},
     "training": {...}}

Segments written before the mirrored embeddings were journaled have no
``flipped`` arrays: on restore the copies are re-created from the stored JPEG
model inputs (``TeachingSession.recreate_flipped``). A mirrored copy is
journaled with its sample, in the same segment; one that was not ready yet
when its sample was journaled is re-created the same way (the same numbers:
it is computed from the same decoded JPEG).

Files are only ever created under new names and ``state.json`` is replaced
atomically after them, so the state it names is always complete; files it
does not name (left by a crash mid-flush) are deleted on the next start.
Removed samples stay in their segment until a compaction rewrites the live
samples into one new segment (when segments pile up or are mostly dead).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.persist import (
    ProjectError,
    SampleRecord,
    head_from_arrays,
    head_to_arrays,
    pack_samples,
    read_json,
    remove_quietly,
    training_to_json,
    unpack_samples,
    write_json,
    write_npz,
)
from kiosk.project import same_extractor
from kiosk.session import TeachingSession, TrainedHead
from kiosk.store import StoreFullError

__all__ = ["DATA_DIR_ENV", "Autosaver", "RestoreReport", "default_autosave_dir"]

log = logging.getLogger(__name__)

DATA_DIR_ENV = "KIOSK_DATA_DIR"
STATE = "state.json"
FORMAT = "kiosk-autosave"
VERSION = 1
_OUR_FILE = re.compile(r"^(seg|head)-\d+\.npz$")
# Compact when there are more segments than this, or more dead rows than live ones.
MAX_SEGMENTS = 64


def default_autosave_dir(environ: dict[str, str] | None = None) -> Path:
    """``$KIOSK_DATA_DIR/autosave``, else ``<platformdirs user data dir>/autosave``."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get(DATA_DIR_ENV):
        return Path(environ[DATA_DIR_ENV]).expanduser() / "autosave"
    import platformdirs

    return Path(platformdirs.user_data_dir("kiosk")) / "autosave"


@dataclass(frozen=True)
class RestoreReport:
    """What ``Autosaver.restore`` put back."""

    samples: int
    classes: int
    head: bool
    note: str | None = None

    def message(self) -> str:
        text = f"Restored {self.samples} samples in {self.classes} classes"
        if self.head:
            text += " and the trained model"
        return text + (f" ({self.note})" if self.note else "")


class Autosaver:
    """Journals a session to a folder from a background thread.

    Use: ``saver = Autosaver(session, folder)``; ``saver.restore()`` (before
    captures start) to put back the last session; ``saver.start()``; and
    ``saver.close()`` at exit (writes what is pending). ``error`` holds the
    message of the last failed write (None when the last flush worked);
    ``on_error`` is called with it from the writer thread.
    """

    def __init__(
        self,
        session: TeachingSession,
        folder: str | os.PathLike[str] | None = None,
        *,
        interval: float = 0.5,
        on_error: Callable[[str | None], Any] | None = None,
    ) -> None:
        self.session = session
        self.folder = Path(folder) if folder is not None else default_autosave_dir()
        self.interval = interval
        self.on_error = on_error
        self.error: str | None = None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # sample id -> (segment name, row): where each stored sample is on disk.
        self._where: dict[int, tuple[str, int]] = {}
        self._segments: list[str] = []
        self._segment_rows: dict[str, int] = {}
        self._head: TrainedHead | None = None
        self._head_file: str | None = None
        self._head_facts: dict[str, Any] = {}
        self._counter = 0
        self._listening = False
        # Whether the journal in ``folder`` is this session's to rewrite: true
        # once it was restored, or when there was none. Anything else there (a
        # refused or damaged autosave, one skipped by --fresh) is moved aside
        # before the first write instead of being replaced.
        self._owns_folder = False
        self.kept_aside: Path | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Listen for changes and start the writer thread (idempotent)."""
        if not self._listening:
            self.session.store.listeners.append(self._changed)
            self.session.listeners.append(self._changed)
            self._listening = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="autosave", daemon=True)
            self._thread.start()
        self._dirty.set()

    def close(self) -> None:
        """Stop listening, write what is pending, stop the thread."""
        if self._listening:
            for listeners in (self.session.store.listeners, self.session.listeners):
                if self._changed in listeners:
                    listeners.remove(self._changed)
            self._listening = False
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.flush()

    def _changed(self) -> None:
        self._dirty.set()  # cheap: runs on the capturing thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                break
            self._dirty.clear()
            self.flush()
            # Batch the captures of the next interval into one segment.
            self._stop.wait(self.interval)

    # -- writing -----------------------------------------------------------------

    def flush(self) -> bool:
        """Write new samples, the head (if new) and the state now; False if writing failed."""
        with self._flush_lock:
            try:
                self._flush()
            except OSError as error:
                self._set_error(f"Autosave failed ({self.folder}): {error.strerror or error}")
                self._dirty.set()  # try again next interval
                return False
            except Exception as error:  # never let the writer thread die
                log.exception("autosave failed")
                self._set_error(f"Autosave failed: {error}")
                return False
            self._set_error(None)
            return True

    def _set_error(self, text: str | None) -> None:
        changed = text != self.error
        self.error = text
        if changed and self.on_error is not None:
            try:
                self.on_error(text)
            except Exception:
                log.exception("autosave error callback failed")

    def _set_aside_foreign_journal(self) -> None:
        """Move an autosave this session did not restore out of the way, keeping it whole.

        Raises OSError when it cannot be moved: then nothing is written, so it
        is never overwritten.
        """
        if (self.folder / STATE).exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            target = self.folder.with_name(f"{self.folder.name}-kept-{stamp}")
            suffix = 1
            while target.exists():
                suffix += 1
                target = self.folder.with_name(f"{self.folder.name}-kept-{stamp}-{suffix}")
            os.replace(self.folder, target)
            self.kept_aside = target
            log.info("earlier autosave kept in %s", target)
        self._owns_folder = True

    def _new_name(self, prefix: str) -> str:
        # Names are never reused within a folder, so an older state.json never
        # points at a file that a later flush rewrote.
        while True:
            self._counter += 1
            name = f"{prefix}-{self._counter:08d}.npz"
            if not (self.folder / name).exists():
                return name

    def _flush(self) -> None:
        if not self._owns_folder:
            self._set_aside_foreign_journal()
        self.folder.mkdir(parents=True, exist_ok=True)
        snapshot = self.session.store.snapshot()
        live = [s for class_samples in snapshot.samples for s in class_samples]
        new = [s for s in live if s.id not in self._where]
        head = self.session.head
        dead = sum(self._segment_rows.values()) - (len(live) - len(new))
        if len(self._segments) >= MAX_SEGMENTS or (dead > 64 and dead > len(live)):
            self._compact(live)
            new = []
        if new:
            name = self._new_name("seg")
            arrays = pack_samples(
                new, range(len(new)), snapshot.feature_dim, self.session.flipped_embeddings()
            )
            write_npz(self.folder / name, arrays)
            for row, sample in enumerate(new):
                self._where[sample.id] = (name, row)
            self._segments.append(name)
            self._segment_rows[name] = len(new)
        if head is not self._head:
            self._head = head
            if head is None:
                self._head_file, self._head_facts = None, {}
            else:
                arrays, facts = head_to_arrays(head)
                name = self._new_name("head")
                write_npz(self.folder / name, arrays)
                self._head_file, self._head_facts = name, facts
        self._write_state(snapshot)
        self._remove_unnamed()

    def _compact(self, live: list[Any]) -> None:
        """Rewrite the live samples into one segment (the state is written next)."""
        self._where.clear()
        self._segments, self._segment_rows = [], {}
        if live:
            name = self._new_name("seg")
            dim = self.session.store.feature_dim
            flipped = self.session.flipped_embeddings()
            write_npz(self.folder / name, pack_samples(live, range(len(live)), dim, flipped))
            self._where = {s.id: (name, row) for row, s in enumerate(live)}
            self._segments, self._segment_rows = [name], {name: len(live)}

    def _write_state(self, snapshot: Any) -> None:
        index = {name: i for i, name in enumerate(self._segments)}

        def ref(sample_id: int) -> list[int] | None:
            where = self._where.get(sample_id)
            return None if where is None else [index[where[0]], where[1]]

        head_entry = None
        head = self._head
        if head is not None and self._head_file is not None:
            head_entry = {
                "file": self._head_file,
                "class_ids": list(head.class_ids),
                # A trained-on sample that never reached the disk is kept as null:
                # restored, the head is then stale, as it was before the crash.
                "samples": [[ref(i) for i in ids] for ids in head.sample_ids],
                **self._head_facts,
            }
        extractor = self.session.extractor
        state = {
            "format": FORMAT,
            "version": VERSION,
            "saved_at": time.time(),
            "extractor": {
                "name": extractor.model_path.name,
                "sha256": getattr(extractor, "sha256", None),
                "feature_dim": int(snapshot.feature_dim),
            },
            "segments": list(self._segments),
            "classes": [
                {"id": cid, "name": name, "samples": [ref(s.id) for s in samples]}
                for cid, name, samples in zip(
                    snapshot.class_ids, snapshot.class_names, snapshot.samples, strict=True
                )
            ],
            "head": head_entry,
            "training": training_to_json(
                self.session.config, self.session.val_fraction, self.session.seed
            ),
        }
        write_json(self.folder / STATE, state)

    def _remove_unnamed(self) -> None:
        keep = set(self._segments) | ({self._head_file} if self._head_file else set())
        try:
            entries = list(self.folder.iterdir())
        except OSError:
            return
        for entry in entries:
            stale_temp = entry.name.startswith(".") and entry.name.endswith(".tmp")
            if (_OUR_FILE.match(entry.name) and entry.name not in keep) or stale_temp:
                remove_quietly(entry)

    # -- restoring ---------------------------------------------------------------

    def restore(self) -> RestoreReport | None:
        """Put the last autosaved session into ``self.session`` (call before ``start``).

        Returns None when there is nothing to restore. A damaged autosave is
        reported (``ProjectError``) and left on disk for inspection; the
        session is only changed once everything has been read and checked.
        """
        state_path = self.folder / STATE
        if not state_path.exists():
            self._owns_folder = True
            return None
        report = self._restore(state_path)
        self._owns_folder = True
        return report

    def _restore(self, state_path: Path) -> RestoreReport:
        state = read_json(state_path)
        if state.get("format") != FORMAT or state.get("version") != VERSION:
            raise ProjectError(f"{state_path} is not a kiosk autosave this version can read")
        store = self.session.store
        if not same_extractor(dict(state.get("extractor") or {}), self.session.extractor):
            raise ProjectError(
                "The autosaved samples were made by a different model "
                f"({(state.get('extractor') or {}).get('name')!r}); starting empty. "
                "They are kept: the first new autosave moves them to "
                f"{self.folder.name}-kept-<time>"
            )
        try:
            segments = [str(name) for name in state["segments"]]
            classes = [
                (int(c["id"]), str(c["name"]), [_ref(r) for r in c["samples"]])
                for c in state["classes"]
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise ProjectError(f"{state_path} is incomplete or wrong: {error}") from None
        records: dict[tuple[int, int], SampleRecord] = {}
        for seg_index, name in enumerate(segments):
            if not _OUR_FILE.match(name):
                raise ProjectError(f"{state_path} names a bad file {name!r}")
            for row, record in enumerate(unpack_samples(self.folder / name, store.feature_dim)):
                records[(seg_index, row)] = record
        missing = sum(1 for _, _, refs in classes for r in refs if r not in records)
        # Everything is read and checked: now change the session.
        for index in reversed(range(store.num_classes)):
            store.remove_class(index)
        new_class_id: dict[int, int] = {}
        new_sample_id: dict[tuple[int, int], int] = {}
        flipped: dict[int, Any] = {}
        restored = 0
        note = None
        for old_id, name, refs in classes:
            index = store.add_class(name)
            new_class_id[old_id] = store.class_ids[index]
            for r in refs:
                record = records.get(r)
                if record is None:
                    continue
                try:
                    sid = store.add_sample(
                        index, record.embedding, record.thumbnail, image=record.image
                    )
                except StoreFullError as error:
                    note = str(error)
                    break
                new_sample_id[r] = sid
                if record.flipped is not None:
                    flipped[sid] = record.flipped
                self._where[sid] = (segments[r[0]], r[1])
                restored += 1
        if missing:
            note = f"{missing} samples could not be read"
        self._segments = segments
        self._segment_rows = {
            name: sum(1 for key in records if key[0] == i) for i, name in enumerate(segments)
        }
        self._counter = max([_number(n) for n in segments] + [self._counter])
        self.session.restore_flipped(flipped)
        self.session.recreate_flipped()  # segments from before the copies were journaled
        head_ok = self._restore_head(state.get("head"), new_class_id, new_sample_id)
        self._remove_unnamed()
        return RestoreReport(restored, len(classes), head_ok, note)

    def _restore_head(
        self,
        entry: Any,
        new_class_id: dict[int, int],
        new_sample_id: dict[tuple[int, int], int],
    ) -> bool:
        if not isinstance(entry, dict):
            return False
        try:
            name = str(entry["file"])
            if not _OUR_FILE.match(name):
                raise ValueError(f"bad head file name {name!r}")
            class_ids = [new_class_id.get(int(c), -1) for c in entry["class_ids"]]
            sample_ids = [
                [new_sample_id.get(_ref(r), -1) for r in refs] for refs in entry["samples"]
            ]
            head = head_from_arrays(
                self.folder / name, entry, class_ids, sample_ids, self.session.store.feature_dim
            )
            self.session.restore_head(head)
        except (ProjectError, KeyError, TypeError, ValueError) as error:
            log.warning("autosaved head not restored: %s", error)
            return False
        self._head, self._head_file = head, name
        self._head_facts = {k: v for k, v in entry.items() if k not in ("file", "class_ids")}
        self._head_facts.pop("samples", None)
        self._counter = max(self._counter, _number(name))
        return True


def _ref(value: Any) -> tuple[int, int]:
    if value is None:
        return (-1, -1)
    segment, row = value
    return (int(segment), int(row))


def _number(name: str) -> int:
    digits = re.findall(r"\d+", name)
    return int(digits[-1]) if digits else 0
