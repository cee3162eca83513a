"""Reading and writing samples and heads as ``.npz`` + JSON, for projects and autosave.

Everything here is numpy arrays in ``np.savez`` files read back with
``allow_pickle=False`` and plain JSON: nothing on disk can run code when loaded.

Sample files may also hold the mirrored embeddings ``TeachingSession.flip_augment``
computes (arrays ``flipped`` (N, D) float32 and ``has_flipped`` (N,) bool; a
row without a copy is zeros and False). Files written before they were added
have neither array; the loaders then re-create the copies from the stored JPEG
model inputs (``TeachingSession.recreate_flipped``), and a sample without a
stored image trains on its original only.
Every file is written atomically (``kiosk.atomic``), so a reader sees the old
or the new file, never half of one. Every read is checked (names, dtypes,
shapes, finiteness) and any problem becomes a ``ProjectError`` whose message
names the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kiosk.atomic import atomic_write
from kiosk.learn import SoftmaxRegression, TrainingConfig, TrainingResult
from kiosk.session import THUMBNAIL_SIZE, TrainedHead
from kiosk.store import Sample

__all__ = [
    "ProjectError",
    "SampleRecord",
    "head_from_arrays",
    "head_to_arrays",
    "pack_samples",
    "read_json",
    "read_npz",
    "training_from_json",
    "training_to_json",
    "unpack_samples",
    "write_json",
    "write_npz",
]


class ProjectError(ValueError):
    """A project or autosave folder cannot be read or written; ``str(error)`` says why."""


@dataclass(frozen=True, eq=False)
class SampleRecord:
    """One sample as read from disk (before it gets a new id in a store).

    Attributes:
        key: the id or class position the file gave it.
        embedding: (D,) float32.
        thumbnail: (h, w, 3) uint8.
        image: JPEG bytes of the model input, or None.
        created: capture time (seconds since the epoch).
        flipped: (D,) float32 embedding of the mirrored image, or None.
    """

    key: int
    embedding: np.ndarray
    thumbnail: np.ndarray
    image: bytes | None
    created: float
    flipped: np.ndarray | None = None


# -- files ---------------------------------------------------------------------


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez`` into memory, then one atomic write (OSError on failure)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write(path, buffer.getvalue())


def read_npz(path: Path, spec: Mapping[str, tuple[str, int]]) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` checked against ``{name: (dtype kind, ndim)}``.

    Dtype kinds are numpy's one-letter ones ("f", "i", "u", "b"). Raises
    ``ProjectError`` for a missing, truncated or malformed file.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ProjectError(f"{path.name} is missing") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ProjectError(f"{path.name} is damaged or not an npz file: {error}") from None
    for name, (kind, ndim) in spec.items():
        if name not in arrays:
            raise ProjectError(f"{path.name} has no array {name!r}")
        array = arrays[name]
        if array.dtype.kind != kind and not (kind == "i" and array.dtype.kind == "u"):
            raise ProjectError(f"{path.name}: {name} has dtype {array.dtype}, expected kind {kind}")
        if array.ndim != ndim:
            raise ProjectError(f"{path.name}: {name} has shape {array.shape}, expected {ndim}-d")
    return arrays


def write_json(path: Path, document: Any) -> None:
    """UTF-8 JSON (non-ASCII kept as is), written atomically."""
    text = json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False)
    atomic_write(path, (text + "\n").encode("utf-8"))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``ProjectError`` if missing or not a JSON object."""
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ProjectError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ProjectError(f"{path.name} does not hold a JSON object")
    return document


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


# -- samples -------------------------------------------------------------------


