"""TeachingSession: the kiosk's state in one place, with no Qt in sight.

The session owns the facts of a teaching session and hands each room its part:

* the ``EmbeddingStore`` (classes and samples; a ``Sample`` carries its
  mirrored embedding and its capture time),
* the current ``TrainingSettings`` (``settings`` / ``set_settings``; the
  window's Settings change them here, and only here),
* the current ``TrainedHead`` (which carries its classes, weights, logit range,
  the settings it was trained with, its evaluation and "not sure" threshold),
* the undo/redo ``History``.

Rooms: ``kiosk.capture`` turns frames into samples, ``kiosk.heads`` and
``kiosk.learn.recipe`` train, ``kiosk.predict`` answers live, ``kiosk.export``
writes models. ``replace`` is the one load operation: projects, the autosave,
re-embedding and image import all build a ``SessionContents`` first and swap
it in at once.

Every method may be called from any thread: captures go on while ``train()``
runs in a worker (it trains on a snapshot), and a new head is swapped in with
one reference assignment. Changes are announced by ``store.events`` (samples,
classes, a load) and ``events`` (head, settings), psygnal signals emitted on the
thread that made the change.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal, SignalGroup

from kiosk.capture import decode_model_input, prepare_capture
from kiosk.coaching import CaptureFeedback, capture_feedback
from kiosk.export import (
    CheckInput,
    SaveCancelled,
    SaveError,
    SaveReport,
    StagedModel,
    stage_model,
)
from kiosk.heads import TrainedHead, head_indices, is_stale
from kiosk.history import (
    ClassAdded,
    ClassCleared,
    ClassRemoved,
    ClassRenamed,
    History,
    Imported,
    Step,
)
from kiosk.learn import TrainingConfig, TrainingProgress, TrainingResult
from kiosk.learn.fidelity import fidelity_inputs
from kiosk.learn.fit_process import Fitter
from kiosk.learn.recipe import LabelledEmbeddings, TrainingSettings, fit_head
from kiosk.predict import Prediction, Predictor
from kiosk.store import ClassRecord, EmbeddingStore, Sample, StoreSnapshot

if TYPE_CHECKING:
    from kiosk.embedding import EmbeddingExtractor

__all__ = [
    "Prediction",
    "SaveCancelled",
    "SaveError",
    "SaveReport",
    "SessionContents",
    "SessionEvents",
    "TeachingSession",
    "TrainedHead",
]

# Save checks the written model on new views of at most this many samples per
# class and about this many in all: each view costs two inferences (~6 ms each
# on 2 cores), and Save should take about a second, not ten, with many classes.
MAX_CHECK_PER_CLASS = 20
MAX_CHECK_TOTAL = 48
# New views made of each checked sample.
FIDELITY_VIEWS = 2


@dataclass(frozen=True, eq=False)
class SessionContents:
    """Everything a session holds, as one value: what a load swaps in.

    Attributes:
        classes: the classes in order, each with its samples.
        head: the trained head, or None.
        settings: the current training settings.
        next_ids: (next class id, next sample id), so ids are never reused.
    """

    classes: tuple[ClassRecord, ...]
    head: TrainedHead | None
    settings: TrainingSettings
    next_ids: tuple[int, int] = (0, 0)

    @property
    def num_samples(self) -> int:
        return sum(len(c.samples) for c in self.classes)


class SessionEvents(SignalGroup):
    """Changes of the session's own facts (the store announces its own)."""

    headChanged = Signal(object)  # TrainedHead | None
    settingsChanged = Signal(object)  # TrainingSettings


