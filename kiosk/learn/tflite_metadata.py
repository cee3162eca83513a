"""Standard TFLite model metadata: the ``TFLITE_METADATA`` entry and packed files.

TFLite Support defines how a model describes itself to generic clients
(MediaPipe Tasks, the TFLite Task Library, Android Studio, Netron): a
``Metadata`` entry named ``TFLITE_METADATA`` whose buffer holds a
``ModelMetadata`` flatbuffer (file identifier ``M001``), plus the files it names
(a labels file for a classifier) packed as a zip archive appended after the
model's flatbuffer. This module writes and reads the small part of that schema
kiosk needs, with the flatbuffers package (the ``tflite-support`` package that
ships the generated code does not install beside numpy 2):

    ModelMetadata     name, description, version, subgraph_metadata,
                      author, license, associated_files, min_parser_version
    SubGraphMetadata  name, description, input_tensor_metadata, output_tensor_metadata
    TensorMetadata    name, description, dimension_names, content,
                      process_units, stats, associated_files
    Content           content_properties (union: FeatureProperties = 1,
                      ImageProperties = 2), range
    ProcessUnit       options (union: NormalizationOptions = 1)
    NormalizationOptions  mean [float], std [float]
    Stats             max [float], min [float]
    AssociatedFile    name, description, type (TENSOR_AXIS_LABELS = 2), locale, version

Field order is the schema's (``metadata_schema.fbs``, TFLite Support 0.4); a
union takes two slots, its type then its value. Readers ignore what they do not
know, so the entries kiosk leaves out (tensor groups, score calibration, ...) are
simply absent.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import flatbuffers
from flatbuffers import number_types as _n
from flatbuffers.table import Table

__all__ = [
    "LABELS_FILE",
    "METADATA_FILE_IDENTIFIER",
    "METADATA_NAME",
    "AssociatedFile",
    "ModelDescription",
    "TensorDescription",
    "build_model_metadata",
    "pack_files",
    "packed_files",
    "parse_model_metadata",
]

METADATA_NAME = "TFLITE_METADATA"
METADATA_FILE_IDENTIFIER = b"M001"
LABELS_FILE = "labels.txt"
# The oldest metadata parser that understands every field written here (all of
# them exist since the schema's first release).
MIN_PARSER_VERSION = "1.0.0"

TENSOR_AXIS_LABELS = 2
_FEATURE_PROPERTIES = 1
_IMAGE_PROPERTIES = 2
_NORMALIZATION_OPTIONS = 1
_RGB = 1


@dataclass(frozen=True)
class AssociatedFile:
    """A file a model's metadata names (its bytes travel in the appended zip)."""

    name: str
    description: str = ""
    type: int = TENSOR_AXIS_LABELS


@dataclass(frozen=True)
class TensorDescription:
    """One input or output tensor's metadata.

    Attributes:
        name, description: shown by generic tools.
        image: the tensor is an RGB image (``ImageProperties``), else a feature vector.
        mean, std: input normalization ``(x - mean) / std`` (per channel or one value).
        stats_min, stats_max: the value range.
        files: associated files (e.g. the labels of an output's classes).
    """

    name: str
    description: str = ""
    image: bool = False
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    stats_min: tuple[float, ...] = ()
    stats_max: tuple[float, ...] = ()
    files: tuple[AssociatedFile, ...] = ()


