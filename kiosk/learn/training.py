"""Training recipes for the softmax head: configuration, progress records, and the
default schedule (``fit``) that converges without tuning.

The default schedule is full-batch L-BFGS on an L2-regularized multinomial
logistic regression, solved in *normalized coordinates*: features are centered
on the training mean and divided by one global scalar so that their mean squared
norm is 1. Both are folded back exactly into the raw-space ``weights`` and
``biases`` (centering moves only the biases; a global scalar scales every weight
alike), so the kernel the .tflite head quantizes stays in the extractor's own
feature space. Per-feature standardization would not be safe there: it inflates
the weights of near-constant features and with them the kernel's quantization
range.

Why this schedule (measured on real MobileNet embeddings, see bench/bench_train.py):
the head is a convex problem with a badly conditioned spectrum (embedding
covariance of effective rank ~30 out of 1024), so first-order methods (SGD,
momentum, Nesterov, with warm-up and decay) need hundreds of passes to approach
the regularized optimum a tuned scikit-learn LogisticRegression finds, while
L-BFGS gets there in about 40 to 60 passes over the data; each pass is two
(N, D) x (D, C) products, about 1 ms for 1,000 x 1024 x 17 on two cores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

__all__ = [
    "DEFAULT_TRAINING",
    "PYCORAL_TRAINING",
    "TrainingConfig",
    "TrainingProgress",
    "TrainingResult",
]

OPTIMIZERS = ("lbfgs", "sgd")
# Validation accuracy in progress reports is computed on at most this many rows
# so that a report costs about as much as a few SGD steps, whatever the val size.
VAL_REPORT_ROWS = 512


def check_positive_int(name: str, value: object) -> None:
    """Raises ValueError unless value is an int >= 1 (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_learning_rate(value: object) -> None:
    """Raises ValueError unless value is a finite number > 0."""
    if not isinstance(value, int | float | np.floating | np.integer) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"learning_rate must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class TrainingConfig:
    """How ``SoftmaxRegression.fit`` trains. Override fields with ``dataclasses.replace``.

    Attributes:
        num_iter: iterations to run. For ``"lbfgs"`` one iteration is one
            quasi-Newton step, usually one pass over the training set; for
            ``"sgd"`` one minibatch step. Training runs exactly this many
            iterations unless cancelled or diverged.
        learning_rate: ``"lbfgs"``: the first step (and the step of any plain
            gradient fallback) in units of 1/L, where L bounds the curvature of the
            normalized problem; values in (0, 2) are always stable, later steps are
            sized by the quasi-Newton model. ``"sgd"``: pycoral's raw step size.
        batch_size: ``"lbfgs"``: rows per block when computing the full-batch
            gradient; it bounds temporary memory and how long a cancel can wait,
            and leaves the result unchanged up to float rounding. ``"sgd"``: the
            minibatch size (drawn with replacement, as pycoral does).
        reg: L2 strength. ``"lbfgs"``: the inverse of scikit-learn's ``C`` on the
            normalized features, i.e. the loss is mean cross-entropy
            + ``0.5 * reg / N * ||W_n||**2`` with ``W_n`` the normalized-space
            weights (the biases are not penalized). 2.5e-3 matches ``C=1`` on raw
            MobileNet v1 embeddings (mean squared centered norm about 400).
            ``"sgd"``: pycoral's raw-space strength (loss + ``0.5 * reg * ||W||**2``).
        weight_scale: standard deviation of the initial random weights, for callers
            that build the model from this config
            (``SoftmaxRegression(D, C, weight_scale=config.weight_scale)``);
            ``fit`` itself starts from the model's current weights.
        optimizer: ``"lbfgs"`` (the default schedule) or ``"sgd"`` (pycoral's
            ``train_with_sgd`` with these fields).
        history: L-BFGS memory (correction pairs kept).
        report_every: progress callback period in iterations; ``None`` picks
            ``max(1, num_iter // 100)``. The last iteration is always reported.
        class_balance: weigh every class equally however many samples it has.
            ``"lbfgs"``: each sample's cross-entropy is weighted by
            ``N / (C_present * n_class)`` (scikit-learn's ``class_weight="balanced"``);
            ``"sgd"``: minibatch rows are drawn with probability proportional
            to ``1 / n_class`` (balanced batches). Without it a class captured
            three times as often pulls the boundary towards the smaller one.
    """

    num_iter: int = 60
    learning_rate: float = 1.0
    batch_size: int = 4096
    reg: float = 2.5e-3
    weight_scale: float = 0.0
    optimizer: str = "lbfgs"
    history: int = 8
    report_every: int | None = None
    class_balance: bool = True

    def __post_init__(self) -> None:
        check_positive_int("num_iter", self.num_iter)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("history", self.history)
        if self.report_every is not None:
            check_positive_int("report_every", self.report_every)
        check_learning_rate(self.learning_rate)
        if not (math.isfinite(self.reg) and self.reg >= 0):
            raise ValueError(f"reg must be a finite number >= 0, got {self.reg!r}")
        if not (math.isfinite(self.weight_scale) and self.weight_scale >= 0):
            raise ValueError(
                f"weight_scale must be a finite number >= 0, got {self.weight_scale!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


DEFAULT_TRAINING = TrainingConfig()
"""The schedule the CLI and the GUI use: 60 L-BFGS passes, about 60-90 ms for 1,000
1024-d samples of 17 classes on two cores (bench/bench_train.py)."""

PYCORAL_TRAINING = TrainingConfig(
    num_iter=500,
    learning_rate=0.01,
    batch_size=100,
    reg=0.0,
    weight_scale=0.01,
    optimizer="sgd",
    class_balance=False,
)
"""pycoral's documented defaults (``backprop_last_layer.py``), for comparison."""


class TrainingProgress(NamedTuple):
    """One progress report, cheap to make and safe to hand to another thread.

    Attributes:
        iteration: iterations completed so far (1-based).
        num_iter: iterations the run will do if not stopped.
        loss: training loss at this iteration (the minibatch loss for SGD, the
            full objective for L-BFGS), regularization included.
        train_accuracy: fraction correct on this iteration's batch (SGD) or on the
            whole training set (L-BFGS), for the weights the loss was computed with.
        val_accuracy: fraction correct on (at most 512 rows of) the validation
            set, or None without validation data.
        phase: which fit of a recipe this report belongs to: ``"fit"`` for a
            plain ``SoftmaxRegression.fit``; ``kiosk.learn.recipe.fit_head``
            reports ``"holdout"`` (the fit scored on the hold-out) then
            ``"refit"`` (every sample; no validation accuracy), with one
            iteration count running across both.
    """

    iteration: int
    num_iter: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    phase: str = "fit"


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """What a training run did.

    Attributes:
        iterations: iterations completed.
        num_iter: iterations asked for.
        loss: loss of the last completed iteration (nan when none completed).
        train_accuracy: fraction correct on the whole training set, final weights.
        val_accuracy: the same on the validation set, or None without one.
        cancelled: stopped early by the cancel flag; the weights are those of
            the last completed iteration.
        diverged: stopped because the loss became NaN or infinite; the weights
            are those from before the step that diverged.
        seconds: wall time of the run.
        loss_history: (iterations,) float32 loss of each completed iteration.
        optimizer: ``"sgd"`` or ``"lbfgs"``.
    """

    iterations: int
    num_iter: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    cancelled: bool
    diverged: bool
    seconds: float
    loss_history: np.ndarray
    optimizer: str


class _HasIsSet(Protocol):
    def is_set(self) -> bool: ...


CancelFlag = _HasIsSet | Callable[[], bool] | None
ProgressCallback = Callable[[TrainingProgress], Any] | None


def cancel_checker(cancel: CancelFlag) -> Callable[[], bool]:
    """A zero-argument callable for an Event-like object, a callable, or None."""
    if cancel is None:
        return lambda: False
    is_set = getattr(cancel, "is_set", None)
    if callable(is_set):
        return is_set
    if callable(cancel):
        return cancel
    raise ValueError("cancel must have is_set() (threading.Event) or be a callable")


def default_report_every(num_iter: int) -> int:
    """About 100 progress reports per run."""
    return max(1, num_iter // 100)


def balanced_sample_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) float32 weights ``N / (K * n_y)`` (K: classes present); they sum to N."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = int(np.count_nonzero(counts))
    per_class = np.divide(len(y), present * counts, out=np.zeros_like(counts), where=counts > 0)
    return per_class[y].astype(np.float32)


def softmax_xent_(
    logits_t: np.ndarray, label_index: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, int, float]:
    """Cross-entropy of a batch, turning the logits into their gradient in place.

    The logits are laid out class-major, (C, B): reductions over the classes then
    run across contiguous rows of length B, several times faster in numpy than
    over the 4-20 elements of a sample-major row.

    Args:
        logits_t: (C, B) float32 C-contiguous scores; overwritten with
            ``softmax - onehot`` (same layout).
        label_index: (B,) int64 flat positions of the labels,
            ``labels * B + arange(B)``.
        weights: optional (B,) float32 per-sample weights; the loss and the
            gradient are then weighted sums.

    Returns:
        The *sum* over the batch of the (weighted) per-sample cross-entropy, the number of
        samples whose label has the largest logit, and the largest logit.
    """
    top = logits_t.max(axis=0)
    # Shifting by the column max keeps exp() in range; the loss uses the shifted
    # logits directly (log-sum-exp form), so it stays finite while logits are.
    logits_t -= top
    flat = logits_t.reshape(-1)
    picked = flat[label_index]
    correct = int(np.count_nonzero(picked == 0))
    np.exp(logits_t, out=logits_t)
    sums = logits_t.sum(axis=0)
    if weights is None:
        loss = float(np.log(sums).sum() - picked.sum())
    else:
        loss = float(np.dot(weights, np.log(sums) - picked))
    logits_t /= sums
    flat[label_index] -= 1.0
    if weights is not None:
        logits_t *= weights
    return loss, correct, float(top.max())


class ValSubset:
    """A fixed, capped subset of the validation data for cheap progress reports."""

    def __init__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        if len(y) > VAL_REPORT_ROWS:
            keep = np.sort(rng.choice(len(y), VAL_REPORT_ROWS, replace=False))
            x, y = x[keep], y[keep]
        self.x, self.y = x, y

    def accuracy(self, weights: np.ndarray, biases: np.ndarray) -> float | None:
        """Fraction correct for raw (D, C) weights and (C,) biases, or None if empty."""
        if len(self.y) == 0:
            return None
        return float(np.mean(np.argmax(self.x @ weights + biases, axis=1) == self.y))


@dataclass
class Normalizer:
    """Centering and global scaling of the features, and the exact fold-back.

    Normalized features are ``scale * (x - mean)``; normalized parameters
    ``(w_n, b_n)`` give the same logits as raw ``(w, b)`` when
    ``w = scale * w_n`` and ``b = b_n - mean @ w``.

    Attributes:
        mean: (D,) float32 training mean.
        scale: 1 / sqrt(mean squared norm of the centered features).
    """

    mean: np.ndarray
    scale: float

    @classmethod
    def from_data(cls, x: np.ndarray) -> Normalizer:
        """Statistics of (N, D) float32 training features, in two passes, no copies."""
        mean = x.mean(axis=0, dtype=np.float64)
        total = float(np.einsum("ij,ij->", x, x, dtype=np.float64))
        centered = total / len(x) - float(mean @ mean)
        # Identical samples (or a single one) leave nothing to scale by.
        scale = 1.0 / math.sqrt(centered) if centered > 1e-12 * (1.0 + total / len(x)) else 1.0
        return cls(mean.astype(np.float32), scale)

    def to_raw(self, w_n: np.ndarray, b_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(D, C), (C,) normalized parameters -> raw float32 weights and biases."""
        w = (w_n * np.float32(self.scale)).astype(np.float32)
        b = (b_n - self.mean @ w).astype(np.float32)
        return w, b

    def to_normalized(self, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (D, C), (C,) parameters -> normalized float32 ones."""
        w_n = (w / np.float32(self.scale)).astype(np.float32)
        b_n = (b + self.mean @ w).astype(np.float32)
        return w_n, b_n


@dataclass
class LbfgsOutcome:
    """Result of ``run_lbfgs``, in raw space, before the caller stores it."""

    weights: np.ndarray
    biases: np.ndarray
    logit_min: float
    logit_max: float
    result: TrainingResult


class _Objective:
    """Mean cross-entropy + 0.5 * reg_n * ||W_n||**2 over the full training set.

    Evaluated on the raw features through the normalizer (no normalized copy of
    the data is ever made): logits = x @ w + b with (w, b) = to_raw(w_n, b_n), and
    the gradient is mapped back with the chain rule.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        num_classes: int,
        norm: Normalizer,
        reg: float,
        block: int,
        cancelled: Callable[[], bool],
        sample_weight: np.ndarray | None = None,
    ) -> None:
        self.x, self.y, self.norm = x, y, norm
        self.sample_weight = sample_weight
        self.n, self.d = x.shape
        self.c = num_classes
        self.reg_n = reg / self.n
        self.block = min(block, self.n)
        self.cancelled = cancelled
        self.logits = np.empty((self.block, self.c), np.float32)
        self.logits_t = np.empty(self.block * self.c, np.float32)
        # Blocks never change, so their flat label positions are computed once.
        self.label_index = [
            self.y[i : i + self.block] * len(self.y[i : i + self.block])
            + np.arange(len(self.y[i : i + self.block]))
            for i in range(0, self.n, self.block)
        ]
        self.w = np.empty((self.d, self.c), np.float32)
        self.gx = np.empty((self.d, self.c), np.float32)
        self.tmp = np.empty((self.d, self.c), np.float32)
        # Set by each evaluation: logit extremes and correct count, for free.
        self.logit_min = math.inf
        self.logit_max = -math.inf
        self.correct = 0

    def __call__(self, theta: np.ndarray, grad: np.ndarray) -> float | None:
        """Loss at flat parameters ``theta`` ((D*C + C,) float32); gradient into ``grad``.

        Returns None if cancelled between blocks (``grad`` is then garbage).
        """
        d, c, dc = self.d, self.c, self.d * self.c
        mean, scale = self.norm.mean, np.float32(self.norm.scale)
        w_n = theta[:dc].reshape(d, c)
        w = np.multiply(w_n, scale, out=self.w)
        b = theta[dc:] - mean @ w
        gsum = np.zeros(c, np.float32)
        loss = 0.0
        lo, hi, correct = math.inf, -math.inf, 0
        for k, start in enumerate(range(0, self.n, self.block)):
            if k and self.cancelled():
                return None
            xb = self.x[start : start + self.block]
            m = len(xb)
            z = np.matmul(xb, w, out=self.logits[:m])
            zt = self.logits_t[: m * c].reshape(c, m)
            np.add(z.T, b[:, None], out=zt)
            lo = min(lo, float(zt.min()))
            weights = None if self.sample_weight is None else self.sample_weight[start : start + m]
            part, right, top = softmax_xent_(zt, self.label_index[k], weights)
            loss, correct, hi = loss + part, correct + right, max(hi, top)
            gsum += zt.sum(axis=1)
            if k == 0:
                np.matmul(xb.T, zt.T, out=self.gx)
            else:
                self.gx += xb.T @ zt.T
        self.logit_min, self.logit_max, self.correct = lo, hi, correct
        inv_n = np.float32(1.0 / self.n)
        # d(logits)/d(w_n) = scale * (x - mean): the mean term is an outer product.
        g_w = grad[:dc].reshape(d, c)
        np.multiply(mean[:, None], gsum, out=self.tmp)
        np.subtract(self.gx, self.tmp, out=g_w)
        g_w *= scale * inv_n
        penalty = 0.0
        if self.reg_n:
            np.multiply(w_n, np.float32(self.reg_n), out=self.tmp)
            g_w += self.tmp
            penalty = 0.5 * self.reg_n * float(np.dot(theta[:dc], theta[:dc]))
        np.multiply(gsum, inv_n, out=grad[dc:])
        return loss / self.n + penalty


class _History:
    """L-BFGS correction pairs, and the product with the inverse-Hessian
    approximation in compact form (Byrd, Nocedal & Schnabel, 1994).

    The big (P,) vectors live in a ring buffer; the small inner-product matrices
    are kept oldest-first, which is the order the compact form needs. A product
    costs four matrix-vector products over the stored pairs plus two k x k
    triangular solves, instead of the two-loop recursion's 4k vector updates.
    """

    def __init__(self, size: int, dim: int) -> None:
        self.s = np.zeros((size, dim), np.float32)
        self.y = np.zeros((size, dim), np.float32)
        self.sy = np.zeros((size, size))  # sy[i, j] = s_i . y_j, oldest first
        self.yy = np.zeros((size, size))
        self.order = np.zeros(size, np.intp)  # ring slot of the i-th oldest pair
        self.size = size
        self.count = 0
        self.gamma = 1.0

    def clear(self) -> None:
        self.count = 0

    def push(self, s: np.ndarray, y: np.ndarray) -> None:
        """Stores a pair if it has positive curvature (otherwise the update is skipped)."""
        sy = float(np.dot(s, y))
        yy = float(np.dot(y, y))
        if not (sy > 1e-10 * yy and math.isfinite(sy)):
            return
        k = self.count
        if k == self.size:  # drop the oldest pair, reuse its slot
            slot = self.order[0]
            self.order[:-1] = self.order[1:]
            self.sy[:-1, :-1] = self.sy[1:, 1:]
            self.yy[:-1, :-1] = self.yy[1:, 1:]
            k -= 1
        else:
            slot = k
        self.order[k] = slot
        self.s[slot] = s
        self.y[slot] = y
        self.count = k + 1
        rows = self.order[: k + 1]
        self.sy[k, : k + 1] = (self.y @ s)[rows]
        self.sy[: k + 1, k] = (self.s @ y)[rows]
        self.yy[k, : k + 1] = self.yy[: k + 1, k] = (self.y @ y)[rows]
        self.gamma = sy / yy

    def direction(self, grad: np.ndarray, out: np.ndarray) -> None:
        """out = -H @ grad (float32) for the current approximation H."""
        k = self.count
        rows = self.order[:k]
        sy, yy = self.sy[:k, :k], self.yy[:k, :k]
        u = (self.s @ grad)[rows].astype(np.float64)
        v = (self.y @ grad)[rows].astype(np.float64)
        gamma = self.gamma
        r = _solve_upper(sy, u)
        top = _solve_upper_transposed(sy, (np.diag(sy) * r + gamma * (yy @ r)) - gamma * v)
        coef_s = np.zeros(self.size, np.float32)
        coef_y = np.zeros(self.size, np.float32)
        coef_s[rows] = top
        coef_y[rows] = -gamma * r
        np.multiply(grad, np.float32(-gamma), out=out)
        out -= coef_s @ self.s
        out -= coef_y @ self.y


def _solve_upper(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with triu(a) @ x = b, for a small (k, k) a (back substitution)."""
    x = np.zeros(len(b))
    for i in range(len(b) - 1, -1, -1):
        x[i] = (b[i] - a[i, i + 1 :] @ x[i + 1 :]) / a[i, i]
    return x


def _solve_upper_transposed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with triu(a).T @ x = b, for a small (k, k) a (forward substitution)."""
    x = np.zeros(len(b))
    for i in range(len(b)):
        x[i] = (b[i] - a[:i, i] @ x[:i]) / a[i, i]
    return x


def run_lbfgs(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    weights: np.ndarray,
    biases: np.ndarray,
    config: TrainingConfig,
    rng: np.random.Generator,
    callback: ProgressCallback = None,
    cancel: CancelFlag = None,
) -> LbfgsOutcome:
    """The default schedule: full-batch L-BFGS in normalized coordinates.

    Args:
        x: (N, D) float32 C-contiguous training features (validated, N >= 1).
        y: (N,) int64 labels in [0, C).
        x_val: (M, D) float32 validation features, M may be 0.
        y_val: (M,) int64 validation labels.
        weights: (D, C) float32 raw starting weights (warm start).
        biases: (C,) float32 raw starting biases.
        config: the schedule's settings (``optimizer == "lbfgs"``).
        rng: picks the capped validation subset for progress reports.
        callback: receives ``TrainingProgress``.
        cancel: Event-like or callable; checked before every pass over the data
            and between row blocks.

    Returns:
        Final raw weights/biases, their logit range on the training and
        validation data, and the ``TrainingResult``.
    """
    started = time.perf_counter()
    cancelled = cancel_checker(cancel)
    d, c = weights.shape
    norm = Normalizer.from_data(x)
    # Balanced weights sum to N, so the loss keeps its scale and reg its meaning.
    sample_weight = balanced_sample_weights(y, c) if config.class_balance else None
    if sample_weight is not None and np.all(sample_weight == 1):
        sample_weight = None  # equal class sizes: the plain kernel, bit for bit
    objective = _Objective(x, y, c, norm, config.reg, config.batch_size, cancelled, sample_weight)
    val = ValSubset(x_val, y_val, rng)
    report_every = config.report_every or default_report_every(config.num_iter)
    # Curvature of mean softmax cross-entropy is at most 1/2 times that of the
    # features, and the normalized features (with the bias column) have it <= 1.
    safe_step = config.learning_rate / (0.5 + objective.reg_n)

    theta = np.empty(d * c + c, np.float32)
    w_n, b_n = norm.to_normalized(weights, biases)
    theta[: d * c], theta[d * c :] = w_n.ravel(), b_n
    grad = np.empty_like(theta)
    trial = np.empty_like(theta)
    trial_grad = np.empty_like(theta)
    direction = np.empty_like(theta)
    change = np.empty_like(theta)
    history = _History(config.history, theta.size)

    losses: list[float] = []
    was_cancelled = diverged = False
    first_loss = None if cancelled() else objective(theta, grad)
    if first_loss is None:
        was_cancelled = True
    elif not math.isfinite(first_loss):
        diverged = True
    loss = math.nan if first_loss is None else float(first_loss)
    # Logit extremes and correct count of the current point, from its evaluation.
    stats = (objective.logit_min, objective.logit_max, objective.correct)
    # When no step along the L-BFGS or the steepest-descent direction decreases
    # the loss (float32 resolution at the optimum, or a learning_rate far too
    # big), plain gradient steps of the safe size take over: accepted unless they
    # raise the loss beyond rounding (then the step is halved and retried), so the
    # run still does num_iter iterations, one pass each, as callers expect. A
    # step size halved to zero leaves the point as is, so this always ends.
    plain = False
    iteration = retries = 0
    while not (was_cancelled or diverged) and iteration < config.num_iter:
        if plain or history.count == 0:
            np.multiply(grad, -np.float32(safe_step), out=direction)
        else:
            history.direction(grad, direction)
        new_loss = _line_search(
            objective, theta, loss, grad, direction, trial, trial_grad, plain, cancelled
        )
        rounding = 1e-6 * abs(loss) + 1e-12  # float32 noise in a full-batch loss
        if new_loss is None:
            was_cancelled = True
        elif plain and not new_loss <= loss + rounding:
            safe_step *= 0.5  # too long (learning_rate > 2?); retry, the point is intact
            retries += 1
            # Only a non-finite gradient can resist 200 halvings; stop on the last good point.
            diverged = retries > 200
        elif math.isfinite(new_loss):
            retries = 0
            if plain and new_loss < loss - rounding:
                plain = False  # real progress again: hand back to L-BFGS
            np.subtract(trial, theta, out=direction)
            np.subtract(trial_grad, grad, out=change)
            history.push(direction, change)
            theta, trial = trial, theta
            grad, trial_grad = trial_grad, grad
            loss = new_loss
            stats = (objective.logit_min, objective.logit_max, objective.correct)
            losses.append(loss)
            iteration += 1
            if callback is not None and (
                iteration % report_every == 0 or iteration == config.num_iter
            ):
                w, b = norm.to_raw(theta[: d * c].reshape(d, c), theta[d * c :])
                callback(
                    TrainingProgress(
                        iteration, config.num_iter, loss, stats[2] / len(y), val.accuracy(w, b)
                    )
                )
        elif history.count:
            history.clear()  # a stale curvature model: restart from steepest descent
        else:
            plain = True  # even steepest descent cannot decrease the loss

    if iteration:
        w, b = norm.to_raw(theta[: d * c].reshape(d, c), theta[d * c :])
    else:  # nothing learned: keep the caller's parameters bit for bit
        w, b = weights.copy(), biases.copy()
    lo, hi, correct = stats
    if not lo <= hi:  # stopped before the first pass over the data finished
        logits = x @ w + b
        lo, hi = float(logits.min()), float(logits.max())
        correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
    val_accuracy = None
    if len(y_val):
        val_logits = x_val @ w + b
        # The saved head must represent the final model's logits on the training
        # data without saturating; covering the validation data too costs nothing.
        lo, hi = min(lo, float(val_logits.min())), max(hi, float(val_logits.max()))
        val_accuracy = float(np.mean(val_logits.argmax(axis=1) == y_val))
    result = TrainingResult(
        iterations=iteration,
        num_iter=config.num_iter,
        loss=losses[-1] if losses else loss,
        train_accuracy=correct / len(y),
        val_accuracy=val_accuracy,
        cancelled=was_cancelled,
        diverged=diverged,
        seconds=time.perf_counter() - started,
        loss_history=np.asarray(losses, np.float32),
        optimizer="lbfgs",
    )
    return LbfgsOutcome(w, b, lo, hi, result)


def _line_search(
    objective: _Objective,
    theta: np.ndarray,
    loss: float,
    grad: np.ndarray,
    direction: np.ndarray,
    trial: np.ndarray,
    trial_grad: np.ndarray,
    plain: bool,
    cancelled: Callable[[], bool],
) -> float | None:
    """Backtracking (Armijo) along ``direction``; the accepted point is left in ``trial``.

    In ``plain`` mode the safe gradient step is taken as is. Returns the loss at
    the accepted point, +inf if no trial decreased the loss, or None if cancelled.
    """
    slope = float(np.dot(grad, direction))
    if not slope < 0:  # not a descent direction: let the caller fall back
        np.negative(grad, out=direction)
        slope = -float(np.dot(grad, grad))
    t = 1.0
    best = math.inf
    for _ in range(1 if plain else 12):
        if cancelled():
            return None
        np.multiply(direction, np.float32(t), out=trial)
        trial += theta
        value = objective(trial, trial_grad)
        if value is None:
            return None
        if plain or value <= loss + 1e-4 * t * slope:
            return value
        best = min(best, value) if math.isfinite(value) else best
        # Halve, or jump to the minimizer of the quadratic through the two
        # values and the slope when that is smaller, but not below a tenth.
        if math.isfinite(value):
            q = -slope * t * t / (2.0 * (value - loss - slope * t))
            t = min(0.5 * t, max(0.1 * t, q))
        else:
            t *= 0.1
    return math.inf