class TeachingSession:
    """Capture, train, predict and save; see the module docstring.

    Attributes:
        extractor: the embedding extractor (shared; it locks itself).
        store: the classes and samples.
        history: undo and redo of captures and class changes.
        predictor: live predictions and novelty (``kiosk.predict``).
        events: ``SessionEvents``.
        default_settings: what Settings' "defaults" means (the config file's).
    """

    def __init__(
        self,
        extractor: EmbeddingExtractor | Any,
        store: EmbeddingStore | None = None,
        *,
        settings: TrainingSettings | None = None,
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
        self.events = SessionEvents()
        self.history = History(store)
        self.default_settings = settings or TrainingSettings()
        self._settings = self.default_settings
        self._head: TrainedHead | None = None
        self._train_lock = threading.Lock()
        self.predictor = Predictor(
            store, extractor, lambda: self._head, lambda: self._settings.imprint_temperature
        )

    # -- settings -----------------------------------------------------------------

    @property
    def settings(self) -> TrainingSettings:
        """The current training settings (the next Train uses them)."""
        return self._settings

    def set_settings(self, settings: TrainingSettings) -> None:
        """Change the current training settings; emits ``events.settingsChanged``."""
        if not isinstance(settings, TrainingSettings):
            raise TypeError(f"expected TrainingSettings, got {type(settings).__name__}")
        if settings == self._settings:
            return
        self._settings = settings
        self.events.settingsChanged.emit(settings)

    # -- classes ------------------------------------------------------------------

    def add_class(self, name: str | None = None) -> int:
        """Append a class (undoable); returns its index."""
        index = self.store.add_class(name)
        record = ClassRecord(self.store.class_ids[index], self.store.class_names[index])
        self.history.record(ClassAdded(record, index))
        return index

    def rename_class(self, class_index: int, name: str) -> None:
        """Rename a class (undoable); ValueError for a name that cannot be used."""
        class_id = self.store.class_ids[class_index]
        old = self.store.rename_class(class_index, name)
        new = self.store.class_names[class_index]
        if new != old:
            self.history.record(ClassRenamed(class_id, old, new))

    def remove_class(self, class_index: int) -> None:
        """Delete a class and its samples (undoable: they come back together)."""
        record = self.store.remove_class(class_index)
        self.history.record(ClassRemoved(record, class_index))

    def clear_class(self, class_index: int) -> None:
        """Delete every sample of a class, keeping the class (undoable)."""
        class_id = self.store.class_ids[class_index]
        name = self.store.class_names[class_index]
        removed = self.store.clear_class(class_index)
        if removed:
            self.history.record(ClassCleared(class_id, name, removed))

    def extend(self, additions: Sequence[tuple[str, Sequence[Sample]]]) -> tuple[Sample, ...]:
        """Add many samples at once (an import; see ``EmbeddingStore.extend``), undoable as one
        step; returns them as stored. All or nothing."""
        created_ids, added = self.store.extend(additions)
        names = dict(self.store.classes())
        created = tuple(ClassRecord(i, names[i]) for i in created_ids if i in names)
        if added or created:
            self.history.record(Imported(created, added))
        return added

    def undo(self) -> Step | None:
        """Take back the newest step (a burst, a delete...); None when there is none."""
        return self.history.undo()

    def redo(self) -> Step | None:
        """Do again what ``undo`` took back last; None when there is nothing."""
        return self.history.redo()

    # -- capture ------------------------------------------------------------------

    def capture(self, class_index: int, frame: np.ndarray, group: object = None) -> int:
        """Embed a frame and store it in a class; returns the sample id.

        Args:
            class_index: the class to add to.
            frame: (H, W, 3) uint8 RGB of any size (grey and RGBA are converted).
            group: captures of one gesture (a held button) share it and are undone together.

        Raises:
            IndexError: no such class. ValueError: not an image.
            StoreFullError: a store limit is reached.
        """
        if not 0 <= class_index < self.store.num_classes:
            raise IndexError(f"no class {class_index} (there are {self.store.num_classes})")
        data = prepare_capture(self.extractor, frame, mirror=self._settings.flip_augment)
        sample_id = self.store.add_sample(
            class_index, data.embedding, data.thumbnail, image=data.image, flipped=data.flipped
        )
        sample = self.store.sample(sample_id)
        if sample is not None:
            index = self.store.class_index(sample.class_id)
            name = self.store.class_names[index] if index is not None else ""
            self.history.record_capture(sample, name, group)
        return sample_id

    def capture_feedback(self, sample_id: int) -> CaptureFeedback | None:
        """Near-duplicate check of a stored sample against its class's earlier samples.

        None when the sample is gone (undone, class removed) by now.
        """
        sample = self.store.sample(sample_id)
        index = None if sample is None else self.store.class_index(sample.class_id)
        if sample is None or index is None:
            return None
        earlier = [s.embedding for s in self.store.samples(index) if s.id < sample_id]
        matrix = np.stack(earlier) if earlier else np.zeros((0, self.store.feature_dim), np.float32)
        return capture_feedback(sample.embedding, matrix)

    # -- head -----------------------------------------------------------------------

    @property
    def head(self) -> TrainedHead | None:
        """The current head, or None before the first successful training."""
        return self._head

    @property
    def head_indices(self) -> tuple[int, ...] | None:
        """Current store index of each output of the head (None: no usable head)."""
        return head_indices(self._head, self.store.class_ids)

    @property
    def head_is_usable(self) -> bool:
        """A head exists and every class it was trained on still exists."""
        return self.head_indices is not None

    @property
    def head_is_stale(self) -> bool:
        """The samples changed since the head was trained (False without a head)."""
        return is_stale(self._head, self.store.snapshot())

    @property
    def can_train(self) -> bool:
        """At least two classes have at least one sample (empty classes are left out)."""
        return sum(1 for n in self.store.counts() if n > 0) >= 2

    @property
    def is_training(self) -> bool:
        return self._train_lock.locked()

    def train(
        self,
        *,
        callback: Callable[[TrainingProgress], Any] | None = None,
        cancel: threading.Event | Callable[[], bool] | None = None,
        config: TrainingConfig | None = None,
        fitter: Fitter | None = None,
    ) -> TrainingResult:
        """Train a new head on the classes that have samples; blocks until done.

        Runs in the caller's thread (the UI calls it from a worker) on a
        snapshot, so captures may continue meanwhile. On success the new head
        replaces the old one atomically (``events.headChanged``) and the
        history is marked; a cancelled or diverged run keeps the previous head.

        Args:
            callback: called with ``TrainingProgress`` as training goes.
            cancel: a ``threading.Event`` or a callable; set/true stops early.
            config: overrides the settings' ``TrainingConfig`` for this run only.
            fitter: runs each fit; by default in this thread. The kiosk passes
                a ``FitProcess`` so the fit never holds the GUI's interpreter lock.

        Raises:
            ValueError: fewer than two classes have samples.
            RuntimeError: another training run is in progress.
        """
        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError("Training is already running")
        try:
            snapshot = self.store.snapshot()
            settings = self._settings
            if config is not None:
                settings = dataclasses.replace(settings, config=config)
            classes = [i for i, samples in enumerate(snapshot.samples) if samples]
            if len(classes) < 2:
                raise ValueError("Training needs at least two classes with samples")
            data = labelled_embeddings(snapshot, classes)
            names = tuple(snapshot.class_names[i] for i in classes)
            fit = fit_head(
                data, settings, class_names=names, fitter=fitter, callback=callback, cancel=cancel
            )
            if fit.result.cancelled or fit.result.diverged:
                return fit.result
            with_mirror = data.has_mirror if settings.flip_augment else None
            head = TrainedHead(
                model=fit.model,
                class_ids=tuple(snapshot.class_ids[i] for i in classes),
                trained_names=names,
                sample_ids=tuple(tuple(s.id for s in snapshot.samples[i]) for i in classes),
                result=fit.result,
                trained_at=time.time(),
                settings=fit.settings,
                evaluation=fit.evaluation,
                gate=fit.gate,
                mirrored_counts=_mirrored_counts(data, with_mirror),
            )
            self._head = head  # one reference swap: readers see the old or the new head
        finally:
            self._train_lock.release()
        self.history.mark()
        self.events.headChanged.emit(head)
        return fit.result

    # -- prediction ---------------------------------------------------------------

    def predict(self, frame: np.ndarray) -> Prediction | None:
        """Classify a (H, W, 3) uint8 RGB frame with the trained head; None without one."""
        return self.predictor.predict(frame)

    def predict_embedding(self, embedding: np.ndarray) -> Prediction | None:
        """Classify a (D,) embedding with the trained float head (the one Save writes)."""
        return self.predictor.predict_embedding(embedding)

    def predict_live(self, frame: np.ndarray) -> Prediction | None:
        """What the preview shows: the trained head, else the imprinted one."""
        return self.predictor.predict_live(frame)

    def observe(self, frame: np.ndarray) -> tuple[Prediction | None, float | None]:
        """``predict_live`` and ``novelty`` of one frame from a single embedding."""
        return self.predictor.observe(frame)

    def novelty(self, embedding: np.ndarray) -> float | None:
        """How different a (D,) embedding is from every stored sample (0 = captured)."""
        return self.predictor.novelty(embedding)

    # -- saving -------------------------------------------------------------------

    def stage_save(
        self,
        model_path: str | Path,
        labels_path: str | Path | None = None,
        *,
        tool: str = "kiosk",
        extra_checks: Sequence[CheckInput] = (),
    ) -> StagedModel:
        """Phase 1 of Save (``kiosk.export``): build, stage and check; nothing replaced yet.

        Raises:
            SaveError: no usable head, or the model cannot be built, written or loaded.
        """
        head = self._head
        indices = self.head_indices
        if head is None:
            raise SaveError("Nothing to save yet: train the classes first")
        if indices is None:
            raise SaveError("A class the model was trained on has been deleted: train again first")
        names = self.store.class_names
        checks = [*self.check_inputs(head), *extra_checks]
        return stage_model(
            head,
            [names[i] for i in indices],
            self.extractor,
            model_path,
            labels_path,
            checks=checks,
            tool=tool,
        )

    def commit_save(self, staged: StagedModel) -> SaveReport:
        """Phase 2 of Save: put the staged files in place; marks the history."""
        report = staged.commit()
        self.history.mark()
        return report

    def save(
        self,
        model_path: str | Path,
        labels_path: str | Path | None = None,
        *,
        confirm: Callable[[SaveReport], bool] | None = None,
        fidelity_threshold: float | None = None,
    ) -> SaveReport:
        """Write the extractor + head as one .tflite and labels.txt, checked, atomically.

        ``stage_save``, then, when some class agrees less than
        ``fidelity_threshold`` and ``confirm`` is given, ``confirm(report)``
        decides; then ``commit_save``.

        Raises:
            SaveCancelled: ``confirm`` returned False; nothing was written.
            SaveError: see ``stage_save``; earlier files are left as they were.
        """
        with self.stage_save(model_path, labels_path) as staged:
            report = staged.report
            if (
                confirm is not None
                and report.low_fidelity_classes(fidelity_threshold)
                and not confirm(report)
            ):
                raise SaveCancelled("Not saved: the quantized model disagrees too often")
            return self.commit_save(staged)

    def check_inputs(self, head: TrainedHead) -> list[CheckInput]:
        """The inputs of Save's fidelity check: new views of stored samples.

        After the refit the head has fitted every stored sample and its mirror,
        so agreement on them says little; each stored sample (spread evenly over
        each head class's captures) gives ``FIDELITY_VIEWS`` cropped, shifted,
        rotated, re-lit and sometimes mirrored views (``kiosk.learn.fidelity``),
        each embedded here for the float head.
        """
        snapshot = self.store.snapshot()
        per_class = min(
            MAX_CHECK_PER_CLASS, max(1, math.ceil(MAX_CHECK_TOTAL / max(1, head.num_classes)))
        )
        position = {class_id: i for i, class_id in enumerate(snapshot.class_ids)}
        inputs: list[np.ndarray] = []
        outputs: list[int] = []
        for output, class_id in enumerate(head.class_ids):
            index = position.get(class_id)
            if index is None:
                continue
            with_image = [s for s in snapshot.samples[index] if s.image]
            if len(with_image) > per_class:
                picks = np.linspace(0, len(with_image) - 1, per_class).round().astype(int)
                with_image = [with_image[i] for i in picks]
            for sample in with_image:
                try:
                    decoded = decode_model_input(sample.image or b"")
                except ValueError:
                    continue
                if inputs and decoded.shape != inputs[0].shape:
                    continue  # stored for another model input size
                inputs.append(decoded)
                outputs.append(output)
        if not inputs:
            return []
        views = fidelity_inputs(np.stack(inputs), copies=FIDELITY_VIEWS, seed=0)
        return [
            CheckInput(
                view,
                np.asarray(self.extractor.embed_input(view), np.float32),
                outputs[int(source)],
                views.description,
            )
            for view, source in zip(views.inputs, views.source, strict=True)
        ]

    # -- loading ------------------------------------------------------------------

    def contents(self) -> SessionContents:
        """Everything the session holds now, as one value (cheap: nothing is copied)."""
        snapshot = self.store.snapshot()
        return SessionContents(
            classes=snapshot.records(),
            head=self._head,
            settings=self._settings,
            next_ids=self.store.next_ids,
        )

    def replace(self, contents: SessionContents) -> None:
        """The one load operation: swap in new contents all at once.

        Everything is checked first (ids, names, embedding sizes, the store's
        limits); on any error the session is exactly as it was. Then classes,
        samples, head and settings change together and ``store.events.replaced``
        is emitted once; the history is cleared.

        Raises:
            ValueError: the contents are inconsistent or made for another feature size.
            StoreFullError: they exceed the store's limits.
            RuntimeError: training is running.
        """
        head = contents.head
        if head is not None and head.model.feature_dim != self.store.feature_dim:
            raise ValueError(
                f"the head takes {head.model.feature_dim}-d embeddings, "
                f"the store holds {self.store.feature_dim}-d ones"
            )
        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError("Training is running: wait for it to finish first")
        try:

            def swap() -> None:
                self._head = head
                self._settings = contents.settings

            self.store.replace(contents.classes, contents.next_ids, on_swap=swap)
        finally:
            self._train_lock.release()
        self.history.clear()


def labelled_embeddings(snapshot: StoreSnapshot, classes: Sequence[int]) -> LabelledEmbeddings:
    """The training data of some classes: labels are positions in ``classes``;
    mirrored embeddings come from the samples that have them."""
    samples = [s for i in classes for s in snapshot.samples[i]]
    x, y = snapshot.as_arrays(classes)
    has_mirror = np.array([s.flipped is not None for s in samples], bool)
    mirrored = np.zeros_like(x)
    for row, sample in enumerate(samples):
        if sample.flipped is not None:
            mirrored[row] = sample.flipped
    return LabelledEmbeddings(x, y, len(classes), mirrored, has_mirror)


def _mirrored_counts(data: LabelledEmbeddings, has_mirror: np.ndarray | None) -> tuple[int, ...]:
    if has_mirror is None:
        return (0,) * data.num_classes
    return tuple(int(n) for n in np.bincount(data.y[has_mirror], minlength=data.num_classes))
