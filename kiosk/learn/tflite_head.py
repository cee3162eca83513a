"""Append a trained softmax classifier to an embedding extractor's .tflite.

The result has the layout pycoral's ``SoftmaxRegression.serialize_model`` writes:
the extractor's graph, unchanged, followed by

    FULLY_CONNECTED (uint8 kernel [C, D], int32 bias [C])
    RESHAPE to [1, C]                  (only when the extractor output is not 2-D)
    SOFTMAX (beta 1, output uint8 with scale 1/256, zero point 0)

with the softmax output as the single graph output. The model is edited through
the TFLite schema's generated object API (``ModelT``), so every table the extractor
had (metadata, signatures, custom-op payloads such as the Edge TPU's compiled graph)
is written back as it was read.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from kiosk.learn.quantize import QuantParams, quantize, uint8_range_params
from kiosk.safe_io import MAX_MODEL_BYTES, read_regular_file

try:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as _schema
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kiosk.learn.tflite_head needs the TFLite flatbuffer schema shipped with the "
        "ai-edge-litert package (and flatbuffers); install them with "
        "`pip install ai-edge-litert flatbuffers`"
    ) from _exc

__all__ = [
    "EDGETPU_CUSTOM_CODE",
    "HEAD_TENSOR_PREFIX",
    "SOFTMAX_OUTPUT_QUANT",
    "ExtractorInfo",
    "append_softmax_head",
    "inspect_extractor",
    "read_model_bytes",
]

FILE_IDENTIFIER = b"TFL3"
EDGETPU_CUSTOM_CODE = b"edgetpu-custom-op"
HEAD_TENSOR_PREFIX = "kiosk/head"
# TFLite's quantized softmax requires exactly this output quantization for uint8.
SOFTMAX_OUTPUT_QUANT = QuantParams(scale=1.0 / 256.0, zero_point=0)

_BuiltinOperator = _schema.BuiltinOperator
_TensorType = _schema.TensorType
# OperatorCode.deprecated_builtin_code is an int8; codes from 127 on are stored as
# this placeholder and only builtin_code holds the real value.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
# The schema asks for Buffer.data to start on a 16-byte boundary (force_align: 16);
# the generated Python packer ignores that attribute, so the head writer restores it.
_BUFFER_ALIGNMENT = 16
# Embeddings are hundreds to a few thousand long (MobileNet 1024/1280, ResNet
# 2048); a corrupt shape can claim billions, and a head for it would be
# allocated before anything else fails.
MAX_FEATURE_DIM = 1 << 16
# Flatbuffers use 32-bit offsets; keep clear of the 2 GiB limit.
_MAX_FLATBUFFER_BYTES = 2**31 - 2**20

# What the flatbuffers reader raises on garbage: out-of-range struct reads, bad
# vector lengths for numpy views, offsets that fail its range checks, odd strings.
_PARSE_ERRORS = (
    struct.error,
    IndexError,
    ValueError,
    TypeError,
    OverflowError,
    UnicodeDecodeError,
    MemoryError,
    RecursionError,
)

_TYPE_NAMES = {
    value: name.lower()
    for name, value in vars(_TensorType).items()
    if not name.startswith("_") and isinstance(value, int)
}


@dataclass(frozen=True)
class ExtractorInfo:
    """What the head writer needs to know about an embedding extractor.

    Attributes:
        output_shape: shape of the single output, e.g. (1, 1, 1, 1024).
        feature_dim: D, the last dimension of the output.
        output_quant: uint8 quantization of the embedding (``s_in``, ``z_in``).
        input_shape: shape of the single input, e.g. (1, 224, 224, 3).
        input_quant: quantization of the input; (0.0, 0) when the input is not
            quantized, which is how the LiteRT interpreter reports such tensors.
        is_edgetpu: the graph runs an ``edgetpu-custom-op`` (needs the Edge TPU).
    """

    output_shape: tuple[int, ...]
    feature_dim: int
    output_quant: QuantParams
    input_shape: tuple[int, ...]
    input_quant: QuantParams
    is_edgetpu: bool


# ---------------------------------------------------------------------------
# Reading and validating
# ---------------------------------------------------------------------------


def read_model_bytes(path: str | os.PathLike[str]) -> bytes:
    """Reads a model file.

    Raises:
        ValueError: if the path does not exist, is a directory, a FIFO or a device,
            is larger than ``MAX_MODEL_BYTES``, or cannot be read.
    """
    # FileRefused is a ValueError; it refuses FIFOs and devices before opening them.
    return read_regular_file(path, MAX_MODEL_BYTES, "model file")


def inspect_extractor(model: bytes) -> ExtractorInfo:
    """Validates an embedding extractor and describes its input and output.

    Args:
        model: the .tflite file's bytes.

    Raises:
        ValueError: naming the problem, if ``model`` is not a TFLite flatbuffer, or
            is not a single-subgraph model with one uint8, per-tensor quantized
            output holding one feature vector.
    """
    return _extractor_info(_parse_model(model))


def _parse_model(model: bytes) -> _schema.ModelT:
    """Unpacks a .tflite into the schema's object tree, or raises ValueError."""
    data = _as_bytes(model)
    if len(data) < 8:
        raise ValueError(f"not a valid TFLite model: only {len(data)} bytes")
    if data[4:8] != FILE_IDENTIFIER:
        raise ValueError(
            f"not a valid TFLite model: file identifier is {data[4:8]!r}, "
            f"expected {FILE_IDENTIFIER!r}"
        )
    try:
        root = _schema.Model.GetRootAs(data, 0)
        _check_declared_sizes(root, len(data))
        return _schema.ModelT.InitFromObj(root)
    except _PARSE_ERRORS as exc:
        raise ValueError(
            f"not a valid TFLite model: the flatbuffer is truncated or corrupt ({exc})"
        ) from exc


