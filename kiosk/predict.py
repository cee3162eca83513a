"""What the picture shows: live predictions and how new the view is (the prediction room).

The trained head answers when it is usable, from the frame and its mirror image
averaged (``kiosk.learn.live``: the head was trained on both views of every
capture; +0.2 to +1.2 points of accuracy for one more inference), and says
"not sure" by its ``NotSureGate``: too low a confidence, or a view too far from
every stored sample (``kiosk.learn.gate``). Before the first training (or when a
trained class was deleted) the head *imprinted* from the captures answers as
soon as two classes have samples ("red disc?"). The imprinted head and the
samples' activation patterns behind the novelty meter are cached per store
version, so a frame costs one or two embeddings and a few small matrix products.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kiosk.heads import TrainedHead, head_indices
from kiosk.learn.gate import NotSureGate, activation_patterns, is_sure
from kiosk.learn.gate import novelty as view_novelty
from kiosk.learn.imprint import ImprintedHead
from kiosk.learn.live import average_views, mirrored
from kiosk.store import EmbeddingStore

__all__ = ["Prediction", "Predictor"]


class _Embedder(Protocol):
    def preprocess(self, image: np.ndarray) -> np.ndarray: ...

    def embed_input(self, model_input: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class Prediction:
    """What a head makes of one frame.

    Attributes:
        class_index: the store index of the most likely class.
        class_name: its current name.
        confidence: its probability, 0..1.
        probabilities: (C,) float32 over the head's classes, in head order.
        class_names: (C,) current names of the head's classes, in head order.
        class_indices: (C,) store index of each of the head's classes.
        source: "trained" (the trained head, the one Save writes) or
            "imprinted" (the instant head built from the captures, before training).
        gate: when the answer is "not sure" (None: always sure).
        novelty: how new the view is (``kiosk.learn.gate.novelty`` against the
            stored samples), or None when unknown.
    """

    class_index: int
    class_name: str
    confidence: float
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    class_indices: tuple[int, ...]
    source: str = "trained"
    gate: NotSureGate | None = None
    novelty: float | None = None

    @property
    def threshold(self) -> float | None:
        """The confidence below which the answer is "not sure" (None: always sure)."""
        return None if self.gate is None else self.gate.threshold

    @property
    def sure(self) -> bool:
        """False when the head's gate says "not sure" (too unsure, or too new a view)."""
        return self.gate is None or is_sure(self.probabilities, self.novelty, self.gate)


