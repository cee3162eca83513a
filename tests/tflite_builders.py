"""Tiny TFLite models for tests, built with the schema's generated object API.

Each builder returns the bytes of a complete .tflite that the LiteRT interpreter can
load (the valid ones) or that ``inspect_extractor`` must reject (the others):

* ``fc_extractor_2d``: uint8 [1, 4] -> FULLY_CONNECTED -> uint8 [1, 8], written the
  way pre-2.4 converters did (only the int8 ``deprecatedBuiltinCode`` is set), with
  a description, metadata, a metadata buffer and a signature def.
* ``pool_extractor_4d``: uint8 [1, 2, 2, 8] -> AVERAGE_POOL_2D -> uint8 [1, 1, 1, 8].
* ``float_extractor``, ``two_output_model``, ``two_subgraph_model``,
  ``unpooled_extractor`` (output [1, 2, 2, 8]) and ``per_channel_output_model``
  for the error paths.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from kiosk.learn.quantize import QuantParams, quantize, uint8_range_params

UINT8 = schema.TensorType.UINT8
INT32 = schema.TensorType.INT32
FLOAT32 = schema.TensorType.FLOAT32

TINY_DESCRIPTION = "kiosk test model"
TINY_METADATA_NAME = "kiosk_test_metadata"
TINY_METADATA_BYTES = b"metadata payload \x00\x01\x02"
TINY_CONSTANT_BYTES = bytes(range(40))

# Quantization of the tiny models' inputs and embeddings; the embedding's differs
# from the input's so that a writer reading the wrong tensor shows up in the tests.
INPUT_QUANT = QuantParams(scale=0.05, zero_point=128)
EMBEDDING_QUANT_2D = QuantParams(scale=0.1, zero_point=120)
EMBEDDING_QUANT_4D = QuantParams(scale=0.1, zero_point=3)


def quant_params(params: QuantParams | list[QuantParams]) -> schema.QuantizationParametersT:
    """Per-tensor (one QuantParams) or per-channel (a list) quantization."""
    items = params if isinstance(params, list) else [params]
    q = schema.QuantizationParametersT()
    q.scale = [float(p.scale) for p in items]
    q.zeroPoint = [int(p.zero_point) for p in items]
    return q


def tensor(
    name: str,
    shape: list[int],
    tensor_type: int,
    buffer: int = 0,
    quant: QuantParams | list[QuantParams] | None = None,
) -> schema.TensorT:
    t = schema.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = tensor_type
    t.buffer = buffer
    if quant is not None:
        t.quantization = quant_params(quant)
    return t


def opcode(builtin: int, *, legacy: bool = False) -> schema.OperatorCodeT:
    """An OperatorCode; ``legacy`` fills only the int8 field, as old converters did."""
    code = schema.OperatorCodeT()
    code.deprecatedBuiltinCode = builtin
    code.builtinCode = 0 if legacy else builtin
    code.version = 1
    return code


def operator(
    opcode_index: int,
    inputs: list[int],
    outputs: list[int],
    options_type: int = 0,
    options: object = None,
) -> schema.OperatorT:
    op = schema.OperatorT()
    op.opcodeIndex = opcode_index
    op.inputs = list(inputs)
    op.outputs = list(outputs)
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    return op


def buffer(data: bytes | None = None) -> schema.BufferT:
    b = schema.BufferT()
    if data is not None:
        b.data = np.frombuffer(data, dtype=np.uint8).copy()
    return b


def subgraph(
    tensors: list[schema.TensorT],
    operators: list[schema.OperatorT],
    inputs: list[int],
    outputs: list[int],
    name: str = "main",
) -> schema.SubGraphT:
    sg = schema.SubGraphT()
    sg.tensors = tensors
    sg.operators = operators
    sg.inputs = list(inputs)
    sg.outputs = list(outputs)
    sg.name = name
    return sg


def finish(
    subgraphs: list[schema.SubGraphT],
    opcodes: list[schema.OperatorCodeT],
    buffers: list[schema.BufferT],
    description: str = TINY_DESCRIPTION,
) -> bytes:
    """Serializes a model (schema version 3) with the TFL3 file identifier."""
    model = schema.ModelT()
    model.version = 3
    model.description = description
    model.operatorCodes = opcodes
    model.subgraphs = subgraphs
    model.buffers = buffers
    return pack(model)


def pack(model: schema.ModelT) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _reshape_options(shape: list[int]) -> schema.ReshapeOptionsT:
    return schema.ReshapeOptionsT(newShape=list(shape))


def fc_extractor_2d(in_features: int = 4, features: int = 8, seed: int = 0) -> bytes:
    """uint8 [1, in] -> FULLY_CONNECTED -> uint8 [1, features], plus metadata.

    Buffers: 0 empty, 1 kernel, 2 bias, 3 an unused constant, 4 metadata payload.
    """
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-0.5, 0.5, (features, in_features))
    kernel_q = uint8_range_params(float(weights.min()), float(weights.max()))
    bias_q = QuantParams(float(np.float32(INPUT_QUANT.scale * kernel_q.scale)), 0)
    kernel = quantize(weights, kernel_q, np.uint8)
    bias = quantize(rng.uniform(-0.5, 0.5, features), bias_q, np.int32)

    tensors = [
        tensor("input", [1, in_features], UINT8, 0, INPUT_QUANT),
        tensor("dense/kernel", [features, in_features], UINT8, 1, kernel_q),
        tensor("dense/bias", [features], INT32, 2, bias_q),
        tensor("embedding", [1, features], UINT8, 0, EMBEDDING_QUANT_2D),
    ]
    ops = [
        operator(
            0,
            [0, 1, 2],
            [3],
            schema.BuiltinOptions.FullyConnectedOptions,
            schema.FullyConnectedOptionsT(),
        )
    ]
    model = schema.ModelT()
    model.version = 3
    model.description = TINY_DESCRIPTION
    model.operatorCodes = [opcode(schema.BuiltinOperator.FULLY_CONNECTED, legacy=True)]
    model.subgraphs = [subgraph(tensors, ops, [0], [3])]
    model.buffers = [
        buffer(),
        buffer(kernel.tobytes()),
        buffer(bias.astype("<i4").tobytes()),
        buffer(TINY_CONSTANT_BYTES),
        buffer(TINY_METADATA_BYTES),
    ]
    model.metadata = [schema.MetadataT()]
    model.metadata[0].name = TINY_METADATA_NAME
    model.metadata[0].buffer = 4
    model.metadataBuffer = [4]
    signature = schema.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs = [schema.TensorMapT()]
    signature.inputs[0].name = "image"
    signature.inputs[0].tensorIndex = 0
    signature.outputs = [schema.TensorMapT()]
    signature.outputs[0].name = "embedding"
    signature.outputs[0].tensorIndex = 3
    model.signatureDefs = [signature]
    return pack(model)


def pool_extractor_4d(features: int = 8) -> bytes:
    """uint8 [1, 2, 2, features] -> AVERAGE_POOL_2D 2x2 -> uint8 [1, 1, 1, features]."""
    tensors = [
        tensor("input", [1, 2, 2, features], UINT8, 0, EMBEDDING_QUANT_4D),
        tensor("pool", [1, 1, 1, features], UINT8, 0, EMBEDDING_QUANT_4D),
    ]
    options = schema.Pool2DOptionsT(
        padding=schema.Padding.VALID, strideW=2, strideH=2, filterWidth=2, filterHeight=2
    )
    ops = [operator(0, [0], [1], schema.BuiltinOptions.Pool2DOptions, options)]
    return finish(
        [subgraph(tensors, ops, [0], [1])],
        [opcode(schema.BuiltinOperator.AVERAGE_POOL_2D)],
        [buffer(), buffer(TINY_CONSTANT_BYTES)],
    )


def _reshape_graph(
    shape: list[int],
    tensor_type: int,
    quant: QuantParams | list[QuantParams] | None,
    out_shape: list[int] | None = None,
) -> schema.SubGraphT:
    out_shape = shape if out_shape is None else out_shape
    tensors = [
        tensor("input", shape, tensor_type, 0, quant),
        tensor("output", out_shape, tensor_type, 0, quant),
    ]
    options = _reshape_options(out_shape)
    ops = [operator(0, [0], [1], schema.BuiltinOptions.ReshapeOptions, options)]
    return subgraph(tensors, ops, [0], [1])


def float_extractor(features: int = 8) -> bytes:
    """float32 [1, features] -> RESHAPE -> float32 [1, features] (not quantized)."""
    return finish(
        [_reshape_graph([1, features], FLOAT32, None)],
        [opcode(schema.BuiltinOperator.RESHAPE)],
        [buffer()],
    )


def two_output_model(features: int = 8) -> bytes:
    """uint8 [1, features] feeding two RESHAPE ops, both graph outputs."""
    shape = [1, features]
    tensors = [
        tensor("input", shape, UINT8, 0, EMBEDDING_QUANT_2D),
        tensor("output_a", shape, UINT8, 0, EMBEDDING_QUANT_2D),
        tensor("output_b", shape, UINT8, 0, EMBEDDING_QUANT_2D),
    ]
    options = schema.BuiltinOptions.ReshapeOptions
    ops = [
        operator(0, [0], [1], options, _reshape_options(shape)),
        operator(0, [0], [2], options, _reshape_options(shape)),
    ]
    return finish(
        [subgraph(tensors, ops, [0], [1, 2])],
        [opcode(schema.BuiltinOperator.RESHAPE)],
        [buffer()],
    )


def two_subgraph_model(features: int = 8) -> bytes:
    """Two copies of a uint8 RESHAPE graph: a valid model, but not an extractor."""
    graphs = [_reshape_graph([1, features], UINT8, EMBEDDING_QUANT_2D) for _ in range(2)]
    graphs[1].name = "second"
    return finish(graphs, [opcode(schema.BuiltinOperator.RESHAPE)], [buffer()])


def unpooled_extractor(features: int = 8) -> bytes:
    """uint8 output [1, 2, 2, features]: a feature map, not one feature vector."""
    return finish(
        [_reshape_graph([1, 2, 2, features], UINT8, EMBEDDING_QUANT_4D)],
        [opcode(schema.BuiltinOperator.RESHAPE)],
        [buffer()],
    )


def per_channel_output_model(features: int = 8) -> bytes:
    """uint8 [1, features] whose tensors carry one scale per channel."""
    quant = [QuantParams(0.1 + 0.01 * i, 0) for i in range(features)]
    return finish(
        [_reshape_graph([1, features], UINT8, quant)],
        [opcode(schema.BuiltinOperator.RESHAPE)],
        [buffer()],
    )
