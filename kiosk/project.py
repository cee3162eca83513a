"""Projects: a teaching session saved to a folder, and image folders in and out.

On-disk format, version 1 (a folder; only these files are touched)::

    project.json            the manifest, written last (see below)
    samples-<tag>.npz       every sample, in class order then capture order:
        keys           (N,) int64    class index (position in "classes")
        embeddings     (N, D) float32
        thumbnails     (N, T, T, 3) uint8 RGB
        image_data     (M,) uint8    the JPEG model inputs, end to end
        image_offsets  (N+1,) int64  sample i = image_data[o[i]:o[i+1]] (empty: none)
        created        (N,) float64  capture time, seconds since the epoch
        trained        (N,) bool     the head was trained on this sample
        flipped        (N, D) float32  mirrored-image embedding (flip_augment; zeros: none)
        has_flipped    (N,) bool     the sample has a mirrored embedding
    head-<tag>.npz          (only with a head)
        weights (D, C) float32, biases (C,) float32, loss_history (K,) float32

``project.json``::

    {"format": "kiosk-project", "version": 1, "saved_at": <unix time>,
     "extractor": {"name": ..., "sha256": ..., "feature_dim": D},
     "classes": [{"name": ...}, ...],                 # class order
     "samples": {"file": "samples-<tag>.npz", "count": N},
     "head": null | {"file": "head-<tag>.npz", "classes": [class index, ...],
                     "logit_min": ..., "logit_max": ..., "result": {...}, ...},
     "training": {"config": {TrainingConfig fields}, "val_fraction": ..., "seed": ...}}

Saving is crash-safe without a temporary folder: the data files get a fresh
``<tag>`` each time and are written atomically, then ``project.json`` is
replaced atomically, then files no manifest names are deleted. Whenever the
power goes, ``project.json`` names complete files of one save.

``flipped``/``has_flipped`` were added within version 1: older kiosks ignore
them, and a project without them gets its mirrored embeddings re-created
from the stored JPEG model inputs when it is loaded (samples without an image
then train on the original only).

No pickles: arrays are read with ``np.load(allow_pickle=False)``.
Embeddings made by another extractor (different sha256) are refused unless
``reembed=True``, which recomputes them from the stored JPEG model inputs
(exact: the session embeds the decoded JPEG in the first place).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kiosk import __version__
from kiosk.atomic import atomic_write
from kiosk.dataset import IMAGE_SUFFIXES, read_rgb
from kiosk.persist import (
    ProjectError,
    SampleRecord,
    head_from_arrays,
    head_to_arrays,
    pack_samples,
    read_json,
    read_npz,
    remove_quietly,
    training_from_json,
    training_to_json,
    unpack_samples,
    write_json,
    write_npz,
)
from kiosk.session import TeachingSession, decode_model_input
from kiosk.store import MAX_NAME_LENGTH, StoreFullError, class_name_key, normalize_class_name

if TYPE_CHECKING:
    from kiosk.embedding import EmbeddingExtractor

__all__ = [
    "FORMAT",
    "MANIFEST",
    "VERSION",
    "ImportReport",
    "ProjectData",
    "ProjectError",
    "apply_project",
    "export_samples",
    "import_image_folder",
    "load_project",
    "read_project",
    "save_project",
]

log = logging.getLogger(__name__)

FORMAT = "kiosk-project"
VERSION = 1
MANIFEST = "project.json"
_DATA_FILE = re.compile(r"^(samples|head)-[0-9a-f]+\.npz$")


@dataclass(frozen=True, eq=False)
class ProjectData:
    """A project as read from disk, checked, not yet in any session.

    Attributes:
        class_names: in class order.
        samples: every sample; ``key`` is its class index.
        trained: (N,) bool, which samples the head was trained on.
        head_classes: class indices of the head's outputs, or None without a head.
        head_file, head_facts: where the head's arrays are and what the manifest says.
        extractor: {"name", "sha256", "feature_dim"} of the model that made the embeddings.
        training: the "training" object of the manifest.
    """

    folder: Path
    class_names: list[str]
    samples: list[SampleRecord]
    trained: np.ndarray
    head_classes: list[int] | None
    head_file: Path | None
    head_facts: dict[str, Any]
    extractor: dict[str, Any]
    training: Any


# -- saving --------------------------------------------------------------------


def save_project(session: TeachingSession, folder: str | os.PathLike[str]) -> Path:
    """Write the session's classes, samples, head and settings to ``folder``.

    Returns the manifest's path. Raises ``ProjectError`` (the folder cannot
    be created or written, the disk is full); an earlier project in the folder
    is then left as it was.
    """
    folder = Path(folder)
    snapshot = session.store.snapshot()
    head = session.head
    position = {cid: i for i, cid in enumerate(snapshot.class_ids)}
    head_classes = None
    if head is not None and all(cid in position for cid in head.class_ids):
        head_classes = [position[cid] for cid in head.class_ids]
    else:
        head = None  # a head whose class was deleted cannot be named; retrain after loading
    samples, keys = [], []
    for index, class_samples in enumerate(snapshot.samples):
        samples.extend(class_samples)
        keys.extend([index] * len(class_samples))
    trained_ids = {i for ids in head.sample_ids for i in ids} if head is not None else set()
    arrays = pack_samples(samples, keys, snapshot.feature_dim, session.flipped_embeddings())
    arrays["trained"] = np.array([s.id in trained_ids for s in samples], bool)
    tag = f"{int(time.time() * 1000):x}{secrets.token_hex(3)}"
    extractor = session.extractor
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": time.time(),
        "kiosk_version": __version__,
        "extractor": {
            "name": extractor.model_path.name,
            "sha256": getattr(extractor, "sha256", None),
            "feature_dim": int(snapshot.feature_dim),
        },
        "classes": [{"name": name} for name in snapshot.class_names],
        "samples": {"file": f"samples-{tag}.npz", "count": len(samples)},
        "head": None,
        "training": training_to_json(session.config, session.val_fraction, session.seed),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_npz(folder / manifest["samples"]["file"], arrays)
        if head is not None and head_classes is not None:
            head_arrays, facts = head_to_arrays(head)
            manifest["head"] = {"file": f"head-{tag}.npz", "classes": head_classes, **facts}
            write_npz(folder / manifest["head"]["file"], head_arrays)
        write_json(folder / MANIFEST, manifest)
    except OSError as error:
        _remove_unnamed(folder, keep=_named_files(folder))
        raise ProjectError(_describe_os_error(error, folder)) from error
    _remove_unnamed(folder, keep=_named_files(folder))
    return folder / MANIFEST


def _named_files(folder: Path) -> set[str]:
    """Data files the current manifest names (none if it is unreadable)."""
    try:
        manifest = read_json(folder / MANIFEST)
    except ProjectError:
        return set()
    names = set()
    for key in ("samples", "head"):
        entry = manifest.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            names.add(entry["file"])
    return names


def _remove_unnamed(folder: Path, keep: set[str]) -> None:
    """Delete our data files (and temporaries) that no manifest names: older saves."""
    if not keep:
        return  # no readable manifest: delete nothing rather than guess
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if _DATA_FILE.match(entry.name) and entry.name not in keep:
            remove_quietly(entry)


def _describe_os_error(error: OSError, folder: Path) -> str:
    import errno

    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot save the project to {folder}: the folder is not writable"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Cannot save the project to {folder}: the disk is full"
    return f"Cannot save the project to {folder}: {error.strerror or error}"


# -- loading -------------------------------------------------------------------


def read_project(folder: str | os.PathLike[str]) -> ProjectData:
    """Read and check a project folder. Raises ``ProjectError`` saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProjectError(f"{folder} is not a project folder")
    manifest = read_json(folder / MANIFEST)
    if manifest.get("format") != FORMAT:
        raise ProjectError(f"{folder} is not a kiosk project ({MANIFEST} has no kiosk format)")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise ProjectError(
            f"{folder}: project format version {version!r} is not supported (this kiosk reads "
            f"up to {VERSION}; a newer kiosk wrote it)"
        )
    try:
        extractor = dict(manifest["extractor"])
        feature_dim = int(extractor["feature_dim"])
        class_names = [normalize_class_name(str(c["name"])) for c in manifest["classes"]]
        samples_file = _data_file(folder, manifest["samples"]["file"])
        head_entry = manifest.get("head")
    except (KeyError, TypeError, ValueError) as error:
        raise ProjectError(f"{folder}/{MANIFEST} is incomplete or wrong: {error}") from None
    if len({class_name_key(n) for n in class_names}) != len(class_names):
        raise ProjectError(f"{folder}/{MANIFEST}: two classes have the same name")
    samples = unpack_samples(samples_file, feature_dim)
    extra = read_npz(samples_file, {"trained": ("b", 1)})
    trained = extra["trained"]
    if trained.shape != (len(samples),):
        raise ProjectError(f"{samples_file.name}: 'trained' does not match the samples")
    for record in samples:
        if not 0 <= record.key < len(class_names):
            raise ProjectError(f"{samples_file.name}: a sample names class {record.key}, "
                               f"there are {len(class_names)}")  # fmt: skip
    head_classes = head_file = None
    facts: dict[str, Any] = {}
    if head_entry is not None:
        try:
            head_classes = [int(c) for c in head_entry["classes"]]
            head_file = _data_file(folder, head_entry["file"])
            facts = dict(head_entry)
        except (KeyError, TypeError, ValueError) as error:
            raise ProjectError(f"{folder}/{MANIFEST}: the head entry is wrong: {error}") from None
        if len(set(head_classes)) != len(head_classes) or not all(
            0 <= c < len(class_names) for c in head_classes
        ):
            raise ProjectError(f"{folder}/{MANIFEST}: the head names classes that do not exist")
    return ProjectData(
        folder=folder,
        class_names=class_names,
        samples=samples,
        trained=trained,
        head_classes=head_classes,
        head_file=head_file,
        head_facts=facts,
        extractor=extractor,
        training=manifest.get("training"),
    )


