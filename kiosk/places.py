"""Named places for models and projects: the only folders the window reads or writes.

The kiosk window never shows a file system. It shows *places*: the models
folder (saved ``.tflite`` models), the projects folder (saved projects) and
every removable drive mounted under ``/media`` or ``/run/media`` (for import
and export). Inside a place it lists entries (name, date, classes, samples),
proposes names for new ones (``model-2026-12-01-1432``) and turns a chosen
name into a path, refusing anything that would land outside the place:
``..``, a slash, a leading dot, or a symbolic link pointing elsewhere.

Layout of the fixed places::

    <models folder>/<name>/model.tflite + labels.txt   (one folder a model)
    <models folder>/<name>.tflite                       (copied in by hand: listed too)
    <projects folder>/<name>/                           (a project: kiosk.persist)

This module never imports Qt.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MEDIA_ROOTS",
    "Entry",
    "Place",
    "PlaceError",
    "Places",
    "ProjectSummary",
    "check_name",
    "default_models_dir",
    "default_projects_dir",
    "describe_image_folder",
    "describe_model",
    "describe_project",
    "propose_name",
]

# Where desktop Linux (udisks) and Raspberry Pi OS mount USB drives:
# /media/<user>/<label>, /run/media/<user>/<label>, or /media/<label> by hand.
MEDIA_ROOTS: tuple[Path, ...] = (Path("/media"), Path("/run/media"))
MODEL_FILE = "model.tflite"
MAX_NAME_LENGTH = 64
# Counting images on a big drive must not take long: stop counting here.
_MAX_IMAGES_COUNTED = 100_000
_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class PlaceError(ValueError):
    """A name or path the places refuse; ``str(error)`` is one line for the status line."""


@dataclass(frozen=True)
class Place:
    """A named root the window may use.

    Attributes:
        key: stable id: "models", "projects" or "drive:<path>".
        label: what the window shows ("Models", "Projects", "USB: STICK").
        path: the root folder.
        kind: "models", "projects", "drive" or "computer" (the home folder and
            the whole file system, offered outside kiosk mode only).
    """

    key: str
    label: str
    path: Path
    kind: str

    @property
    def removable(self) -> bool:
        return self.kind == "drive"


@dataclass(frozen=True)
class ProjectSummary:
    """What a project's manifest says about it (``describe_project``)."""

    classes: int
    samples: int
    saved: dt.datetime | None


@dataclass(frozen=True)
class Entry:
    """One row of a place's list.

    Attributes:
        name: the file or folder name.
        path: where it is.
        kind: "model", "project" or "folder" (a plain folder: an image set, or
            one to go into).
        modified: when it was saved (a project's own date, else the file time).
        classes, samples: from the model's metadata or the project's manifest
            (None when unknown).
    """

    name: str
    path: Path
    kind: str
    modified: dt.datetime | None
    classes: int | None = None
    samples: int | None = None

    def detail(self) -> str:
        """ "3 classes · 45 samples", or what is known of it."""
        parts = []
        if self.classes is not None:
            parts.append(f"{self.classes} class{'es' if self.classes != 1 else ''}")
        if self.samples is not None:
            parts.append(f"{self.samples} sample{'s' if self.samples != 1 else ''}")
        return " · ".join(parts)

    def date_text(self) -> str:
        return "" if self.modified is None else f"{self.modified:%Y-%m-%d %H:%M}"


# ----------------------------------------------------------------- defaults
def _data_dir() -> Path:
    # The folder the autosave lives in too ($KIOSK_DATA_DIR or the user data folder).
    from kiosk.persist.autosave import default_data_dir

    return default_data_dir()


def default_models_dir() -> Path:
    """``<data dir>/saved-models``: where Save model writes when nothing is configured."""
    return _data_dir() / "saved-models"


def default_projects_dir() -> Path:
    """``<data dir>/projects``."""
    return _data_dir() / "projects"


# -------------------------------------------------------------------- names
def check_name(name: str) -> str:
    """``name`` as a file or folder name inside a place (NFC, stripped), or ``PlaceError``.

    Refused: empty, longer than 64 characters, a path separator, a leading dot
    ("." and ".." included), and control characters.
    """
    if not isinstance(name, str):
        raise PlaceError("A name must be text")
    text = unicodedata.normalize("NFC", name).strip()
    if not text:
        raise PlaceError("Type a name")
    if len(text) > MAX_NAME_LENGTH:
        raise PlaceError(f"A name can have at most {MAX_NAME_LENGTH} characters")
    if "/" in text or "\\" in text:
        raise PlaceError("A name cannot contain / or \\")
    if text.startswith("."):
        raise PlaceError("A name cannot start with a dot")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in text):
        raise PlaceError("A name cannot contain control or invisible characters")
    return text


