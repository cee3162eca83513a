"""Head surgery: turn a quantized image classifier into an embedding extractor.

A classifier such as MobileNet ends in

    ... -> feature vector -> logits layer -> [RESHAPE/SQUEEZE] -> SOFTMAX -> output

where the logits layer is a FULLY_CONNECTED or a 1x1 CONV_2D. ``cut_classifier_head``
walks back from the graph output through the trailing shape and activation ops, finds
the logits layer and makes its input (e.g. the pooled ``[1, 1, 1, 1280]`` tensor of
MobileNet v2) the single graph output. Ops that no longer feed that output are
removed, then the tensors, buffers and operator codes nothing refers to any more, so
the file shrinks (the 1001-class kernel is most of the saving).

What is kept: the input, every op up to the feature tensor (bit for bit, so the cut
model's output equals that tensor of the original), the description, version and
metadata entries such as ``min_runtime_version``. What is rewritten: the
``TFLITE_METADATA`` entry (TFLite Support metadata) keeps the model's name,
author, license, version and input description (its normalization stays true)
but describes the new output, a feature vector, instead of the removed
1001-class output. What is dropped: the files packed after the flatbuffer
(these classifiers carry a zip of their labels there), which name classes the
cut model no longer has.

The result satisfies ``kiosk.learn.tflite_head.inspect_extractor`` and so works with
``EmbeddingExtractor``, ``SoftmaxRegression.serialize_model`` and ``kiosk-train``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kiosk.learn import metadata, tflite_head
from kiosk.learn.tflite_head import _schema
from kiosk.learn.tflite_metadata import METADATA_NAME as STANDARD_METADATA_NAME
from kiosk.learn.tflite_metadata import (
    ModelDescription,
    TensorDescription,
    build_model_metadata,
    packed_files,
)

__all__ = ["SurgeryResult", "cut_classifier_head"]

_Op = _schema.BuiltinOperator
# Ops between the logits layer and the graph output that only reshape, normalise or
# (de)quantize the logits; walking back through them loses no features.
_TRAILING_OPS = {
    _Op.SOFTMAX: "SOFTMAX",
    _Op.LOG_SOFTMAX: "LOG_SOFTMAX",
    _Op.LOGISTIC: "LOGISTIC",
    _Op.RESHAPE: "RESHAPE",
    _Op.SQUEEZE: "SQUEEZE",
    _Op.QUANTIZE: "QUANTIZE",
    _Op.DEQUANTIZE: "DEQUANTIZE",
}
_LOGITS_OPS = {_Op.FULLY_CONNECTED: "FULLY_CONNECTED", _Op.CONV_2D: "CONV_2D"}
# Ops that typically produce an extractor's output: reaching one of these with no
# logits layer found means the model has no head to cut.
_POOLING_OPS = {_Op.AVERAGE_POOL_2D, _Op.MAX_POOL_2D, _Op.MEAN}
# TFLite Support metadata: describes the classifier's output and its label file.
_STALE_METADATA = {"TFLITE_METADATA"}

_OP_NAMES = {
    value: name
    for name, value in vars(_Op).items()
    if not name.startswith("_") and isinstance(value, int)
}


@dataclass(frozen=True)
class SurgeryResult:
    """A cut model and what was done to it.

    Attributes:
        model: the new .tflite's bytes.
        feature_name: name of the tensor that became the output.
        feature_shape: its shape, e.g. (1, 1, 1, 256).
        feature_index: its tensor index in the *original* model (to compare the
            cut model with the original run with all tensors preserved).
        removed_ops: builtin names of the removed ops, in graph order.
        removed_tensors: how many tensors were removed.
        removed_buffers: how many buffers were removed.
        dropped_metadata: names of the metadata entries that were dropped.
        rewritten_metadata: names of the entries rewritten for the new output.
        dropped_files: names of the packed files (after the flatbuffer) left out.
    """

    model: bytes
    feature_name: str
    feature_shape: tuple[int, ...]
    feature_index: int
    removed_ops: tuple[str, ...]
    removed_tensors: int
    removed_buffers: int
    dropped_metadata: tuple[str, ...]
    rewritten_metadata: tuple[str, ...] = ()
    dropped_files: tuple[str, ...] = ()


def cut_classifier_head(model: bytes) -> SurgeryResult:
    """Removes a quantized classifier's logits layer and everything after it.

    Args:
        model: the classifier's .tflite bytes (one subgraph, uint8 activations).

    Returns:
        The cut model; its single output is the uint8 feature tensor that fed the
        logits layer.

    Raises:
        ValueError: one line naming the problem: not a TFLite model, compiled for
            the Edge TPU, already an embedding extractor, no recognisable head,
            or a feature tensor that is not a uint8 per-tensor quantized vector
            (e.g. a float or int8 model).
    """
    model_t = tflite_head._parse_model(model)
    subgraphs = model_t.subgraphs or []
    if len(subgraphs) != 1:
        raise ValueError(f"expected a model with one subgraph, found {len(subgraphs)}")
    subgraph = subgraphs[0]
    if tflite_head._uses_edgetpu(model_t, subgraph):
        raise ValueError(
            "the model is compiled for the Edge TPU: its head is inside the "
            "edgetpu-custom-op and cannot be cut; cut the CPU model, then compile "
            "the result with edgetpu_compiler"
        )
    outputs = tflite_head._index_list(subgraph.outputs)
    if len(outputs) != 1:
        raise ValueError(f"expected a classifier with one output tensor, found {len(outputs)}")

    feature = _find_feature_tensor(model_t, subgraph, outputs[0])
    _check_feature_tensor(subgraph, feature)
    feature_tensor = subgraph.tensors[feature]
    feature_name = tflite_head._tensor_name(feature_tensor).strip("'")
    feature_shape = tflite_head._shape(feature_tensor)

    kept_ops = _ops_feeding(subgraph, feature)
    removed_ops = tuple(
        _op_name(model_t, op) for i, op in enumerate(subgraph.operators) if i not in kept_ops
    )
    subgraph.operators = [op for i, op in enumerate(subgraph.operators) if i in kept_ops]
    tensor_count = len(subgraph.tensors)
    _remap_tensors(model_t, subgraph, feature)
    previous = metadata.standard_entry(model_t)
    dropped = _drop_stale_metadata(model_t)
    buffer_count = len(model_t.buffers)
    _remap_buffers(model_t, subgraph)
    _remap_operator_codes(model_t, subgraph)
    rewritten: tuple[str, ...] = ()
    if previous is not None:
        described = _extractor_description(previous, feature_shape)
        metadata.set_entry(model_t, STANDARD_METADATA_NAME, build_model_metadata(described))
        rewritten, dropped = (
            (STANDARD_METADATA_NAME,),
            tuple(d for d in dropped if d != STANDARD_METADATA_NAME),
        )

    tflite_head._align_buffers(model_t)
    cut = tflite_head._serialize(model_t, len(model))
    # The whole point is a model the head writer accepts: check it the same way.
    tflite_head.inspect_extractor(cut)
    return SurgeryResult(
        model=cut,
        feature_name=feature_name,
        feature_shape=feature_shape,
        feature_index=feature,
        removed_ops=removed_ops,
        removed_tensors=tensor_count - len(subgraph.tensors),
        removed_buffers=buffer_count - len(model_t.buffers) + len(rewritten),
        dropped_metadata=dropped,
        rewritten_metadata=rewritten,
        dropped_files=tuple(packed_files(model)),
    )


def _extractor_description(
    previous: ModelDescription, feature_shape: tuple[int, ...]
) -> ModelDescription:
    """The classifier's standard metadata, turned to describe its feature output."""
    dim = feature_shape[-1] if feature_shape else 0
    origin = f" of {previous.name}" if previous.name else ""
    what = f"{dim}-d feature vector that fed the logits layer{origin}"
    embedding = TensorDescription(name="embedding", description=f"uint8 {what}")
    return ModelDescription(
        name=f"{previous.name} embedding extractor".strip(),
        description=f"Embedding extractor made by kiosk-extractor: the {what}. "
        + previous.description,
        version=previous.version,
        author=previous.author,
        license=previous.license,
        inputs=previous.inputs,
        outputs=(embedding,),
    )


