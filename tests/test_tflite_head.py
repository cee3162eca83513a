"""The .tflite head writer: structure, numerics in the real interpreter, error paths."""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.learn.quantize import QuantParams, quantize, uint8_range_params
from kiosk.learn.tflite_head import (
    HEAD_TENSOR_PREFIX,
    ExtractorInfo,
    append_softmax_head,
    inspect_extractor,
    read_model_bytes,
)
from tests import tflite_builders as tb

Op = schema.BuiltinOperator
NUM_CLASSES = 5


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_model(cpu_extractor_path: Path) -> bytes:
    return read_model_bytes(cpu_extractor_path)


@pytest.fixture(scope="module")
def edgetpu_model(edgetpu_extractor_path: Path) -> bytes:
    return read_model_bytes(edgetpu_extractor_path)


def unpack(model: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))


def interpreter(model: bytes) -> Interpreter:
    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    return it


def run(it: Interpreter, x: np.ndarray) -> np.ndarray:
    """Runs one uint8 input; returns the dequantized output, flattened, as float64."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], x.reshape(inp["shape"]))
    it.invoke()
    scale, zero_point = out["quantization"]
    return scale * (it.get_tensor(out["index"]).reshape(-1).astype(np.float64) - zero_point)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def random_inputs(info: ExtractorInfo, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *info.input_shape), dtype=np.uint8)


def random_head(
    embeddings: np.ndarray, num_classes: int, seed: int, logit_span: float = 3.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(D, C) float32 weights, (C,) biases and the (N, C) float logits they give.

    Weights are scaled so the largest logit magnitude is about ``logit_span``.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(embeddings.shape[1], num_classes))
    b = rng.normal(scale=0.3, size=num_classes)
    w *= logit_span / max(np.abs(embeddings @ w).max(), 1e-6)
    w, b = w.astype(np.float32), b.astype(np.float32)
    return w, b, embeddings @ w.astype(np.float64) + b


def head_ops(model_t: schema.ModelT, count: int) -> list[tuple[int, schema.OperatorT]]:
    """The last ``count`` operators with their builtin codes."""
    ops = model_t.subgraphs[0].operators[-count:]
    codes = model_t.operatorCodes
    return [
        (max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode), op)
        for op in ops
    ]


def buffer_bytes(model_t: schema.ModelT, index: int) -> bytes:
    data = model_t.buffers[index].data
    return b"" if data is None else bytes(np.asarray(data, dtype=np.uint8))


def operator_summary(op: schema.OperatorT) -> tuple:
    options = None if op.builtinOptions is None else sorted(vars(op.builtinOptions).items())
    custom = None if op.customOptions is None else bytes(np.asarray(op.customOptions, np.uint8))
    return (
        op.opcodeIndex,
        list(op.inputs),
        list(op.outputs),
        op.builtinOptionsType,
        repr(options),
        custom,
    )


def tensor_summary(t: schema.TensorT) -> tuple:
    q = t.quantization
    quant = None if q is None or q.scale is None else (list(q.scale), list(q.zeroPoint))
    return (t.name, list(t.shape), t.type, t.buffer, quant)


# ---------------------------------------------------------------------------
# inspect_extractor
# ---------------------------------------------------------------------------


def test_inspect_cpu_extractor(cpu_model: bytes) -> None:
    info = inspect_extractor(cpu_model)
    assert info.output_shape == (1, 1, 1, 1024)
    assert info.feature_dim == 1024
    assert info.output_quant.scale == pytest.approx(0.023528477, rel=1e-6)
    assert info.output_quant.zero_point == 0
    assert info.input_shape == (1, 224, 224, 3)
    assert info.input_quant == QuantParams(1 / 128, 128)
    assert not info.is_edgetpu


def test_inspect_edgetpu_extractor(edgetpu_model: bytes) -> None:
    info = inspect_extractor(edgetpu_model)
    assert info.output_shape == (1, 1, 1, 1024)
    assert info.output_quant.scale == pytest.approx(0.023528477, rel=1e-6)
    assert info.is_edgetpu


def test_inspect_tiny_extractors() -> None:
    two_d = inspect_extractor(tb.fc_extractor_2d())
    assert (two_d.output_shape, two_d.feature_dim, two_d.input_shape) == ((1, 8), 8, (1, 4))
    assert two_d.output_quant.scale == pytest.approx(tb.EMBEDDING_QUANT_2D.scale)
    assert two_d.output_quant.zero_point == tb.EMBEDDING_QUANT_2D.zero_point
    four_d = inspect_extractor(tb.pool_extractor_4d())
    assert four_d.output_shape == (1, 1, 1, 8)
    # Accepts any bytes-like object.
    assert inspect_extractor(bytearray(tb.pool_extractor_4d())) == four_d


# ---------------------------------------------------------------------------
# Numerics in the LiteRT interpreter
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("build", [tb.fc_extractor_2d, tb.pool_extractor_4d], ids=["2d", "4d"])
def test_head_on_tiny_extractor_matches_float(build: Callable[[], bytes]) -> None:
    model = build()
    info = inspect_extractor(model)
    inputs = random_inputs(info, 32, seed=3)
    extractor = interpreter(model)
    embeddings = np.stack([run(extractor, x) for x in inputs])
    w, b, logits = random_head(embeddings, NUM_CLASSES, seed=4)

    head = append_softmax_head(model, w, b, float(logits.min()), float(logits.max()))

    classifier = interpreter(head)
    out = classifier.get_output_details()[0]
    assert list(out["shape"]) == [1, NUM_CLASSES]
    assert out["dtype"] == np.uint8
    assert out["quantization"] == (1 / 256, 0)
    probabilities = np.stack([run(classifier, x) for x in inputs])
    np.testing.assert_allclose(probabilities, softmax(logits), atol=1e-2)
    assert np.mean(probabilities.argmax(1) == logits.argmax(1)) >= 0.9


def test_degenerate_head_gives_uniform_probabilities() -> None:
    """All-zero weights and biases with a logit range of [0, 0] still load and run."""
    model = tb.pool_extractor_4d()
    info = inspect_extractor(model)
    w = np.zeros((info.feature_dim, 4), np.float32)
    head = append_softmax_head(model, w, np.zeros(4, np.float32), 0.0, 0.0)
    probabilities = run(interpreter(head), random_inputs(info, 1, seed=0)[0])
    np.testing.assert_allclose(probabilities, 0.25, atol=1 / 256)


def test_reference_check_on_mobilenet(cpu_model: bytes) -> None:
    """libcoral's own check: class i weights all i / (3 * sum(embedding)), biases 10."""
    info = inspect_extractor(cpu_model)
    image = random_inputs(info, 1, seed=11)[0]
    embedding = run(interpreter(cpu_model), image)
    total = embedding.sum()
    w = np.stack([np.full(info.feature_dim, i / (3 * total)) for i in (1, 2, 3)], axis=1)
    b = np.full(3, 10.0)
    expected_logits = embedding @ w + b
    head = append_softmax_head(
        cpu_model,
        w.astype(np.float32),
        b.astype(np.float32),
        float(expected_logits.min()),
        float(expected_logits.max()),
    )
    probabilities = run(interpreter(head), image)
    np.testing.assert_allclose(probabilities, softmax(expected_logits), atol=5e-3)