def propose_name(prefix: str, taken: Iterable[str], now: dt.datetime | None = None) -> str:
    """``<prefix>-YYYY-MM-DD-HHMM``, with ``-2``, ``-3``... when that is taken.

    ``taken`` is compared case-insensitively (a FAT-formatted USB drive is).
    """
    now = now or dt.datetime.now()
    base = f"{prefix}-{now:%Y-%m-%d-%H%M}"
    used = {name.casefold() for name in taken}
    name, number = base, 2
    while name.casefold() in used:
        name = f"{base}-{number}"
        number += 1
    return name


# ---------------------------------------------------------------- summaries
def describe_project(folder: str | os.PathLike[str]) -> ProjectSummary | None:
    """Classes, samples and date of the project in ``folder``, or None when it is none.

    Reads only the project's record (``kiosk.persist.describe_project``), never
    its samples; anything unreadable or not a kiosk project gives None.
    """
    from kiosk.persist import describe_project as read

    summary = read(Path(folder))
    if summary is None:
        return None
    try:
        saved = dt.datetime.fromtimestamp(summary.saved_at) if summary.saved_at > 0 else None
    except (OverflowError, OSError, ValueError):
        saved = None
    return ProjectSummary(len(summary.class_names), summary.num_samples, saved)


def describe_model(path: str | os.PathLike[str]) -> tuple[int | None, int | None]:
    """(classes, samples) from a saved model's ``kiosk_head`` metadata; Nones when unknown."""
    from kiosk.learn.metadata import read_metadata

    try:
        info = read_metadata(path)
    except (OSError, ValueError):
        return None, None
    if not info:
        return None, None
    names = info.get("class_names")
    counts = info.get("sample_counts")
    classes = len(names) if isinstance(names, list) else info.get("num_classes")
    samples = sum(c for c in counts if isinstance(c, int)) if isinstance(counts, list) else None
    return (classes if isinstance(classes, int) else None), samples


def describe_image_folder(folder: str | os.PathLike[str]) -> tuple[int, int]:
    """(class sub-folders holding images, images in them) of a class-per-folder image set.

    Stops counting at 100,000 images, so a big drive answers quickly.
    """
    classes = images = 0
    try:
        children = sorted(Path(folder).iterdir())
    except OSError:
        return 0, 0
    for child in children:
        if child.name.startswith(".") or not _is_dir(child):
            continue
        found = 0
        try:
            for item in child.iterdir():
                if item.suffix.lower() in _IMAGE_SUFFIXES:
                    found += 1
                    if images + found >= _MAX_IMAGES_COUNTED:
                        break
        except OSError:
            continue
        if found:
            classes += 1
            images += found
        if images >= _MAX_IMAGES_COUNTED:
            break
    return classes, images


def _mount_points() -> set[str]:
    """Every mount point the kernel lists (a same-disk bind mount included), or none."""
    try:
        lines = Path("/proc/self/mounts").read_text("utf-8", "replace").splitlines()
    except OSError:
        return set()
    # Fields are space-separated; spaces inside a path are written as \040.
    return {
        re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split(" ")[1])
        for line in lines
        if len(line.split(" ")) > 1
    }