# ---------------------------------------------------------------------------
# Finding the feature tensor
# ---------------------------------------------------------------------------


def _producers(subgraph: _schema.SubGraphT) -> dict[int, int]:
    """Tensor index -> index of the op that writes it."""
    found: dict[int, int] = {}
    for i, op in enumerate(subgraph.operators or []):
        for t in tflite_head._index_list(op.outputs):
            found[t] = i
    return found


def _op_code(model_t: _schema.ModelT, op: _schema.OperatorT) -> int:
    codes = model_t.operatorCodes or []
    index = int(op.opcodeIndex)
    if not 0 <= index < len(codes):
        raise ValueError(f"an op refers to operator code {index}, which does not exist")
    return tflite_head._builtin_code(codes[index])


def _op_name(model_t: _schema.ModelT, op: _schema.OperatorT) -> str:
    code = _op_code(model_t, op)
    return _OP_NAMES.get(code, f"op {code}")


def _find_feature_tensor(model_t: _schema.ModelT, subgraph: _schema.SubGraphT, output: int) -> int:
    """Walks back from ``output`` to the logits layer; returns its input tensor."""
    producers = _producers(subgraph)
    walked: list[str] = []
    tensor = output
    # Each step moves to an earlier op, so the walk ends within len(operators) steps.
    for _ in range(len(subgraph.operators or []) + 1):
        if tensor not in producers:
            break
        op = subgraph.operators[producers[tensor]]
        code = _op_code(model_t, op)
        inputs = tflite_head._index_list(op.inputs)
        if code in _TRAILING_OPS and inputs:
            walked.append(_TRAILING_OPS[code])
            tensor = inputs[0]
            continue
        if code in _LOGITS_OPS and inputs:
            _check_logits_layer(subgraph, op, code)
            walked.append(_LOGITS_OPS[code])
            if inputs[0] not in producers:
                raise ValueError(
                    "the logits layer reads the graph input directly: there is no "
                    "feature extractor in front of it to keep"
                )
            return inputs[0]
        name = _OP_NAMES.get(code, f"op {code}")
        if code in _POOLING_OPS:
            raise ValueError(
                f"already an embedding extractor: the output comes from {name}, "
                "not from a classification head (FULLY_CONNECTED or 1x1 CONV_2D)"
            )
        walked.append(name)
        break
    raise ValueError(
        "no classification head found: walking back from the output through "
        f"{', '.join(walked) or 'nothing'} did not reach a FULLY_CONNECTED or 1x1 "
        "CONV_2D logits layer"
    )