def pack_samples(
    samples: Sequence[Sample],
    keys: Sequence[int],
    feature_dim: int,
    flipped: Mapping[int, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Samples as arrays for ``write_npz``.

    With ``flipped`` ({sample id: (D,) mirrored embedding}) also ``flipped``
    (N, D) float32 and ``has_flipped`` (N,) bool.

    Returns:
        ``keys`` (N,) int64, ``embeddings`` (N, D) float32, ``thumbnails``
        (N, T, T, 3) uint8 (resized to T = THUMBNAIL_SIZE when they differ),
        ``image_data`` (M,) uint8 all JPEGs end to end, ``image_offsets`` (N+1,)
        int64 (sample i is ``image_data[o[i]:o[i+1]]``, empty = no image),
        ``created`` (N,) float64.
    """
    n = len(samples)
    embeddings = (
        np.stack([s.embedding for s in samples]) if n else np.zeros((0, feature_dim), np.float32)
    )
    shapes = {s.thumbnail.shape for s in samples}
    if len(shapes) == 1:
        thumbnails = np.stack([s.thumbnail for s in samples])
    else:
        size = (THUMBNAIL_SIZE, THUMBNAIL_SIZE)
        thumbnails = (
            np.stack([cv2.resize(s.thumbnail, size, interpolation=cv2.INTER_AREA) for s in samples])
            if n
            else np.zeros((0, THUMBNAIL_SIZE, THUMBNAIL_SIZE, 3), np.uint8)
        )
    lengths = [len(s.image) if s.image else 0 for s in samples]
    offsets = np.zeros(n + 1, np.int64)
    offsets[1:] = np.cumsum(lengths)
    image_data = np.frombuffer(b"".join(s.image or b"" for s in samples), np.uint8)
    arrays = {
        "keys": np.asarray(keys, np.int64).reshape(n),
        "embeddings": embeddings.astype(np.float32, copy=False),
        "thumbnails": thumbnails,
        "image_data": image_data,
        "image_offsets": offsets,
        "created": np.array([s.created for s in samples], np.float64).reshape(n),
    }
    if flipped is not None:
        has = np.array([s.id in flipped for s in samples], bool).reshape(n)
        mirrored = np.zeros((n, embeddings.shape[1]), np.float32)
        for row, sample in enumerate(samples):
            if has[row]:
                mirrored[row] = flipped[sample.id]
        arrays["flipped"], arrays["has_flipped"] = mirrored, has
    return arrays


SAMPLE_SPEC = {
    "keys": ("i", 1),
    "embeddings": ("f", 2),
    "thumbnails": ("u", 4),
    "image_data": ("u", 1),
    "image_offsets": ("i", 1),
    "created": ("f", 1),
}


def unpack_samples(path: Path, feature_dim: int | None) -> list[SampleRecord]:
    """Read and check a file written from ``pack_samples``.

    Args:
        feature_dim: required embedding length, or None to accept any (when
            the samples will be re-embedded anyway).
    """
    a = read_npz(path, SAMPLE_SPEC)
    keys, embeddings, thumbnails = a["keys"], a["embeddings"], a["thumbnails"]
    data, offsets, created = a["image_data"], a["image_offsets"], a["created"]
    n = len(keys)
    name = path.name
    if feature_dim is not None and embeddings.shape[1:] != (feature_dim,):
        raise ProjectError(
            f"{name}: embeddings have {embeddings.shape[1]} values, this model makes {feature_dim}"
        )
    if len(embeddings) != n or len(thumbnails) != n or len(created) != n:
        raise ProjectError(f"{name}: the arrays have different numbers of samples")
    if thumbnails.dtype != np.uint8 or thumbnails.shape[3:] != (3,) or 0 in thumbnails.shape[1:]:
        raise ProjectError(f"{name}: thumbnails have shape {thumbnails.shape}, expected (N,h,w,3)")
    if offsets.shape != (n + 1,) or offsets[0] != 0 or offsets[-1] != len(data):
        raise ProjectError(f"{name}: image offsets do not match the image data")
    if np.any(np.diff(offsets) < 0):
        raise ProjectError(f"{name}: image offsets go backwards")
    if not np.isfinite(embeddings).all():
        raise ProjectError(f"{name}: embeddings contain NaN or infinite values")
    embeddings = embeddings.astype(np.float32, copy=False)
    mirrored = _flipped_rows(a, n, embeddings.shape[1], name)
    raw = data.tobytes()
    records = []
    for i in range(n):
        start, end = int(offsets[i]), int(offsets[i + 1])
        records.append(
            SampleRecord(
                key=int(keys[i]),
                embedding=embeddings[i],
                thumbnail=thumbnails[i],
                image=raw[start:end] if end > start else None,
                created=float(created[i]),
                flipped=mirrored[i],
            )
        )
    return records


def _flipped_rows(
    arrays: Mapping[str, np.ndarray], n: int, dim: int, name: str
) -> list[np.ndarray | None]:
    """The mirrored embedding of each row (None where there is none, or in older files)."""
    if "flipped" not in arrays and "has_flipped" not in arrays:
        return [None] * n
    mirrored, has = arrays.get("flipped"), arrays.get("has_flipped")
    if mirrored is None or has is None:
        raise ProjectError(f"{name}: 'flipped' and 'has_flipped' come together")
    if mirrored.dtype.kind != "f" or mirrored.shape != (n, dim):
        raise ProjectError(f"{name}: 'flipped' has shape {mirrored.shape}, expected {(n, dim)}")
    if has.dtype != np.bool_ or has.shape != (n,):
        raise ProjectError(f"{name}: 'has_flipped' does not match the samples")
    if not np.isfinite(mirrored).all():
        raise ProjectError(f"{name}: mirrored embeddings contain NaN or infinite values")
    mirrored = mirrored.astype(np.float32, copy=False)
    return [mirrored[i] if has[i] else None for i in range(n)]


# -- heads ---------------------------------------------------------------------

HEAD_SPEC = {"weights": ("f", 2), "biases": ("f", 1), "loss_history": ("f", 1)}


def head_to_arrays(head: TrainedHead) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays for ``write_npz``, JSON-safe facts) of a head.

    Arrays: ``weights`` (D, C) float32, ``biases`` (C,) float32, ``loss_history`` (K,) float32.
    """
    model, result = head.model, head.result
    arrays = {
        "weights": np.asarray(model.weights, np.float32),
        "biases": np.asarray(model.biases, np.float32),
        "loss_history": np.asarray(result.loss_history, np.float32).reshape(-1),
    }
    facts = {
        "logit_min": _json_float(model.logit_min),
        "logit_max": _json_float(model.logit_max),
        "weight_scale": model.weight_scale,
        "reg": model.reg,
        "trained_names": list(head.trained_names),
        "trained_at": head.trained_at,
        "result": {
            "iterations": int(result.iterations),
            "num_iter": int(result.num_iter),
            "loss": _json_float(result.loss),
            "train_accuracy": _json_float(result.train_accuracy),
            "val_accuracy": _json_float(result.val_accuracy),
            "seconds": float(result.seconds),
            "optimizer": str(result.optimizer),
        },
    }
    return arrays, facts


def head_from_arrays(
    path: Path,
    facts: Mapping[str, Any],
    class_ids: Sequence[int],
    sample_ids: Sequence[Sequence[int]],
    feature_dim: int,
) -> TrainedHead:
    """Rebuild a ``TrainedHead`` from ``head_to_arrays`` output, checking shapes."""
    a = read_npz(path, HEAD_SPEC)
    weights, biases = a["weights"], a["biases"]
    num_classes = len(class_ids)
    if weights.shape != (feature_dim, num_classes) or biases.shape != (num_classes,):
        raise ProjectError(
            f"{path.name}: head weights {weights.shape} / biases {biases.shape} do not fit "
            f"{num_classes} classes of {feature_dim}-d embeddings"
        )
    if not (np.isfinite(weights).all() and np.isfinite(biases).all()):
        raise ProjectError(f"{path.name}: head weights contain NaN or infinite values")
    try:
        result_facts = dict(facts["result"])
        model = SoftmaxRegression(
            feature_dim,
            num_classes,
            weight_scale=float(facts.get("weight_scale", 0.01)),
            reg=float(facts.get("reg", 0.0)),
            seed=0,
        )
        model.weights = weights.astype(np.float32)
        model.biases = biases.astype(np.float32)
        model.logit_min = _float(facts["logit_min"])
        model.logit_max = _float(facts["logit_max"])
        result = TrainingResult(
            iterations=int(result_facts["iterations"]),
            num_iter=int(result_facts["num_iter"]),
            loss=_float(result_facts["loss"]),
            train_accuracy=_float(result_facts["train_accuracy"]),
            val_accuracy=(
                None
                if result_facts.get("val_accuracy") is None
                else float(result_facts["val_accuracy"])
            ),
            cancelled=False,
            diverged=False,
            seconds=float(result_facts["seconds"]),
            loss_history=a["loss_history"].astype(np.float32),
            optimizer=str(result_facts["optimizer"]),
        )
        names = [str(n) for n in facts.get("trained_names", [])]
        if len(names) != num_classes:
            names = [""] * num_classes
        return TrainedHead(
            model=model,
            class_ids=tuple(int(c) for c in class_ids),
            trained_names=tuple(names),
            sample_ids=tuple(tuple(int(i) for i in ids) for ids in sample_ids),
            result=result,
            trained_at=float(facts.get("trained_at", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ProjectError(f"the head description is incomplete or wrong: {error}") from None


def _json_float(value: float | None) -> float | str | None:
    # JSON has no inf/nan; a head's logit range starts at +-inf before training.
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def _float(value: Any) -> float:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


# -- training settings ---------------------------------------------------------


def training_to_json(config: TrainingConfig, val_fraction: float, seed: int | None) -> dict:
    return {"config": asdict(config), "val_fraction": val_fraction, "seed": seed}


def training_from_json(document: Any) -> tuple[TrainingConfig | None, float | None, int | None]:
    """(config, val_fraction, seed) from ``training_to_json``; None for what is unusable."""
    if not isinstance(document, dict):
        return None, None, None
    config = None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        config = TrainingConfig(**document["config"])
    val = document.get("val_fraction")
    val = float(val) if isinstance(val, (int, float)) and 0 <= val < 1 else None
    seed = document.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    return config, val, seed