def _as_bytes(model: bytes) -> bytes:
    if isinstance(model, bytes):
        return model
    if isinstance(model, (bytearray, memoryview)):
        return bytes(model)
    raise TypeError(
        f"expected the model's bytes, got {type(model).__name__}; "
        "read a file with read_model_bytes(path)"
    )


def _check_declared_sizes(root: _schema.Model, size: int) -> None:
    """Rejects vector lengths a file of ``size`` bytes cannot hold.

    Garbage read as a flatbuffer can declare billions of entries. Reads past the end
    fail on their own, but tables may be shared, so counts alone could make the
    unpacker build huge object lists or copy the same payload many times. Every
    distinct table takes at least 4 bytes and every payload byte is stored once in
    a file written by a TFLite converter, which bounds both.
    """
    table_budget = size // 4
    tables = (
        root.OperatorCodesLength()
        + root.SubgraphsLength()
        + root.BuffersLength()
        + root.MetadataLength()
        + root.SignatureDefsLength()
    )
    if tables > table_budget:
        raise ValueError(f"declares {tables} top-level tables in {size} bytes")
    payload = 0
    for i in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(i)
        if subgraph is None:
            continue
        tables += subgraph.TensorsLength() + subgraph.OperatorsLength()
        if tables > table_budget:
            raise ValueError(f"declares more than {table_budget} tables in {size} bytes")
        for j in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(j)
            if operator is not None:
                payload += operator.CustomOptionsLength()
    for i in range(root.BuffersLength()):
        buffer = root.Buffers(i)
        if buffer is not None:
            payload += buffer.DataLength()
    if payload > size:
        raise ValueError(f"declares {payload} bytes of buffers and options in {size} bytes")