def _check_logits_layer(subgraph: _schema.SubGraphT, op: _schema.OperatorT, code: int) -> None:
    """A CONV_2D is only a logits layer when it is 1x1 (a per-pixel FC)."""
    if code != _Op.CONV_2D:
        return
    inputs = tflite_head._index_list(op.inputs)
    if len(inputs) < 2:
        raise ValueError("the last CONV_2D has no kernel input")
    kernel = tflite_head._shape(tflite_head._tensor_at(subgraph, inputs[1], "kernel"))
    if len(kernel) != 4 or kernel[1:3] != (1, 1):
        raise ValueError(
            f"the last CONV_2D has a {list(kernel)} kernel, not 1x1: it is not a "
            "logits layer that can be cut"
        )


def _check_feature_tensor(subgraph: _schema.SubGraphT, index: int) -> None:
    """The feature tensor must be what EmbeddingExtractor reads: one uint8 vector."""
    tensor = tflite_head._tensor_at(subgraph, index, "feature")
    name = tflite_head._tensor_name(tensor)
    if tensor.type != _schema.TensorType.UINT8:
        kind = tflite_head._type_name(tensor.type)
        hint = " (a float model)" if tensor.type == _schema.TensorType.FLOAT32 else ""
        raise ValueError(
            f"the feature tensor {name} is {kind}{hint}; kiosk needs a uint8 quantized classifier"
        )
    if tflite_head._per_tensor_quant(tensor) is None:
        raise ValueError(f"the feature tensor {name} is not per-tensor quantized")
    shape = tflite_head._shape(tensor)
    if len(shape) < 2 or any(d != 1 for d in shape[:-1]):
        raise ValueError(
            f"the feature tensor {name} has shape {list(shape)}, not one vector such as "
            "[1, D] or [1, 1, 1, D]"
        )


# ---------------------------------------------------------------------------
# Pruning and renumbering
# ---------------------------------------------------------------------------


