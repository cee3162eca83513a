"""Structural checks of a .tflite flatbuffer before the native interpreter sees it.

LiteRT trusts the file: a corrupt model that still parses can make it
allocate whatever a mutated shape asks for. The fuzz test
(``tests/test_fuzz_models.py``) found one: a single bit flip in a tensor shape
turned the extractor's input into [1, 224, 2097376, 3], and
``allocate_tensors`` grew the process to 24 GB until the kernel killed it. A
kiosk must say "this model is broken" instead, so ``load_interpreter`` runs
``check_model_structure`` first. It reads only the tables (never the weights),
in a few milliseconds, and checks that

* every vector the tables declare lies inside the file;
* buffers kept outside the flatbuffer (offset/size) lie inside the file;
* tensor buffer indices, subgraph inputs/outputs and operator inputs/outputs
  and opcode indices are in range;
* shapes have no negative dimensions, constant tensors have at least the
  bytes their shape needs, and all other tensors together need at most
  ``MAX_ACTIVATION_BYTES``.
"""

from __future__ import annotations

import math
import struct

__all__ = ["MAX_ACTIVATION_BYTES", "check_model_structure"]

# Far above any image model a kiosk runs (MobileNet at 224x224 needs ~10 MB,
# a 4K-input model a few hundred MB) and far below what kills a small board.
MAX_ACTIVATION_BYTES = 1 << 30

# Bytes per element by TensorType; types not listed (string, resource,
# variant, sub-byte ints) are not size-checked.
_ITEM_BYTES = {
    0: 4,  # FLOAT32
    1: 2,  # FLOAT16
    2: 4,  # INT32
    3: 1,  # UINT8
    4: 8,  # INT64
    6: 1,  # BOOL
    7: 2,  # INT16
    8: 8,  # COMPLEX64
    9: 1,  # INT8
    10: 8,  # FLOAT64
    11: 16,  # COMPLEX128
    12: 8,  # UINT64
    15: 4,  # UINT32
    16: 2,  # UINT16
    18: 2,  # BFLOAT16
}


class _Corrupt(Exception):
    """Internal: the reason a model is refused."""


def check_model_structure(content: bytes, label: str = "the model") -> None:
    """Refuse a flatbuffer the interpreter must not be given.

    Args:
        content: the whole .tflite file (its "TFL3" identifier already checked).
        label: what to call the model in the message.

    Raises:
        ValueError: "<label> could not be loaded as a TFLite model: it is corrupt (...)",
            worded like ``load_interpreter``'s other load failures.
    """
    try:
        _check(content)
    except _Corrupt as error:
        raise ValueError(
            f"{label} could not be loaded as a TFLite model: it is corrupt ({error})"
        ) from None
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as error:
        # The accessors read past the end or hit nonsense offsets.
        raise ValueError(
            f"{label} could not be loaded as a TFLite model: it is corrupt "
            f"(its tables cannot be read: {error})"
        ) from None