def _data_file(folder: Path, name: Any) -> Path:
    if not isinstance(name, str) or not _DATA_FILE.match(name):
        raise ValueError(f"bad data file name {name!r}")  # no "../" escapes
    return folder / name


def load_project(
    folder: str | os.PathLike[str],
    extractor: EmbeddingExtractor,
    *,
    session: TeachingSession | None = None,
    reembed: bool = False,
) -> TeachingSession:
    """Read a project into a new session (or replace the contents of ``session``).

    Raises:
        ProjectError: the folder is broken, or its embeddings were made by a
            different extractor and ``reembed`` is False. Nothing is changed then.
    """
    data = read_project(folder)
    if session is None:
        config, val_fraction, seed = training_from_json(data.training)
        kwargs: dict[str, Any] = {}
        if config is not None:
            kwargs["config"] = config
        if val_fraction is not None:
            kwargs["val_fraction"] = val_fraction
        if seed is not None:
            kwargs["seed"] = seed
        session = TeachingSession(extractor, **kwargs)
    apply_project(data, session, reembed=reembed)
    return session


def same_extractor(data_extractor: dict[str, Any], extractor: Any) -> bool:
    """Whether embeddings described by ``data_extractor`` came from ``extractor``."""
    sha = getattr(extractor, "sha256", None)
    if data_extractor.get("feature_dim") != extractor.feature_dim:
        return False
    return sha is None or data_extractor.get("sha256") in (None, sha)


