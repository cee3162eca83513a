"""The heads kiosk is measured against in bench_fewshot.py.

Each baseline is a function ``(x_train (N, D), y_train (N,), num_classes, seed) ->
predict`` where ``predict((M, D)) -> (M,) int64`` classes. They are trained on the
training images' embeddings as their own tools would (no mirrored copies).

* pycoral's defaults: ``backprop_last_layer.py``'s SGD schedule
  (``PYCORAL_TRAINING``: 500 steps of 100, learning rate 0.01, weight scale 0.01).
* logistic regression: scikit-learn, ``C=1`` (no tuning: with 1-2 images a class
  there is nothing to cross-validate on), lbfgs.
* Teachable Machine's recipe: dense 100 ReLU + dense softmax, Adam (1e-3), 50
  epochs, batch 16, Keras' default Glorot-uniform initialisation; in numpy.
* kNN-3: scikit-learn's ``KNeighborsClassifier(3)`` (Euclidean).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kiosk.learn import PYCORAL_TRAINING, SoftmaxRegression

Predict = Callable[[np.ndarray], np.ndarray]


def pycoral_defaults(x: np.ndarray, y: np.ndarray, num_classes: int, seed: int) -> Predict:
    config = PYCORAL_TRAINING
    model = SoftmaxRegression(
        x.shape[1], num_classes, weight_scale=config.weight_scale, reg=config.reg, seed=seed
    )
    model.train_with_sgd(
        {"data_train": x, "labels_train": y},
        config.num_iter,
        config.learning_rate,
        config.batch_size,
        print_every=None,
    )
    return model.predict


def logistic_regression(x: np.ndarray, y: np.ndarray, num_classes: int, seed: int) -> Predict:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=5000, random_state=seed).fit(x, y)
    return lambda rows: model.predict(rows).astype(np.int64)


def knn3(x: np.ndarray, y: np.ndarray, num_classes: int, seed: int) -> Predict:
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(n_neighbors=min(3, len(y))).fit(x, y)
    return lambda rows: model.predict(rows).astype(np.int64)


def teachable_machine(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    seed: int,
    hidden: int = 100,
    epochs: int = 50,
    batch: int = 16,
    learning_rate: float = 1e-3,
) -> Predict:
    """Dense(100, ReLU) + Dense(softmax), Adam, cross-entropy: Teachable Machine's head."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]

    def glorot(fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)

    params = [
        glorot(d, hidden),
        np.zeros(hidden, np.float32),
        glorot(hidden, num_classes),
        np.zeros(num_classes, np.float32),
    ]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-7  # Keras' Adam defaults
    onehot = np.eye(num_classes, dtype=np.float32)[y]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            rows = order[start : start + batch]
            xb, tb = x[rows], onehot[rows]
            h = np.maximum(xb @ params[0] + params[1], 0)
            z = h @ params[2] + params[3]
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            dz = (p - tb) / len(rows)
            dh = (dz @ params[2].T) * (h > 0)
            grads = [xb.T @ dh, dh.sum(axis=0), h.T @ dz, dz.sum(axis=0)]
            step += 1
            correction = np.sqrt(1 - beta2**step) / (1 - beta1**step)
            for p_, g, m_, v_ in zip(params, grads, m, v, strict=True):
                m_ *= beta1
                m_ += (1 - beta1) * g
                v_ *= beta2
                v_ += (1 - beta2) * g * g
                p_ -= learning_rate * correction * m_ / (np.sqrt(v_) + eps)

    def predict(rows: np.ndarray) -> np.ndarray:
        h = np.maximum(rows @ params[0] + params[1], 0)
        return np.argmax(h @ params[2] + params[3], axis=1).astype(np.int64)

    return predict


BASELINES: dict[str, Callable[..., Predict]] = {
    "pycoral": pycoral_defaults,
    "logreg C=1": logistic_regression,
    "TM recipe": teachable_machine,
    "kNN-3": knn3,
}
