"""Image folders with one sub-folder per class, and stratified splits.

The layout ``kiosk-train`` reads (and the kiosk imports and exports)::

    data/
      daisy/      001.jpg 002.jpg ...
      tulip/      ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiosk.safe_io import expand_user, special_kind
from kiosk.vision.image_io import IMAGE_SUFFIXES, read_rgb

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "read_rgb", "scan_image_folder", "stratified_split"]


@dataclass(frozen=True)
class ImageFolder:
    """The images of a class-per-folder dataset.

    Attributes:
        root: the dataset folder.
        class_names: sub-folder names, sorted; label i is ``class_names[i]``.
        paths: every image file, grouped by class.
        labels: (N,) int64, the class of each path.
    """

    root: Path
    class_names: list[str]
    paths: list[Path]
    labels: np.ndarray


def scan_image_folder(root: str | os.PathLike[str]) -> ImageFolder:
    """List the classes and image files under ``root``.

    Raises:
        ValueError: the folder is missing (or ``~user`` in it is unknown), has
            fewer than two class folders, or a class folder holds no image file.
            The message names the problem.
    """
    root = expand_user(root, "data folder")
    if not root.exists():
        raise ValueError(f"data folder not found: {root}")
    if not root.is_dir():
        kind = special_kind(root.stat().st_mode) or "a file"
        raise ValueError(f"{root} is {kind}, not a folder (expected one sub-folder per class)")
    class_dirs = sorted(
        (entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")),
        key=lambda entry: entry.name,
    )
    if len(class_dirs) < 2:
        raise ValueError(
            f"{root} has {len(class_dirs)} class folder(s); training needs at least 2 "
            "(one sub-folder of images per class)"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        images = sorted(
            p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise ValueError(f"class {class_dir.name!r} has no image files in {class_dir}")
        paths += images
        labels += [label] * len(images)
    return ImageFolder(root, [d.name for d in class_dirs], paths, np.asarray(labels, np.int64))


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split sample indices per class into train, validation and test.

    Each class gives ``round(n * fraction)`` samples to validation and to test, at
    least one when the fraction is positive and the class has three or more
    samples, and always keeps at least one for training.

    Args:
        labels: (N,) int class of each sample.
        val_fraction, test_fraction: in [0, 1), summing to less than 1.
        seed: for the shuffle within each class.

    Returns:
        Three sorted (n,) int64 index arrays.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1):
        raise ValueError("validation and test fractions must be in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ValueError("validation and test fractions must leave samples for training")
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n = len(members)
        n_test = _share(n, test_fraction)
        n_val = min(_share(n, val_fraction), n - n_test - 1)
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test : n_test + max(n_val, 0)])
        parts[0].append(members[n_test + max(n_val, 0) :])
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return train, val, test


def _share(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 3:
        return 0
    return min(max(round(n * fraction), 1), n - 1)