def _extractor_info(model_t: _schema.ModelT) -> ExtractorInfo:
    """Checks the structure an extractor must have; see ``inspect_extractor``."""
    subgraphs = model_t.subgraphs or []
    if len(subgraphs) != 1:
        raise ValueError(f"an extractor must have exactly one subgraph, found {len(subgraphs)}")
    subgraph = subgraphs[0]
    inputs = _index_list(subgraph.inputs)
    outputs = _index_list(subgraph.outputs)
    if len(outputs) != 1:
        raise ValueError(f"an extractor must have exactly one output tensor, found {len(outputs)}")
    if len(inputs) != 1:
        raise ValueError(f"an extractor must have exactly one input tensor, found {len(inputs)}")
    _check_buffers_inline(model_t)

    output = _tensor_at(subgraph, outputs[0], "output")
    output_name = _tensor_name(output)
    if output.type != _TensorType.UINT8:
        raise ValueError(
            f"the extractor output {output_name} is {_type_name(output.type)}, expected "
            "uint8: use a quantized (uint8) embedding extractor, not a float one"
        )
    output_quant = _per_tensor_quant(output)
    if output_quant is None or not 0 <= output_quant.zero_point <= 255:
        raise ValueError(
            f"the extractor output {output_name} is not per-tensor uint8 quantized "
            "(one positive scale and one zero point in 0..255)"
        )
    output_shape = _shape(output)
    # FULLY_CONNECTED flattens everything but the last dimension into a batch: a
    # single embedding needs those leading dimensions to be 1.
    if len(output_shape) < 2 or any(d != 1 for d in output_shape[:-1]) or output_shape[-1] < 1:
        raise ValueError(
            f"the extractor output {output_name} has shape {list(output_shape)}; expected "
            "one feature vector such as [1, D] or [1, 1, 1, D]"
        )
    if output_shape[-1] > MAX_FEATURE_DIM:
        raise ValueError(
            f"the extractor output {output_name} claims {output_shape[-1]} features, more than "
            f"any embedding ({MAX_FEATURE_DIM}); the model is damaged"
        )

    input_tensor = _tensor_at(subgraph, inputs[0], "input")
    return ExtractorInfo(
        output_shape=output_shape,
        feature_dim=output_shape[-1],
        output_quant=output_quant,
        input_shape=_shape(input_tensor),
        input_quant=_per_tensor_quant(input_tensor) or QuantParams(0.0, 0),
        is_edgetpu=_uses_edgetpu(model_t, subgraph),
    )


def _index_list(indices: Iterable[int] | None) -> list[int]:
    return [] if indices is None else [int(i) for i in indices]


def _tensor_at(subgraph: _schema.SubGraphT, index: int, role: str) -> _schema.TensorT:
    tensors = subgraph.tensors or []
    if not 0 <= index < len(tensors) or tensors[index] is None:
        raise ValueError(f"the graph {role} refers to tensor {index}, which does not exist")
    return tensors[index]


def _tensor_name(tensor: _schema.TensorT) -> str:
    name = tensor.name
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return repr(name) if name else "(unnamed)"


def _type_name(tensor_type: int) -> str:
    return _TYPE_NAMES.get(tensor_type, f"type {tensor_type}")


def _shape(tensor: _schema.TensorT) -> tuple[int, ...]:
    return () if tensor.shape is None else tuple(int(d) for d in tensor.shape)


def _per_tensor_quant(tensor: _schema.TensorT) -> QuantParams | None:
    """The tensor's single (scale, zero point), or None if it has none or several."""
    q = tensor.quantization
    if q is None or q.scale is None or q.zeroPoint is None:
        return None
    if len(q.scale) != 1 or len(q.zeroPoint) != 1:
        return None
    scale = float(q.scale[0])
    if not (math.isfinite(scale) and scale > 0):
        return None
    return QuantParams(scale=scale, zero_point=int(q.zeroPoint[0]))


def _check_buffers_inline(model_t: _schema.ModelT) -> None:
    # Models over 2 GB keep buffer data after the flatbuffer (offset/size fields,
    # offset 1 being a placeholder); repacking would cut those bytes off.
    for i, buffer in enumerate(model_t.buffers or []):
        if buffer is not None and buffer.offset > 1:
            raise ValueError(
                f"buffer {i} is stored outside the flatbuffer (offset {buffer.offset}); "
                "models with external buffer data are not supported"
            )


def _builtin_code(opcode: _schema.OperatorCodeT) -> int:
    # Files from before schema 3a only fill the int8 deprecated field; newer ones
    # put 127 there for large codes. TFLite reads the larger of the two.
    return max(int(opcode.builtinCode), int(opcode.deprecatedBuiltinCode))


def model_custom_codes(model: bytes) -> set[bytes]:
    """The custom operator codes a model declares (its operator-code table, read lazily).

    Raises ValueError when ``model`` is not a TFLite flatbuffer.
    """
    data = _as_bytes(model)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ValueError("not a valid TFLite model")
    try:
        root = _schema.Model.GetRootAs(data, 0)
        codes = set()
        for i in range(root.OperatorCodesLength()):
            opcode = root.OperatorCodes(i)
            custom = opcode.CustomCode() if opcode is not None else None
            if custom:
                codes.add(bytes(custom))
        return codes
    except _PARSE_ERRORS as error:
        raise ValueError(f"not a valid TFLite model: {error}") from None


