"""Crash-safe autosave: the session journaled to a private folder, twice a second at most.

``Autosaver`` wraps a ``JournalWriter`` (``kiosk.persist.writer``) in a writer thread:
a change only records what changed and wakes the thread, which starts a flush
at most every ``interval`` seconds (0.4 s), so capture never waits for the
disk. A flush of new captures takes milliseconds, so after ``kill -9`` or a
power cut at most the last half second of captures is lost, compaction
included: it runs in its own thread while flushes go on.

Folder: ``$KIOSK_DATA_DIR/autosave``, else ``<user data dir>/autosave``; mode
0700, files 0600 (the samples are photos of visitors).

At start, ``restore()`` puts the last session back (``TeachingSession.replace``):
samples beyond the store's (lowered) limits stay on disk, are not loaded, and
the report says how many and how to get them back. A journal this session
cannot take is never written over:

* made by another model (the Edge TPU's twin): ``OtherModelError``; it is moved
  whole to ``autosave-kept-<time>`` before the first write (or re-embedded,
  ``kiosk.persist.reembed``);
* damaged: moved whole to ``autosave-damaged-<time>`` at once, and the report
  says where, so the kiosk starts fresh instead of failing at every start;
* skipped (``kiosk --fresh``) or an older format: moved to ``autosave-kept-<time>``
  before the first write.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.persist.files import OtherModelError, ProjectError, make_private_folder, read_json
from kiosk.persist.journal import (
    STATE,
    Limits,
    LoadedJournal,
    read_journal,
    read_summary,
)
from kiosk.persist.legacy import LEGACY_AUTOSAVE_STATE, read_legacy_autosave
from kiosk.persist.writer import JournalWriter
from kiosk.session import TeachingSession

__all__ = [
    "DATA_DIR_ENV",
    "Autosaver",
    "OtherModelError",
    "RestoreReport",
    "autosave_summary",
    "default_autosave_dir",
    "default_data_dir",
]

log = logging.getLogger(__name__)

DATA_DIR_ENV = "KIOSK_DATA_DIR"


def default_data_dir(environ: dict[str, str] | None = None) -> Path:
    """``$KIOSK_DATA_DIR``, else the platform's user data folder for kiosk."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get(DATA_DIR_ENV):
        return Path(environ[DATA_DIR_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("kiosk"))


def default_autosave_dir(environ: dict[str, str] | None = None) -> Path:
    """``<data dir>/autosave``."""
    return default_data_dir(environ) / "autosave"


@dataclass(frozen=True)
class RestoreReport:
    """What ``Autosaver.restore`` did.

    Attributes:
        samples, classes: what came back.
        head: the trained model came back too.
        held: samples left on disk beyond the store's limits.
        moved_to: where a damaged autosave was moved (the kiosk started fresh).
        note: anything else worth a line (a damaged head, an older format...).
    """

    samples: int
    classes: int
    head: bool
    held: int = 0
    moved_to: Path | None = None
    note: str | None = None

    @property
    def level(self) -> str:
        return "error" if self.moved_to is not None or self.held else "ok"

    def message(self) -> str:
        if self.moved_to is not None:
            return (
                f"The last session could not be restored ({self.note}); it was moved to "
                f"{self.moved_to} and the kiosk started fresh"
            )
        text = f"Restored {self.samples} samples in {self.classes} classes"
        if self.head:
            text += " and the trained model"
        if self.held:
            text += (
                f". {self.held} more samples are beyond the store limits and stay on disk: "
                "raise max_samples_per_class / max_memory_mb and restart to get them back"
            )
        return text + (f" ({self.note})" if self.note else "")


def autosave_summary(folder: str | Path) -> tuple[int, dict[str, Any]]:
    """(samples held, extractor facts) of the autosave in ``folder``; ProjectError if none."""
    folder = Path(folder)
    if not (folder / STATE).exists() and (folder / LEGACY_AUTOSAVE_STATE).exists():
        state = read_json(folder / LEGACY_AUTOSAVE_STATE)
        try:
            count = sum(len(c["samples"]) for c in state["classes"])
        except (KeyError, TypeError) as error:
            raise ProjectError(f"{folder} holds a damaged autosave: {error}") from None
        return count, dict(state.get("extractor") or {})
    summary = read_summary(folder)
    return summary.num_samples, summary.extractor


class Autosaver:
    """Journals a session to a folder from a background thread.

    Use: ``saver = Autosaver(session, folder)``; ``saver.restore()`` (before
    captures start); ``saver.start()``; ``saver.close()`` at exit (writes what is
    pending). ``error`` holds the message of the last failed write (None when
    the last flush worked); ``on_error`` is called with it from the writer thread.
    """

    def __init__(
        self,
        session: TeachingSession,
        folder: str | os.PathLike[str] | None = None,
        *,
        interval: float = 0.4,
        on_error: Callable[[str | None], Any] | None = None,
    ) -> None:
        self.session = session
        self.folder = Path(folder) if folder is not None else default_autosave_dir()
        self.interval = interval
        self.on_error = on_error
        self.error: str | None = None
        self.kept_aside: Path | None = None
        self.journal = JournalWriter(session, self.folder, "autosave")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._compactor: threading.Thread | None = None
        # Whether the journal in ``folder`` is this session's to write: true once
        # it was restored, or when there was none. Anything else there is moved
        # aside before the first write instead of being replaced.
        self._owns_folder = False

    # -- restoring ---------------------------------------------------------------

    def restore(self) -> RestoreReport | None:
        """Put the last autosaved session into ``self.session``; call before ``start``.

        Returns None when there is nothing to restore, else what happened (a
        damaged autosave is moved aside: see the module docstring).

        Raises:
            OtherModelError: it was made by another model (it stays on disk).
        """
        if not self.has_journal():
            self._owns_folder = True
            return None
        try:
            if (self.folder / STATE).exists():
                return self._restore_journal()
            return self._restore_legacy()
        except OtherModelError:
            raise
        except (ProjectError, OSError, ValueError) as error:
            problem = str(error) or type(error).__name__
            log.warning("autosave in %s is damaged: %s", self.folder, problem)
            moved = self._move_aside("damaged")
            return RestoreReport(0, 0, False, moved_to=moved, note=problem)

    def _restore_journal(self) -> RestoreReport:
        session = self.session
        try:
            summary = read_summary(self.folder)
        except ProjectError:
            summary = None
        if summary is not None and not _same_model(summary.extractor, session.extractor):
            raise OtherModelError(
                "The autosaved samples were made by a different model "
                f"({summary.extractor.get('name')!r}); they are kept: the first new "
                f"autosave moves them to {self.folder.name}-kept-<time>",
                str(summary.extractor.get("name") or ""),
                summary.num_samples,
            )
        loaded = read_journal(
            self.folder,
            session.extractor,
            limits=Limits.of(session.store),
            hold_beyond_limits=True,
            default_settings=session.default_settings,
        )
        session.replace(loaded.contents)
        self.journal.adopt(loaded)
        self._owns_folder = True
        self.journal.sweep()
        return _report(loaded)

    def _restore_legacy(self) -> RestoreReport:
        contents, notes = read_legacy_autosave(
            self.folder, self.session.extractor, self.session.default_settings
        )
        self.session.replace(contents)
        # The older format's folder is kept whole; the first write starts a new journal.
        note = "; ".join([*notes, "converted from an older autosave, which is kept"])
        return RestoreReport(
            contents.num_samples, len(contents.classes), contents.head is not None, note=note
        )

    def has_journal(self) -> bool:
        """Whether the folder holds an autosave (of any format) now."""
        return (self.folder / STATE).exists() or (self.folder / LEGACY_AUTOSAVE_STATE).exists()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Follow the session's changes and start the writer thread (idempotent)."""
        self.journal.attach()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="autosave", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop following, write what is pending, stop the threads."""
        self._stop.set()
        self.journal.dirty.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self._compactor is not None:
            self._compactor.join(120)
            self._compactor = None
        self.journal.detach()
        if self._owns_folder or self.journal.dirty.is_set():
            self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.journal.dirty.wait()
            if self._stop.is_set():
                break
            started = time.monotonic()
            self.flush()
            if self.journal.needs_compaction() and (
                self._compactor is None or not self._compactor.is_alive()
            ):
                self._compactor = threading.Thread(
                    target=self._compact, name="autosave-compaction", daemon=True
                )
                self._compactor.start()
            # Batch the captures of the next interval into one segment. Counted from
            # this flush's start: a capture waits at most ``interval`` plus one flush.
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _compact(self) -> None:
        try:
            self.journal.compact()
        except Exception as error:  # the journal stays as it was; try again later
            log.warning("autosave compaction failed: %s", error)

    # -- writing -----------------------------------------------------------------

    def flush(self) -> bool:
        """Write what changed now; False if writing failed (it is retried later)."""
        try:
            if not self._owns_folder:
                self.kept_aside = self._move_aside("kept")
                self._owns_folder = True
            make_private_folder(self.folder)
            self.journal.flush()
        except OSError as error:
            self._set_error(f"Autosave failed ({self.folder}): {error.strerror or error}")
            return False
        except Exception as error:  # never let the writer thread die
            log.exception("autosave failed")
            self._set_error(f"Autosave failed: {error}")
            self.journal.dirty.set()
            return False
        self._set_error(None)
        return True

    def _move_aside(self, why: str) -> Path | None:
        """Move the folder's journal, whole, to ``<folder>-<why>-<time>``; its new path
        (None when there was none to move)."""
        if not self.has_journal():
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.folder.with_name(f"{self.folder.name}-{why}-{stamp}")
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.folder.with_name(f"{self.folder.name}-{why}-{stamp}-{suffix}")
        os.replace(self.folder, target)
        log.info("earlier autosave moved to %s", target)
        return target

    def _set_error(self, text: str | None) -> None:
        changed = text != self.error
        self.error = text
        if changed and self.on_error is not None:
            try:
                self.on_error(text)
            except Exception:
                log.exception("autosave error callback failed")


def _same_model(facts: dict[str, Any], extractor: Any) -> bool:
    from kiosk.persist.journal import same_extractor

    return same_extractor(facts, extractor)


def _report(loaded: LoadedJournal) -> RestoreReport:
    contents = loaded.contents
    return RestoreReport(
        samples=contents.num_samples,
        classes=len(contents.classes),
        head=contents.head is not None,
        held=loaded.num_held,
        note="; ".join(loaded.notes) or None,
    )
