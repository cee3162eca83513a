"""Labels and training facts stored inside a saved .tflite ("kiosk_head" metadata).

A model saved by kiosk carries a TFLite ``Metadata`` entry named ``kiosk_head`` whose
buffer holds one UTF-8 JSON object, so the file describes itself even without the
labels.txt written beside it. The interpreter ignores metadata: outputs are
unchanged. Other metadata entries (e.g. ``min_runtime_version``) are kept.

Beside it, every classifier kiosk saves carries the standard TFLite metadata
(``TFLITE_METADATA``, see ``kiosk.learn.tflite_metadata``) with its labels packed
after the flatbuffer, so generic clients (MediaPipe Tasks' ImageClassifier, the
TFLite Task Library) report class names too. Both are written in one edit.

Schema 1 (every key but ``schema`` is optional; readers must ignore unknown keys):

    schema            int, 1
    kiosk_version     str, the kiosk that wrote it (filled in when absent)
    created           str, ISO 8601 UTC time of writing (filled in when absent)
    class_names       list[str], C names in the order of the model's output
    num_classes       int, C (filled in from class_names when absent)
    sample_counts     list[int], C training samples per class, in output order
    training          dict, training settings (num_iter, learning_rate, batch_size, ...)
    metrics           dict, e.g. train/val/test accuracy (floats in 0..1 or null)
    extractor         str, the extractor's file name
    extractor_sha256  str, hex sha256 of the extractor's .tflite bytes
    feature_dim       int, D, the embedding length
    confidence_threshold  float or null, top-1 probability below which an
                      answer should be shown as "not sure" (set from validation)
    not_sure          dict or null, the head's ``NotSureGate.to_json()``:
                      ``threshold``, ``novelty_limit`` and the
                      ``novelty_measure`` it is in (``kiosk.learn.gate``)

Values must be JSON-serializable; numpy scalars and arrays are converted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.learn import tflite_head
from kiosk.learn.gate import NotSureGate
from kiosk.learn.tflite_head import _schema
from kiosk.learn.tflite_metadata import (
    LABELS_FILE,
    TENSOR_AXIS_LABELS,
    AssociatedFile,
    ModelDescription,
    TensorDescription,
    build_model_metadata,
    pack_files,
    packed_files,
    parse_model_metadata,
)
from kiosk.learn.tflite_metadata import METADATA_NAME as STANDARD_METADATA_NAME

__all__ = [
    "METADATA_NAME",
    "SCHEMA_VERSION",
    "classifier_description",
    "embed_metadata",
    "read_confidence_threshold",
    "read_labels",
    "read_metadata",
    "read_not_sure_gate",
    "read_standard_metadata",
]

METADATA_NAME = "kiosk_head"
SCHEMA_VERSION = 1
# A label list and a few settings take a few kB; this stops a runaway dict (or a
# corrupt file's declared length) from bloating a model.
_MAX_JSON_BYTES = 16 * 2**20


def embed_metadata(model: bytes, info: dict[str, Any], *, standard: bool = True) -> bytes:
    """Returns ``model`` with ``info`` stored as its "kiosk_head" metadata.

    With ``standard`` (the default) and ``info["class_names"]`` given, the same
    edit also writes the standard TFLite metadata generic clients read
    (``TFLITE_METADATA``: name, description, the input's normalization, the
    output's labels as a TENSOR_AXIS_LABELS file) and packs the labels file
    after the flatbuffer, as TFLite Support's writers do; see
    ``classifier_description``. An existing entry of either name is replaced,
    not duplicated; other entries, buffers, tensors and ops are written back
    unchanged. Files packed after the flatbuffer are kept, unless a new
    standard entry replaces what named them.

    Args:
        model: a .tflite's bytes.
        info: the facts to store (see the module docstring for the keys).
        standard: also write the standard metadata (when there are class names).

    Raises:
        ValueError: ``model`` is not a TFLite model, or ``info`` is not a dict of
            JSON-serializable values.
    """
    payload = _encode(info)
    files = packed_files(model)
    model_t = tflite_head._parse_model(model)
    if not model_t.subgraphs:
        raise ValueError("not a usable TFLite model: it has no graph")
    if model_t.buffers is None:
        model_t.buffers = []
    if model_t.metadata is None:
        model_t.metadata = []
    size = len(model) + len(payload)
    names = json.loads(payload).get("class_names")
    if standard and names:
        labels = "".join(f"{' '.join(str(n).split())}\n" for n in names).encode("utf-8")
        previous = standard_entry(model_t)
        described = classifier_description(model_t, json.loads(payload), previous)
        standard_payload = build_model_metadata(described)
        set_entry(model_t, STANDARD_METADATA_NAME, standard_payload)
        files = {LABELS_FILE: labels}
        size += len(standard_payload)
    set_entry(model_t, METADATA_NAME, payload)
    tflite_head._align_buffers(model_t)
    return pack_files(tflite_head._serialize(model_t, size), files)


def set_entry(model_t: _schema.ModelT, name: str, payload: bytes) -> None:
    """Store ``payload`` as the metadata entry ``name`` (one entry, buffer reused)."""
    data = np.frombuffer(payload, np.uint8).copy()
    ours = [m for m in model_t.metadata if _entry_name(m) == name]
    shared = _buffers_used_elsewhere(model_t, ours)
    if (
        ours
        and int(ours[0].buffer) not in shared
        and 0 < int(ours[0].buffer) < len(model_t.buffers)
    ):
        # Reuse our own buffer so repeated saves do not leave orphans behind.
        model_t.buffers[int(ours[0].buffer)] = _schema.BufferT(data=data)
    else:
        model_t.buffers.append(_schema.BufferT(data=data))
        entry = _schema.MetadataT()
        entry.name = name
        entry.buffer = len(model_t.buffers) - 1
        ours = [entry, *ours]
        model_t.metadata.append(entry)
    # Any further copies (from another writer) go; their buffers are emptied, not
    # removed, so no other index moves.
    for extra in ours[1:]:
        model_t.metadata.remove(extra)
        if int(extra.buffer) not in shared and 0 < int(extra.buffer) < len(model_t.buffers):
            model_t.buffers[int(extra.buffer)] = _schema.BufferT()


def classifier_description(
    model_t: _schema.ModelT,
    info: dict[str, Any],
    previous: ModelDescription | None = None,
) -> ModelDescription:
    """The standard metadata of a kiosk classifier, from its graph and ``info``.

    The input's normalization is read off its uint8 quantization: a level q
    stands for ``scale * (q - zero_point)``, i.e. ``(q - mean) / std`` with
    ``mean = zero_point`` and ``std = 1 / scale`` (128 and 128 for MobileNet v1).
    Author and license come from the extractor's own standard metadata when it
    had some (``previous``): the backbone's license is the model's.
    """
    names = [str(n) for n in info.get("class_names") or []]
    subgraph = model_t.subgraphs[0]
    inputs = tflite_head._index_list(subgraph.inputs)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    if inputs:
        quant = tflite_head._per_tensor_quant(subgraph.tensors[inputs[0]])
        if quant is not None and quant.scale > 0:
            mean, std = (float(quant.zero_point),), (float(1.0 / quant.scale),)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    extractor = info.get("extractor")
    description = f"Classifies an image as one of {len(names)} classes taught with kiosk: {shown}."
    if extractor:
        description += f" Embedding extractor: {extractor}."
    image = TensorDescription(
        name="image",
        description="RGB image, the largest centred square resized to the model input",
        image=True,
        mean=mean,
        std=std,
        stats_min=(0.0,),
        stats_max=(255.0,),
    )
    probabilities = TensorDescription(
        name="probability",
        description=f"Probabilities of the {len(names)} classes, in the order of the labels",
        stats_min=(0.0,),
        stats_max=(1.0,),
        files=(AssociatedFile(LABELS_FILE, "Class names, one a line", TENSOR_AXIS_LABELS),),
    )
    return ModelDescription(
        name=str(info.get("name") or "kiosk image classifier"),
        description=description,
        version=str(info.get("kiosk_version") or ""),
        author=previous.author if previous and previous.author else "kiosk",
        license=previous.license if previous else "",
        inputs=(image,),
        outputs=(probabilities,),
    )


def read_standard_metadata(
    model: bytes | str | os.PathLike[str],
) -> tuple[ModelDescription, dict[str, bytes]] | None:
    """A model's standard TFLite metadata and the files packed after it, or None.

    Raises:
        ValueError: the file cannot be read, is not a TFLite model, or its
            ``TFLITE_METADATA`` entry is corrupt.
    """
    data = (
        tflite_head.read_model_bytes(model)
        if isinstance(model, (str, os.PathLike))
        else tflite_head._as_bytes(model)
    )
    if len(data) < 8 or data[4:8] != tflite_head.FILE_IDENTIFIER:
        raise ValueError("not a valid TFLite model")
    try:
        raw = _find_entry(data, STANDARD_METADATA_NAME)
    except tflite_head._PARSE_ERRORS as exc:
        raise ValueError(f"not a valid TFLite model: the flatbuffer is corrupt ({exc})") from exc
    if raw is None:
        return None
    return parse_model_metadata(raw), packed_files(data)


def read_labels(model: bytes | str | os.PathLike[str]) -> list[str] | None:
    """The class names a generic client reads: the output's TENSOR_AXIS_LABELS file.

    None when the model has no standard metadata or no such file.
    """
    found = read_standard_metadata(model)
    if found is None:
        return None
    description, files = found
    name = description.label_file
    if name is None or name not in files:
        return None
    return files[name].decode("utf-8").splitlines()


def standard_entry(model_t: _schema.ModelT) -> ModelDescription | None:
    """The model's current standard metadata (e.g. the backbone's), or None."""
    for entry in model_t.metadata or []:
        if _entry_name(entry) != STANDARD_METADATA_NAME:
            continue
        index = int(entry.buffer)
        if not 0 <= index < len(model_t.buffers or []):
            return None
        buffer = model_t.buffers[index]
        if buffer is None or buffer.data is None:
            return None
        try:
            return parse_model_metadata(bytes(np.asarray(buffer.data, np.uint8)))
        except ValueError:
            return None  # another writer's damaged entry: it is replaced
    return None


def read_metadata(model: bytes | str | os.PathLike[str]) -> dict[str, Any] | None:
    """The "kiosk_head" metadata of a model, or None if it has none.

    Args:
        model: a .tflite's bytes or its path.

    Raises:
        ValueError: the file cannot be read or is not a TFLite model, or the entry
            is not a JSON object.
    """
    data = (
        tflite_head.read_model_bytes(model)
        if isinstance(model, (str, os.PathLike))
        else tflite_head._as_bytes(model)
    )
    if len(data) < 8 or data[4:8] != tflite_head.FILE_IDENTIFIER:
        raise ValueError("not a valid TFLite model")
    try:
        raw = _find_entry(data, METADATA_NAME)
    except tflite_head._PARSE_ERRORS as exc:
        raise ValueError(f"not a valid TFLite model: the flatbuffer is corrupt ({exc})") from exc
    if raw is None:
        return None
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the {METADATA_NAME} metadata is not valid JSON: {exc}") from exc
    if not isinstance(info, dict):
        raise ValueError(f"the {METADATA_NAME} metadata is not a JSON object")
    return info


def read_confidence_threshold(model: bytes | str | os.PathLike[str]) -> float | None:
    """The "not sure" threshold stored in a model, or None (none stored, or no metadata)."""
    info = read_metadata(model) or {}
    value = info.get("confidence_threshold")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def read_not_sure_gate(model: bytes | str | os.PathLike[str]) -> NotSureGate | None:
    """The "not sure" gate stored in a model (``not_sure``), or None.

    A model saved before the gate existed gives a gate from its
    ``confidence_threshold`` with the default novelty limit; one with neither, None.
    """
    info = read_metadata(model) or {}
    try:
        if isinstance(info.get("not_sure"), dict):
            return NotSureGate.from_json(info["not_sure"])
    except ValueError:
        pass
    threshold = read_confidence_threshold(model)
    return None if threshold is None else NotSureGate(threshold)


def _find_entry(data: bytes, name: str) -> bytes | None:
    """Reads an entry straight from the flatbuffer: no unpacking of the whole model."""
    root = _schema.Model.GetRootAs(data, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry is None or entry.Name() is None:
            continue
        if entry.Name().decode("utf-8", "replace") != name:
            continue
        index = entry.Buffer()
        if not 0 <= index < root.BuffersLength():
            raise ValueError(f"the {name} metadata points at a missing buffer")
        buffer = root.Buffers(index)
        length = buffer.DataLength() if buffer is not None else 0
        if length > min(len(data), _MAX_JSON_BYTES):
            raise ValueError(f"the {name} metadata declares {length} bytes")
        return buffer.DataAsNumpy().tobytes() if length else b""
    return None


def _encode(info: dict[str, Any]) -> bytes:
    if not isinstance(info, dict):
        raise ValueError(f"metadata must be a dict, got {type(info).__name__}")
    from kiosk import __version__  # late: kiosk/__init__ stays import-light

    full: dict[str, Any] = {"schema": SCHEMA_VERSION, **info}
    full["schema"] = SCHEMA_VERSION
    full.setdefault("kiosk_version", __version__)
    full.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    names = full.get("class_names")
    if names is not None:
        names = [str(n) for n in names]
        full["class_names"] = names
        full.setdefault("num_classes", len(names))
    try:
        text = json.dumps(full, ensure_ascii=False, default=_to_json, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata is not JSON-serializable: {exc}") from exc
    payload = text.encode("utf-8")
    if len(payload) > _MAX_JSON_BYTES:
        raise ValueError(f"metadata is {len(payload)} bytes; the limit is {_MAX_JSON_BYTES}")
    return payload


def _to_json(value: Any) -> Any:
    """json.dumps fallback for numpy values and paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _entry_name(entry: _schema.MetadataT) -> str:
    name = entry.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def _buffers_used_elsewhere(model_t: _schema.ModelT, ours: list[_schema.MetadataT]) -> set[int]:
    """Buffers referenced by tensors or by metadata entries that are not ours."""
    used: set[int] = set()
    for subgraph in model_t.subgraphs or []:
        used.update(int(t.buffer) for t in subgraph.tensors or [])
    used.update(int(m.buffer) for m in model_t.metadata or [] if all(m is not o for o in ours))
    used.update(int(b) for b in model_t.metadataBuffer or [])
    return used