@dataclass(frozen=True)
class ModelDescription:
    """The part of a ``ModelMetadata`` kiosk writes and reads (one subgraph)."""

    name: str
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    inputs: tuple[TensorDescription, ...] = ()
    outputs: tuple[TensorDescription, ...] = ()
    min_parser_version: str = MIN_PARSER_VERSION
    files: tuple[AssociatedFile, ...] = field(default=())

    @property
    def label_file(self) -> str | None:
        """Name of the first output's TENSOR_AXIS_LABELS file, or None."""
        for tensor in self.outputs[:1]:
            for f in tensor.files:
                if f.type == TENSOR_AXIS_LABELS:
                    return f.name
        return None


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def build_model_metadata(description: ModelDescription) -> bytes:
    """The ``ModelMetadata`` flatbuffer (identifier ``M001``) for ``description``."""
    b = flatbuffers.Builder(1024)
    subgraph = _subgraph(b, description)
    model_files = _files_vector(b, description.files)
    strings = {
        key: b.CreateString(value)
        for key, value in (
            ("name", description.name),
            ("description", description.description),
            ("version", description.version),
            ("author", description.author),
            ("license", description.license),
            ("min_parser_version", description.min_parser_version),
        )
        if value
    }
    subgraphs = _vector(b, [subgraph])
    b.StartObject(8)
    for slot, key in ((0, "name"), (1, "description"), (2, "version")):
        if key in strings:
            b.PrependUOffsetTRelativeSlot(slot, strings[key], 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    for slot, key in ((4, "author"), (5, "license")):
        if key in strings:
            b.PrependUOffsetTRelativeSlot(slot, strings[key], 0)
    if model_files is not None:
        b.PrependUOffsetTRelativeSlot(6, model_files, 0)
    b.PrependUOffsetTRelativeSlot(7, strings["min_parser_version"], 0)
    b.Finish(b.EndObject(), file_identifier=METADATA_FILE_IDENTIFIER)
    return bytes(b.Output())


def _subgraph(b: flatbuffers.Builder, description: ModelDescription) -> int:
    inputs = _vector(b, [_tensor(b, t) for t in description.inputs])
    outputs = _vector(b, [_tensor(b, t) for t in description.outputs])
    name = b.CreateString("image_classifier" if description.outputs else "model")
    b.StartObject(10)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    return b.EndObject()


def _tensor(b: flatbuffers.Builder, t: TensorDescription) -> int:
    name = b.CreateString(t.name)
    text = b.CreateString(t.description) if t.description else None
    content = _content(b, t.image)
    units = None
    if t.mean or t.std:
        mean, std = _floats(b, t.mean), _floats(b, t.std)
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, mean, 0)
        b.PrependUOffsetTRelativeSlot(1, std, 0)
        options = b.EndObject()
        b.StartObject(2)
        b.PrependUint8Slot(0, _NORMALIZATION_OPTIONS, 0)
        b.PrependUOffsetTRelativeSlot(1, options, 0)
        units = _vector(b, [b.EndObject()])
    stats = None
    if t.stats_min or t.stats_max:
        high, low = _floats(b, t.stats_max), _floats(b, t.stats_min)
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, high, 0)
        b.PrependUOffsetTRelativeSlot(1, low, 0)
        stats = b.EndObject()
    files = _files_vector(b, t.files)
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    if text is not None:
        b.PrependUOffsetTRelativeSlot(1, text, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    if units is not None:
        b.PrependUOffsetTRelativeSlot(4, units, 0)
    if stats is not None:
        b.PrependUOffsetTRelativeSlot(5, stats, 0)
    if files is not None:
        b.PrependUOffsetTRelativeSlot(6, files, 0)
    return b.EndObject()


def _content(b: flatbuffers.Builder, image: bool) -> int:
    if image:
        b.StartObject(2)
        b.PrependInt8Slot(0, _RGB, 0)
        properties, kind = b.EndObject(), _IMAGE_PROPERTIES
    else:
        b.StartObject(0)
        properties, kind = b.EndObject(), _FEATURE_PROPERTIES
    b.StartObject(3)
    b.PrependUint8Slot(0, kind, 0)
    b.PrependUOffsetTRelativeSlot(1, properties, 0)
    return b.EndObject()


def _files_vector(b: flatbuffers.Builder, files: Sequence[AssociatedFile]) -> int | None:
    if not files:
        return None
    made = []
    for f in files:
        name = b.CreateString(f.name)
        text = b.CreateString(f.description) if f.description else None
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        if text is not None:
            b.PrependUOffsetTRelativeSlot(1, text, 0)
        b.PrependInt8Slot(2, f.type, 0)
        made.append(b.EndObject())
    return _vector(b, made)


def _vector(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _floats(b: flatbuffers.Builder, values: Sequence[float]) -> int:
    b.StartVector(4, len(values), 4)
    for value in reversed(values):
        b.PrependFloat32(float(value))
    return b.EndVector()


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def parse_model_metadata(data: bytes) -> ModelDescription:
    """Reads a ``ModelMetadata`` flatbuffer (what ``build_model_metadata`` writes,
    or another writer's: unknown fields are skipped).

    Raises:
        ValueError: not a ModelMetadata flatbuffer.
    """
    data = bytes(data)
    if len(data) < 8 or data[4:8] != METADATA_FILE_IDENTIFIER:
        raise ValueError("not a TFLite ModelMetadata buffer (identifier M001 missing)")
    try:
        root = _root(data)
        subgraphs = _tables(root, 3)
        inputs: tuple[TensorDescription, ...] = ()
        outputs: tuple[TensorDescription, ...] = ()
        if subgraphs:
            inputs = tuple(_read_tensor(t) for t in _tables(subgraphs[0], 2))
            outputs = tuple(_read_tensor(t) for t in _tables(subgraphs[0], 3))
        return ModelDescription(
            name=_string(root, 0),
            description=_string(root, 1),
            version=_string(root, 2),
            author=_string(root, 4),
            license=_string(root, 5),
            inputs=inputs,
            outputs=outputs,
            min_parser_version=_string(root, 7),
            files=tuple(_read_file(f) for f in _tables(root, 6)),
        )
    except (IndexError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"the TFLite metadata is corrupt ({exc})") from exc


def _root(data: bytes) -> Table:
    return Table(bytearray(data), _n.UOffsetTFlags.py_type(int.from_bytes(data[:4], "little")))


def _field(table: Table, slot: int) -> int:
    return table.Offset(4 + 2 * slot)


def _string(table: Table, slot: int) -> str:
    offset = _field(table, slot)
    return table.String(offset + table.Pos).decode("utf-8") if offset else ""


def _sub_table(table: Table, slot: int) -> Table | None:
    offset = _field(table, slot)
    if not offset:
        return None
    return Table(table.Bytes, table.Indirect(offset + table.Pos))


def _tables(table: Table, slot: int) -> list[Table]:
    offset = _field(table, slot)
    if not offset:
        return []
    start = table.Vector(offset)
    return [
        Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(offset))
    ]


def _float_vector(table: Table | None, slot: int) -> tuple[float, ...]:
    if table is None:
        return ()
    offset = _field(table, slot)
    if not offset:
        return ()
    start = table.Vector(offset)
    return tuple(
        float(table.Get(_n.Float32Flags, start + 4 * i)) for i in range(table.VectorLen(offset))
    )


def _read_tensor(t: Table) -> TensorDescription:
    content = _sub_table(t, 3)
    image = False
    if content is not None:
        kind = _field(content, 0)
        image = bool(kind) and content.Get(_n.Uint8Flags, kind + content.Pos) == _IMAGE_PROPERTIES
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    for unit in _tables(t, 4):
        kind = _field(unit, 0)
        if kind and unit.Get(_n.Uint8Flags, kind + unit.Pos) == _NORMALIZATION_OPTIONS:
            options = _sub_table(unit, 1)
            mean, std = _float_vector(options, 0), _float_vector(options, 1)
    stats = _sub_table(t, 5)
    return TensorDescription(
        name=_string(t, 0),
        description=_string(t, 1),
        image=image,
        mean=mean,
        std=std,
        stats_min=_float_vector(stats, 1),
        stats_max=_float_vector(stats, 0),
        files=tuple(_read_file(f) for f in _tables(t, 6)),
    )


def _read_file(f: Table) -> AssociatedFile:
    kind = _field(f, 2)
    return AssociatedFile(
        name=_string(f, 0),
        description=_string(f, 1),
        type=int(f.Get(_n.Int8Flags, kind + f.Pos)) if kind else 0,
    )


# ---------------------------------------------------------------------------
# Files packed after the flatbuffer
# ---------------------------------------------------------------------------


def packed_files(model: bytes) -> dict[str, bytes]:
    """{name: bytes} of the zip appended to a model ({} when there is none)."""
    stream = io.BytesIO(model)
    if not zipfile.is_zipfile(stream):
        return {}
    try:
        with zipfile.ZipFile(stream) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return {}


def pack_files(model: bytes, files: Mapping[str, bytes]) -> bytes:
    """``model`` with ``files`` appended as a zip archive, as TFLite Support packs them.

    The entries are stored uncompressed, and their offsets count from the start
    of the model file (zipfile's append mode on a file that is not a zip), which
    is what the metadata readers expect.
    """
    if not files:
        return bytes(model)
    stream = io.BytesIO()
    stream.write(model)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return stream.getvalue()
