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

import errno
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from kiosk.atomic import staged_writes
from kiosk.learn import DEFAULT_TRAINING, SoftmaxRegression, TrainingConfig, TrainingResult
from kiosk.store import EmbeddingStore, Sample, StoreSnapshot
from kiosk.vision import runtime

if TYPE_CHECKING:
    from kiosk.embedding import EmbeddingExtractor
    from kiosk.learn import TrainingProgress

__all__ = [
    "JPEG_QUALITY",
    "THUMBNAIL_SIZE",
    "Prediction",
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


class SaveError(Exception):
    """Saving failed; ``str(error)`` says why, for the user. Earlier files are intact."""


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
    """

    class_index: int
    class_name: str
    confidence: float
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    class_indices: tuple[int, ...]


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
    """

    model_path: Path
    labels_path: Path
    agreement: float | None
    num_checked: int
    seconds: float
    note: str | None = None


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
    """

    model: SoftmaxRegression
    class_ids: tuple[int, ...]
    trained_names: tuple[str, ...]
    sample_ids: tuple[tuple[int, ...], ...]
    result: TrainingResult
    trained_at: float

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
        self._head: TrainedHead | None = None
        self._train_lock = threading.Lock()

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
        return self.store.add_sample(class_index, embedding, thumbnail, image=jpeg)

    # -- training ---------------------------------------------------------------

    @property
    def can_train(self) -> bool:
        """At least two classes have at least one sample (empty classes are left out)."""
        return sum(1 for n in self.store.counts() if n > 0) >= 2

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
            config = config or self.config
            data = snapshot.training_data(
                val_fraction=self.val_fraction, seed=self.seed, classes=classes
            )
            model = SoftmaxRegression(
                snapshot.feature_dim,
                len(classes),
                weight_scale=config.weight_scale,
                reg=config.reg,
                seed=self.seed,
            )
            result = model.fit(data, config, callback=callback, cancel=cancel)
            if result.cancelled or result.diverged:
                return result
            head = TrainedHead(
                model=model,
                class_ids=tuple(snapshot.class_ids[i] for i in classes),
                trained_names=tuple(snapshot.class_names[i] for i in classes),
                sample_ids=_sample_ids(snapshot, classes),
                result=result,
                trained_at=time.time(),
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
        names = self.store.class_names
        top = int(np.argmax(probabilities))
        return Prediction(
            class_index=indices[top],
            class_name=names[indices[top]],
            confidence=float(probabilities[top]),
            probabilities=probabilities,
            class_names=tuple(names[i] for i in indices),
            class_indices=indices,
        )

    # -- saving -----------------------------------------------------------------

    def save(
        self, model_path: str | os.PathLike[str], labels_path: str | os.PathLike[str] | None = None
    ) -> SaveReport:
        """Write the extractor + head as one .tflite and labels.txt, atomically, then check it.

        Both files are first written to temporary files beside their targets;
        the model is loaded back from its temporary file and run on stored
        samples (at most 50 a class, about 120 in all), and only then do the files replace any
        earlier ones. For an Edge TPU extractor the check runs only when an
        Edge TPU is in use (the report's ``note`` says when it was skipped).

        Args:
            model_path: the .tflite to write.
            labels_path: default: "labels.txt" in the model's folder.

        Raises:
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
                agreement, checked, note = self._check_saved(staged[model_path], model_bytes, head)
        except OSError as error:
            raise SaveError(_describe_os_error(error, model_path)) from error
        return SaveReport(
            model_path=model_path,
            labels_path=labels_path,
            agreement=agreement,
            num_checked=checked,
            seconds=time.perf_counter() - started,
            note=note,
        )

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
            },
            "extractor": self.extractor.model_path.name,
            # Duck-typed extractors (tests, wrappers) may not carry a digest.
            "extractor_sha256": getattr(self.extractor, "sha256", None),
            "feature_dim": int(head.model.weights.shape[0]),
        }

    def _check_saved(
        self, path: Path, model_bytes: bytes, head: TrainedHead
    ) -> tuple[float | None, int, str | None]:
        """(agreement, number checked, note) of the model at ``path`` vs the float head.

        Raises SaveError if the model does not load: a model that cannot run
        must not replace a working one.
        """
        if runtime.is_edgetpu_model(model_bytes) and not self.extractor.on_edgetpu:
            return None, 0, "Not checked: the model is compiled for the Edge TPU and none is in use"
        try:
            interpreter = runtime.load_interpreter(
                path, edgetpu=self.extractor.on_edgetpu, name=path.name
            )
        except ValueError as error:
            raise SaveError(
                f"The saved model does not load, so it was not saved: {error}"
            ) from error
        input_detail = interpreter.get_input_details()[0]
        output_detail = interpreter.get_output_details()[0]
        if input_detail["dtype"] != np.uint8:
            return None, 0, "Not checked: the model input is not uint8"
        height, width = (int(d) for d in input_detail["shape"][1:3])
        samples = _samples_to_check(self.store.snapshot(), head.class_ids)
        if not samples:
            return None, 0, "Not checked: no stored images"
        embeddings = np.stack([s.embedding for s in samples])
        expected = np.argmax(
            np.asarray(head.model.predict_proba(embeddings)).reshape(len(samples), -1), axis=1
        )
        agree = checked = 0
        for sample, want in zip(samples, expected, strict=True):
            model_input = decode_model_input(sample.image)
            if model_input.shape != (height, width, 3):
                continue
            interpreter.set_tensor(input_detail["index"], model_input[np.newaxis])
            interpreter.invoke()
            output = interpreter.get_tensor(output_detail["index"]).reshape(-1)
            agree += int(np.argmax(output) == want)
            checked += 1
        if checked == 0:
            return None, 0, "Not checked: stored images do not match the model input size"
        return agree / checked, checked, None

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