def _read_rgb(path: Path) -> np.ndarray | None:
    cv2 = pytest.importorskip("cv2")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    h, w = bgr.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = bgr[top : top + side, left : left + side]
    return cv2.cvtColor(cv2.resize(square, (224, 224)), cv2.COLOR_BGR2RGB)


def test_random_head_top1_matches_float_on_real_images(cpu_model: bytes, images_dir: Path) -> None:
    images = [img for p in sorted(images_dir.glob("*.bmp")) if (img := _read_rgb(p)) is not None]
    if len(images) < 3:
        pytest.skip("not enough readable images")
    extractor = interpreter(cpu_model)
    embeddings = np.stack([run(extractor, img) for img in images])
    w, b, logits = random_head(embeddings, 4, seed=5, logit_span=6.0)
    head = append_softmax_head(cpu_model, w, b, float(logits.min()), float(logits.max()))
    classifier = interpreter(head)
    probabilities = np.stack([run(classifier, img) for img in images])

    np.testing.assert_allclose(probabilities, softmax(logits), atol=2e-2)
    # Top-1 must agree wherever the float head is not close to a tie.
    ordered = np.sort(logits, axis=1)
    clear = ordered[:, -1] - ordered[:, -2] > 0.2
    assert clear.sum() >= len(images) // 2
    np.testing.assert_array_equal(probabilities.argmax(1)[clear], logits.argmax(1)[clear])


