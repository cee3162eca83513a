"""Reading the first file formats (project version 1, autosave version 1) into a session.

Kiosk 0.1 wrote projects as ``project.json`` + ``samples-<tag>.npz`` +
``head-<tag>.npz`` and its autosave as ``state.json`` + ``seg-<n>.npz`` +
``head-<n>.npz``. They are read here, checked like everything else, into a
``SessionContents``; they are never written again (a project saved again, or
the autosave's next write, uses the journal format; the old autosave folder is
kept whole beside the new one). Samples without mirrored embeddings get them
computed from their stored JPEG model inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.capture import reembed_image
from kiosk.heads import TrainedHead
from kiosk.learn import SoftmaxRegression, TrainingConfig, TrainingResult
from kiosk.learn.recipe import TrainingSettings
from kiosk.persist.files import OtherModelError, ProjectError, read_json
from kiosk.persist.journal import MAX_FILE_BYTES, same_extractor
from kiosk.persist.npz import read_npz
from kiosk.session import SessionContents
from kiosk.store import MAX_CLASSES, ClassRecord, Sample, frozen_sample, normalize_class_name

__all__ = [
    "LEGACY_AUTOSAVE_STATE",
    "LEGACY_PROJECT_MANIFEST",
    "read_legacy_autosave",
    "read_legacy_project",
]

LEGACY_PROJECT_MANIFEST = "project.json"
LEGACY_AUTOSAVE_STATE = "state.json"
_SAMPLES = {
    "embeddings": ("f", 2),
    "thumbnails": ("u", 4),
    "image_data": ("u", 1),
    "image_offsets": ("iu", 1),
    "created": ("f", 1),
}
_HEAD = {"weights": ("f", 2), "biases": ("f", 1), "loss_history": ("f", 1)}


def _rows(path: Path, feature_dim: int, extra: Mapping[str, tuple[str, int]] | None = None) -> dict:
    spec = {**_SAMPLES, **(extra or {})}
    a = read_npz(path, spec, MAX_FILE_BYTES)
    n = len(a["created"])
    if a["embeddings"].shape != (n, feature_dim) or len(a["thumbnails"]) != n:
        raise ProjectError(f"{path.name}: the arrays do not match ({feature_dim}-d, {n} rows)")
    offsets = a["image_offsets"]
    if offsets.shape != (n + 1,) or offsets[0] != 0 or offsets[-1] != len(a["image_data"]):
        raise ProjectError(f"{path.name}: image offsets do not match the image data")
    if np.any(np.diff(offsets) < 0) or not np.isfinite(a["embeddings"]).all():
        raise ProjectError(f"{path.name}: the samples are damaged")
    try:
        mirrored = read_npz(path, {"flipped": ("f", 2), "has_flipped": ("b", 1)}, MAX_FILE_BYTES)
    except ProjectError:
        mirrored = {}
    if mirrored and (
        mirrored["flipped"].shape != (n, feature_dim) or mirrored["has_flipped"].shape != (n,)
    ):
        raise ProjectError(f"{path.name}: mirrored embeddings do not match the samples")
    a.update(mirrored)
    return a


def _sample(
    a: Mapping[str, np.ndarray], row: int, sample_id: int, class_id: int, extractor: Any
) -> Sample:
    start, end = int(a["image_offsets"][row]), int(a["image_offsets"][row + 1])
    image = a["image_data"][start:end].tobytes() if end > start else None
    flipped = None
    if "has_flipped" in a and a["has_flipped"][row]:
        flipped = a["flipped"][row]
    elif image is not None and extractor is not None:
        try:
            flipped = reembed_image(extractor, image, mirror=True)[1]
        except ValueError:
            flipped = None
    return frozen_sample(
        sample_id,
        class_id,
        a["embeddings"][row],
        a["thumbnails"][row],
        image,
        float(a["created"][row]),
        flipped,
    )


def _settings(document: Any, defaults: TrainingSettings) -> TrainingSettings:
    if not isinstance(document, dict):
        return defaults
    try:
        config = TrainingConfig(**document["config"])
        val = document.get("val_fraction", defaults.val_fraction)
        seed = document.get("seed", defaults.seed)
        return TrainingSettings(config=config, val_fraction=val, seed=seed)
    except (KeyError, TypeError, ValueError):
        return defaults


def _head(
    path: Path,
    facts: Mapping[str, Any],
    class_ids: Sequence[int],
    sample_ids: Sequence[Sequence[int]],
    feature_dim: int,
    settings: TrainingSettings,
) -> TrainedHead:
    a = read_npz(path, _HEAD, MAX_FILE_BYTES)
    c = len(class_ids)
    weights, biases = a["weights"], a["biases"]
    if weights.shape != (feature_dim, c) or biases.shape != (c,):
        raise ProjectError(f"{path.name}: the head does not fit {c} classes")
    if not (np.isfinite(weights).all() and np.isfinite(biases).all()):
        raise ProjectError(f"{path.name}: the head holds NaN or infinite weights")
    try:
        r = facts["result"]
        model = SoftmaxRegression(
            feature_dim,
            c,
            weight_scale=float(facts.get("weight_scale", 0.01)),
            reg=float(facts.get("reg", 0.0)),
            seed=0,
        )
        model.weights, model.biases = weights.astype(np.float32), biases.astype(np.float32)
        model.logit_min, model.logit_max = _number(facts["logit_min"]), _number(facts["logit_max"])
        result = TrainingResult(
            iterations=int(r["iterations"]),
            num_iter=int(r["num_iter"]),
            loss=_number(r["loss"]),
            train_accuracy=_number(r["train_accuracy"]),
            val_accuracy=None if r.get("val_accuracy") is None else _number(r["val_accuracy"]),
            cancelled=False,
            diverged=False,
            seconds=float(r["seconds"]),
            loss_history=a["loss_history"].astype(np.float32),
            optimizer=str(r["optimizer"]),
        )
        names = [str(n) for n in facts.get("trained_names", [])]
    except (KeyError, TypeError, ValueError) as error:
        raise ProjectError(f"the head description is incomplete or wrong: {error}") from None
    return TrainedHead(
        model=model,
        class_ids=tuple(class_ids),
        trained_names=tuple(names) if len(names) == c else ("",) * c,
        sample_ids=tuple(tuple(ids) for ids in sample_ids),
        result=result,
        trained_at=float(facts.get("trained_at", 0.0)),
        settings=settings,
        mirrored_counts=(0,) * c,
    )


def _number(value: Any) -> float:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _names(raw: Any, where: Path) -> list[str]:
    if not isinstance(raw, list) or len(raw) > MAX_CLASSES:
        raise ProjectError(f"{where}: the class list is wrong or too long")
    try:
        names = [normalize_class_name(str(c["name"])) for c in raw]
    except (KeyError, TypeError, ValueError) as error:
        raise ProjectError(f"{where}: a class is wrong: {error}") from None
    if len({n.casefold() for n in names}) != len(names):
        raise ProjectError(f"{where}: two classes have the same name")
    return names


def _check_model(facts: Any, extractor: Any, where: Path, any_model: bool) -> int:
    if not isinstance(facts, dict) or not isinstance(facts.get("feature_dim"), int):
        raise ProjectError(f"{where}: the extractor entry is wrong")
    if not any_model and not same_extractor(facts, extractor):
        raise OtherModelError(
            f"The samples were made by the model {facts.get('name')!r}; this kiosk uses "
            f"{extractor.model_path.name!r}: re-embed the stored images to use them",
            str(facts.get("name") or ""),
        )
    return int(facts["feature_dim"])


def read_legacy_project(
    folder: Path, extractor: Any, defaults: TrainingSettings, any_model: bool = False
) -> SessionContents:
    """A version-1 project folder as contents for ``TeachingSession.replace``.

    ``any_model``: read another model's embeddings as they are (to re-embed them).
    """
    where = folder / LEGACY_PROJECT_MANIFEST
    manifest = read_json(where)
    if manifest.get("format") != "kiosk-project" or manifest.get("version") != 1:
        raise ProjectError(f"{folder} is not a kiosk project this version can read")
    feature_dim = _check_model(manifest.get("extractor"), extractor, where, any_model)
    mirror_with = None if any_model else extractor
    names = _names(manifest.get("classes"), where)
    try:
        samples_file = _data_file(folder, manifest["samples"]["file"], "samples")
    except (KeyError, TypeError) as error:
        raise ProjectError(f"{where} is incomplete: {error}") from None
    a = _rows(samples_file, feature_dim, {"keys": ("iu", 1), "trained": ("b", 1)})
    keys, trained = a["keys"], a["trained"]
    if keys.shape != trained.shape or len(keys) != len(a["created"]):
        raise ProjectError(f"{samples_file.name}: the arrays do not match")
    if len(keys) and (keys.min() < 0 or keys.max() >= len(names)):
        raise ProjectError(f"{samples_file.name}: a sample names a class that does not exist")
    by_class: list[list[Sample]] = [[] for _ in names]
    for row, key in enumerate(keys):
        by_class[int(key)].append(_sample(a, row, row, int(key), mirror_with))
    settings = _settings(manifest.get("training"), defaults)
    head = None
    entry = manifest.get("head")
    if isinstance(entry, dict):
        try:
            head_classes = [int(c) for c in entry["classes"]]
        except (KeyError, TypeError, ValueError):
            raise ProjectError(f"{where}: the head entry is wrong") from None
        if len(set(head_classes)) != len(head_classes) or not all(
            0 <= c < len(names) for c in head_classes
        ):
            raise ProjectError(f"{where}: the head names classes that do not exist")
        ids = [
            [row for row in range(len(keys)) if keys[row] == c and trained[row]]
            for c in head_classes
        ]
        head = _head(
            _data_file(folder, entry.get("file"), "head"),
            entry,
            head_classes,
            ids,
            feature_dim,
            settings,
        )
    return SessionContents(
        tuple(
            ClassRecord(i, n, tuple(s))
            for i, (n, s) in enumerate(zip(names, by_class, strict=True))
        ),
        head,
        settings,
        (len(names), len(keys)),
    )


def read_legacy_autosave(
    folder: Path, extractor: Any, defaults: TrainingSettings, any_model: bool = False
) -> tuple[SessionContents, list[str]]:
    """A version-1 autosave folder as (contents, notes); ``any_model`` as for projects."""
    where = folder / LEGACY_AUTOSAVE_STATE
    state = read_json(where)
    if state.get("format") != "kiosk-autosave" or state.get("version") != 1:
        raise ProjectError(f"{where} is not a kiosk autosave this version can read")
    feature_dim = _check_model(state.get("extractor"), extractor, where, any_model)
    mirror_with = None if any_model else extractor
    try:
        segments = [str(s) for s in state["segments"]]
        classes = [(str(c["name"]), list(c["samples"])) for c in state["classes"]]
    except (KeyError, TypeError) as error:
        raise ProjectError(f"{where} is incomplete: {error}") from None
    names = _names([{"name": n} for n, _ in classes], where)
    if len(segments) > 4096:
        raise ProjectError(f"{where} names too many files")
    loaded = {}
    for index, name in enumerate(segments):
        loaded[index] = _rows(_data_file(folder, name, "seg"), feature_dim)
    notes: list[str] = []
    records, where_is = [], {}
    next_id = 0
    for class_id, (name, refs) in enumerate(zip(names, (r for _, r in classes), strict=True)):
        samples = []
        for ref in refs:
            try:
                segment, row = int(ref[0]), int(ref[1])
                a = loaded[segment]
                if not 0 <= row < len(a["created"]):
                    raise IndexError(row)
            except (TypeError, ValueError, IndexError, KeyError):
                notes.append("some samples could not be read")
                continue
            samples.append(_sample(a, row, next_id, class_id, mirror_with))
            where_is[(segment, row)] = next_id
            next_id += 1
        records.append(ClassRecord(class_id, name, tuple(samples)))
    settings = _settings(state.get("training"), defaults)
    head = None
    entry = state.get("head")
    if isinstance(entry, dict):
        try:
            class_ids = [int(c) for c in entry["class_ids"]]
            old_ids = [int(c["id"]) for c in state["classes"]]
            position = {old: i for i, old in enumerate(old_ids)}
            head_classes = [position[c] for c in class_ids]
            ids = [
                [
                    where_is[(int(r[0]), int(r[1]))]
                    for r in refs
                    if r and (int(r[0]), int(r[1])) in where_is
                ]
                for refs in entry["samples"]
            ]
            head = _head(
                _data_file(folder, entry.get("file"), "head"),
                entry,
                head_classes,
                ids,
                feature_dim,
                settings,
            )
        except (KeyError, TypeError, ValueError, ProjectError) as error:
            notes.append(f"the trained model could not be read ({error}): train again")
    contents = SessionContents(tuple(records), head, settings, (len(records), next_id))
    return contents, sorted(set(notes))


def _data_file(folder: Path, name: Any, prefix: str) -> Path:
    if not isinstance(name, str) or "/" in name or "\\" in name or not name.startswith(prefix):
        raise ProjectError(f"{folder}: bad data file name {name!r}")  # no "../" escapes
    if not name.endswith(".npz") or name in (".", ".."):
        raise ProjectError(f"{folder}: bad data file name {name!r}")
    return folder / name
