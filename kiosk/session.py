"""TeachingSession: capture, train, predict and save, with no Qt in sight.

The session ties an ``EmbeddingExtractor``, an ``EmbeddingStore`` and the
trained softmax head together. Every method may be called from any thread:
captures go on while ``train()`` runs in a worker (it trains on a snapshot),
and a new head is swapped in atomically when training succeeds.

How the head maps to classes: a head covers exactly the classes that had at
least one sample when training started, in class order. It records their
stable class ids, so

* renaming a class changes nothing but the name shown (and saved);
* adding or removing samples, clearing a trained class, or giving samples
  to a new class makes the head *stale* (``head_is_stale``): it still
  predicts, but no longer reflects the data, so the UI suggests retraining;
* removing a trained class makes the head *unusable* (``head_is_usable`` is
  False): ``predict`` returns None and ``save`` refuses, because one of the
  head's outputs no longer has a class to name. Retraining fixes both.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from kiosk.atomic import staged_writes
from kiosk.coaching import CaptureFeedback, capture_feedback
from kiosk.learn import DEFAULT_TRAINING, SoftmaxRegression, TrainingConfig, TrainingResult
from kiosk.learn.evaluation import Evaluation, per_class_agreement
from kiosk.learn.fit_process import Fitter
from kiosk.learn.imprint import DEFAULT_TEMPERATURE, ImprintedHead, l2_normalize
from kiosk.learn.metadata import read_metadata
from kiosk.learn.recipe import LabelledEmbeddings, TrainingSettings, fit_head
from kiosk.store import EmbeddingStore, Sample, StoreSnapshot
from kiosk.vision import runtime

if TYPE_CHECKING:
    from kiosk.embedding import EmbeddingExtractor
    from kiosk.learn import TrainingProgress

__all__ = [
    "FIDELITY_THRESHOLD",
    "JPEG_QUALITY",
    "THUMBNAIL_SIZE",
    "Prediction",
    "SaveCancelled",
    "SaveError",
    "SaveReport",
    "TeachingSession",
    "TrainedHead",
    "decode_model_input",
    "encode_model_input",
    "format_labels",
]

log = logging.getLogger(__name__)

JPEG_QUALITY = 95
THUMBNAIL_SIZE = 96
# Save checks the written model on at most this many samples per class and
# about this many in all: each costs one full inference (~6 ms on 2 cores), and
# Save should take about a second, not ten, with many classes.
MAX_CHECK_PER_CLASS = 50
MAX_CHECK_TOTAL = 120
# Save asks before writing when the saved (quantized) model agrees with the
# float head on fewer than this share of some class's checked samples.
FIDELITY_THRESHOLD = 0.98


class SaveError(Exception):
    """Saving failed; ``str(error)`` says why, for the user. Earlier files are intact."""


class SaveCancelled(SaveError):
    """The ``confirm`` callback of ``save`` declined a low-fidelity model; nothing was written."""


@dataclass(frozen=True, eq=False)
class Prediction:
    """What the head makes of one frame.

    Attributes:
        class_index: the store index of the most likely class.
        class_name: its current name.
        confidence: its probability, 0..1.
        probabilities: (C,) float32 over the head's classes, in head order.
        class_names: (C,) current names of the head's classes, in head order.
        class_indices: (C,) store index of each of the head's classes.
        source: "trained" (the trained head, the one Save writes) or
            "imprinted" (the instant head built from the captures, before training).
        threshold: confidence below which the answer is "not sure" (None: always sure).
    """

    class_index: int
    class_name: str
    confidence: float
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    class_indices: tuple[int, ...]
    source: str = "trained"
    threshold: float | None = None

    @property
    def sure(self) -> bool:
        """False when the confidence is below the head's "not sure" threshold."""
        return self.threshold is None or self.confidence >= self.threshold


