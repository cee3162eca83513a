"""Affine (scale, zero point) quantization as TensorFlow Lite defines it.

A real value ``x`` is stored as ``q = round(x / scale) + zero_point`` clipped to the
integer type's range, and read back as ``scale * (q - zero_point)``. Ranges always
include 0 so that zero (padding, ReLU floors, all-zero weights) is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEGENERATE_RANGE_SCALE",
    "QuantParams",
    "dequantize",
    "quantize",
    "uint8_range_params",
]

# Scale used when a range is empty or too narrow to quantize (for example all-zero
# weights, or logits that never left 0). TFLite rejects a scale of 0, and the bias
# scale is the product of two scales stored as float32, so the fallback must stay far
# above float32's smallest normal (1.2e-38) even after multiplying by another small
# scale. Every value in such a range quantizes to the zero point, so its size does not
# affect accuracy.
DEGENERATE_RANGE_SCALE = 1e-8


@dataclass(frozen=True)
class QuantParams:
    """Per-tensor affine quantization: ``real = scale * (q - zero_point)``.

    Attributes:
        scale: step between two adjacent integer levels (> 0 for a quantized tensor).
        zero_point: the integer level that represents the real value 0.
    """

    scale: float
    zero_point: int


def uint8_range_params(min_value: float, max_value: float) -> QuantParams:
    """Asymmetric uint8 parameters covering ``[min(0, min_value), max(0, max_value)]``.

    ``scale = (hi - lo) / 255`` rounded to float32 (the precision a .tflite stores, so
    values quantized with it match what the runtime reads back), and
    ``zero_point = round(-lo / scale)`` clamped to 0..255. A range narrower than
    ``255 * DEGENERATE_RANGE_SCALE`` uses ``DEGENERATE_RANGE_SCALE`` instead.

    Raises:
        ValueError: if a bound is not finite or ``min_value > max_value``.
    """
    lo, hi = float(min_value), float(max_value)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"quantization range must be finite, got [{lo}, {hi}]")
    if lo > hi:
        raise ValueError(f"quantization range is reversed: min {lo} > max {hi}")
    lo, hi = min(0.0, lo), max(0.0, hi)
    scale = float(np.float32((hi - lo) / 255.0))
    if not scale >= DEGENERATE_RANGE_SCALE:
        scale = DEGENERATE_RANGE_SCALE
    zero_point = min(255, max(0, round(-lo / scale)))
    return QuantParams(scale=scale, zero_point=int(zero_point))


def quantize(x: np.ndarray, params: QuantParams, dtype: npt.DTypeLike = np.uint8) -> np.ndarray:
    """Quantizes real values: round to nearest, then clip to ``dtype``'s range.

    Args:
        x: array of real values, any shape.
        params: scale and zero point.
        dtype: integer result type (uint8 for activations and weights, int32 for biases).

    Returns:
        Array of ``x``'s shape and type ``dtype``.
    """
    info = np.iinfo(dtype)
    # float64 keeps int32 bias levels (up to 2**31) exact before the cast.
    levels = np.round(np.asarray(x, dtype=np.float64) / params.scale) + params.zero_point
    return np.clip(levels, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    """Real values of quantized levels: ``scale * (q - zero_point)`` as float32."""
    levels = np.asarray(q, dtype=np.float64) - params.zero_point
    return (params.scale * levels).astype(np.float32)
