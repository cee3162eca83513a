"""Samples and heads as files: the segment and head formats of the journal.

A *segment* (``seg-<n>.npz``) holds samples, row by row::

    ids            (N,) int64     sample ids (unique within a journal)
    class_ids      (N,) int64     the stable id of each sample's class
    embeddings     (N, D) float32
    flipped        (N, D) float32 embedding of the mirrored image (zeros: none)
    has_flipped    (N,) bool
    thumbnails     (N, T, T, 3) uint8 RGB
    created        (N,) float64   capture time, seconds since the epoch
    image_offsets  (N+1,) int64   sample i's JPEG is image_data[o[i]:o[i+1]] (empty: none)
    image_data     (M,) uint8     the JPEG model inputs, end to end

Segments are written by streaming row chunks (``kiosk.persist.npz``), from
samples in memory or from other segments (compaction), never building a second
copy of the store.

A *head* (``head-<n>.npz``) holds a head's arrays: ``weights`` (D, C) float32,
``biases`` (C,) float32, ``loss_history`` (K,) float32, ``trained_ids`` (S,)
int64 with ``trained_offsets`` (C+1,) int64 (the samples each output was
trained on), and ``confusion`` (C, C) int64 when it has an evaluation. Its
other facts are a small JSON object (``head_facts``) kept in the journal's
state record beside the file name.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kiosk.capture import THUMBNAIL_SIZE
from kiosk.heads import TrainedHead
from kiosk.learn import SoftmaxRegression, TrainingResult
from kiosk.learn.evaluation import evaluation_from_confusion
from kiosk.learn.gate import NotSureGate
from kiosk.learn.recipe import TrainingSettings
from kiosk.persist.files import ProjectError
from kiosk.persist.npz import NpzWriter, iter_byte_rows, iter_rows, read_npz
from kiosk.store import Sample, frozen_sample

__all__ = [
    "SEGMENT_SPEC",
    "SegmentRows",
    "head_facts",
    "read_head",
    "read_segment",
    "segment_ids",
    "write_head",
    "write_segment",
    "write_segment_from_files",
]

SEGMENT_SPEC = {
    "ids": ("iu", 1),
    "class_ids": ("iu", 1),
    "embeddings": ("f", 2),
    "flipped": ("f", 2),
    "has_flipped": ("b", 1),
    "thumbnails": ("u", 4),
    "created": ("f", 1),
    "image_offsets": ("iu", 1),
    "image_data": ("u", 1),
}
HEAD_SPEC = {
    "weights": ("f", 2),
    "biases": ("f", 1),
    "loss_history": ("f", 1),
    "trained_ids": ("iu", 1),
    "trained_offsets": ("iu", 1),
}
# Rows per chunk when streaming: a few MB of thumbnails at a time.
CHUNK_ROWS = 256
_THUMB = (THUMBNAIL_SIZE, THUMBNAIL_SIZE, 3)


# -- writing segments ------------------------------------------------------------


def _thumbnail(sample: Sample) -> np.ndarray:
    if sample.thumbnail.shape == _THUMB:
        return sample.thumbnail
    return cv2.resize(sample.thumbnail, _THUMB[:2], interpolation=cv2.INTER_AREA)


def write_segment(
    path: Path, samples: Sequence[Sample], feature_dim: int, mode: int | None = None
) -> None:
    """Write samples from memory as one segment, streamed in chunks (OSError on failure)."""
    n = len(samples)
    chunks = [samples[i : i + CHUNK_ROWS] for i in range(0, n, CHUNK_ROWS)]
    zeros = np.zeros(feature_dim, np.float32)
    lengths = np.array([len(s.image) if s.image else 0 for s in samples], np.int64)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    with NpzWriter(path, mode) as out:
        out.write("ids", np.array([s.id for s in samples], np.int64).reshape(n))
        out.write("class_ids", np.array([s.class_id for s in samples], np.int64).reshape(n))
        out.stream(
            "embeddings",
            np.float32,
            (n, feature_dim),
            (np.stack([s.embedding for s in c]) for c in chunks),
        )
        out.stream(
            "flipped",
            np.float32,
            (n, feature_dim),
            (np.stack([zeros if s.flipped is None else s.flipped for s in c]) for c in chunks),
        )
        out.write("has_flipped", np.array([s.flipped is not None for s in samples], bool))
        out.stream(
            "thumbnails",
            np.uint8,
            (n, *_THUMB),
            (np.stack([_thumbnail(s) for s in c]) for c in chunks),
        )
        out.write("created", np.array([s.created for s in samples], np.float64).reshape(n))
        out.write("image_offsets", offsets)
        out.stream(
            "image_data",
            np.uint8,
            (int(offsets[-1]),),
            (np.frombuffer(s.image, np.uint8) for s in samples if s.image),
        )


@dataclass(frozen=True)
class SegmentRows:
    """Which rows of an existing segment a compaction keeps.

    Attributes:
        path: the segment file.
        keep: (N,) bool, one per row.
        image_offsets: (N+1,) int64, the segment's image offsets.
    """

    path: Path
    keep: np.ndarray
    image_offsets: np.ndarray


def write_segment_from_files(
    path: Path,
    sources: Sequence[SegmentRows],
    feature_dim: int,
    max_bytes: int,
    mode: int | None = None,
) -> None:
    """Write the kept rows of other segments as one new segment, streaming file to file.

    Memory stays at a few chunks whatever the sizes (OSError / ProjectError on failure).
    """
    n = sum(int(s.keep.sum()) for s in sources)
    lengths = np.concatenate(
        [np.diff(s.image_offsets)[s.keep] for s in sources] or [np.zeros(0, np.int64)]
    )
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])

    def rows(name: str) -> Iterator[np.ndarray]:
        for source in sources:
            start = 0
            for chunk in iter_rows(source.path, name, CHUNK_ROWS, max_bytes):
                keep = source.keep[start : start + len(chunk)]
                start += len(chunk)
                if keep.any():
                    yield chunk[keep]

    with NpzWriter(path, mode) as out:
        out.stream("ids", np.int64, (n,), rows("ids"))
        out.stream("class_ids", np.int64, (n,), rows("class_ids"))
        out.stream("embeddings", np.float32, (n, feature_dim), rows("embeddings"))
        out.stream("flipped", np.float32, (n, feature_dim), rows("flipped"))
        out.stream("has_flipped", np.bool_, (n,), rows("has_flipped"))
        out.stream("thumbnails", np.uint8, (n, *_THUMB), rows("thumbnails"))
        out.stream("created", np.float64, (n,), rows("created"))
        out.write("image_offsets", offsets)
        out.stream("image_data", np.uint8, (int(offsets[-1]),), _kept_images(sources, max_bytes))


def _kept_images(sources: Sequence[SegmentRows], max_bytes: int) -> Iterator[np.ndarray]:
    """The JPEG bytes of the kept rows, read row by row in file order."""
    for source in sources:
        lengths = np.diff(source.image_offsets)
        rows = iter_byte_rows(source.path, "image_data", lengths, max_bytes)
        for keep, data in zip(source.keep, rows, strict=True):
            if keep and len(data):
                yield data


def segment_ids(path: Path, max_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, class_ids, image_offsets) of a segment, read without its big arrays."""
    arrays = read_npz(
        path,
        {k: SEGMENT_SPEC[k] for k in ("ids", "class_ids", "image_offsets")},
        max_bytes,
    )
    return arrays["ids"], arrays["class_ids"], arrays["image_offsets"]