def is_mount_point(path: Path) -> bool:
    """Whether ``path`` is a mounted file system (a USB drive under /media)."""
    return os.path.ismount(path) or str(path) in _mount_points()


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _mtime(path: Path) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime)
    except (OSError, OverflowError, ValueError):
        return None


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (resolved, links followed) is ``root`` or below it."""
    try:
        resolved = path.resolve()
        base = root.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == base or base in resolved.parents


# ------------------------------------------------------------------- places
class Places:
    """The models folder, the projects folder and the mounted removable drives."""

    def __init__(
        self,
        models_dir: str | os.PathLike[str] | None = None,
        projects_dir: str | os.PathLike[str] | None = None,
        *,
        media_roots: Sequence[str | os.PathLike[str]] = MEDIA_ROOTS,
        is_mount: Callable[[Path], bool] = is_mount_point,
    ) -> None:
        """
        Args:
            models_dir: saved models (default ``default_models_dir()``).
            projects_dir: saved projects (default ``default_projects_dir()``).
            media_roots: where removable drives are mounted.
            is_mount: tells a mounted drive from a plain folder (tests pass their own).
        """
        self.models_dir = Path(models_dir).expanduser() if models_dir else default_models_dir()
        self.projects_dir = (
            Path(projects_dir).expanduser() if projects_dir else default_projects_dir()
        )
        self.media_roots = tuple(Path(root) for root in media_roots)
        self.is_mount = is_mount

    # ----------------------------------------------------------- the places
    @property
    def models(self) -> Place:
        return Place("models", "Models", self.models_dir, "models")

    @property
    def projects(self) -> Place:
        return Place("projects", "Projects", self.projects_dir, "projects")

    def drives(self) -> list[Place]:
        """Mounted drives: ``<media root>/<label>`` or ``<media root>/<user>/<label>``."""
        found: list[Path] = []
        for root in self.media_roots:
            for first in _subfolders(root):
                if self.is_mount(first):
                    found.append(first)
                    continue
                found.extend(second for second in _subfolders(first) if self.is_mount(second))
        return [Place(f"drive:{path}", f"USB: {path.name}", path, "drive") for path in found]

    def all(self) -> list[Place]:
        return [self.models, self.projects, *self.drives()]

    def computer(self) -> list[Place]:
        """The home folder and the whole file system: what a desk user browses.

        Not among ``all()``: the window offers these outside kiosk mode only.
        """
        try:
            home: Path | None = Path.home()
        except (RuntimeError, KeyError):  # no HOME and no password entry (a bare service)
            home = None
        everything = Place("computer", "Computer", Path(home.anchor if home else "/"), "computer")
        if home is None:
            return [everything]
        return [Place("home", "Home", home, "computer"), everything]

    def ensure(self, place: Place) -> None:
        """Create a fixed place's folder (private to this account) if it is missing."""
        if place.kind in ("models", "projects"):
            place.path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def place_of(self, path: str | os.PathLike[str]) -> Place | None:
        """The place ``path`` lies in (links followed), or None: outside every root."""
        candidate = Path(path)
        for place in self.all():
            if _inside(candidate, place.path):
                return place
        return None

    def check_inside(self, path: str | os.PathLike[str]) -> Path:
        """``path`` if it lies inside one of the places, else ``PlaceError``."""
        if self.place_of(path) is None:
            raise PlaceError(f"{path} is outside the models, projects and USB folders")
        return Path(path)

    # --------------------------------------------------------------- paths
    def target(self, place: Place, name: str, folder: str | os.PathLike[str] | None = None) -> Path:
        """The path for a new or replaced entry ``name`` in ``folder`` (default: the root).

        Raises:
            PlaceError: a bad name, or a result outside ``place`` (e.g. through a link).
        """
        base = Path(folder) if folder is not None else place.path
        if not _inside(base, place.path):
            raise PlaceError(f"{base} is outside {place.label}")
        path = base / check_name(name)
        if not _inside(path, place.path):
            raise PlaceError(f"{name} leads outside {place.label}")
        return path

    def names_in(self, folder: str | os.PathLike[str]) -> list[str]:
        """Every name already used in ``folder`` (to propose a free one)."""
        try:
            return [child.name for child in Path(folder).iterdir()]
        except OSError:
            return []

    # -------------------------------------------------------------- listing
    def entries(
        self, place: Place, show: str, folder: str | os.PathLike[str] | None = None
    ) -> list[Entry]:
        """What ``folder`` (default: the place's root) holds, newest first.

        Args:
            show: "models" (saved models, and folders to go into), "projects"
                (projects, and folders to go into) or "folders" (image sets:
                sub-folders with images per class; every folder can be picked).

        Raises:
            PlaceError: ``folder`` is outside ``place``.
        """
        base = Path(folder) if folder is not None else place.path
        if not _inside(base, place.path):
            raise PlaceError(f"{base} is outside {place.label}")
        found: list[Entry] = []
        for child in _children(base):
            if child.name.startswith("."):
                continue
            entry = self._entry(child, show)
            if entry is not None and _inside(child, place.path):
                found.append(entry)
        epoch = dt.datetime.min
        found.sort(key=lambda e: (e.modified or epoch, e.name), reverse=True)
        return found

    def _entry(self, path: Path, show: str) -> Entry | None:
        is_dir = _is_dir(path)
        if show == "models":
            if not is_dir and path.suffix.lower() == ".tflite":
                classes, samples = describe_model(path)
                return Entry(path.name, path, "model", _mtime(path), classes, samples)
            model = path / MODEL_FILE
            if is_dir and model.is_file():
                classes, samples = describe_model(model)
                return Entry(path.name, path, "model", _mtime(model), classes, samples)
            # A plain folder, to go into: models can sit deeper on a drive or disk.
            return Entry(path.name, path, "folder", _mtime(path)) if is_dir else None
        if not is_dir:
            return None
        if show == "projects":
            summary = describe_project(path)
            if summary is not None:
                when = summary.saved or _mtime(path)
                return Entry(path.name, path, "project", when, summary.classes, summary.samples)
            return Entry(path.name, path, "folder", _mtime(path))
        classes, images = describe_image_folder(path)
        return Entry(path.name, path, "folder", _mtime(path), classes or None, images or None)


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _subfolders(folder: Path) -> list[Path]:
    return sorted(child for child in _children(folder) if _is_dir(child))