class Predictor:
    """Classifies frames and embeddings with the session's current head.

    Args:
        store: the samples (for names, the imprinted head and novelty).
        extractor: embeds frames.
        head: returns the current trained head (or None).
        temperature: returns the imprinted head's temperature T.
    """

    def __init__(
        self,
        store: EmbeddingStore,
        extractor: _Embedder,
        head: Callable[[], TrainedHead | None],
        temperature: Callable[[], float],
    ) -> None:
        self._store = store
        self._extractor = extractor
        self._head = head
        self._temperature = temperature
        # (store version, temperature, head class indices, head): rebuilt when samples change.
        self._imprinted: tuple[int, float, tuple[int, ...], ImprintedHead] | None = None
        # (store version, (N, D) activation patterns of samples and mirrors) for ``novelty``.
        self._patterns: tuple[int, np.ndarray] | None = None

    def trained_indices(self) -> tuple[int, ...] | None:
        """Store index of each output of the usable trained head (None: none)."""
        return head_indices(self._head(), self._store.class_ids)

    # -- frames -------------------------------------------------------------------

    def predict(self, frame: np.ndarray) -> Prediction | None:
        """Classify a (H, W, 3) uint8 RGB frame with the trained head; None without one."""
        if self.trained_indices() is None:
            return None  # spare the embedding
        return self.observe(frame)[0]

    def predict_live(self, frame: np.ndarray) -> Prediction | None:
        """What the preview shows: the trained head, else the imprinted one (None: neither)."""
        return self.observe(frame)[0]

    def observe(self, frame: np.ndarray) -> tuple[Prediction | None, float | None]:
        """The live prediction and the novelty of one (H, W, 3) uint8 RGB frame.

        With a usable trained head: the frame and its mirror image are embedded,
        the head's probabilities averaged and the novelty measured on both
        views. Before training: the imprinted head and the novelty of the frame.
        (None, None) without samples or a head: the frame is not even embedded.
        """
        trained = self.trained_indices() is not None
        if not trained and self._store.total_samples == 0:
            return None, None
        model_input = self._extractor.preprocess(frame)
        embedding = np.asarray(self._extractor.embed_input(model_input), np.float32)
        if trained:
            mirror = np.asarray(self._extractor.embed_input(mirrored(model_input)), np.float32)
            novelty = self.novelty(embedding, mirror)
            prediction = self.predict_embedding(embedding, mirror, novelty)
            if prediction is not None:
                return prediction, novelty
        novelty = self.novelty(embedding)
        return self.predict_live_embedding(embedding, novelty), novelty

    # -- embeddings ---------------------------------------------------------------

    def predict_embedding(
        self,
        embedding: np.ndarray,
        mirror: np.ndarray | None = None,
        novelty: float | None = None,
    ) -> Prediction | None:
        """Classify a (D,) embedding with the trained float head (the one Save writes).

        Args:
            embedding: (D,) of the view.
            mirror: (D,) of the mirrored view: the probabilities of both are averaged.
            novelty: the view's novelty, for the "not sure" gate (None: unknown).
        """
        head = self._head()
        indices = head_indices(head, self._store.class_ids)
        if head is None or indices is None:
            return None
        views = [embedding] if mirror is None else [embedding, mirror]
        probabilities = average_views(
            *(
                np.asarray(head.model.predict_proba(np.asarray(v, np.float32))).reshape(-1)
                for v in views
            )
        )
        return self._prediction(probabilities, indices, "trained", head.gate, novelty)

    def predict_live_embedding(
        self, embedding: np.ndarray, novelty: float | None = None
    ) -> Prediction | None:
        """``predict_live`` for a (D,) embedding (no mirror)."""
        prediction = self.predict_embedding(embedding, novelty=novelty)
        if prediction is not None:
            return prediction
        imprinted = self.imprinted_head()
        if imprinted is None:
            return None
        indices, head = imprinted
        probabilities = head.predict_proba(np.asarray(embedding, np.float32)).reshape(-1)
        try:
            return self._prediction(probabilities, indices, "imprinted", None, novelty)
        except IndexError:  # a class was removed since the snapshot: next frame
            return None

    def imprinted_head(self) -> tuple[tuple[int, ...], ImprintedHead] | None:
        """(store index of each output, head) imprinted from every sample, or None.

        Covers the classes with samples, in class order; needs two of them.
        Cached until the store changes (one mean per class, milliseconds).
        """
        version, temperature = self._store.version, self._temperature()
        cached = self._imprinted
        if cached is not None and cached[0] == version and cached[1] == temperature:
            return (cached[2], cached[3]) if cached[2] else None
        snapshot = self._store.snapshot()
        classes = tuple(i for i, samples in enumerate(snapshot.samples) if samples)
        if len(classes) < 2:
            self._imprinted = (snapshot.version, temperature, (), _NO_HEAD)
            return None
        x, y = snapshot.as_arrays(classes)
        head = ImprintedHead.from_data(x, y, len(classes), temperature)
        self._imprinted = (snapshot.version, temperature, classes, head)  # one reference swap
        return classes, head

    def novelty(self, embedding: np.ndarray, mirror: np.ndarray | None = None) -> float | None:
        """How different a view is from every stored sample and its mirrored copy
        (``kiosk.learn.gate.novelty``: 0 = captured); None with no samples.

        Args:
            embedding: (D,) of the frame.
            mirror: (D,) of the mirrored frame, when it was embedded too.

        The samples' activation patterns are cached per store version: one
        matrix-vector product per view.
        """
        cached = self._patterns
        if cached is None or cached[0] != self._store.version:
            snapshot = self._store.snapshot()
            samples = [s for group in snapshot.samples for s in group]
            vectors = [s.embedding for s in samples]
            vectors += [s.flipped for s in samples if s.flipped is not None]
            patterns = (
                activation_patterns(np.stack(vectors))
                if vectors
                else np.zeros((0, snapshot.feature_dim), np.float32)
            )
            cached = self._patterns = (snapshot.version, patterns)
        views = (embedding,) if mirror is None else (embedding, mirror)
        return view_novelty(cached[1], *views)

    def _prediction(
        self,
        probabilities: np.ndarray,
        indices: tuple[int, ...],
        source: str,
        gate: NotSureGate | None,
        novelty: float | None,
    ) -> Prediction:
        names = self._store.class_names
        top = int(np.argmax(probabilities))
        return Prediction(
            class_index=indices[top],
            class_name=names[indices[top]],
            confidence=float(probabilities[top]),
            probabilities=np.asarray(probabilities, np.float32),
            class_names=tuple(names[i] for i in indices),
            class_indices=indices,
            source=source,
            gate=gate,
            novelty=novelty,
        )


# Stands in for "fewer than two classes" in the imprinted cache.
_NO_HEAD = ImprintedHead(np.zeros((1, 1), np.float32), 1.0, 1.0, (0,))