# -- reading segments ------------------------------------------------------------


def read_segment(path: Path, feature_dim: int, max_bytes: int) -> list[Sample]:
    """Every row of a segment as a ``Sample`` (arrays read-only, views of the file's).

    Raises:
        ProjectError: the file is missing, damaged, or inconsistent.
    """
    a = read_npz(path, SEGMENT_SPEC, max_bytes)
    name = path.name
    ids, class_ids = a["ids"], a["class_ids"]
    n = len(ids)
    embeddings, flipped, has = a["embeddings"], a["flipped"], a["has_flipped"]
    thumbnails, created = a["thumbnails"], a["created"]
    offsets, data = a["image_offsets"], a["image_data"]
    if embeddings.shape[1:] != (feature_dim,) or flipped.shape != embeddings.shape:
        raise ProjectError(
            f"{name}: embeddings have {embeddings.shape[1:]} values, this model makes {feature_dim}"
        )
    if not all(len(x) == n for x in (class_ids, embeddings, has, thumbnails, created)):
        raise ProjectError(f"{name}: the arrays have different numbers of samples")
    if thumbnails.shape[3:] != (3,) or 0 in thumbnails.shape[1:3]:
        raise ProjectError(f"{name}: thumbnails have shape {thumbnails.shape}, expected (N,h,w,3)")
    if offsets.shape != (n + 1,) or offsets[0] != 0 or offsets[-1] != len(data):
        raise ProjectError(f"{name}: image offsets do not match the image data")
    if np.any(np.diff(offsets) < 0):
        raise ProjectError(f"{name}: image offsets go backwards")
    if len(np.unique(ids)) != n or (n and ids.min() < 0):
        raise ProjectError(f"{name}: sample ids repeat or are negative")
    if not (np.isfinite(embeddings).all() and np.isfinite(flipped[has]).all()):
        raise ProjectError(f"{name}: embeddings contain NaN or infinite values")
    if not np.isfinite(created).all():
        raise ProjectError(f"{name}: capture times are not numbers")
    samples = []
    for i in range(n):
        start, end = int(offsets[i]), int(offsets[i + 1])
        samples.append(
            frozen_sample(
                int(ids[i]),
                int(class_ids[i]),
                embeddings[i],
                thumbnails[i],
                data[start:end].tobytes() if end > start else None,
                float(created[i]),
                flipped[i] if has[i] else None,
            )
        )
    return samples