# ---------------------------------------------------------------------------
# Structure of the written model
# ---------------------------------------------------------------------------


def test_head_structure_on_4d_extractor() -> None:
    model = tb.pool_extractor_4d()
    info = inspect_extractor(model)
    w = np.random.default_rng(0).normal(size=(info.feature_dim, NUM_CLASSES)).astype(np.float32)
    b = np.linspace(-1, 1, NUM_CLASSES, dtype=np.float32)
    before = unpack(model)
    after = unpack(append_softmax_head(model, w, b, -4.0, 6.0))
    sg = after.subgraphs[0]
    embedding = int(before.subgraphs[0].outputs[0])

    ops = head_ops(after, 3)
    assert [code for code, _ in ops] == [Op.FULLY_CONNECTED, Op.RESHAPE, Op.SOFTMAX]
    (_, fc), (_, reshape), (_, soft) = ops
    for index in {fc.opcodeIndex, reshape.opcodeIndex, soft.opcodeIndex}:
        code = after.operatorCodes[index]
        assert code.builtinCode == code.deprecatedBuiltinCode  # both set for new codes
    assert list(sg.outputs) == [soft.outputs[0]]
    assert list(sg.inputs) == list(before.subgraphs[0].inputs)

    # FULLY_CONNECTED: embedding, uint8 kernel [C, D], int32 bias [C].
    assert int(fc.inputs[0]) == embedding
    kernel, bias, logits = (sg.tensors[i] for i in (*fc.inputs[1:], fc.outputs[0]))
    kernel_q = uint8_range_params(float(w.min()), float(w.max()))
    assert kernel.type == schema.TensorType.UINT8
    assert list(kernel.shape) == [NUM_CLASSES, info.feature_dim]
    assert float(kernel.quantization.scale[0]) == kernel_q.scale
    assert int(kernel.quantization.zeroPoint[0]) == kernel_q.zero_point
    kernel_data = np.frombuffer(buffer_bytes(after, kernel.buffer), np.uint8)
    np.testing.assert_array_equal(kernel_data, quantize(w.T, kernel_q).reshape(-1))
    assert bias.type == schema.TensorType.INT32
    assert list(bias.shape) == [NUM_CLASSES]
    bias_scale = float(bias.quantization.scale[0])
    assert bias_scale == float(np.float32(info.output_quant.scale * kernel_q.scale))
    assert int(bias.quantization.zeroPoint[0]) == 0
    bias_data = np.frombuffer(buffer_bytes(after, bias.buffer), "<i4")
    np.testing.assert_allclose(bias_data * bias_scale, b, atol=bias_scale)
    assert fc.builtinOptionsType == schema.BuiltinOptions.FullyConnectedOptions
    assert fc.builtinOptions.fusedActivationFunction == schema.ActivationFunctionType.NONE

    # Shapes [1,1,1,C] -> [1,C] -> [1,C]; activations point at empty buffers.
    flat, probabilities = sg.tensors[reshape.outputs[0]], sg.tensors[soft.outputs[0]]
    assert list(logits.shape) == [1, 1, 1, NUM_CLASSES]
    assert list(flat.shape) == [1, NUM_CLASSES]
    assert list(probabilities.shape) == [1, NUM_CLASSES]
    for t in (logits, flat, probabilities):
        assert t.type == schema.TensorType.UINT8
        assert buffer_bytes(after, t.buffer) == b""
    logit_q = uint8_range_params(-4.0, 6.0)
    for t in (logits, flat):
        assert float(t.quantization.scale[0]) == logit_q.scale
        assert int(t.quantization.zeroPoint[0]) == logit_q.zero_point
    assert float(probabilities.quantization.scale[0]) == 1 / 256
    assert int(probabilities.quantization.zeroPoint[0]) == 0
    assert list(reshape.builtinOptions.newShape) == [1, NUM_CLASSES]
    assert soft.builtinOptions.beta == 1.0
    for t in (kernel, bias, logits, flat, probabilities):
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        assert name.startswith(HEAD_TENSOR_PREFIX + "/")