@dataclass(frozen=True)
class SaveReport:
    """What ``save`` wrote and how well the written model agrees with the float head.

    Attributes:
        model_path, labels_path: the files written.
        agreement: share of checked samples where the saved (quantized) model's
            top-1 equals the float head's, or None when not checked.
        num_checked: how many stored samples were run through the saved model.
        seconds: time the whole save took.
        note: why the check was skipped or limited, if it was.
        per_class_agreement: {class name: agreement on that class's checked
            samples, or None when none was checked}, in head order; empty when
            not checked.
    """

    model_path: Path
    labels_path: Path
    agreement: float | None
    num_checked: int
    seconds: float
    note: str | None = None
    per_class_agreement: dict[str, float | None] = field(default_factory=dict)

    def low_fidelity_classes(self, threshold: float | None = None) -> list[str]:
        """Names of the classes whose agreement is below ``threshold``.

        The default is ``FIDELITY_THRESHOLD``, read at call time.
        """
        threshold = FIDELITY_THRESHOLD if threshold is None else threshold
        return [
            name
            for name, value in self.per_class_agreement.items()
            if value is not None and value < threshold
        ]


@dataclass(frozen=True, eq=False)
class TrainedHead:
    """A trained head and what it was trained on.

    Attributes:
        model: the trained ``SoftmaxRegression`` (never changed afterwards).
        class_ids: stable store ids of the head's classes, in output order.
        trained_names: their names when training started.
        sample_ids: per head class, the ids of the samples it saw (train + val).
        result: the ``TrainingResult`` of the run.
        trained_at: ``time.time()`` when it was swapped in.
        evaluation: per-class accuracy and confusion on the validation split
            (None when nothing was held out).
        confidence_threshold: below it a prediction is "not sure" (see
            ``kiosk.learn.evaluation.confidence_threshold``).
    """

    model: SoftmaxRegression
    class_ids: tuple[int, ...]
    trained_names: tuple[str, ...]
    sample_ids: tuple[tuple[int, ...], ...]
    result: TrainingResult
    trained_at: float
    evaluation: Evaluation | None = None
    confidence_threshold: float | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)