def apply_project(data: ProjectData, session: TeachingSession, *, reembed: bool = False) -> None:
    """Replace the classes, samples and head of ``session`` with the project's.

    The check and any re-embedding happen before the session is touched.
    """
    samples = data.samples
    use_head = True
    if not same_extractor(data.extractor, session.extractor):
        if not reembed:
            raise ProjectError(
                f"The project's samples were made by the model {data.extractor.get('name')!r} "
                f"(sha256 {str(data.extractor.get('sha256'))[:12]}…), this kiosk uses "
                f"{session.extractor.model_path.name!r}: re-embed the stored images to use them"
            )
        samples = reembed_records(samples, session.extractor)
        use_head = False  # trained on the other model's embeddings: retrain
    head = None
    store = session.store
    if use_head and data.head_classes is not None and data.head_file is not None:
        # Read and check the head before the session is touched; ids are filled in below.
        head = head_from_arrays(
            data.head_file,
            data.head_facts,
            [-1] * len(data.head_classes),
            [[] for _ in data.head_classes],
            store.feature_dim,
        )
    for index in reversed(range(store.num_classes)):
        store.remove_class(index)
    for name in data.class_names:
        store.add_class(name)
    class_ids = store.class_ids
    new_ids = []
    for record in samples:
        new_ids.append(
            store.add_sample(record.key, record.embedding, record.thumbnail, image=record.image)
        )
    session.restore_flipped(
        {i: r.flipped for i, r in zip(new_ids, samples, strict=True) if r.flipped is not None}
    )
    session.recreate_flipped()  # older files, or re-embedded samples
    if head is not None and data.head_classes is not None:
        trained: list[list[int]] = [[] for _ in data.head_classes]
        where = {c: i for i, c in enumerate(data.head_classes)}
        for record, new_id, was_trained in zip(samples, new_ids, data.trained, strict=True):
            if was_trained and record.key in where:
                trained[where[record.key]].append(new_id)
        session.restore_head(
            dataclasses.replace(
                head,
                class_ids=tuple(class_ids[c] for c in data.head_classes),
                sample_ids=tuple(tuple(ids) for ids in trained),
            )
        )