def test_2d_extractor_gets_no_reshape_and_reuses_legacy_opcode() -> None:
    model = tb.fc_extractor_2d()
    before = unpack(model)
    w = np.ones((8, 3), np.float32)
    after = unpack(append_softmax_head(model, w, np.zeros(3, np.float32), -1.0, 1.0))
    ops = head_ops(after, 2)
    assert [code for code, _ in ops] == [Op.FULLY_CONNECTED, Op.SOFTMAX]
    assert len(after.subgraphs[0].operators) == len(before.subgraphs[0].operators) + 2
    # The extractor's FULLY_CONNECTED code only sets the deprecated int8 field;
    # it is still recognised and reused rather than duplicated.
    assert ops[0][1].opcodeIndex == 0
    assert len(after.operatorCodes) == 2
    softmax_code = after.operatorCodes[1]
    assert (softmax_code.builtinCode, softmax_code.deprecatedBuiltinCode) == (25, 25)
    logits = after.subgraphs[0].tensors[ops[0][1].outputs[0]]
    assert list(logits.shape) == [1, 3]


def test_everything_else_survives() -> None:
    model = tb.fc_extractor_2d()
    before = unpack(model)
    after = unpack(append_softmax_head(model, np.ones((8, 2)), np.zeros(2), -1.0, 1.0))
    assert after.version == before.version == 3
    assert after.description == before.description == tb.TINY_DESCRIPTION.encode()
    assert [(m.name, m.buffer) for m in after.metadata] == [
        (m.name, m.buffer) for m in before.metadata
    ]
    assert list(after.metadataBuffer) == list(before.metadataBuffer)
    assert buffer_bytes(after, after.metadata[0].buffer) == tb.TINY_METADATA_BYTES
    (sig_before,), (sig_after,) = before.signatureDefs, after.signatureDefs
    assert sig_after.signatureKey == sig_before.signatureKey
    assert [(t.name, t.tensorIndex) for t in sig_after.outputs] == [(b"embedding", 3)]
    assert [(t.name, t.tensorIndex) for t in sig_after.inputs] == [(b"image", 0)]
    _assert_original_graph_kept(before, after)


def test_real_extractor_survives_byte_for_byte(cpu_model: bytes) -> None:
    before = unpack(cpu_model)
    after = unpack(append_softmax_head(cpu_model, np.ones((1024, 2)), np.zeros(2), 0.0, 1.0))
    assert after.description == before.description
    assert [(m.name, m.buffer) for m in after.metadata] == [
        (m.name, m.buffer) for m in before.metadata
    ]
    _assert_original_graph_kept(before, after)


def _assert_original_graph_kept(before: schema.ModelT, after: schema.ModelT) -> None:
    for i in range(len(before.buffers)):
        assert buffer_bytes(after, i) == buffer_bytes(before, i), f"buffer {i} changed"
    old, new = before.subgraphs[0], after.subgraphs[0]
    for i, op in enumerate(old.operators):
        assert operator_summary(new.operators[i]) == operator_summary(op), f"operator {i} changed"
    for i, t in enumerate(old.tensors):
        assert tensor_summary(new.tensors[i]) == tensor_summary(t), f"tensor {i} changed"
    for i, code in enumerate(before.operatorCodes):
        assert vars(after.operatorCodes[i]) == vars(code)


@pytest.mark.parametrize("layout", ["sized buffer 0", "no buffers"])
def test_activations_never_get_a_sized_buffer(layout: str) -> None:
    """Buffer 0 is only reused when it is empty; a model without buffers gets one."""
    model_t = unpack(tb.pool_extractor_4d())
    if layout == "sized buffer 0":
        # Move the constant into slot 0 and point the activations at an empty slot 1.
        model_t.buffers = [tb.buffer(tb.TINY_CONSTANT_BYTES), tb.buffer()]
        for t in model_t.subgraphs[0].tensors:
            t.buffer = 1
    else:
        model_t.buffers = None
    model = tb.pack(model_t)
    info = inspect_extractor(model)
    w = np.random.default_rng(1).normal(size=(info.feature_dim, 3))
    head = append_softmax_head(model, w, np.zeros(3), -3.0, 3.0)
    after = unpack(head)
    sg = after.subgraphs[0]
    for _, op in head_ops(after, 3):
        assert buffer_bytes(after, sg.tensors[op.outputs[0]].buffer) == b""
    if layout == "sized buffer 0":
        assert buffer_bytes(after, 0) == tb.TINY_CONSTANT_BYTES
    probabilities = run(interpreter(head), random_inputs(info, 1, seed=2)[0])
    assert probabilities.sum() == pytest.approx(1.0, abs=0.02)