def _uses_edgetpu(model_t: _schema.ModelT, subgraph: _schema.SubGraphT) -> bool:
    opcodes = model_t.operatorCodes or []
    for operator in subgraph.operators or []:
        index = int(operator.opcodeIndex)
        if 0 <= index < len(opcodes):
            opcode = opcodes[index]
            custom = opcode.customCode
            if isinstance(custom, str):
                custom = custom.encode()
            if _builtin_code(opcode) == _BuiltinOperator.CUSTOM and custom == EDGETPU_CUSTOM_CODE:
                return True
    return False


# ---------------------------------------------------------------------------
# Writing the head
# ---------------------------------------------------------------------------


def append_softmax_head(
    model: bytes,
    weights: np.ndarray,
    biases: np.ndarray,
    logit_min: float,
    logit_max: float,
) -> bytes:
    """Returns a new .tflite: the extractor followed by a quantized softmax classifier.

    Args:
        model: the extractor's .tflite bytes (see ``inspect_extractor``).
        weights: (D, C) float32, column c holds the weights of class c.
        biases: (C,) float32.
        logit_min: smallest fully-connected output seen in training.
        logit_max: largest fully-connected output seen in training.

    Returns:
        The new model's bytes; its single output is uint8 [1, C] class
        probabilities with scale 1/256 and zero point 0.

    Raises:
        ValueError: if the extractor is unusable or the head parameters are
            malformed (wrong shapes, D mismatch, non-finite values).
    """
    model_t = _parse_model(model)
    info = _extractor_info(model_t)
    head = _quantize_head(weights, biases, logit_min, logit_max, info)
    if len(model) + head.nbytes > _MAX_FLATBUFFER_BYTES:
        raise ValueError(f"a head of {head.kernel.shape} weights does not fit in a 2 GiB file")
    _align_buffers(model_t)
    _append_head(model_t, info, head)
    return _serialize(model_t, len(model) + head.nbytes)


@dataclass(frozen=True)
class _QuantizedHead:
    """The head's constants and quantization, ready to be written.

    Attributes:
        kernel: (C, D) uint8, row c holds class c's weights (TFLite's FC layout).
        bias: (C,) int32.
    """

    kernel: np.ndarray
    bias: np.ndarray
    kernel_quant: QuantParams
    bias_quant: QuantParams
    logit_quant: QuantParams

    @property
    def num_classes(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.kernel.nbytes + self.bias.nbytes)


def _quantize_head(
    weights: np.ndarray,
    biases: np.ndarray,
    logit_min: float,
    logit_max: float,
    info: ExtractorInfo,
) -> _QuantizedHead:
    w, b = _check_head_arrays(weights, biases, info.feature_dim)
    logit_quant = _logit_quant(logit_min, logit_max)
    kernel_quant = uint8_range_params(float(w.min()), float(w.max()))
    bias_quant = _bias_quant(info.output_quant, kernel_quant)
    # The biases are quantized as they are. Two logits less than one output level
    # apart tie, and every argmax answers the lower class index; raising class c
    # by c / C of a level would even that out (bench_fewshot: 79 instead of 114
    # disagreements with the float head in about 21,000 answers), but it moves
    # the probabilities by up to a level, and libcoral's reference check (within
    # 5e-3 of the float softmax) then misses: 0.0070 against 0.0049 now.
    return _QuantizedHead(
        kernel=quantize(w.T, kernel_quant, np.uint8),
        bias=quantize(b, bias_quant, np.int32),
        kernel_quant=kernel_quant,
        bias_quant=bias_quant,
        logit_quant=logit_quant,
    )


