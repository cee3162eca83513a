"""Softmax regression last layer, compatible with pycoral's ``SoftmaxRegression``.

Same constructor, method names, arguments and defaults as
``pycoral.learn.backprop.softmax_regression.SoftmaxRegression``, plus what a GUI
needs: seeded runs, a progress callback, cooperative cancellation, divergence
detection, and ``fit`` with a default schedule that converges without tuning.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from kiosk.learn.training import (
    DEFAULT_TRAINING,
    CancelFlag,
    ProgressCallback,
    TrainingConfig,
    TrainingProgress,
    TrainingResult,
    ValSubset,
    balanced_sample_weights,
    cancel_checker,
    check_learning_rate,
    check_positive_int,
    default_report_every,
    run_lbfgs,
    softmax_xent_,
)

__all__ = ["SoftmaxRegression"]

# The saved head's uint8 output range ends this far below the smallest top logit
# of the rows it is set from. Deeper costs resolution (more near-ties between the
# top two); shallower clips the runner-up logits of new views, which are less
# sure than the samples, and bends their probabilities. bench/bench_fewshot.py,
# both sets, every k, one run each: at ln(512), where a sample's clipped logits
# would all show as 0 anyway, the saved model's probabilities on new photos were
# 0.6-3.8 points from the float head's (mean of the largest difference) and 97
# of about 21,000 top-1 answers differed; at 7 (e^-7 < 1/1000), 0.4-0.8 points
# and 114 answers, nearly all near-ties the uint8 output cannot order. The
# probabilities are what a client compares with the saved "not sure" threshold.
LOGIT_FLOOR_DEPTH = 7.0

logger = logging.getLogger(__name__)

# Minibatch indices are drawn this many at a time: one generator call per chunk
# instead of one per iteration, with bounded memory for long runs.
_INDEX_CHUNK = 1 << 16
# At most this many training rows are re-scored after a cancelled SGD run.
_CANCEL_ROWS = 8192


class SoftmaxRegression:
    """A fully-connected layer plus softmax, trained on embeddings.

    The model maps (N, D) embeddings to (N, C) logits ``x @ weights + biases``.

    Attributes:
        weights: (D, C) float32, column c holds the weights of class c. Assigning
            casts to float32 and checks the shape (ValueError otherwise); reading
            returns the live array.
        biases: (C,) float32, same rules.
        logit_min, logit_max: the range of the fully-connected outputs (logits) the
            saved .tflite head must represent; its uint8 output is quantized over
            ``[min(0, logit_min), max(0, logit_max)]``. Each training call resets
            the range and recomputes it for the model it produces:
            ``train_with_sgd`` tracks every training batch as pycoral does, and
            then adds the final weights' logits on the whole training set (the
            last update is never seen by a batch, and a warm start must not keep a
            stale range; after a cancel, on at most 8,192 evenly spaced rows);
            ``fit`` takes the final model's logits on the training and
            validation data, a tight range that gives the uint8 output its finest
            step. Before any training the range is empty
            (``inf``, ``-inf``) and ``serialize_model`` refuses to run; assign
            both to use hand-made weights.
        reg: pycoral's L2 strength, used by ``train_with_sgd``.
        weight_scale: standard deviation of the initial random weights.
        seed: the seed given to the constructor (None: fresh entropy).
    """

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        weight_scale: float = 0.01,
        reg: float = 0.0,
        *,
        seed: int | None = None,
    ) -> None:
        """Creates a model with random weights ``weight_scale * N(0, 1)`` and zero biases.

        Args:
            feature_dim: D, the length of an embedding.
            num_classes: C, the number of classes.
            weight_scale: standard deviation of the initial weights.
            reg: L2 regularization strength for ``train_with_sgd``.
            seed: makes initialization and minibatch sampling reproducible.
        """
        check_positive_int("feature_dim", feature_dim)
        check_positive_int("num_classes", num_classes)
        for name, value in (("weight_scale", weight_scale), ("reg", reg)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.weight_scale = float(weight_scale)
        self.reg = float(reg)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        init = self._rng.standard_normal((self.feature_dim, self.num_classes), np.float32)
        self._weights = init * np.float32(weight_scale)
        self._biases = np.zeros(self.num_classes, np.float32)
        self._logit_min = math.inf
        self._logit_max = -math.inf

    def __repr__(self) -> str:
        return (
            f"SoftmaxRegression(feature_dim={self.feature_dim}, "
            f"num_classes={self.num_classes}, reg={self.reg})"
        )

    # -- parameters -------------------------------------------------------------

    @property
    def weights(self) -> np.ndarray:
        """(D, C) float32 weights."""
        return self._weights

    @weights.setter
    def weights(self, value: Any) -> None:
        self._weights = _checked_array(value, (self.feature_dim, self.num_classes), "weights")

    @property
    def biases(self) -> np.ndarray:
        """(C,) float32 biases."""
        return self._biases

    @biases.setter
    def biases(self, value: Any) -> None:
        self._biases = _checked_array(value, (self.num_classes,), "biases")

    @property
    def logit_min(self) -> float:
        """Smallest logit the saved head must represent."""
        return self._logit_min

    @logit_min.setter
    def logit_min(self, value: float) -> None:
        self._logit_min = _checked_float(value, "logit_min")

    @property
    def logit_max(self) -> float:
        """Largest logit the saved head must represent."""
        return self._logit_max

    @logit_max.setter
    def logit_max(self, value: float) -> None:
        self._logit_max = _checked_float(value, "logit_max")

    # -- inference --------------------------------------------------------------

    def logits(self, mat_x: Any) -> np.ndarray:
        """(N, D) embeddings -> (N, C) float32 logits; a (D,) vector gives (C,)."""
        x = self._features(mat_x, "mat_x", allow_vector=True)
        return x @ self._weights + self._biases

    def predict(self, mat_x: Any) -> np.ndarray:
        """(N, D) embeddings -> (N,) int64 predicted classes; a (D,) vector gives an int64."""
        return np.argmax(self.logits(mat_x), axis=-1).astype(np.int64)

    def predict_proba(self, mat_x: Any) -> np.ndarray:
        """(N, D) embeddings -> (N, C) float32 class probabilities (rows sum to 1).

        A (D,) vector gives (C,).
        """
        z = self.logits(mat_x)
        z -= z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z

    def run_inference(self, mat_x: Any) -> np.ndarray:
        """pycoral's name for ``predict``."""
        return self.predict(mat_x)

    def get_accuracy(self, mat_x: Any, labels: Any) -> float:
        """Fraction of (N, D) embeddings whose prediction equals (N,) labels, in [0, 1].

        Returns nan for zero samples.
        """
        x = self._features(mat_x, "mat_x", allow_empty=True)
        y = self._labels(labels, len(x), "labels")
        if len(y) == 0:
            return math.nan
        return float(np.mean(self.predict(x) == y))

    # -- training ---------------------------------------------------------------

    def loss_and_gradient(self, mat_x: Any, labels: Any) -> tuple[float, np.ndarray, np.ndarray]:
        """pycoral's training loss on a batch and its gradient, for the current weights.

        The loss is the mean cross-entropy plus ``0.5 * reg * sum(weights**2)``,
        computed with the same float32 kernel ``train_with_sgd`` steps with.

        Args:
            mat_x: (B, D) embeddings, B >= 1.
            labels: (B,) classes.

        Returns:
            (loss, (D, C) float32 gradient for ``weights``, (C,) float32 for ``biases``).
        """
        x = self._features(mat_x, "mat_x")
        y = self._labels(labels, len(x), "labels")
        n = len(y)
        z_t = np.ascontiguousarray((x @ self._weights + self._biases).T)
        loss, _, _ = softmax_xent_(z_t, y * n + np.arange(n))
        z_t /= np.float32(n)
        grad_w = x.T @ z_t.T
        loss /= n
        if self.reg:
            grad_w += np.float32(self.reg) * self._weights
            loss += 0.5 * self.reg * float(np.vdot(self._weights, self._weights))
        return loss, grad_w, z_t.sum(axis=1)

    def train_with_sgd(
        self,
        data: Mapping[str, Any],
        num_iter: int,
        learning_rate: float,
        batch_size: int = 100,
        print_every: int | None = 100,
        *,
        callback: ProgressCallback = None,
        cancel: CancelFlag = None,
        report_every: int | None = None,
        balanced: bool = False,
    ) -> TrainingResult:
        """Minibatch SGD exactly as pycoral does it, plus progress, cancel and divergence.

        Each iteration draws ``batch_size`` training rows uniformly *with
        replacement*, computes mean cross-entropy + ``0.5 * reg * sum(W**2)`` and
        takes one step ``-learning_rate * gradient`` on weights and biases.
        Training continues from the current weights.

        Args:
            data: ``data_train`` (N, D), ``labels_train`` (N,), and optionally
                ``data_val`` (M, D), ``labels_val`` (M,) (M may be 0).
            num_iter: iterations (minibatch steps), >= 1.
            learning_rate: step size, > 0.
            batch_size: rows per minibatch, >= 1 (may exceed N).
            print_every: log loss and accuracies every this many iterations
                through ``logging`` (logger ``kiosk.learn.softmax``, level INFO)
                instead of pycoral's print(); 0 or None disables it.
            callback: receives ``TrainingProgress`` every ``report_every``
                iterations and at the last one; train accuracy is on the current
                batch, val accuracy on at most 512 validation rows.
            cancel: ``threading.Event`` (or anything with ``is_set()``) or a
                callable returning True to stop; checked before every iteration.
            report_every: callback period; None means ``max(1, num_iter // 100)``.
            balanced: draw rows with probability proportional to ``1 / n_class``
                (class-balanced batches) instead of pycoral's uniform draw.

        Returns:
            The run's ``TrainingResult``.

        Raises:
            ValueError: malformed data or arguments.
        """
        check_positive_int("num_iter", num_iter)
        check_learning_rate(learning_rate)
        check_positive_int("batch_size", batch_size)
        if report_every is not None:
            check_positive_int("report_every", report_every)
        if print_every is not None and (isinstance(print_every, bool) or print_every < 0):
            raise ValueError(f"print_every must be >= 0 or None, got {print_every!r}")
        x, y, x_val, y_val = self._training_data(data)
        with _quiet_overflow():
            return self._sgd(
                x,
                y,
                x_val,
                y_val,
                int(num_iter),
                float(learning_rate),
                int(batch_size),
                int(print_every or 0),
                report_every or default_report_every(int(num_iter)),
                callback,
                cancel,
                balanced,
            )

    def fit(
        self,
        data: Mapping[str, Any],
        config: TrainingConfig = DEFAULT_TRAINING,
        *,
        callback: ProgressCallback = None,
        cancel: CancelFlag = None,
    ) -> TrainingResult:
        """Trains with a ``TrainingConfig``; the default converges without tuning.

        With ``config.optimizer == "lbfgs"`` (the default) this runs full-batch
        L-BFGS on the L2-regularized loss in normalized coordinates (see
        ``kiosk.learn.training``), starting from the current weights; the result
        lands in ``weights``/``biases`` in raw embedding space. With ``"sgd"`` it
        is ``train_with_sgd`` with the config's fields (``reg`` then replaces this
        model's ``reg``). ``config.class_balance`` (on by default, off in
        ``PYCORAL_TRAINING``) weighs every class equally: a balanced loss for
        L-BFGS, balanced batches for SGD.

        Args:
            data: as for ``train_with_sgd``.
            config: the schedule; ``DEFAULT_TRAINING`` unless overridden.
            callback: receives ``TrainingProgress`` every ``config.report_every``
                iterations and at the last one (L-BFGS reports exact full-set
                train accuracy, since each step sees the whole set).
            cancel: as for ``train_with_sgd``; L-BFGS also checks it between row
                blocks of ``config.batch_size`` within a pass.

        Returns:
            The run's ``TrainingResult``. On cancel the weights are those of the
            last completed iteration; on divergence those before the bad step.
        """
        if not isinstance(config, TrainingConfig):
            raise ValueError(f"config must be a TrainingConfig, got {type(config).__name__}")
        report_every = config.report_every or default_report_every(config.num_iter)
        if config.optimizer == "sgd":
            x, y, x_val, y_val = self._training_data(data)
            self.reg = config.reg
            with _quiet_overflow():
                return self._sgd(
                    x,
                    y,
                    x_val,
                    y_val,
                    config.num_iter,
                    config.learning_rate,
                    config.batch_size,
                    0,
                    report_every,
                    callback,
                    cancel,
                    config.class_balance,
                )
        x, y, x_val, y_val = self._training_data(data)
        with _quiet_overflow():
            outcome = run_lbfgs(
                x, y, x_val, y_val, self._weights, self._biases, config, self._rng, callback, cancel
            )
        self._weights, self._biases = outcome.weights, outcome.biases
        self._logit_min, self._logit_max = outcome.logit_min, outcome.logit_max
        return outcome.result

    def _sgd(
        self,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        num_iter: int,
        learning_rate: float,
        batch_size: int,
        print_every: int,
        report_every: int,
        callback: ProgressCallback,
        cancel: CancelFlag,
        balanced: bool = False,
    ) -> TrainingResult:
        """pycoral's SGD loop on validated data, with preallocated float32 buffers."""
        started = time.perf_counter()
        cancelled = cancel_checker(cancel)
        n = len(y)
        c = self.num_classes
        rng = self._rng
        val = ValSubset(x_val, y_val, rng)
        log = print_every > 0 and logger.isEnabledFor(logging.INFO)
        lr = np.float32(learning_rate)
        reg = np.float32(self.reg)
        # Double buffers: each step writes the new parameters into the spare pair,
        # so the previous ones survive for a rollback when the loss turns NaN.
        w, b = self._weights.copy(), self._biases.copy()
        w_prev, b_prev = np.empty_like(w), np.empty_like(b)
        z = np.empty((batch_size, c), np.float32)
        zt = np.empty((c, batch_size), np.float32)
        label_index = np.empty(batch_size, np.int64)
        grad = np.empty_like(w)
        rows = np.arange(batch_size)
        losses = np.empty(num_iter, np.float32)
        lo, hi = math.inf, -math.inf
        chunk = max(1, _INDEX_CHUNK // batch_size)
        was_cancelled = diverged = False
        done = 0
        loss = math.nan
        draw = None
        if balanced:
            weights = balanced_sample_weights(y, c).astype(np.float64)
            draw = weights / weights.sum()
        for it in range(num_iter):
            if it % chunk == 0:
                shape = (min(chunk, num_iter - it), batch_size)
                if draw is None:
                    batches = rng.integers(0, n, size=shape)
                else:
                    batches = rng.choice(n, size=shape, p=draw)
            if cancelled():
                was_cancelled = True
                break
            idx = batches[it % chunk]
            xb = x[idx]  # fancy indexing beats np.take(..., out=) here by 3x
            np.matmul(xb, w, out=z)
            np.add(z.T, b[:, None], out=zt)
            lo = min(lo, float(zt.min()))
            np.multiply(y[idx], batch_size, out=label_index)
            label_index += rows
            part, right, top = softmax_xent_(zt, label_index)
            hi = max(hi, top)
            loss = part / batch_size
            if reg:
                loss += 0.5 * float(reg) * float(np.vdot(w, w))
            if not math.isfinite(loss):
                diverged = True
                if it:  # the step that produced w is the one that diverged
                    w, b = w_prev, b_prev
                break
            zt *= np.float32(1.0 / batch_size)
            np.matmul(xb.T, zt.T, out=grad)
            if reg:
                np.multiply(w, reg, out=w_prev)
                grad += w_prev
            gb = zt.sum(axis=1)
            grad *= lr
            gb *= lr
            np.subtract(w, grad, out=w_prev)
            np.subtract(b, gb, out=b_prev)
            w, w_prev = w_prev, w
            b, b_prev = b_prev, b
            losses[it] = loss
            done = it + 1
            # Reports describe the weights the loss was computed with (now the spare pair).
            if log and it % print_every == 0:
                logger.info(
                    "iteration %d/%d: loss %.4f, batch accuracy %.2f%%, val accuracy %s",
                    done,
                    num_iter,
                    loss,
                    100 * right / batch_size,
                    _percent(val.accuracy(w_prev, b_prev)),
                )
            if callback is not None and (done == num_iter or done % report_every == 0):
                accuracy = right / batch_size
                val_accuracy = val.accuracy(w_prev, b_prev)
                callback(TrainingProgress(done, num_iter, loss, accuracy, val_accuracy))
        if not diverged and done and not (np.isfinite(w).all() and np.isfinite(b).all()):
            diverged = True  # the very last step overflowed: undo it
            w, b = w_prev, b_prev
            done -= 1
        self._weights, self._biases = w, b
        # Batches saw the weights before each step; the final weights' logits on
        # the whole set are added so the saved head covers the model it stores.
        # After a cancel a strided sample stands in for a big set, to return promptly.
        stride = -(-n // _CANCEL_ROWS) if was_cancelled else 1
        final = x[::stride] @ w + b
        self._logit_min = float(min(lo, final.min()))
        self._logit_max = float(max(hi, final.max()))
        val_accuracy = None
        if len(y_val):
            val_accuracy = float(np.mean(np.argmax(x_val @ w + b, axis=1) == y_val))
        return TrainingResult(
            iterations=done,
            num_iter=num_iter,
            loss=float(losses[done - 1]) if done else (loss if diverged else math.nan),
            train_accuracy=float(np.mean(final.argmax(axis=1) == y[::stride])),
            val_accuracy=val_accuracy,
            cancelled=was_cancelled,
            diverged=diverged,
            seconds=time.perf_counter() - started,
            loss_history=losses[:done].copy(),
            optimizer="sgd",
        )

    def center_logits(self, *mat_x: Any) -> None:
        """Centre the logits over the classes, then set the logit range from data.

        Softmax ignores a shift common to all classes, so subtracting each
        row's mean logit changes no probability (up to float rounding): the
        weights become ``W - W.mean(axis=1)`` and the biases ``b - b.mean()``.
        What it changes is the saved head: its uint8 output range (from
        ``logit_min``/``logit_max``, recomputed here on ``mat_x`` with the
        centred parameters) no longer spends levels on an offset that every
        logit shares, so the quantized model breaks fewer near-ties. The low
        end of the range stops ``LOGIT_FLOOR_DEPTH`` below the smallest top
        logit of any row (see there).

        Args:
            mat_x: one or more (N_i, D) arrays of embeddings whose logits the
                saved head must represent (the training rows, their mirrored
                copies, the hold-out), together at least one row.
        """
        if not mat_x:
            raise ValueError("center_logits needs the embeddings to set the range from")
        parts = [self._features(x, "mat_x", allow_empty=True) for x in mat_x]
        if not any(len(x) for x in parts):
            raise ValueError("mat_x needs at least 1 sample, got 0")
        self._weights = (self._weights - self._weights.mean(axis=1, keepdims=True)).astype(
            np.float32
        )
        self._biases = (self._biases - self._biases.mean()).astype(np.float32)
        logits = np.concatenate([x @ self._weights + self._biases for x in parts])
        top = logits.max(axis=1)
        floor = float(top.min()) - LOGIT_FLOOR_DEPTH
        self._logit_min = max(float(logits.min()), floor)
        self._logit_max = float(top.max())

    # -- saving -----------------------------------------------------------------

    def serialize_model(
        self, in_model_path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None
    ) -> bytes:
        """The embedding extractor at ``in_model_path`` with this head appended.

        Returns the bytes of a .tflite whose output is the uint8 softmax of the
        quantized head (see ``kiosk.learn.tflite_head``). ``metadata`` (class names,
        counts, settings, ...; see ``kiosk.learn.metadata``) is stored inside it as
        the "kiosk_head" metadata entry.

        Raises:
            ValueError: the logit range is empty (train first or set
                ``logit_min``/``logit_max``), or the extractor/head is unusable.
            OSError: the extractor cannot be read.
        """
        from kiosk.learn import tflite_head  # the .tflite writer is only needed here

        if not self._logit_min <= self._logit_max:
            raise ValueError(
                "the logit range is empty: train the model (or set logit_min and "
                "logit_max) before serializing it"
            )
        model = tflite_head.read_model_bytes(in_model_path)
        model = tflite_head.append_softmax_head(
            model, self._weights, self._biases, self._logit_min, self._logit_max
        )
        if metadata is None:
            return model
        from kiosk.learn.metadata import embed_metadata

        return embed_metadata(model, metadata)

    # -- validation -------------------------------------------------------------

    def _training_data(
        self, data: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Checks pycoral's data dict; returns float32 C-contiguous arrays and int64 labels."""
        if not isinstance(data, Mapping):
            raise ValueError(f"data must be a dict of arrays, got {type(data).__name__}")
        for key in ("data_train", "labels_train"):
            if key not in data:
                raise ValueError(f"data is missing {key!r}")
        if ("data_val" in data) != ("labels_val" in data):
            raise ValueError("data needs both 'data_val' and 'labels_val', or neither")
        x = self._features(data["data_train"], "data_train")
        y = self._labels(data["labels_train"], len(x), "labels_train")
        if "data_val" in data:
            x_val = self._features(data["data_val"], "data_val", allow_empty=True)
            y_val = self._labels(data["labels_val"], len(x_val), "labels_val")
        else:
            x_val = np.zeros((0, self.feature_dim), np.float32)
            y_val = np.zeros(0, np.int64)
        return x, y, x_val, y_val

    def _features(
        self, value: Any, name: str, *, allow_empty: bool = False, allow_vector: bool = False
    ) -> np.ndarray:
        try:
            x = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a numeric array: {exc}") from exc
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
        if x.ndim == 1 and allow_vector:
            if x.shape[0] != self.feature_dim:
                raise ValueError(
                    f"{name} has {x.shape[0]} features, the model expects {self.feature_dim}"
                )
        elif x.ndim != 2:
            raise ValueError(f"{name} must be 2-D (N, {self.feature_dim}), got shape {x.shape}")
        elif x.shape[1] != self.feature_dim:
            raise ValueError(
                f"{name} has {x.shape[1]} features per sample, the model expects "
                f"{self.feature_dim} (feature_dim)"
            )
        elif x.shape[0] == 0 and not allow_empty:
            raise ValueError(f"{name} needs at least 1 sample, got 0")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values (or overflows float32)")
        return x

    def _labels(self, value: Any, n: int, name: str) -> np.ndarray:
        y = np.asarray(value)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"{name} must have shape ({n},) to match the data, got {y.shape}")
        if y.dtype.kind == "f" and n and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)  # integral floats, e.g. from a float array
        if y.dtype.kind not in "iu":
            raise ValueError(f"{name} must be integer class indices, got dtype {y.dtype}")
        y = y.astype(np.int64, copy=False)
        if n and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(
                f"{name} must be in [0, {self.num_classes - 1}] (num_classes="
                f"{self.num_classes}), got values from {y.min()} to {y.max()}"
            )
        return y


def _checked_array(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from exc
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return array


def _checked_float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if math.isnan(number):
        raise ValueError(f"{name} must not be NaN")
    return number


def _quiet_overflow() -> np.errstate:
    """Divergence is detected and reported, so numpy's overflow warnings are noise."""
    return np.errstate(over="ignore", invalid="ignore")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