def test_buffers_start_on_16_byte_boundaries(cpu_model: bytes) -> None:
    """The schema asks for Buffer.data to be 16-byte aligned (force_align: 16)."""
    out = append_softmax_head(cpu_model, np.ones((1024, 3)), np.arange(3.0), 0.0, 9.0)
    start = np.frombuffer(out, np.uint8).ctypes.data
    root = schema.Model.GetRootAs(out, 0)
    for i in range(root.BuffersLength()):
        buf = root.Buffers(i)
        if buf.DataLength():
            # DataAsNumpy is a view into ``out``: its address gives the file offset.
            assert (buf.DataAsNumpy().ctypes.data - start) % 16 == 0, f"buffer {i}"


def test_edgetpu_extractor_structure(edgetpu_model: bytes) -> None:
    before = unpack(edgetpu_model)
    head = append_softmax_head(edgetpu_model, np.ones((1024, 3)), np.zeros(3), 0.0, 30.0)
    after = unpack(head)
    assert inspect_extractor(head).is_edgetpu
    old_op, new_ops = before.subgraphs[0].operators[0], after.subgraphs[0].operators
    assert len(new_ops) == 4
    assert operator_summary(new_ops[0]) == operator_summary(old_op)
    custom = after.operatorCodes[new_ops[0].opcodeIndex]
    assert custom.customCode == b"edgetpu-custom-op"
    assert bytes(np.asarray(new_ops[0].customOptions, np.uint8)) == bytes(
        np.asarray(old_op.customOptions, np.uint8)
    )
    ops = head_ops(after, 3)
    assert [code for code, _ in ops] == [Op.FULLY_CONNECTED, Op.RESHAPE, Op.SOFTMAX]
    sg = after.subgraphs[0]
    shapes = [list(sg.tensors[op.outputs[0]].shape) for _, op in ops]
    assert shapes == [[1, 1, 1, 3], [1, 3], [1, 3]]
    assert list(sg.outputs) == [ops[-1][1].outputs[0]]


# ---------------------------------------------------------------------------
# Malformed input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["0", "3", "8", "100", "half", "len-1", "len-4", "len-17"])
def test_truncated_model_is_rejected(cpu_model: bytes, length: str) -> None:
    n = {"half": len(cpu_model) // 2, "len-1": len(cpu_model) - 1}.get(length)
    if n is None:
        n = len(cpu_model) - int(length[4:]) if length.startswith("len-") else int(length)
    with pytest.raises(ValueError, match="not a valid TFLite model"):
        inspect_extractor(cpu_model[:n])
    with pytest.raises(ValueError, match="not a valid TFLite model"):
        append_softmax_head(cpu_model[:n], np.ones((1024, 2)), np.zeros(2), 0.0, 1.0)


def test_many_truncation_lengths_are_rejected(cpu_model: bytes, edgetpu_model: bytes) -> None:
    rng = np.random.default_rng(0)
    for model in (cpu_model, edgetpu_model):
        size = len(model)
        lengths = {*range(size - 64, size), *rng.integers(0, size, 64).tolist()}
        for n in sorted(lengths):
            with pytest.raises(ValueError, match="not a valid TFLite model"):
                inspect_extractor(model[:n])


def test_random_bytes_are_rejected() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="not a valid TFLite model"):
        inspect_extractor(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=8, max_size=2048), st.integers(0, 2**32 - 1))
def test_garbage_with_a_tflite_identifier_never_crashes(garbage: bytes, root: int) -> None:
    data = root.to_bytes(4, "little") + b"TFL3" + garbage[8:]
    # Either a clean ValueError or (rarely) a parse; anything else fails the test.
    with contextlib.suppress(ValueError):
        inspect_extractor(data)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_corrupted_tiny_model_gives_value_error_or_a_model(data: st.DataObject) -> None:
    model = bytearray(tb.pool_extractor_4d())
    for _ in range(data.draw(st.integers(1, 6))):
        model[data.draw(st.integers(0, len(model) - 1))] = data.draw(st.integers(0, 255))
    try:
        info = inspect_extractor(bytes(model))
        out = append_softmax_head(bytes(model), np.ones((info.feature_dim, 2)), np.zeros(2), 0, 1)
    except ValueError:
        return
    assert out[4:8] == b"TFL3"