def _append_head(model_t: _schema.ModelT, info: ExtractorInfo, head: _QuantizedHead) -> None:
    """Adds FULLY_CONNECTED (+ RESHAPE) + SOFTMAX after the graph output, in place."""
    subgraph = model_t.subgraphs[0]
    num_classes = head.num_classes
    # First, before any constant: in a model without buffers, the new empty buffer
    # must take index 0, which the extractor's own activations already refer to.
    empty = _empty_buffer(model_t)
    prefix = HEAD_TENSOR_PREFIX

    def add(name: str, shape: list[int], dtype: int, buffer: int, quant: QuantParams) -> int:
        return _add_tensor(subgraph, f"{prefix}/{name}", shape, dtype, buffer, quant)

    uint8, int32 = _TensorType.UINT8, _TensorType.INT32
    kernel_shape = [num_classes, info.feature_dim]
    kernel_buffer = _add_buffer(model_t, head.kernel)
    kernel = add("weights", kernel_shape, uint8, kernel_buffer, head.kernel_quant)
    bias = add("bias", [num_classes], int32, _add_buffer(model_t, head.bias), head.bias_quant)
    # FULLY_CONNECTED keeps the extractor's rank in the declared shape ([1,1,1,C]
    # for a 4-D embedding); the RESHAPE below gives the classifier its [1, C].
    fc_shape = [*info.output_shape[:-1], num_classes]
    logits = add("fc", fc_shape, uint8, empty, head.logit_quant)
    embedding = _index_list(subgraph.outputs)[0]
    _add_operator(
        model_t,
        subgraph,
        _BuiltinOperator.FULLY_CONNECTED,
        [embedding, kernel, bias],
        logits,
        _schema.BuiltinOptions.FullyConnectedOptions,
        _schema.FullyConnectedOptionsT(),
    )
    if len(fc_shape) != 2:
        flat = add("reshape", [1, num_classes], uint8, empty, head.logit_quant)
        _add_operator(
            model_t,
            subgraph,
            _BuiltinOperator.RESHAPE,
            [logits],
            flat,
            _schema.BuiltinOptions.ReshapeOptions,
            _schema.ReshapeOptionsT(newShape=[1, num_classes]),
        )
        logits = flat
    probabilities = add("softmax", [1, num_classes], uint8, empty, SOFTMAX_OUTPUT_QUANT)
    # beta 0 would make TFLite's quantized multiplier check fail; 1 is plain softmax.
    _add_operator(
        model_t,
        subgraph,
        _BuiltinOperator.SOFTMAX,
        [logits],
        probabilities,
        _schema.BuiltinOptions.SoftmaxOptions,
        _schema.SoftmaxOptionsT(beta=1.0),
    )
    # Signature defs are kept as they were, so a signature naming the embedding as
    # its output still points at the embedding tensor; the graph output (what the
    # interpreter's output details report) becomes the softmax.
    subgraph.outputs = [probabilities]


