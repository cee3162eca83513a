"""Inputs for the saved model's fidelity check: views the head never fitted.

After the refit the head has seen every stored sample and its mirror image, so
agreement on them says little (the quantized model and the float head agree on
almost any sample they are both sure of). New views are what a saved model
meets; this module makes them from the stored model inputs: each is cropped,
shifted, rotated, re-lit and, half of the time, mirrored, at random but
reproducibly. Pure numpy/OpenCV on (H, W, 3) uint8 model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["FidelityInputs", "fidelity_inputs"]

# How far the views stray: enough to leave the training samples' neighbourhood,
# not so far that an object leaves the picture.
CROP = (0.8, 0.95)
ROTATION_DEG = 10.0
GAIN = (0.8, 1.2)


@dataclass(frozen=True, eq=False)
class FidelityInputs:
    """New views for the fidelity check.

    Attributes:
        inputs: (M, H, W, 3) uint8 model inputs.
        source: (M,) int64 index of the stored input each view was made from.
        description: one line saying what was checked, for the save report.
    """

    inputs: np.ndarray
    source: np.ndarray
    description: str


def fidelity_inputs(
    model_inputs: np.ndarray, copies: int = 2, seed: int | None = 0
) -> FidelityInputs:
    """``copies`` perturbed views of each stored model input.

    Args:
        model_inputs: (N, H, W, 3) uint8 stored model inputs (any N >= 0).
        copies: views per input, >= 1.
        seed: makes the views reproducible (None: fresh entropy).

    Raises:
        ValueError: not (N, H, W, 3) uint8, or copies < 1.
    """
    images = np.asarray(model_inputs)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"model inputs must be (N, H, W, 3) uint8, got {images.shape}")
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be an integer >= 1, got {copies!r}")
    rng = np.random.default_rng(seed)
    n, h, w = images.shape[:3]
    views = np.empty((n * copies, h, w, 3), np.uint8)
    source = np.repeat(np.arange(n, dtype=np.int64), copies)
    mirrored = 0
    for i, index in enumerate(source):
        views[i], flipped = _perturb(images[index], rng)
        mirrored += flipped
    description = (
        f"{len(views)} new views of {n} stored samples ({copies} each: cropped "
        f"{CROP[0]:.0%}-{CROP[1]:.0%}, rotated up to {ROTATION_DEG:.0f}°, lit "
        f"x{GAIN[0]}-{GAIN[1]}, {mirrored} of them mirrored)"
    )
    return FidelityInputs(views, source, description)


def _perturb(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    h, w = image.shape[:2]
    scale = rng.uniform(*CROP)
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    view = image[top : top + ch, left : left + cw]
    flipped = bool(rng.random() < 0.5)
    if flipped:
        view = view[:, ::-1]
    view = np.ascontiguousarray(view)
    turn = cv2.getRotationMatrix2D((cw / 2, ch / 2), rng.uniform(-ROTATION_DEG, ROTATION_DEG), 1)
    view = cv2.warpAffine(view, turn, (cw, ch), borderMode=cv2.BORDER_REFLECT_101)
    view = cv2.resize(view, (w, h), interpolation=cv2.INTER_LINEAR)
    gain = rng.uniform(*GAIN)
    return np.clip(view.astype(np.float32) * gain, 0, 255).astype(np.uint8), flipped
