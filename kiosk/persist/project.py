"""Projects: a session saved to a folder as a compacted journal, and opened again.

A project folder is a journal (``kiosk.persist.journal``, written by ``kiosk.persist.writer``) with role "project"
and one segment: the same format and the same reader as the autosave. Saving
streams the samples from memory into the segment (never a second copy of the
store), writes the head, then replaces ``journal.json`` atomically, then
removes the files the *previous* project record named and the new one does not;
no other file in the folder is ever touched. Whenever the power goes, the
folder holds a complete project: the old one or the new one.

Save refuses a folder that holds something else: the autosave, or any folder
that is not empty and is not a project. Opening checks everything (the store's
limits included) before the session changes; a project from another model is
refused unless re-embedded from its stored images.

Folders written by kiosk 0.1 (``project.json``, version 1) are read too
(``kiosk.persist.legacy``); saving again writes the journal format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.learn.recipe import TrainingSettings
from kiosk.persist.files import (
    PRIVATE_FILE,
    OtherModelError,
    ProjectError,
    read_json,
    remove_quietly,
    write_json,
)
from kiosk.persist.journal import (
    FORMAT,
    STATE,
    VERSION,
    Limits,
    extractor_facts,
    has_all_images,
    is_our_file,
    read_journal,
    read_summary,
    same_extractor,
)
from kiosk.persist.legacy import LEGACY_AUTOSAVE_STATE, LEGACY_PROJECT_MANIFEST, read_legacy_project
from kiosk.persist.records import head_facts, write_head, write_segment
from kiosk.persist.reembed import reembed_contents
from kiosk.session import SessionContents, TeachingSession

__all__ = [
    "ProjectSummary",
    "describe_project",
    "load_project",
    "open_project",
    "save_project",
]


@dataclass(frozen=True)
class ProjectSummary:
    """What a project holds, for a list of projects (read from its record only).

    Attributes:
        folder: the project folder.
        name: its folder name.
        saved_at: when it was saved (seconds since the epoch).
        class_names: in class order.
        num_samples: how many samples it holds.
        has_head: it holds a trained model.
        model: the extractor's file name its embeddings came from.
    """

    folder: Path
    name: str
    saved_at: float
    class_names: tuple[str, ...]
    num_samples: int
    has_head: bool
    model: str


def describe_project(folder: str | Path) -> ProjectSummary | None:
    """A project's summary, or None when ``folder`` is no readable project."""
    folder = Path(folder)
    try:
        summary = read_summary(folder)
    except ProjectError:
        return _describe_legacy(folder)
    if summary.role != "project":
        return None
    return ProjectSummary(
        folder,
        folder.name,
        summary.saved_at,
        summary.class_names,
        summary.num_samples,
        summary.has_head,
        str(summary.extractor.get("name", "")),
    )


def _describe_legacy(folder: Path) -> ProjectSummary | None:
    try:
        manifest = read_json(folder / LEGACY_PROJECT_MANIFEST)
        if manifest.get("format") != "kiosk-project":
            return None
        names = tuple(str(c["name"]) for c in manifest["classes"])
        return ProjectSummary(
            folder,
            folder.name,
            float(manifest.get("saved_at", 0.0)),
            names,
            int(manifest["samples"]["count"]),
            manifest.get("head") is not None,
            str(manifest["extractor"].get("name", "")),
        )
    except (ProjectError, KeyError, TypeError, ValueError):
        return None


def _named_files(folder: Path, legacy: bool = True) -> set[str]:
    """The files the project record in ``folder`` names (its own cleanup list); with
    ``legacy``, also an older kiosk's record and the files it names."""
    names: set[str] = set()
    try:
        state = read_json(folder / STATE)
        names.update(s["file"] for s in state.get("segments", []) if isinstance(s, dict))
        head = state.get("head")
        if isinstance(head, dict):
            names.add(head["file"])
    except (ProjectError, KeyError, TypeError):
        pass
    try:
        if not legacy:
            raise ProjectError("not asked for")
        manifest = read_json(folder / LEGACY_PROJECT_MANIFEST)
        names.add(LEGACY_PROJECT_MANIFEST)
        for key in ("samples", "head"):
            entry = manifest.get(key)
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                names.add(entry["file"])
    except ProjectError:
        pass
    # Only file names a project writes, never a path: nothing outside the folder.
    return {n for n in names if isinstance(n, str) and "/" not in n and n not in (".", "..")}


def check_project_target(folder: Path) -> None:
    """ProjectError unless ``folder`` may receive a project: missing, empty, or a project."""
    if folder.exists() and not folder.is_dir():
        raise ProjectError(f"Cannot save the project to {folder}: it is a file")
    if not folder.is_dir():
        return
    if (folder / LEGACY_AUTOSAVE_STATE).exists():
        raise ProjectError(f"{folder} is the autosave folder: choose another folder")
    if (folder / STATE).exists():
        try:
            role = read_summary(folder).role
        except ProjectError as error:
            raise ProjectError(f"{folder} holds a damaged journal: {error}") from None
        if role != "project":
            raise ProjectError(f"{folder} is the autosave folder: choose another folder")
        return
    if (folder / LEGACY_PROJECT_MANIFEST).exists():
        return
    try:
        has_entries = any(folder.iterdir())
    except OSError as error:
        raise ProjectError(f"Cannot read {folder}: {error.strerror or error}") from None
    if has_entries:
        raise ProjectError(
            f"{folder} is not empty and is not a project: choose an empty or a new folder"
        )