def _check_head_arrays(
    weights: np.ndarray, biases: np.ndarray, feature_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validates the head's parameters; returns (D, C) and (C,) float64 copies."""
    try:
        w = np.array(weights, dtype=np.float64)
        b = np.array(biases, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weights and biases must be numeric arrays: {exc}") from exc
    if w.ndim != 2 or w.shape[1] < 1:
        raise ValueError(f"weights must have shape (D, C) with C >= 1, got {w.shape}")
    if w.shape[0] != feature_dim:
        raise ValueError(
            f"weights have {w.shape[0]} rows but the extractor produces "
            f"{feature_dim} features (feature_dim); expected weights of shape "
            f"({feature_dim}, C)"
        )
    if b.shape != (w.shape[1],):
        raise ValueError(f"biases must have shape ({w.shape[1]},) to match weights, got {b.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or infinite values")
    if not np.all(np.isfinite(b)):
        raise ValueError("biases contain NaN or infinite values")
    return w, b


def _logit_quant(logit_min: float, logit_max: float) -> QuantParams:
    try:
        lo, hi = float(logit_min), float(logit_max)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"logit range must be two numbers: {exc}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"logit range must be finite, got [{lo}, {hi}]")
    if lo > hi:
        raise ValueError(f"logit range is reversed: logit_min {lo} > logit_max {hi}")
    return uint8_range_params(lo, hi)


def _bias_quant(input_quant: QuantParams, kernel_quant: QuantParams) -> QuantParams:
    """Bias quantization TFLite insists on: scale = input scale * kernel scale, zp 0.

    Both factors are the float32 values stored in the file; TFLite multiplies them in
    double and allows a relative difference of 1e-6, so rounding the product to
    float32 (6e-8 relative) passes.
    """
    scale = float(np.float32(np.float64(input_quant.scale) * np.float64(kernel_quant.scale)))
    if not scale > 0:
        raise ValueError(
            f"bias scale underflows: input scale {input_quant.scale} x kernel scale "
            f"{kernel_quant.scale}"
        )
    return QuantParams(scale=scale, zero_point=0)


class _AlignedBufferT(_schema.BufferT):
    """A ``BufferT`` whose data vector starts on a 16-byte boundary when packed."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        if self.data is not None and len(self.data) > 0:
            # Padding so that, once the data is written, its first byte is aligned;
            # the generated code then finds nothing left to pad.
            builder.Prep(_BUFFER_ALIGNMENT, len(self.data))
        return super().Pack(builder)


def _align_buffers(model_t: _schema.ModelT) -> None:
    model_t.buffers = [
        b if b is None else _AlignedBufferT(data=b.data, offset=b.offset, size=b.size)
        for b in (model_t.buffers or [])
    ]


def _add_buffer(model_t: _schema.ModelT, values: np.ndarray | None) -> int:
    """Appends a buffer holding ``values``' little-endian bytes; returns its index."""
    data = None
    if values is not None:
        # Buffer.data is a byte vector: pack it as uint8 or the packer would write
        # an int32 vector whose length counts elements, not bytes.
        data = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
        data = data.reshape(-1).view(np.uint8)
    model_t.buffers.append(_AlignedBufferT(data=data))
    return len(model_t.buffers) - 1


def _empty_buffer(model_t: _schema.ModelT) -> int:
    """An empty buffer for activations: buffer 0 by convention, else a new one.

    A tensor whose buffer holds data is treated as a read-only constant, so the
    head's activations must never point at a sized buffer.
    """
    buffers = model_t.buffers
    if (
        buffers
        and buffers[0] is not None
        and (buffers[0].data is None or len(buffers[0].data) == 0)
    ):
        return 0
    return _add_buffer(model_t, None)


def _add_tensor(
    subgraph: _schema.SubGraphT,
    name: str,
    shape: list[int],
    tensor_type: int,
    buffer: int,
    quant: QuantParams,
) -> int:
    """Appends a per-tensor quantized tensor; returns its index."""
    tensor = _schema.TensorT()
    tensor.name = name
    tensor.shape = [int(d) for d in shape]
    tensor.type = tensor_type
    tensor.buffer = buffer
    tensor.quantization = _schema.QuantizationParametersT()
    tensor.quantization.scale = [float(quant.scale)]
    tensor.quantization.zeroPoint = [int(quant.zero_point)]
    if subgraph.tensors is None:
        subgraph.tensors = []
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _opcode_index(model_t: _schema.ModelT, builtin: int) -> int:
    """Index of the model's OperatorCode for ``builtin``, adding one if missing."""
    if model_t.operatorCodes is None:
        model_t.operatorCodes = []
    for i, opcode in enumerate(model_t.operatorCodes):
        if opcode is not None and _builtin_code(opcode) == builtin:
            return i
    opcode = _schema.OperatorCodeT()
    opcode.builtinCode = builtin
    opcode.deprecatedBuiltinCode = min(builtin, _PLACEHOLDER_FOR_GREATER_OP_CODES)
    opcode.version = 1
    model_t.operatorCodes.append(opcode)
    return len(model_t.operatorCodes) - 1


def _add_operator(
    model_t: _schema.ModelT,
    subgraph: _schema.SubGraphT,
    builtin: int,
    inputs: list[int],
    output: int,
    options_type: int,
    options: object,
) -> None:
    operator = _schema.OperatorT()
    operator.opcodeIndex = _opcode_index(model_t, builtin)
    operator.inputs = [int(i) for i in inputs]
    operator.outputs = [int(output)]
    operator.builtinOptionsType = options_type
    operator.builtinOptions = options
    if subgraph.operators is None:
        subgraph.operators = []
    subgraph.operators.append(operator)


def _serialize(model_t: _schema.ModelT, size_hint: int) -> bytes:
    # Sizing the builder up front avoids its grow-and-copy steps on a 3 MB model.
    builder = flatbuffers.Builder(size_hint + 64 * 1024)
    builder.Finish(model_t.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
