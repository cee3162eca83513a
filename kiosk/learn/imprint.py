"""Weight imprinting: a usable head from the first captures, before any training.

An imprinted head (Qi, Brown & Lowe, "Low-Shot Learning with Imprinted
Weights", the idea behind Coral's imprinting engine) takes as the weight of
class c the L2-normalized mean of that class's L2-normalized embeddings, and
scores an embedding by its cosine similarity to each weight times a
temperature ``T``::

    logits = T * normalize(x) @ W        W: (D, C), unit columns

It costs one mean per class, so the kiosk can show live predictions from the
first tap and refresh them on every capture.

Mapping to the saved head. The .tflite head is a plain fully-connected layer
on the raw embedding: it cannot divide ``x`` by its norm. MobileNet embeddings
have a nearly constant norm (30.6 +- 2.7 on CORe50 mini: ReLU6 outputs of a
global average pool), so ``|x|`` is replaced by the mean norm ``m`` of the
captured embeddings::

    raw weights = T * W / m,   raw biases = 0

which keeps the argmax wherever ``|x|`` is close to ``m`` and is what
``SoftmaxRegression`` is warm-started from (``ImprintedHead.raw_parameters``).

The default temperature (30) minimizes the held-out cross-entropy of plain
imprinting on CORe50 mini embeddings among 5, 10, 20, 30 and 50
(bench/bench_imprint.py); the top-1 class does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_TEMPERATURE", "ImprintedHead", "l2_normalize"]

DEFAULT_TEMPERATURE = 30.0
_EPS = 1e-12


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x`` divided by its L2 norm along ``axis`` (zero vectors stay zero); float32."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, np.float32(_EPS))


def _row_norms(x: np.ndarray) -> np.ndarray:
    """(N,) float32 L2 norms of the rows of (N, D) ``x``, without an (N, D) temporary."""
    return np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float32))


@dataclass(frozen=True, eq=False)
class ImprintedHead:
    """A cosine-similarity head whose weights are normalized class means.

    Attributes:
        weights: (D, C) float32, unit columns (a zero column for a class with
            no samples; it then gets logit 0).
        temperature: T, the scale of the cosine similarities.
        mean_norm: m, the mean L2 norm of the embeddings it was built from
            (used to express the head in raw embedding space).
        counts: (C,) samples per class it was built from.
    """

    weights: np.ndarray
    temperature: float
    mean_norm: float
    counts: tuple[int, ...]

    @classmethod
    def from_data(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        num_classes: int,
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> ImprintedHead:
        """Imprint from (N, D) embeddings and (N,) int labels in [0, num_classes).

        Raises:
            ValueError: no samples, a label out of range, or a bad temperature.
        """
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.int64)
        if x.ndim != 2 or len(x) == 0 or y.shape != (len(x),):
            raise ValueError(f"need (N, D) embeddings and (N,) labels, got {x.shape}, {y.shape}")
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels must be in [0, {num_classes})")
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        norms = _row_norms(x)
        inverse = 1.0 / np.maximum(norms, np.float32(_EPS))
        counts = np.bincount(y, minlength=num_classes)
        # Each class's sum of unit rows is one (n_c,) @ (n_c, D) product over its
        # own rows: no unit copy of x, and memory for one class at a time.
        order = np.argsort(y, kind="stable")
        ends = np.cumsum(counts)
        sums = np.zeros((num_classes, x.shape[1]), np.float32)
        for c in np.flatnonzero(counts):
            rows = order[ends[c] - counts[c] : ends[c]]
            sums[c] = inverse[rows] @ x[rows]
        weights = l2_normalize(sums).T.copy()  # normalizing the sum = normalizing the mean
        mean_norm = float(norms.mean(dtype=np.float64))
        return cls(
            weights=weights,
            temperature=float(temperature),
            mean_norm=max(mean_norm, _EPS),
            counts=tuple(int(c) for c in counts),
        )

    @property
    def num_classes(self) -> int:
        return int(self.weights.shape[1])

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) embeddings -> (N, C) or (C,) float32 scaled cosine similarities."""
        return np.float32(self.temperature) * (l2_normalize(x) @ self.weights)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) embeddings -> (N, C) or (C,) float32 softmax probabilities."""
        z = self.logits(x)
        z -= z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> (N,) int64 classes (a (D,) vector gives an int64)."""
        return np.argmax(self.logits(x), axis=-1).astype(np.int64)

    def raw_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """The head as a fully-connected layer on raw embeddings: ((D, C), (C,)) float32.

        ``|x|`` is replaced by ``mean_norm`` (see the module docstring), so
        ``x @ weights`` equals ``logits(x)`` exactly when ``|x| == mean_norm``.
        """
        scale = np.float32(self.temperature / self.mean_norm)
        return (self.weights * scale).astype(np.float32), np.zeros(self.num_classes, np.float32)