def save_project(session: TeachingSession, folder: str | os.PathLike[str]) -> Path:
    """Write the session to ``folder`` (created if needed) as a project; returns its record.

    Raises:
        ProjectError: the folder cannot take a project (see the module
            docstring) or cannot be written; a project already there is intact.
    """
    folder = Path(folder).expanduser()
    check_project_target(folder)
    contents = session.contents()
    old = _named_files(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        counter = max([_number(n) for n in old] + [0])
        segment = f"seg-{counter + 1:08d}.npz"
        samples = sorted((s for c in contents.classes for s in c.samples), key=lambda s: s.id)
        write_segment(folder / segment, samples, session.store.feature_dim, PRIVATE_FILE)
        head_entry = None
        if contents.head is not None:
            head_file = f"head-{counter + 2:08d}.npz"
            write_head(folder / head_file, contents.head, PRIVATE_FILE)
            head_entry = {"file": head_file, **head_facts(contents.head)}
        write_json(folder / STATE, _record(session, contents, segment, len(samples), head_entry))
    except OSError as error:
        # Files this save made and no record names are removed; the old project stays.
        for entry in _unnamed_ours(folder, _named_files(folder)):
            remove_quietly(folder / entry)
        raise ProjectError(_describe_os_error(error, folder)) from error
    new = _named_files(folder, legacy=False)
    for name in old - new:
        remove_quietly(folder / name)
    return folder / STATE


def _record(
    session: TeachingSession,
    contents: SessionContents,
    segment: str,
    rows: int,
    head_entry: dict[str, Any] | None,
) -> dict[str, Any]:
    import time

    from kiosk import __version__

    return {
        "format": FORMAT,
        "version": VERSION,
        "role": "project",
        "saved_at": time.time(),
        "kiosk_version": __version__,
        "extractor": extractor_facts(session.extractor),
        "classes": [{"id": c.id, "name": c.name} for c in contents.classes],
        "next_ids": list(contents.next_ids),
        "segments": [{"file": segment, "rows": rows}],
        "removed": [],
        "head": head_entry,
        "settings": contents.settings.to_json(),
        "default_settings": session.default_settings.to_json(),
    }


def _unnamed_ours(folder: Path, named: set[str]) -> list[str]:
    try:
        return [
            e.name
            for e in folder.iterdir()
            if is_our_file(e.name) and e.name not in named and e.name != STATE
        ]
    except OSError:
        return []


def open_project(
    folder: str | os.PathLike[str],
    extractor: Any,
    *,
    limits: Limits | None = None,
    default_settings: TrainingSettings | None = None,
    reembed: bool = False,
) -> SessionContents:
    """Read and check a project into contents for ``TeachingSession.replace``.

    Args:
        limits: the store's limits: a project beyond them is refused.
        reembed: a project made by another model is re-embedded from its stored
            images (its head is dropped: train again); without it, refused.

    Raises:
        ProjectError: not a project, damaged, beyond the limits, or made by
            another model (without ``reembed``).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ProjectError(f"{folder} is not a project folder")
    defaults = default_settings or TrainingSettings()
    if (folder / STATE).exists():
        summary = read_summary(folder)
        if summary.role != "project":
            raise ProjectError(f"{folder} is an autosave, not a project")
        other = not same_extractor(summary.extractor, extractor)
        if other and not reembed:
            raise OtherModelError(
                f"The project's samples were made by the model "
                f"{summary.extractor.get('name')!r}; this kiosk uses "
                f"{extractor.model_path.name!r}: re-embed the stored images to use them",
                str(summary.extractor.get("name") or ""),
                summary.num_samples,
                has_all_images(folder),
            )
        loaded = read_journal(
            folder, extractor, limits=limits, default_settings=defaults, any_model=other
        )
        contents = loaded.contents
        return reembed_contents(contents, extractor) if other else contents
    if (folder / LEGACY_PROJECT_MANIFEST).exists():
        try:
            return read_legacy_project(folder, extractor, defaults)
        except OtherModelError:
            if not reembed:
                raise
        return reembed_contents(
            read_legacy_project(folder, extractor, defaults, any_model=True), extractor
        )
    raise ProjectError(f"{folder} is not a kiosk project (no {STATE})")


def load_project(
    folder: str | os.PathLike[str],
    extractor: Any,
    *,
    session: TeachingSession | None = None,
    reembed: bool = False,
) -> TeachingSession:
    """Open a project into ``session`` (default: a new one); returns the session.

    On any error the session is exactly as it was.
    """
    session = session if session is not None else TeachingSession(extractor)
    contents = open_project(
        folder,
        extractor,
        limits=Limits.of(session.store),
        default_settings=session.default_settings,
        reembed=reembed,
    )
    session.replace(contents)
    return session


def _number(name: str) -> int:
    digits = "".join(ch if ch.isdigit() else " " for ch in name).split()
    return int(digits[-1]) if digits else 0


def _describe_os_error(error: OSError, folder: Path) -> str:
    import errno

    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot save the project to {folder}: the folder is not writable"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Cannot save the project to {folder}: the disk is full"
    return f"Cannot save the project to {folder}: {error.strerror or error}"