def _check(content: bytes) -> None:
    from ai_edge_litert import schema_py_generated as schema

    size = len(content)
    root = schema.Model.GetRootAs(content, 0)

    def vector_inside(table: object, field: int, item: int, what: str) -> int:
        """The length of a vector field, after checking it ends inside the file."""
        tab = table._tab  # type: ignore[attr-defined]
        offset = tab.Offset(field)
        if not offset:
            return 0
        length = tab.VectorLen(offset)
        start = tab.Vector(offset)
        if start < 0 or start + length * item > size:
            raise _Corrupt(f"{what} runs past the end of the file")
        return length

    num_buffers = vector_inside(root, 12, 4, "the buffer list")
    buffer_bytes = []
    for i in range(num_buffers):
        buffer = root.Buffers(i)
        if buffer is None:
            buffer_bytes.append(0)
            continue
        length = vector_inside(buffer, 4, 1, f"buffer {i}")
        # Over-2-GB models keep data after the flatbuffer: offset/size (offset 1
        # is a placeholder the converter writes).
        offset, extent = int(buffer.Offset()), int(buffer.Size())
        if offset > 1:
            if offset + extent > size:
                raise _Corrupt(f"buffer {i} points past the end of the file")
            length = extent
        buffer_bytes.append(length)
    num_opcodes = vector_inside(root, 6, 4, "the operator code list")
    num_subgraphs = vector_inside(root, 8, 4, "the subgraph list")
    if num_subgraphs < 1:
        raise _Corrupt("it has no subgraph")
    for s in range(num_subgraphs):
        subgraph = root.Subgraphs(s)
        if subgraph is None:
            raise _Corrupt(f"subgraph {s} is missing")
        num_tensors = vector_inside(subgraph, 4, 4, f"subgraph {s}'s tensor list")
        activation_bytes = 0
        for t in range(num_tensors):
            tensor = subgraph.Tensors(t)
            if tensor is None:
                raise _Corrupt(f"tensor {t} is missing")
            rank = vector_inside(tensor, 4, 4, f"tensor {t}'s shape")
            shape = [int(tensor.Shape(k)) for k in range(rank)]
            if any(d < 0 for d in shape):
                raise _Corrupt(f"tensor {t} has a negative dimension {shape}")
            index = int(tensor.Buffer())
            if not 0 <= index < max(num_buffers, 1):
                raise _Corrupt(f"tensor {t} refers to buffer {index} of {num_buffers}")
            item = _ITEM_BYTES.get(int(tensor.Type()))
            if item is None or tensor.Sparsity() is not None:
                continue
            needed = math.prod(shape) * item
            stored = buffer_bytes[index] if index < num_buffers else 0
            if stored:
                if stored < needed:
                    raise _Corrupt(
                        f"tensor {t} {shape} needs {needed} bytes but its buffer holds {stored}"
                    )
            else:
                activation_bytes += needed
                if activation_bytes > MAX_ACTIVATION_BYTES:
                    raise _Corrupt(
                        f"its tensors would need over {MAX_ACTIVATION_BYTES >> 20} MiB "
                        f"(tensor {t} has shape {shape})"
                    )
        for name, field in (("input", 6), ("output", 8)):
            for k in range(vector_inside(subgraph, field, 4, f"subgraph {s}'s {name}s")):
                value = int(subgraph.Inputs(k) if name == "input" else subgraph.Outputs(k))
                if not 0 <= value < num_tensors:
                    raise _Corrupt(f"graph {name} {k} refers to tensor {value} of {num_tensors}")
        num_operators = vector_inside(subgraph, 10, 4, f"subgraph {s}'s operator list")
        for o in range(num_operators):
            operator = subgraph.Operators(o)
            if operator is None:
                raise _Corrupt(f"operator {o} is missing")
            if not 0 <= int(operator.OpcodeIndex()) < num_opcodes:
                raise _Corrupt(f"operator {o} uses operator code {operator.OpcodeIndex()}")
            vector_inside(operator, 14, 1, f"operator {o}'s custom options")
            for name, field in (("input", 6), ("output", 8)):
                count = vector_inside(operator, field, 4, f"operator {o}'s {name}s")
                for k in range(count):
                    value = int(operator.Inputs(k) if name == "input" else operator.Outputs(k))
                    # -1 marks an optional input that is left out.
                    if not -1 <= value < num_tensors:
                        raise _Corrupt(
                            f"operator {o} {name} {k} refers to tensor {value} of {num_tensors}"
                        )


def classifier_classes(content: bytes) -> int | None:
    """How many classes a full classifier scores, or None when the model is not one.

    A classifier's (first subgraph's) output is made by a SOFTMAX op: MobileNet
    ends ``logits -> [reshape] -> softmax -> [1, 1001]``. An embedding extractor
    ends at the pooled features instead. Call after ``check_model_structure``.
    """
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(content, 0)
    subgraph = root.Subgraphs(0)
    if subgraph is None or subgraph.OutputsLength() != 1:
        return None
    output = int(subgraph.Outputs(0))
    for o in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(o)
        if operator is None or output not in operator.OutputsAsNumpy().tolist():
            continue
        code = root.OperatorCodes(int(operator.OpcodeIndex()))
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin != schema.BuiltinOperator.SOFTMAX:
            return None
        tensor = subgraph.Tensors(output)
        shape = [int(tensor.Shape(k)) for k in range(tensor.ShapeLength())]
        return math.prod(shape[1:]) if len(shape) > 1 else (shape[0] if shape else None)
    return None