def encode_model_input(model_input: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """(h, w, 3) uint8 RGB -> JPEG bytes."""
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(model_input, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"could not encode a {model_input.shape} image as JPEG")
    return buffer.tobytes()


def decode_model_input(data: bytes) -> np.ndarray:
    """JPEG bytes -> (h, w, 3) uint8 RGB."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("stored sample image could not be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def format_labels(names: list[str] | tuple[str, ...]) -> str:
    """pycoral's label-map format: one "<index> <name>" line per class.

    Whitespace runs (line breaks included, which a folder name may hold) are
    folded to one space, so the file always parses back to the same labels.
    """
    return "".join(f"{i} {' '.join(name.split())}\n" for i, name in enumerate(names))


class TeachingSession:
    """The business logic of the kiosk: capture, train, predict, save.

    Attributes:
        extractor: the embedding extractor (shared; it locks itself).
        store: the samples.
        config: the ``TrainingConfig`` used by ``train()`` unless one is passed.
        val_fraction: share of each class held out for validation when it has
            enough samples (see ``StoreSnapshot.training_data``).
        seed: fixes the validation split and the head's initial weights.
        listeners: callables run with no arguments after a new head is swapped in.
        warm_start: start training from the imprinted head (``kiosk.learn.imprint``)
            instead of the config's random weights.
        imprint_temperature: T of the imprinted head (live predictions before
            training, and the warm start).
        threshold_quantile, threshold_floor: how the "not sure" threshold is set
            from the validation split (``kiosk.learn.evaluation.confidence_threshold``).
        flip_augment: also embed each capture mirrored left-right (one more
            inference, ~6 ms) and train on both; the copy joins training only
            with its original, never beside it in validation. +1.7 points of
            test accuracy on CORe50 mini with 2-5 images a class
            (bench/bench_flip.py). Copies live in the session, not the store;
            projects and autosave save them (``kiosk.persist``), and
            ``recreate_flipped`` rebuilds missing ones from the stored JPEGs.
    """

    def __init__(
        self,
        extractor: EmbeddingExtractor,
        store: EmbeddingStore | None = None,
        *,
        config: TrainingConfig = DEFAULT_TRAINING,
        val_fraction: float = 0.15,
        seed: int | None = 0,
    ) -> None:
        if store is None:
            store = EmbeddingStore(extractor.feature_dim)
        elif store.feature_dim != extractor.feature_dim:
            raise ValueError(
                f"the store holds {store.feature_dim}-d embeddings but "
                f"{extractor.model_path.name} makes {extractor.feature_dim}-d ones"
            )
        self.extractor = extractor
        self.store = store
        self.config = config
        self.val_fraction = val_fraction
        self.seed = seed
        self.listeners: list[Callable[[], None]] = []
        self.warm_start = True
        self.imprint_temperature = DEFAULT_TEMPERATURE
        self.threshold_quantile = 0.05
        self.threshold_floor = 0.4
        self.flip_augment = True
        self._flipped: dict[int, np.ndarray] = {}  # sample id -> (D,) mirrored embedding
        self._flip_lock = threading.Lock()
        self._head: TrainedHead | None = None
        self._train_lock = threading.Lock()
        # (store version, class ids, head): rebuilt only when the samples change.
        self._imprinted: tuple[int, tuple[int, ...], ImprintedHead] | None = None
        # (store version, (N, D) L2-normalized embeddings) for ``novelty``.
        self._normalized: tuple[int, np.ndarray] | None = None

    # -- capture ----------------------------------------------------------------

    def capture(self, class_index: int, frame: np.ndarray) -> int:
        """Embed a frame and store it in a class; returns the sample id.

        The model input is stored as JPEG and the embedding is computed from
        the *decoded* JPEG, so re-embedding the stored image later (export,
        the check after saving) gives exactly the stored embedding.

        Args:
            class_index: the class to add to.
            frame: (H, W, 3) uint8 RGB of any size (grey and RGBA are converted).

        Raises:
            IndexError: no such class. ValueError: not an image.
        """
        if not 0 <= class_index < self.store.num_classes:
            raise IndexError(f"no class {class_index} (there are {self.store.num_classes})")
        model_input = self.extractor.preprocess(frame)
        jpeg = encode_model_input(model_input)
        decoded = decode_model_input(jpeg)
        embedding = self.extractor.embed_input(decoded)
        thumbnail = cv2.resize(
            decoded, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA
        )
        flipped = None
        if self.flip_augment:
            flipped = np.asarray(
                self.extractor.embed_input(np.ascontiguousarray(decoded[:, ::-1])), np.float32
            )
        sample_id = self.store.add_sample(class_index, embedding, thumbnail, image=jpeg)
        if flipped is not None:
            with self._flip_lock:
                self._flipped[sample_id] = flipped
        return sample_id

    def mirror_embedding(self, image: bytes) -> np.ndarray:
        """(D,) float32 embedding of a stored JPEG model input mirrored left-right.

        The same computation ``capture`` does for ``flip_augment``; ValueError
        for a damaged image.
        """
        decoded = decode_model_input(image)
        expected = tuple(int(d) for d in self.extractor.preprocess(decoded).shape)
        if decoded.shape != expected:
            decoded = self.extractor.preprocess(decoded)
        return np.asarray(
            self.extractor.embed_input(np.ascontiguousarray(decoded[:, ::-1])), np.float32
        )

    def restore_flipped(self, flipped: dict[int, np.ndarray]) -> None:
        """Put back mirrored embeddings read from disk ({sample id: (D,)}); ids not in
        the store are ignored, a wrong length is a ValueError."""
        present = {s.id for samples in self.store.snapshot().samples for s in samples}
        dim = self.store.feature_dim
        copies = {}
        for sample_id, embedding in flipped.items():
            embedding = np.asarray(embedding, np.float32).reshape(-1)
            if embedding.shape != (dim,):
                raise ValueError(f"a mirrored embedding has {embedding.shape[0]} values, not {dim}")
            if sample_id in present:
                copies[sample_id] = embedding
        with self._flip_lock:
            self._flipped.update(copies)

    def recreate_flipped(self) -> int:
        """Embed the mirrored stored image of every sample that has no mirrored copy.

        For sessions read from files written before the copies were saved.
        Samples without a stored image, or a damaged one, are left without a
        copy (they train on the original only). Does nothing when
        ``flip_augment`` is off. Returns how many copies were made.
        """
        if not self.flip_augment:
            return 0
        have = self.flipped_embeddings()
        made = {}
        for samples in self.store.snapshot().samples:
            for sample in samples:
                if sample.id in have or not sample.image:
                    continue
                try:
                    made[sample.id] = self.mirror_embedding(sample.image)
                except ValueError:
                    continue
        self.restore_flipped(made)
        return len(made)

    def novelty(self, embedding: np.ndarray) -> float | None:
        """How different a (D,) embedding is from every stored sample (0 = captured).

        ``kiosk.coaching.novelty``, with the normalized sample matrix cached per
        store version: one matrix-vector product per call. None with no samples.
        """
        snapshot = self.store.snapshot()
        cached = self._normalized
        if cached is None or cached[0] != snapshot.version:
            x, _ = snapshot.as_arrays()
            cached = (snapshot.version, l2_normalize(x) if len(x) else x)
            self._normalized = cached
        matrix = cached[1]
        if len(matrix) == 0:
            return None
        similarity = float(np.max(matrix @ l2_normalize(np.asarray(embedding, np.float32))))
        return max(0.0, 1.0 - similarity)

    def flipped_embeddings(self) -> dict[int, np.ndarray]:
        """{sample id: (D,) mirrored embedding} of the stored samples that have one."""
        present = {s.id for samples in self.store.snapshot().samples for s in samples}
        with self._flip_lock:
            # Forget copies of samples that are gone (undo, clear, delete).
            for sample_id in [i for i in self._flipped if i not in present]:
                del self._flipped[sample_id]
            return dict(self._flipped)

    def capture_feedback(self, sample_id: int) -> CaptureFeedback | None:
        """Near-duplicate check of a stored sample against its class's earlier samples.

        None when the sample is gone (undone, class removed) by now.
        """
        snapshot = self.store.snapshot()
        for samples in snapshot.samples:
            for position, sample in enumerate(samples):
                if sample.id == sample_id:
                    earlier = (
                        np.stack([s.embedding for s in samples[:position]])
                        if position
                        else (np.zeros((0, snapshot.feature_dim), np.float32))
                    )
                    return capture_feedback(sample.embedding, earlier)
        return None

    # -- training ---------------------------------------------------------------

    @property
    def can_train(self) -> bool:
        """At least two classes have at least one sample (empty classes are left out)."""
        return sum(1 for n in self.store.counts() if n > 0) >= 2

    @property
    def settings(self) -> TrainingSettings:
        """The current training settings, as one value."""
        return TrainingSettings(
            config=self.config,
            val_fraction=self.val_fraction,
            seed=self.seed,
            warm_start=self.warm_start,
            imprint_temperature=self.imprint_temperature,
            flip_augment=self.flip_augment,
            threshold_quantile=self.threshold_quantile,
            threshold_floor=self.threshold_floor,
        )

    @property
    def is_training(self) -> bool:
        return self._train_lock.locked()

    @property
    def head(self) -> TrainedHead | None:
        """The current head, or None before the first successful training."""
        return self._head

    def restore_head(self, head: TrainedHead) -> None:
        """Swap in a head read back from a project or autosave (``kiosk.persist``).

        Raises:
            ValueError: its weights do not fit this session's feature size.
            RuntimeError: a training run is in progress (it would overwrite the head).
        """
        if head.model.feature_dim != self.store.feature_dim:
            raise ValueError(
                f"the head takes {head.model.feature_dim}-d embeddings, "
                f"the store holds {self.store.feature_dim}-d ones"
            )
        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError("Training is running: the head cannot be replaced now")
        try:
            self._head = head
        finally:
            self._train_lock.release()
        self._notify()

    def train(
        self,
        *,
        callback: Callable[[TrainingProgress], Any] | None = None,
        cancel: threading.Event | Callable[[], bool] | None = None,
        config: TrainingConfig | None = None,
        fitter: Fitter | None = None,
    ) -> TrainingResult:
        """Train a new head on the classes that have samples; blocks until done.

        Runs in the caller's thread (the UI calls it from a worker). Trains on a
        snapshot, so captures may continue meanwhile. On success the new head
        replaces the old one atomically; a cancelled or diverged run keeps the
        previous head.

        Args:
            callback: called with ``TrainingProgress`` as training goes.
            cancel: a ``threading.Event`` or a callable; set/true stops early.
            config: overrides ``self.config`` for this run.
            fitter: runs the fit; by default ``fit_here`` (this thread). The
                kiosk passes a ``FitProcess`` so the fit's Python work never
                holds the GUI process's interpreter lock.

        Raises:
            ValueError: fewer than two classes have samples.
            RuntimeError: another training run is in progress.
        """
        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError("Training is already running")
        try:
            snapshot = self.store.snapshot()
            classes = [i for i, samples in enumerate(snapshot.samples) if samples]
            if len(classes) < 2:
                raise ValueError("Training needs at least two classes with samples")
            settings = self.settings
            if config is not None:
                settings = dataclasses.replace(settings, config=config)
            x, y = snapshot.as_arrays(classes)
            flipped = self.flipped_embeddings() if settings.flip_augment else {}
            ids = [s.id for i in classes for s in snapshot.samples[i]]
            has_mirror = np.array([i in flipped for i in ids], bool)
            mirrored = np.zeros_like(x)
            for row, sample_id in enumerate(ids):
                if has_mirror[row]:
                    mirrored[row] = flipped[sample_id]
            names = tuple(snapshot.class_names[i] for i in classes)
            fit = fit_head(
                LabelledEmbeddings(x, y, len(classes), mirrored, has_mirror),
                settings,
                class_names=names,
                fitter=fitter,
                callback=callback,
                cancel=cancel,
            )
            result, model = fit.result, fit.model
            if result.cancelled or result.diverged:
                return result
            evaluation, threshold = fit.evaluation, fit.confidence_threshold
            head = TrainedHead(
                model=model,
                class_ids=tuple(snapshot.class_ids[i] for i in classes),
                trained_names=names,
                sample_ids=_sample_ids(snapshot, classes),
                result=result,
                trained_at=time.time(),
                evaluation=evaluation,
                confidence_threshold=threshold,
            )
            self._head = head  # one reference swap: readers see the old or the new head
        finally:
            self._train_lock.release()
        self._notify()
        return result

    @property
    def head_is_stale(self) -> bool:
        """The samples changed since the head was trained (False when there is no head).

        Renames do not count; see the module docstring for what does.
        """
        head = self._head
        if head is None:
            return False
        trained = dict(zip(head.class_ids, head.sample_ids, strict=True))
        return _signature(self.store.snapshot()) != trained

    @property
    def head_indices(self) -> tuple[int, ...] | None:
        """Current store index of each output of the head (None: no usable head)."""
        return self._head_indices(self._head)

    @property
    def head_is_usable(self) -> bool:
        """A head exists and every class it was trained on still exists."""
        return self._head_indices(self._head) is not None

    # -- prediction -------------------------------------------------------------

    def predict(self, frame: np.ndarray) -> Prediction | None:
        """Classify a (H, W, 3) uint8 RGB frame; None without a usable head."""
        if self._head_indices(self._head) is None:
            return None  # spare the embedding
        return self.predict_embedding(self.extractor.embed(frame))

    def predict_embedding(self, embedding: np.ndarray) -> Prediction | None:
        """Classify a (D,) embedding with the float head (the one ``save`` writes)."""
        head = self._head
        indices = self._head_indices(head)
        if head is None or indices is None:
            return None
        probabilities = np.asarray(
            head.model.predict_proba(np.asarray(embedding, np.float32)), np.float32
        ).reshape(-1)
        return self._prediction(probabilities, indices, "trained", head.confidence_threshold)

    def predict_live(self, frame: np.ndarray) -> Prediction | None:
        """What the preview shows: the trained head, else the imprinted one.

        Before the first training (or when a trained class was deleted) the
        imprinted head answers as soon as two classes have samples. None when
        neither can.
        """
        if self._head_indices(self._head) is None and self.imprinted_head() is None:
            return None  # spare the embedding
        return self.predict_live_embedding(self.extractor.embed(frame))

    def observe(self, frame: np.ndarray) -> tuple[Prediction | None, float | None]:
        """``predict_live`` and ``novelty`` of one frame from a single embedding.

        (None, None) without samples or a head: the frame is not even embedded.
        """
        if self._head_indices(self._head) is None and not any(self.store.counts()):
            return None, None
        embedding = self.extractor.embed(frame)
        return self.predict_live_embedding(embedding), self.novelty(embedding)

    def predict_live_embedding(self, embedding: np.ndarray) -> Prediction | None:
        """``predict_live`` for a (D,) embedding."""
        prediction = self.predict_embedding(embedding)
        if prediction is not None:
            return prediction
        imprinted = self.imprinted_head()
        if imprinted is None:
            return None
        indices, head = imprinted
        probabilities = head.predict_proba(np.asarray(embedding, np.float32)).reshape(-1)
        try:
            return self._prediction(probabilities, indices, "imprinted", None)
        except IndexError:  # a class was removed since the snapshot: next frame
            return None

    def imprinted_head(self) -> tuple[tuple[int, ...], ImprintedHead] | None:
        """(store index of each output, head) imprinted from every sample, or None.

        Covers the classes with samples, in class order; needs two of them.
        Cached until the store changes (one mean per class, milliseconds).
        """
        snapshot = self.store.snapshot()
        classes = [i for i, samples in enumerate(snapshot.samples) if samples]
        if len(classes) < 2:
            return None
        ids = tuple(snapshot.class_ids[i] for i in classes)
        cached = self._imprinted
        if cached is None or cached[0] != snapshot.version or cached[1] != ids:
            x, y = snapshot.as_arrays(classes)
            head = ImprintedHead.from_data(x, y, len(classes), self.imprint_temperature)
            cached = (snapshot.version, ids, head)
            self._imprinted = cached  # one reference swap, like the trained head
        return tuple(classes), cached[2]

    def _prediction(
        self,
        probabilities: np.ndarray,
        indices: tuple[int, ...],
        source: str,
        threshold: float | None,
    ) -> Prediction:
        names = self.store.class_names
        top = int(np.argmax(probabilities))
        return Prediction(
            class_index=indices[top],
            class_name=names[indices[top]],
            confidence=float(probabilities[top]),
            probabilities=np.asarray(probabilities, np.float32),
            class_names=tuple(names[i] for i in indices),
            class_indices=indices,
            source=source,
            threshold=threshold,
        )

    # -- saving -----------------------------------------------------------------

    def save(
        self,
        model_path: str | os.PathLike[str],
        labels_path: str | os.PathLike[str] | None = None,
        *,
        confirm: Callable[[SaveReport], bool] | None = None,
        fidelity_threshold: float | None = None,
    ) -> SaveReport:
        """Write the extractor + head as one .tflite and labels.txt, atomically, then check it.

        Both files are first written to temporary files beside their targets;
        the model is loaded back from its temporary file and run on stored
        samples (at most 50 a class, about 120 in all), and only then do the files replace any
        earlier ones. For an Edge TPU extractor the check runs only when an
        Edge TPU is in use (the report's ``note`` says when it was skipped).

        Fidelity gate: when some class's agreement (saved model vs float head
        on that class's checked samples) is below ``fidelity_threshold``,
        ``confirm`` is called with the would-be report while the files are still
        staged; returning False discards them (``SaveCancelled``). Without
        ``confirm`` the files are written and the report says which classes
        are low (``SaveReport.low_fidelity_classes``).

        Args:
            model_path: the .tflite to write.
            labels_path: default: "labels.txt" in the model's folder.
            confirm: asked (on the calling thread) whether to write a model
                below the fidelity threshold.
            fidelity_threshold: per-class agreement below which to ask
                (default: ``FIDELITY_THRESHOLD``).

        Raises:
            SaveCancelled: ``confirm`` returned False. Nothing was written.
            SaveError: no usable head, or the model could not be built, written
                or loaded back. Earlier files are left as they were.
        """
        started = time.perf_counter()
        head = self._head
        indices = self._head_indices(head)
        if head is None:
            raise SaveError("Nothing to save yet: train the classes first")
        if indices is None:
            raise SaveError("A class the model was trained on has been deleted: train again first")
        model_path = Path(model_path)
        labels_path = model_path.parent / "labels.txt" if labels_path is None else Path(labels_path)
        _check_targets(model_path, labels_path)
        names = self.store.class_names
        labels = format_labels([names[i] for i in indices]).encode("utf-8")
        try:
            model_bytes = head.model.serialize_model(
                self.extractor.model_path, metadata=self._model_metadata(head, indices)
            )
        except Exception as error:
            raise SaveError(f"The model could not be built: {error}") from error
        try:
            with staged_writes({model_path: model_bytes, labels_path: labels}) as staged:
                agreement, checked, note, per_class = self._check_saved(
                    staged[model_path], model_bytes, head
                )
                report = SaveReport(
                    model_path=model_path,
                    labels_path=labels_path,
                    agreement=agreement,
                    num_checked=checked,
                    seconds=time.perf_counter() - started,
                    note=note,
                    per_class_agreement={
                        names[i]: value for i, value in zip(indices, per_class, strict=True)
                    },
                )
                # Raising inside the block deletes the staged files: nothing replaced.
                if (
                    confirm is not None
                    and report.low_fidelity_classes(fidelity_threshold)
                    and not confirm(report)
                ):
                    raise SaveCancelled("Not saved: the quantized model disagrees too often")
        except OSError as error:
            raise SaveError(_describe_os_error(error, model_path)) from error
        return dataclasses.replace(report, seconds=time.perf_counter() - started)

    def _model_metadata(self, head: TrainedHead, indices: tuple[int, ...]) -> dict:
        """What the saved model says about itself (schema in ``kiosk.learn.metadata``)."""
        names = self.store.class_names
        result = head.result
        return {
            "class_names": [names[i] for i in indices],
            # Samples each class was trained on (train + validation), in output order.
            "sample_counts": [len(ids) for ids in head.sample_ids],
            # The session's settings; a run given its own config via train(config=...)
            # records the optimizer and iterations it actually used under "metrics".
            "training": {**asdict(self.config), "seed": self.seed, "tool": "kiosk"},
            "metrics": {
                "optimizer": result.optimizer,
                "iterations": int(result.iterations),
                "train_accuracy": float(result.train_accuracy),
                "val_accuracy": (
                    None if result.val_accuracy is None else float(result.val_accuracy)
                ),
                "val_per_class_accuracy": (
                    None if head.evaluation is None else list(head.evaluation.per_class_accuracy)
                ),
            },
            # Below it the preview says "not sure" (set from the validation split).
            "confidence_threshold": head.confidence_threshold,
            "extractor": self.extractor.model_path.name,
            # Duck-typed extractors (tests, wrappers) may not carry a digest.
            "extractor_sha256": getattr(self.extractor, "sha256", None),
            "feature_dim": int(head.model.weights.shape[0]),
        }

    def _check_saved(
        self, path: Path, model_bytes: bytes, head: TrainedHead
    ) -> tuple[float | None, int, str | None, tuple[float | None, ...]]:
        """(agreement, number checked, note, per head class agreement) of the
        model at ``path`` vs the float head.

        Raises SaveError if the model does not load: a model that cannot run
        must not replace a working one.
        """
        unchecked = (None,) * head.num_classes
        if runtime.is_edgetpu_model(model_bytes) and not self.extractor.on_edgetpu:
            note = "Not checked: the model is compiled for the Edge TPU and none is in use"
            return None, 0, note, unchecked
        try:
            interpreter = runtime.load_interpreter(
                path, edgetpu=self.extractor.on_edgetpu, name=path.name
            )
        except ValueError as error:
            raise SaveError(
                f"The saved model does not load, so it was not saved: {error}"
            ) from error
        # The labels travel inside the model too: check they read back from the file.
        stored = (read_metadata(path) or {}).get("class_names")
        if stored is not None and len(stored) != head.num_classes:
            raise SaveError("The saved model's stored labels do not match its classes")
        input_detail = interpreter.get_input_details()[0]
        output_detail = interpreter.get_output_details()[0]
        if input_detail["dtype"] != np.uint8:
            return None, 0, "Not checked: the model input is not uint8", unchecked
        height, width = (int(d) for d in input_detail["shape"][1:3])
        samples = _samples_to_check(self.store.snapshot(), head.class_ids)
        if not samples:
            return None, 0, "Not checked: no stored images", unchecked
        # Per-class agreement groups samples by the head output of their class.
        output_of = {class_id: i for i, class_id in enumerate(head.class_ids)}
        embeddings = np.stack([s.embedding for s in samples])
        expected = np.argmax(
            np.asarray(head.model.predict_proba(embeddings)).reshape(len(samples), -1), axis=1
        )
        wanted, got, groups = [], [], []
        for sample, want in zip(samples, expected, strict=True):
            model_input = decode_model_input(sample.image)
            if model_input.shape != (height, width, 3):
                continue
            interpreter.set_tensor(input_detail["index"], model_input[np.newaxis])
            interpreter.invoke()
            output = interpreter.get_tensor(output_detail["index"]).reshape(-1)
            wanted.append(int(want))
            got.append(int(np.argmax(output)))
            groups.append(output_of[sample.class_id])
        checked = len(got)
        if checked == 0:
            note = "Not checked: stored images do not match the model input size"
            return None, 0, note, unchecked
        per_class = per_class_agreement(
            np.asarray(wanted), np.asarray(got), np.asarray(groups), head.num_classes
        )
        return float(np.mean(np.equal(wanted, got))), checked, None, per_class

    # -- internals --------------------------------------------------------------

    def _head_indices(self, head: TrainedHead | None) -> tuple[int, ...] | None:
        """Current store index of each head class, or None if no head or one is gone."""
        if head is None:
            return None
        position = {class_id: i for i, class_id in enumerate(self.store.class_ids)}
        try:
            return tuple(position[class_id] for class_id in head.class_ids)
        except KeyError:
            return None

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                log.exception("session listener %r failed", listener)


def _sample_ids(snapshot: StoreSnapshot, classes: list[int]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(s.id for s in snapshot.samples[i]) for i in classes)


def _signature(snapshot: StoreSnapshot) -> dict[int, tuple[int, ...]]:
    """{class id: its sample ids} for every class with samples: what a head is trained on."""
    return {
        class_id: tuple(s.id for s in samples)
        for class_id, samples in zip(snapshot.class_ids, snapshot.samples, strict=True)
        if samples
    }


def _samples_to_check(snapshot: StoreSnapshot, class_ids: tuple[int, ...]) -> list[Sample]:
    """Stored samples with images, spread evenly over each head class's captures."""
    per_class = min(MAX_CHECK_PER_CLASS, max(1, math.ceil(MAX_CHECK_TOTAL / len(class_ids))))
    position = {class_id: i for i, class_id in enumerate(snapshot.class_ids)}
    chosen: list[Sample] = []
    for class_id in class_ids:
        index = position.get(class_id)
        if index is None:
            continue
        with_image = [s for s in snapshot.samples[index] if s.image]
        if len(with_image) > per_class:
            picks = np.linspace(0, len(with_image) - 1, per_class).round().astype(int)
            with_image = [with_image[i] for i in picks]
        chosen.extend(with_image)
    return chosen


def _check_targets(model_path: Path, labels_path: Path) -> None:
    """Clear SaveErrors for targets that cannot work, before any work is done."""
    if model_path.resolve() == labels_path.resolve():
        raise SaveError("The model and the labels cannot be the same file")
    for path in (model_path, labels_path):
        if path.is_dir():
            raise SaveError(f"Cannot save to {path}: it is a folder")
        if not path.parent.is_dir():
            raise SaveError(f"Cannot save to {path}: the folder {path.parent} does not exist")


def _describe_os_error(error: OSError, model_path: Path) -> str:
    where = Path(error.filename).parent if error.filename else model_path.parent
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot save to {where}: the folder is not writable"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Cannot save to {where}: the disk is full"
    return f"Cannot save to {where}: {error.strerror or error}"
