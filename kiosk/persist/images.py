"""Image folders in and out: one sub-folder of images per class (the kiosk-train layout).

``import_image_folder`` embeds every image like a camera frame (with its
mirrored copy), everything before the session changes, then adds them all at
once (``TeachingSession.extend``: one step, one event, undoable as one).
Unreadable files are skipped and listed; images beyond the store's limits are
left out and the report says why.

``export_samples`` writes the stored JPEG model inputs back out as such a folder.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk.atomic import atomic_write
from kiosk.capture import prepare_capture
from kiosk.dataset import IMAGE_SUFFIXES, read_rgb
from kiosk.persist.files import ProjectError
from kiosk.session import TeachingSession
from kiosk.store import (
    Sample,
    StoreFullError,
    class_name_key,
    clean_class_name,
    frozen_sample,
)

__all__ = [
    "ImportReport",
    "export_samples",
    "folder_name_for",
    "import_files",
    "import_image_folder",
]


@dataclass(frozen=True)
class ImportReport:
    """What ``import_image_folder`` did.

    Attributes:
        added: samples stored, per class name.
        skipped: files that could not be read as images.
        stopped: why some images were left out (a store limit), or None.
        left_out: how many images were left out for that reason.
    """

    added: dict[str, int]
    skipped: list[Path] = field(default_factory=list)
    stopped: str | None = None
    left_out: int = 0

    @property
    def total(self) -> int:
        return sum(self.added.values())

    def message(self) -> str:
        text = f"Imported {self.total} images into {len(self.added)} classes"
        if self.skipped:
            text += f", skipped {len(self.skipped)} unreadable files"
        if self.stopped:
            text += f"; {self.left_out} more left out: {self.stopped}"
        return text


def class_name_from_folder(folder_name: str) -> str:
    """A usable class name for a folder name (``kiosk.store.clean_class_name``)."""
    return clean_class_name(folder_name, "Imported")


def import_image_folder(
    session: TeachingSession,
    folder: str | os.PathLike[str],
    *,
    progress: Callable[[int, int], Any] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ImportReport:
    """Capture every image of a class-per-sub-folder dataset; see the module docstring.

    Sub-folders become classes (an existing class of the same name gets the
    images).

    Raises:
        ProjectError: the folder is missing or has no class sub-folders, or the
            import was cancelled. The session is unchanged then.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ProjectError(f"{root} is not a folder")
    try:
        class_dirs = sorted(
            (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
            key=lambda d: d.name,
        )
        groups = [
            (
                d.name,
                sorted(
                    p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                ),
            )
            for d in class_dirs
        ]
    except OSError as error:
        raise ProjectError(f"Cannot read {root}: {error.strerror or error}") from None
    if not class_dirs:
        raise ProjectError(f"{root} has no class sub-folders (one folder of images per class)")
    return import_files(session, groups, progress=progress, cancelled=cancelled)


def import_files(
    session: TeachingSession,
    groups: Sequence[tuple[str, Sequence[Path]]],
    *,
    progress: Callable[[int, int], Any] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ImportReport:
    """Capture image files into classes: ``groups`` = (class or folder name, files) pairs.

    Every file is embedded like a camera frame (with its mirrored copy) before
    the session changes; then all are added at once. ``progress(done, total)``
    follows the embedding; ``cancelled()`` stops it with nothing added.

    Raises:
        ProjectError: cancelled, or the store filled up meanwhile; nothing was added.
    """
    total = sum(len(files) for _, files in groups)
    mirror = session.settings.flip_augment
    by_name: dict[str, tuple[str, list[Sample]]] = {}
    skipped: list[Path] = []
    done = 0
    for folder_name, files in groups:
        name = class_name_from_folder(folder_name)
        _, samples = by_name.setdefault(class_name_key(name), (name, []))
        for path in files:
            if cancelled is not None and cancelled():
                raise ProjectError("Import cancelled: nothing was added")
            image = read_rgb(path)
            try:
                if image is None:
                    raise ValueError("unreadable")
                data = prepare_capture(session.extractor, image, mirror)
            except ValueError:
                skipped.append(Path(path))
            else:
                samples.append(
                    frozen_sample(
                        -1,
                        -1,
                        data.embedding,
                        data.thumbnail,
                        data.image,
                        _mtime(Path(path)),
                        data.flipped,
                    )
                )
            done += 1
            if progress is not None:
                progress(done, total)
    additions, stopped, left_out = _fit(session, list(by_name.values()))
    try:
        session.extend(additions)
    except StoreFullError as error:  # captures meanwhile filled the store
        raise ProjectError(f"Nothing was imported: {error}") from None
    added = {name: len(samples) for name, samples in additions}
    return ImportReport(added, skipped, stopped, left_out)


def _fit(
    session: TeachingSession, additions: list[tuple[str, list[Sample]]]
) -> tuple[list[tuple[str, list[Sample]]], str | None, int]:
    """The additions trimmed to the store's limits: (kept, why some were left out, how many)."""
    store = session.store
    counts = {class_name_key(n): c for n, c in zip(store.class_names, store.counts(), strict=True)}
    room = store.max_bytes - store.nbytes
    kept, stopped, left_out = [], None, 0
    for name, samples in additions:
        have = counts.get(class_name_key(name), 0)
        fitting: list[Sample] = []
        for sample in samples:
            if have + len(fitting) >= store.max_samples_per_class:
                stopped = f"a class holds at most {store.max_samples_per_class} samples"
            elif sample.nbytes > room:
                stopped = f"the store holds at most {store.max_bytes / 2**20:.0f} MiB"
            else:
                fitting.append(sample)
                room -= sample.nbytes
                continue
            left_out += 1
        kept.append((name, fitting))
    return kept, stopped, left_out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def folder_name_for(class_name: str, taken: set[str]) -> str:
    """A safe, unique (case-insensitively) folder name for a class name.

    Path separators, a leading dot and characters Windows forbids become "_";
    Unicode otherwise stays, so ``kiosk-train`` reads the same names back.
    """
    text = re.sub(r'[/\\:*?"<>|\x00-\x1f]', "_", class_name).strip()
    if not text or text.startswith("."):
        text = "_" + text
    base, number = text, 2
    while text.casefold() in taken:
        text = f"{base} ({number})"
        number += 1
    taken.add(text.casefold())
    return text


def export_samples(session: TeachingSession, folder: str | os.PathLike[str]) -> int:
    """Write the stored model inputs as ``folder/<class>/<nnnnn>.jpg``; returns the count.

    The layout ``kiosk-train`` and ``import_image_folder`` read. Samples
    without a stored image are left out. Raises ``ProjectError`` on write errors.
    """
    root = Path(folder).expanduser()
    snapshot = session.store.snapshot()
    taken: set[str] = set()
    count = 0
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name, samples in zip(snapshot.class_names, snapshot.samples, strict=True):
            class_dir = root / folder_name_for(name, taken)
            class_dir.mkdir(exist_ok=True)
            for number, sample in enumerate(samples):
                if sample.image:
                    atomic_write(class_dir / f"{number:05d}.jpg", sample.image)
                    count += 1
    except OSError as error:
        where = Path(error.filename).parent if error.filename else root
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ProjectError(f"Cannot export samples to {where}: the disk is full") from error
        raise ProjectError(
            f"Cannot export samples to {where}: {error.strerror or error}"
        ) from error
    return count