# -- heads -----------------------------------------------------------------------


def write_head(path: Path, head: TrainedHead, mode: int | None = None) -> None:
    """Write a head's arrays (the facts go into the state record: ``head_facts``)."""
    model = head.model
    flat = [i for ids in head.sample_ids for i in ids]
    offsets = np.zeros(head.num_classes + 1, np.int64)
    np.cumsum([len(ids) for ids in head.sample_ids], out=offsets[1:])
    with NpzWriter(path, mode) as out:
        out.write("weights", np.asarray(model.weights, np.float32))
        out.write("biases", np.asarray(model.biases, np.float32))
        out.write("loss_history", np.asarray(head.result.loss_history, np.float32).reshape(-1))
        out.write("trained_ids", np.asarray(flat, np.int64).reshape(len(flat)))
        out.write("trained_offsets", offsets)
        if head.evaluation is not None:
            out.write("confusion", np.asarray(head.evaluation.confusion, np.int64))


def head_facts(head: TrainedHead) -> dict[str, Any]:
    """The JSON-safe facts of a head that are not arrays."""
    model, result = head.model, head.result
    return {
        "class_ids": list(head.class_ids),
        "trained_names": list(head.trained_names),
        "logit_min": _json_float(model.logit_min),
        "logit_max": _json_float(model.logit_max),
        "weight_scale": model.weight_scale,
        "reg": model.reg,
        "trained_at": head.trained_at,
        "settings": head.settings.to_json(),
        "gate": None if head.gate is None else head.gate.to_json(),
        "mirrored_counts": list(head.mirrored_counts),
        "evaluation_names": (
            None if head.evaluation is None else list(head.evaluation.class_names)
        ),
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


def read_head(
    path: Path, facts: Mapping[str, Any], feature_dim: int, max_bytes: int
) -> TrainedHead:
    """Rebuild a ``TrainedHead`` from ``write_head``'s file and ``head_facts``' object.

    Raises ProjectError when anything is missing, damaged or inconsistent.
    """
    try:
        class_ids = tuple(_int(c) for c in facts["class_ids"])
        c = len(class_ids)
        spec = dict(HEAD_SPEC)
        if facts.get("evaluation_names") is not None:
            spec["confusion"] = ("iu", 2)
        a = read_npz(path, spec, max_bytes)
        weights, biases = a["weights"], a["biases"]
        if weights.shape != (feature_dim, c) or biases.shape != (c,):
            raise ValueError(
                f"weights {weights.shape} / biases {biases.shape} do not fit "
                f"{c} classes of {feature_dim}-d embeddings"
            )
        if not (np.isfinite(weights).all() and np.isfinite(biases).all()):
            raise ValueError("the weights contain NaN or infinite values")
        offsets = a["trained_offsets"]
        trained = a["trained_ids"]
        if offsets.shape != (c + 1,) or offsets[0] != 0 or offsets[-1] != len(trained):
            raise ValueError("the trained sample lists do not add up")
        if np.any(np.diff(offsets) < 0):
            raise ValueError("the trained sample lists go backwards")
        sample_ids = tuple(
            tuple(int(i) for i in trained[offsets[k] : offsets[k + 1]]) for k in range(c)
        )
        model = SoftmaxRegression(
            feature_dim,
            c,
            weight_scale=float(facts["weight_scale"]),
            reg=float(facts["reg"]),
            seed=0,
        )
        model.weights = weights.astype(np.float32)
        model.biases = biases.astype(np.float32)
        model.logit_min = _float(facts["logit_min"])
        model.logit_max = _float(facts["logit_max"])
        r = facts["result"]
        val = r.get("val_accuracy")
        result = TrainingResult(
            iterations=_int(r["iterations"]),
            num_iter=_int(r["num_iter"]),
            loss=_float(r["loss"]),
            train_accuracy=_float(r["train_accuracy"]),
            val_accuracy=None if val is None else _float(val),
            cancelled=False,
            diverged=False,
            seconds=_float(r["seconds"]),
            loss_history=a["loss_history"].astype(np.float32),
            optimizer=str(r["optimizer"]),
        )
        names = tuple(str(n) for n in facts["trained_names"])
        if len(names) != c:
            raise ValueError("the names do not match the classes")
        evaluation = None
        if "confusion" in a:
            eval_names = [str(n) for n in facts["evaluation_names"]]
            if a["confusion"].shape != (c, c) or len(eval_names) != c:
                raise ValueError("the evaluation does not match the classes")
            evaluation = evaluation_from_confusion(a["confusion"], eval_names)
        gate = None
        if facts.get("gate") is not None:
            gate = NotSureGate.from_json(facts["gate"])
        elif facts.get("confidence_threshold") is not None:  # a head from before the gate
            gate = NotSureGate(_unit(facts["confidence_threshold"]))
        mirrored = tuple(_int(n) for n in facts.get("mirrored_counts") or ())
        return TrainedHead(
            model=model,
            class_ids=class_ids,
            trained_names=names,
            sample_ids=sample_ids,
            result=result,
            trained_at=_float(facts["trained_at"]),
            settings=TrainingSettings.from_json(facts["settings"]),
            evaluation=evaluation,
            gate=gate,
            mirrored_counts=mirrored if len(mirrored) == c else (0,) * c,
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as error:
        if isinstance(error, ProjectError):
            raise
        raise ProjectError(f"{path.name}: the head is incomplete or wrong: {error}") from None


def _json_float(value: float | None) -> float | str | None:
    # JSON has no inf/nan; a head's logit range starts at +-inf before training.
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def _float(value: Any) -> float:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _unit(value: Any) -> float:
    number = _float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"expected a value in [0, 1], got {value!r}")
    return number


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value
