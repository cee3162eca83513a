"""Affine uint8/int32 quantization: range parameters and the round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.learn.quantize import (
    DEGENERATE_RANGE_SCALE,
    QuantParams,
    dequantize,
    quantize,
    uint8_range_params,
)

# Magnitudes a classifier head can meet (weights, logits), far from float overflow.
bound = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def range_and_values(draw: st.DrawFn) -> tuple[float, float, np.ndarray]:
    """A range [lo, hi] containing 0 and up to 32 values drawn inside it."""
    lo, hi = -draw(bound), draw(bound)
    fractions = draw(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=32))
    values = lo + (hi - lo) * np.asarray(fractions, dtype=np.float64)
    return lo, hi, np.clip(values, lo, hi)


@settings(max_examples=200, deadline=None)
@given(range_and_values())
def test_round_trip_error_is_at_most_half_a_step(case: tuple[float, float, np.ndarray]) -> None:
    lo, hi, values = case
    params = uint8_range_params(lo, hi)
    q = quantize(values, params)
    assert q.dtype == np.uint8
    back = dequantize(q, params)
    assert back.dtype == np.float32
    # Half a step, plus float32 rounding of the scale and of the result.
    tolerance = params.scale * (0.5 + 1e-4) + 1e-6 * max(abs(lo), abs(hi))
    assert np.max(np.abs(back.astype(np.float64) - values)) <= tolerance


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_zero_is_exact_and_params_are_valid(a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    params = uint8_range_params(lo, hi)
    assert params.scale > 0
    assert np.float32(params.scale) == params.scale  # what a .tflite can store
    assert 0 <= params.zero_point <= 255
    zero = quantize(np.zeros(3), params)
    assert np.all(zero == params.zero_point)
    assert np.all(dequantize(zero, params) == 0.0)


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 0.0), (-1e-12, 0.0), (0.0, 1e-9), (-1e-10, 1e-10)])
def test_degenerate_ranges_get_a_positive_scale(lo: float, hi: float) -> None:
    params = uint8_range_params(lo, hi)
    assert params.scale == DEGENERATE_RANGE_SCALE > 0
    values = np.array([lo, 0.0, hi])
    back = dequantize(quantize(values, params), params)
    assert np.max(np.abs(back - values)) <= params.scale / 2


def test_known_parameters() -> None:
    assert uint8_range_params(0.0, 255.0) == QuantParams(1.0, 0)
    negative = uint8_range_params(-255.0, 0.0)
    assert negative == QuantParams(1.0, 255)
    mixed = uint8_range_params(-1.0, 1.0)
    assert mixed.scale == pytest.approx(2 / 255, rel=1e-7)
    # -lo / scale is 127.5 up to float32 rounding of the scale: either neighbour is fine,
    # as long as the representable range still reaches both ends within half a step.
    assert mixed.zero_point in (127, 128)
    ends = dequantize(np.array([0, 255]), mixed)
    np.testing.assert_allclose(ends, [-1.0, 1.0], atol=mixed.scale / 2)
    # The range always covers 0: a positive-only range starts at 0.
    assert uint8_range_params(3.0, 5.1) == uint8_range_params(0.0, 5.1)


def test_quantize_clips_to_the_dtype_range() -> None:
    params = QuantParams(0.5, 10)
    q = quantize(np.array([-100.0, 0.0, 1.0, 1000.0]), params)
    np.testing.assert_array_equal(q, [0, 10, 12, 255])
    wide = quantize(np.array([-1e12, 7.0, 1e12]), QuantParams(1.0, 0), dtype=np.int32)
    assert wide.dtype == np.int32
    np.testing.assert_array_equal(wide, [np.iinfo(np.int32).min, 7, np.iinfo(np.int32).max])


def test_int32_levels_are_exact_for_large_values() -> None:
    scale = 1e-7
    values = np.array([10.0, -10.0, 123.4567])
    q = quantize(values, QuantParams(scale, 0), dtype=np.int32)
    np.testing.assert_array_equal(q, np.round(values / scale).astype(np.int64))


@pytest.mark.parametrize(
    ("lo", "hi", "message"),
    [(math.nan, 1.0, "finite"), (0.0, math.inf, "finite"), (2.0, 1.0, "reversed")],
)
def test_bad_ranges_raise(lo: float, hi: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uint8_range_params(lo, hi)