def reembed_records(records: list[SampleRecord], extractor: Any) -> list[SampleRecord]:
    """The records with embeddings recomputed from their stored JPEG model inputs."""
    out = []
    for record in records:
        if record.image is None:
            raise ProjectError("Some samples have no stored image, so they cannot be re-embedded")
        try:
            model_input = decode_model_input(record.image)
        except ValueError as error:
            raise ProjectError(f"A stored sample image is damaged: {error}") from None
        expected = tuple(int(d) for d in extractor.preprocess(model_input).shape)
        if model_input.shape != expected:
            model_input = extractor.preprocess(model_input)
        out.append(
            SampleRecord(
                key=record.key,
                embedding=np.asarray(extractor.embed_input(model_input), np.float32),
                thumbnail=record.thumbnail,
                image=record.image,
                created=record.created,
            )
        )
    return out


def reembed_session(session: TeachingSession) -> int:
    """Recompute every stored embedding with the session's extractor (e.g. after a
    fall-back from the Edge TPU to the CPU); returns how many. Drops nothing but the head."""
    snapshot = session.store.snapshot()
    records = [
        SampleRecord(index, s.embedding, s.thumbnail, s.image, s.created)
        for index, class_samples in enumerate(snapshot.samples)
        for s in class_samples
    ]
    fresh = reembed_records(records, session.extractor)
    store = session.store
    for index in range(store.num_classes):
        store.clear_class(index)
    for record in fresh:
        store.add_sample(record.key, record.embedding, record.thumbnail, image=record.image)
    session.recreate_flipped()  # the mirrored copies too come from the new extractor
    return len(fresh)


# -- image folders -------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    """What ``import_image_folder`` did.

    Attributes:
        added: samples stored, per class name.
        skipped: files that could not be read as images.
        stopped: why the import stopped early (a full store), or None.
    """

    added: dict[str, int]
    skipped: list[Path]
    stopped: str | None = None

    @property
    def total(self) -> int:
        return sum(self.added.values())


def import_image_folder(session: TeachingSession, folder: str | os.PathLike[str]) -> ImportReport:
    """Capture every image of a class-per-sub-folder dataset (the kiosk-train layout).

    Sub-folders become classes (an existing class of the same name gets the
    images); files are embedded like camera frames. Unreadable files are
    skipped and listed; a full store stops the import with the reason.

    Raises:
        ProjectError: the folder is missing or has no class sub-folders.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ProjectError(f"{root} is not a folder")
    class_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if not class_dirs:
        raise ProjectError(f"{root} has no class sub-folders (one folder of images per class)")
    store = session.store
    added: dict[str, int] = {}
    skipped: list[Path] = []
    for class_dir in class_dirs:
        name = _class_name_from_folder(class_dir.name)
        keys = [class_name_key(n) for n in store.class_names]
        key = class_name_key(name)
        index = keys.index(key) if key in keys else None
        if index is None:
            index = store.add_class(name)
        added.setdefault(store.class_names[index], 0)
        files = sorted(
            p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        for path in files:
            image = read_rgb(path)
            if image is None:
                skipped.append(path)
                continue
            try:
                session.capture(index, image)
            except StoreFullError as error:
                return ImportReport(added, skipped, stopped=str(error))
            except ValueError:
                skipped.append(path)
                continue
            added[store.class_names[index]] += 1
    return ImportReport(added, skipped)


def _class_name_from_folder(folder_name: str) -> str:
    try:
        return normalize_class_name(folder_name)
    except ValueError:
        cleaned = "".join(
            " "
            if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")
            else ""
            if unicodedata.category(ch) in ("Cf", "Co")  # invisible: dropped
            else ch
            for ch in folder_name
        )
        cleaned = " ".join(cleaned.split())[:MAX_NAME_LENGTH] or "Imported"
        try:
            return normalize_class_name(cleaned)
        except ValueError:  # nothing visible left
            return "Imported"


def folder_name_for(class_name: str, taken: set[str]) -> str:
    """A safe, unique (case-insensitively) folder name for a class name.

    Path separators, a leading dot and characters Windows forbids become "_";
    Unicode otherwise stays, so ``kiosk-train`` reads the same names back.
    """
    text = re.sub(r'[/\\:*?"<>|\x00-\x1f]', "_", class_name).strip()
    if not text or text.startswith(".") or text in ("..",):
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
    root = Path(folder)
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
        raise ProjectError(
            _describe_os_error(error, root).replace("the project", "samples")
        ) from error
    return count