def _ops_feeding(subgraph: _schema.SubGraphT, output: int) -> set[int]:
    """Indices of the ops ``output`` depends on (ops are stored in execution order)."""
    needed = {output}
    kept: set[int] = set()
    operators = subgraph.operators or []
    for i in range(len(operators) - 1, -1, -1):
        op = operators[i]
        if needed.intersection(tflite_head._index_list(op.outputs)):
            kept.add(i)
            needed.update(t for t in tflite_head._index_list(op.inputs) if t >= 0)
            needed.update(tflite_head._index_list(op.intermediates))
    return kept


def _remap_tensors(model_t: _schema.ModelT, subgraph: _schema.SubGraphT, feature: int) -> None:
    """Keeps the inputs, the kept ops' tensors and ``feature``; renumbers them."""
    inputs = tflite_head._index_list(subgraph.inputs)
    used = set(inputs) | {feature}
    for op in subgraph.operators:
        for field in (op.inputs, op.outputs, op.intermediates):
            used.update(t for t in tflite_head._index_list(field) if t >= 0)
    order = sorted(used)
    new_index = {old: new for new, old in enumerate(order)}

    def remap(indices: Iterable[int] | None) -> list[int]:
        # -1 marks an omitted optional input and stays as it is.
        return [new_index[t] if t >= 0 else t for t in tflite_head._index_list(indices)]

    for op in subgraph.operators:
        op.inputs = remap(op.inputs)
        op.outputs = remap(op.outputs)
        if op.intermediates is not None:
            op.intermediates = remap(op.intermediates)
    subgraph.tensors = [subgraph.tensors[i] for i in order]
    subgraph.inputs = remap(inputs)
    subgraph.outputs = [new_index[feature]]
    _remap_signatures(model_t, new_index, feature)


def _remap_signatures(model_t: _schema.ModelT, new_index: dict[int, int], feature: int) -> None:
    """Signature inputs follow the renumbering; the one output becomes the feature."""
    for signature in model_t.signatureDefs or []:
        for tensor_map in signature.inputs or []:
            tensor_map.tensorIndex = new_index.get(int(tensor_map.tensorIndex), 0)
        output = _schema.TensorMapT()
        output.name = "embedding"
        output.tensorIndex = new_index[feature]
        signature.outputs = [output]


def _drop_stale_metadata(model_t: _schema.ModelT) -> tuple[str, ...]:
    dropped: list[str] = []
    kept = []
    for entry in model_t.metadata or []:
        name = (
            entry.name.decode("utf-8", "replace") if isinstance(entry.name, bytes) else entry.name
        )
        if name in _STALE_METADATA:
            dropped.append(name)
        else:
            kept.append(entry)
    if model_t.metadata is not None:
        model_t.metadata = kept
    return tuple(dropped)


def _remap_buffers(model_t: _schema.ModelT, subgraph: _schema.SubGraphT) -> None:
    """Keeps buffer 0 and the buffers tensors or metadata use; renumbers them.

    Buffer 0 stays: by convention it is the empty buffer activations point at.
    """
    used = {0}
    used.update(int(t.buffer) for t in subgraph.tensors)
    used.update(int(m.buffer) for m in model_t.metadata or [])
    used.update(int(b) for b in model_t.metadataBuffer or [])
    buffers = model_t.buffers or []
    order = [i for i in sorted(used) if 0 <= i < len(buffers)]
    new_index = {old: new for new, old in enumerate(order)}
    for tensor in subgraph.tensors:
        tensor.buffer = new_index.get(int(tensor.buffer), 0)
    for entry in model_t.metadata or []:
        entry.buffer = new_index[int(entry.buffer)]
    if model_t.metadataBuffer is not None:
        model_t.metadataBuffer = [
            new_index[int(b)] for b in model_t.metadataBuffer if int(b) in new_index
        ]
    model_t.buffers = [buffers[i] for i in order]


def _remap_operator_codes(model_t: _schema.ModelT, subgraph: _schema.SubGraphT) -> None:
    codes = model_t.operatorCodes or []
    order = sorted({int(op.opcodeIndex) for op in subgraph.operators})
    new_index = {old: new for new, old in enumerate(order)}
    for op in subgraph.operators:
        op.opcodeIndex = new_index[int(op.opcodeIndex)]
    model_t.operatorCodes = [codes[i] for i in order]