def test_text_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "labels.tflite"
    path.write_text("cat\ndog\nhotdog\n")
    with pytest.raises(ValueError, match="identifier"):
        inspect_extractor(read_model_bytes(path))


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        read_model_bytes(tmp_path / "nope.tflite")
    with pytest.raises(ValueError, match="is a folder, not a regular file"):
        read_model_bytes(tmp_path)


def test_broken_model_is_rejected_cleanly(broken_model_path: Path) -> None:
    # Its graph output is an unquantized float tensor (and it has no buffers at all).
    with pytest.raises(ValueError, match="float32"):
        inspect_extractor(read_model_bytes(broken_model_path))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (tb.float_extractor, "float32, expected uint8"),
        (tb.two_output_model, "one output tensor, found 2"),
        (tb.two_subgraph_model, "one subgraph, found 2"),
        (tb.unpooled_extractor, "one feature vector"),
        (tb.per_channel_output_model, "per-tensor"),
    ],
)
def test_unusable_extractors(build: Callable[[], bytes], message: str) -> None:
    model = build()
    with pytest.raises(ValueError, match=message):
        inspect_extractor(model)
    with pytest.raises(ValueError, match=message):
        append_softmax_head(model, np.ones((8, 2)), np.zeros(2), 0.0, 1.0)


@pytest.mark.parametrize(
    ("weights", "biases", "logit_range", "message"),
    [
        (np.ones((7, 2)), np.zeros(2), (0, 1), "feature_dim"),
        (np.ones(8), np.zeros(1), (0, 1), r"shape \(D, C\)"),
        (np.ones((8, 0)), np.zeros(0), (0, 1), r"shape \(D, C\)"),
        (np.ones((8, 2)), np.zeros(3), (0, 1), "biases must have shape"),
        (np.ones((8, 2)), np.zeros((1, 2)), (0, 1), "biases must have shape"),
        (np.full((8, 2), np.nan), np.zeros(2), (0, 1), "weights contain NaN"),
        (np.ones((8, 2)), np.array([0.0, np.inf]), (0, 1), "biases contain NaN"),
        (np.ones((8, 2)), np.zeros(2), (0, math.inf), "logit range must be finite"),
        (np.ones((8, 2)), np.zeros(2), (math.nan, 1), "logit range must be finite"),
        (np.ones((8, 2)), np.zeros(2), (2, 1), "logit range is reversed"),
        (np.array([["a", "b"]] * 8), np.zeros(2), (0, 1), "numeric"),
    ],
)
def test_bad_head_parameters(
    weights: np.ndarray, biases: np.ndarray, logit_range: tuple[float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        append_softmax_head(tb.pool_extractor_4d(), weights, biases, *logit_range)


def test_feature_mismatch_on_real_extractor(cpu_model: bytes) -> None:
    with pytest.raises(ValueError, match="1024 features"):
        append_softmax_head(cpu_model, np.ones((1280, 3)), np.zeros(3), 0.0, 1.0)


def test_wrong_argument_type() -> None:
    with pytest.raises(TypeError, match="read_model_bytes"):
        inspect_extractor("model.tflite")  # type: ignore[arg-type]


def test_missing_litert_gives_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.schema_py_generated", None)
    monkeypatch.delitem(sys.modules, "kiosk.learn.tflite_head")
    with pytest.raises(ImportError, match="pip install ai-edge-litert"):
        importlib.import_module("kiosk.learn.tflite_head")


def test_a_corrupt_feature_count_is_refused_before_a_head_is_allocated() -> None:
    """Found by the hypothesis test above: one byte made D = 1,677,721,608 (a 25 GiB head)."""
    model = bytearray(tb.pool_extractor_4d())
    subgraph = schema.Model.GetRootAs(bytes(model), 0).Subgraphs(0)
    tab = subgraph.Tensors(subgraph.Outputs(0))._tab
    last = tab.Vector(tab.Offset(4)) + 4 * (tab.VectorLen(tab.Offset(4)) - 1)
    model[last : last + 4] = (1_677_721_608).to_bytes(4, "little")
    with pytest.raises(ValueError, match="claims 1677721608 features"):
        inspect_extractor(bytes(model))
