"""From a trained head to a model on disk: the one pipeline of Save and kiosk-train.

Two phases, so no thread ever waits for a question asked on another:

1. ``stage_model`` builds the .tflite (the extractor with the quantized head and
   the metadata, in one flatbuffer edit) and labels.txt, writes both to
   temporary files beside their targets, loads the staged model back in the
   interpreter, reads its labels back, and measures how often it agrees with the
   float head on check inputs. It returns a ``StagedModel`` whose ``report``
   says what was checked and how well it agreed, class by class.
2. The caller decides (ask the operator when a class agrees too rarely), then
   ``commit()`` moves the files into place (model, then labels) or
   ``discard()`` deletes them. Earlier files are untouched until ``commit``.

``model_metadata`` is the one builder of what a saved model says about itself.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kiosk.atomic import StagedFiles
from kiosk.heads import TrainedHead
from kiosk.labels import format_labels
from kiosk.learn.evaluation import per_class_agreement
from kiosk.learn.metadata import read_metadata
from kiosk.vision import runtime

__all__ = [
    "FIDELITY_THRESHOLD",
    "CheckInput",
    "SaveCancelled",
    "SaveError",
    "SaveReport",
    "SavedModel",
    "StagedModel",
    "model_metadata",
    "stage_model",
]

# A class whose saved (quantized) model agrees with the float head on fewer
# than this share of its checked inputs is named, and the kiosk asks first.
FIDELITY_THRESHOLD = 0.98


class SaveError(Exception):
    """The model could not be built, written or loaded back; ``str(error)`` says why.
    Earlier files are intact."""


class SaveCancelled(SaveError):
    """The caller declined a staged model (e.g. a low-fidelity one); nothing was written."""


class _Extractor(Protocol):
    model_path: Path
    feature_dim: int
    on_edgetpu: bool


@dataclass(frozen=True, eq=False)
class CheckInput:
    """One input of the fidelity check.

    Attributes:
        model_input: (H, W, 3) uint8 RGB at the model's input size.
        embedding: (D,) float32 embedding of ``model_input`` (for the float head).
        group: the head output of its class (agreement is reported per group).
        kind: what it is, in words, for the report (the same for inputs of one kind).
    """

    model_input: np.ndarray
    embedding: np.ndarray
    group: int
    kind: str = "sample"


@dataclass(frozen=True)
class SaveReport:
    """What was written (or staged) and how well the saved model agrees with the float head.

    Attributes:
        model_path, labels_path: the targets.
        agreement: share of checked inputs where the saved (quantized) model's
            top-1 equals the float head's, or None when not checked.
        num_checked: how many inputs were run through the saved model.
        seconds: time the whole save took.
        note: why the check was skipped or limited, if it was.
        per_class_agreement: {class name: agreement on that class's checked
            inputs, or None}, in output order; empty when not checked.
        checked: what the check ran on, in words ("40 mirrored copies, ...").
        committed: whether the files are in place.
    """

    model_path: Path
    labels_path: Path
    agreement: float | None
    num_checked: int
    seconds: float
    note: str | None = None
    per_class_agreement: dict[str, float | None] = field(default_factory=dict)
    checked: str = ""
    committed: bool = False

    def low_fidelity_classes(self, threshold: float | None = None) -> list[str]:
        """Names of the classes whose agreement is below ``threshold`` (default
        ``FIDELITY_THRESHOLD``)."""
        threshold = FIDELITY_THRESHOLD if threshold is None else threshold
        return [
            name
            for name, value in self.per_class_agreement.items()
            if value is not None and value < threshold
        ]


def model_metadata(
    head: TrainedHead, class_names: Sequence[str], extractor: Any, tool: str
) -> dict[str, Any]:
    """What a saved model says about itself (schema in ``kiosk.learn.metadata``).

    Args:
        head: the head being saved (its settings, counts, metrics, threshold).
        class_names: the current names of its classes, in output order.
        extractor: the extractor it is appended to.
        tool: "kiosk" or "kiosk-train".
    """
    result, evaluation = head.result, head.evaluation
    return {
        "class_names": list(class_names),
        # Samples each class was trained on (hold-out included), in output order.
        "sample_counts": list(head.sample_counts),
        "mirrored_counts": list(head.mirrored_counts),
        "training": {**head.settings.to_json(), "tool": tool},
        "metrics": {
            "optimizer": result.optimizer,
            "iterations": int(result.iterations),
            "train_accuracy": float(result.train_accuracy),
            "val_accuracy": None if result.val_accuracy is None else float(result.val_accuracy),
            "val_per_class_accuracy": (
                None if evaluation is None else list(evaluation.per_class_accuracy)
            ),
        },
        # Below it a prediction should be shown as "not sure"; the whole rule
        # (with the novelty limit) is "not_sure" (kiosk.learn.metadata.read_not_sure_gate).
        "confidence_threshold": head.confidence_threshold,
        "not_sure": None if head.gate is None else head.gate.to_json(),
        "extractor": extractor.model_path.name,
        # Duck-typed extractors (tests, wrappers) may not carry a digest.
        "extractor_sha256": getattr(extractor, "sha256", None),
        "feature_dim": int(head.model.weights.shape[0]),
    }


class SavedModel:
    """A saved model loaded in the interpreter, to run on model inputs.

    Raises SaveError when the model does not load.
    """

    def __init__(self, model: bytes | Path, *, edgetpu: bool, num_threads: int | None = None):
        try:
            self._interpreter = runtime.load_interpreter(
                model, num_threads=num_threads, edgetpu=edgetpu, name="the saved model"
            )
        except ValueError as error:
            raise SaveError(f"The saved model does not load: {error}") from error
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        height, width = (int(d) for d in self._input["shape"][1:3])
        self.input_shape = (height, width, 3)
        self.takes_uint8 = self._input["dtype"] == np.uint8

    def top1(self, model_input: np.ndarray) -> int:
        """The output index with the highest score for one (H, W, 3) uint8 model input."""
        self._interpreter.set_tensor(self._input["index"], model_input[np.newaxis])
        self._interpreter.invoke()
        return int(np.argmax(self._interpreter.get_tensor(self._output["index"]).reshape(-1)))


class StagedModel:
    """A model and labels file written to temporaries and checked, not yet in place.

    Use as a context manager (discarded unless committed) or call ``commit`` /
    ``discard`` yourself, on any thread.

    Attributes:
        report: what was staged and checked (``committed`` False).
    """

    def __init__(self, files: StagedFiles, report: SaveReport, started: float) -> None:
        self._files = files
        self.report = report
        self._started = started

    def commit(self) -> SaveReport:
        """Move the files into place; returns the final report.

        Raises SaveError (earlier files untouched when the model's move failed).
        """
        try:
            self._files.commit()
        except OSError as error:
            raise SaveError(describe_os_error(error, self.report.model_path.parent)) from error
        self.report = replace(
            self.report, committed=True, seconds=time.perf_counter() - self._started
        )
        return self.report

    def discard(self) -> None:
        """Delete the staged files; nothing on disk changed."""
        self._files.discard()

    def __enter__(self) -> StagedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def stage_model(
    head: TrainedHead,
    class_names: Sequence[str],
    extractor: _Extractor,
    model_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str] | None = None,
    *,
    checks: Sequence[CheckInput] = (),
    tool: str = "kiosk",
    file_mode: int | None = None,
) -> StagedModel:
    """Build, stage and check a model (phase 1; see the module docstring).

    Args:
        head: the trained head.
        class_names: the current names of its classes, in output order.
        extractor: the extractor the head sits on.
        model_path: the .tflite to write; ``labels_path`` defaults to labels.txt beside it.
        checks: inputs to compare the saved model and the float head on.
        tool: recorded in the metadata ("kiosk", "kiosk-train").
        file_mode: permissions of the new files (default: as ``open`` makes them).

    Raises:
        SaveError: the targets cannot work, the model cannot be built or
            written, it does not load back, or its labels do not read back.
            Nothing is left on disk then.
    """
    started = time.perf_counter()
    model_path = Path(model_path)
    labels_path = model_path.parent / "labels.txt" if labels_path is None else Path(labels_path)
    names = [str(n) for n in class_names]
    if len(names) != head.num_classes:
        raise SaveError("The head and the class names do not match")
    check_targets(model_path, labels_path)
    try:
        model_bytes = head.model.serialize_model(
            extractor.model_path, metadata=model_metadata(head, names, extractor, tool)
        )
    except Exception as error:  # a bug or a bad extractor: a message, never a crash
        raise SaveError(f"The model could not be built: {error}") from error
    labels = format_labels(names).encode("utf-8")
    try:
        files = StagedFiles({model_path: model_bytes, labels_path: labels}, file_mode)
    except OSError as error:
        raise SaveError(describe_os_error(error, model_path.parent)) from error
    try:
        report = _check(files.temporaries[model_path], model_bytes, head, names, extractor, checks)
    except BaseException:
        files.discard()
        raise
    report = replace(
        report,
        model_path=model_path,
        labels_path=labels_path,
        seconds=time.perf_counter() - started,
    )
    return StagedModel(files, report, started)


def _check(
    staged: Path,
    model_bytes: bytes,
    head: TrainedHead,
    names: list[str],
    extractor: _Extractor,
    checks: Sequence[CheckInput],
) -> SaveReport:
    """Load the staged model, read its labels back, and compare it with the float head."""
    empty = SaveReport(staged, staged, None, 0, 0.0)
    compiled = runtime.is_edgetpu_model(model_bytes) and not extractor.on_edgetpu
    # A model that cannot run must never replace a working one (an Edge TPU model
    # cannot even be loaded without an Edge TPU: then only its labels are read).
    saved = None if compiled else SavedModel(staged, edgetpu=extractor.on_edgetpu)
    try:
        stored = (read_metadata(staged) or {}).get("class_names")
    except ValueError as error:
        raise SaveError(f"The saved model does not load: {error}") from error
    if stored != names:
        raise SaveError("The saved model's stored labels do not read back as written")
    if saved is None:
        note = "Not checked: the model is compiled for the Edge TPU and none is in use"
        return replace(empty, note=note)
    if not saved.takes_uint8:
        return replace(empty, note="Not checked: the model input is not uint8")
    usable = [c for c in checks if c.model_input.shape == saved.input_shape]
    if not usable:
        return replace(empty, note="Not checked: no stored images at the model's input size")
    embeddings = np.stack([c.embedding for c in usable]).astype(np.float32)
    expected = np.argmax(
        np.asarray(head.model.predict_proba(embeddings)).reshape(len(usable), -1), axis=1
    )
    got = np.array([saved.top1(c.model_input) for c in usable])
    groups = np.array([c.group for c in usable])
    per_class = per_class_agreement(expected, got, groups, head.num_classes)
    return replace(
        empty,
        agreement=float(np.mean(expected == got)),
        num_checked=len(usable),
        per_class_agreement=dict(zip(names, per_class, strict=True)),
        checked=_describe_checks(usable),
    )


def _describe_checks(checks: Sequence[CheckInput]) -> str:
    """What the check ran on: each kind's description, with how many were usable."""
    kinds: dict[str, int] = {}
    for check in checks:
        kinds[check.kind] = kinds.get(check.kind, 0) + 1
    return "; ".join(kind if count > 1 else f"1 input: {kind}" for kind, count in kinds.items())


def check_targets(model_path: Path, labels_path: Path) -> None:
    """Clear SaveErrors for targets that cannot work, before any work is done."""
    if model_path.resolve() == labels_path.resolve():
        raise SaveError("The model and the labels cannot be the same file")
    for path in (model_path, labels_path):
        if path.is_dir():
            raise SaveError(f"Cannot save to {path}: it is a folder")
        if not path.parent.is_dir():
            raise SaveError(f"Cannot save to {path}: the folder {path.parent} does not exist")
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise SaveError(f"Cannot save to {path}: it is not a regular file")


def describe_os_error(error: OSError, folder: Path) -> str:
    """One line for the user about a failed write into ``folder``."""
    where = Path(error.filename).parent if error.filename else folder
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot save to {where}: the folder is not writable"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Cannot save to {where}: the disk is full"
    return f"Cannot save to {where}: {error.strerror or error}"
