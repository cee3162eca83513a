"""``kiosk-train``: retrain the last layer of an embedding extractor on an image folder.

The command-line counterpart of the kiosk, and a drop-in for pycoral's
``backprop_last_layer.py``: one sub-folder of images per class in, a
``retrained_model.tflite`` plus ``labels.txt`` out, checked by reloading the
saved model and measuring it on a held-out test split.

A thin driver over the kiosk's own pipeline: the images (but the test split)
are imported into a ``TeachingSession`` as captures, trained with the window's
recipe and saved through ``kiosk.export``, so a model from here carries the
same metadata (threshold, mirrored copies, settings) as one saved in the window.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from kiosk import logs
from kiosk.atomic import atomic_write
from kiosk.cli.common import (
    ArgumentParser,
    ProgressBar,
    UserError,
    fail,
    finite_float,
    user_path,
)
from kiosk.dataset import read_rgb, scan_image_folder, stratified_split
from kiosk.embedding import EmbeddingExtractor
from kiosk.export import FIDELITY_THRESHOLD as FIDELITY
from kiosk.export import SavedModel, SaveError
from kiosk.learn import DEFAULT_TRAINING, PYCORAL_TRAINING
from kiosk.learn.evaluation import per_class_agreement
from kiosk.learn.metadata import read_metadata
from kiosk.learn.recipe import TrainingSettings
from kiosk.learn.training import TrainingProgress
from kiosk.models import ModelError, resolve_model
from kiosk.persist.images import import_files
from kiosk.safe_io import writable_target
from kiosk.session import TeachingSession
from kiosk.store import EmbeddingStore

PROGRAM = "kiosk-train"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROGRAM,
        description="Train a new softmax last layer on embeddings of an image folder "
        "(one sub-folder per class) and save extractor + head as one quantized .tflite.",
    )
    parser.add_argument(
        "--data-dir", required=True, type=user_path, help="one sub-folder per class"
    )
    parser.add_argument(
        "--embedding-extractor",
        help="extractor .tflite or model name (default: the installed default extractor)",
    )
    parser.add_argument("--output-dir", type=user_path, default=Path("."), help="default: .")
    parser.add_argument(
        "--optimizer",
        choices=("lbfgs", "sgd"),
        default="lbfgs",
        help="lbfgs: the tuned default that converges without flags; sgd: pycoral's "
        "train_with_sgd, whose defaults become lr 0.01, 500 iterations, batch 100",
    )
    tuned, sgd = DEFAULT_TRAINING, PYCORAL_TRAINING
    for flag, field, kind in (
        ("--num-iter", "num_iter", int),
        ("--learning-rate", "learning_rate", finite_float),
        ("--batch-size", "batch_size", int),
        ("--weight-scale", "weight_scale", finite_float),
        ("--reg", "reg", finite_float),
    ):
        parser.add_argument(
            flag,
            type=kind,
            default=None,
            help=f"default {getattr(tuned, field)} (sgd: {getattr(sgd, field)})",
        )
    parser.add_argument(
        "--val-fraction",
        type=finite_float,
        default=TrainingSettings().val_fraction,
        help="share of each class (of 5 images or more) held out to evaluate the head and "
        "set its 'not sure' threshold, as the kiosk does (default "
        f"{TrainingSettings().val_fraction})",
    )
    parser.add_argument("--test-fraction", type=finite_float, default=0.1, help="default 0.1")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--num-threads", type=int, default=None, help="interpreter threads")
    parser.add_argument(
        "--metrics-json",
        type=user_path,
        help="write the run's metrics here (through a symbolic link, to its target)",
    )
    logs.add_log_level_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        logs.setup_logging(PROGRAM, logs.log_level(args.log_level))
        # Checked before minutes of work: a folder, FIFO or device is refused.
        metrics_path = writable_target(args.metrics_json, "metrics") if args.metrics_json else None
        metrics = run(args)
    except (UserError, ModelError, ValueError, OSError) as error:
        return fail(PROGRAM, _one_line(error))
    except KeyboardInterrupt:
        return fail(PROGRAM, "interrupted; nothing was written")
    if metrics_path is not None:
        try:
            # Written to the target of a symbolic link, so the link stays a link.
            atomic_write(metrics_path, json.dumps(metrics, indent=2).encode() + b"\n")
        except OSError as error:
            return fail(PROGRAM, f"cannot write {args.metrics_json}: {error.strerror or error}")
    return 0


def run(args: argparse.Namespace) -> dict:
    """Import, train and save exactly as the kiosk window does, then test; returns metrics.

    The folder's images are split into a test set and the rest; the rest is
    imported into a ``TeachingSession`` (each image captured like a camera
    frame, with its mirrored copy), trained with the window's recipe, staged,
    checked and committed through ``kiosk.export``; the saved model is then
    run on the test images.
    """
    settings = _training_settings(args)
    dataset = scan_image_folder(args.data_dir)
    _prepare_output_dir(args.output_dir)
    extractor = EmbeddingExtractor(resolve_model(args.embedding_extractor), args.num_threads)
    where = "Edge TPU" if extractor.on_edgetpu else "CPU"
    print(
        f"{len(dataset.paths)} images of {len(dataset.class_names)} classes; "
        f"extractor {extractor.model_path.name} on the {where}",
        file=sys.stderr,
    )
    pool, _, test = stratified_split(dataset.labels, 0.0, args.test_fraction, args.seed)
    # No store limits: the folder is the whole lesson.
    store = EmbeddingStore(extractor.feature_dim, max_samples_per_class=10**9, max_bytes=1 << 62)
    session = TeachingSession(extractor, store, settings=settings)

    started = time.perf_counter()
    bar = ProgressBar("embedding", len(pool))
    groups = [
        (name, [dataset.paths[i] for i in pool if dataset.labels[i] == label])
        for label, name in enumerate(dataset.class_names)
    ]
    report = import_files(session, groups, progress=lambda done, total: bar.update(done))
    bar.close()
    embed_seconds = time.perf_counter() - started
    _warn_unreadable(report.skipped)
    _check_every_class_readable(session)

    bar = ProgressBar("training", settings.config.num_iter)

    def show(progress: TrainingProgress) -> None:
        bar.total = progress.num_iter  # the recipe's count: a refit adds to the schedule
        bar.update(progress.iteration, f"loss {progress.loss:.4f}")

    started = time.perf_counter()
    result = session.train(callback=show)
    train_seconds = time.perf_counter() - started
    bar.close(result.iterations)
    if result.diverged:
        raise UserError("training diverged (loss became NaN); lower --learning-rate")
    head = session.head
    assert head is not None

    started = time.perf_counter()
    suffix = "_edgetpu" if extractor.on_edgetpu else ""
    output = args.output_dir / f"retrained_model{suffix}.tflite"
    labels_path = args.output_dir / "labels.txt"
    try:
        saved = session.commit_save(session.stage_save(output, labels_path, tool=PROGRAM))
    except SaveError as error:
        raise UserError(str(error)) from None
    serialize_seconds = time.perf_counter() - started
    class_names = list(session.store.class_names)
    labels_in_model = (read_metadata(output) or {}).get("class_names")

    # Test labels: the store index of each test image's class (the head's output order).
    test_labels = np.array([dataset.labels[i] for i in test], np.int64)
    float_predictions, saved_predictions, readable = _predict_test(
        session, output, [dataset.paths[i] for i in test], args.num_threads
    )
    test_labels = test_labels[readable]
    agreement = float(np.mean(saved_predictions == float_predictions)) if len(test_labels) else None
    # Per true class of the test images: a class the quantized head loses shows here.
    per_class = (
        dict(
            zip(
                class_names,
                per_class_agreement(
                    float_predictions, saved_predictions, test_labels, len(class_names)
                ),
                strict=True,
            )
        )
        if len(test_labels)
        else {}
    )
    evaluation = head.evaluation
    metrics = {
        "num_classes": len(class_names),
        "class_names": class_names,
        "num_train": int(session.store.total_samples),
        "num_val": 0 if evaluation is None else int(evaluation.num_samples),
        "num_test": len(test_labels),
        "num_unreadable": len(report.skipped) + int(np.count_nonzero(~readable)),
        "num_mirrored": int(sum(head.mirrored_counts)),
        "float_test_accuracy": _accuracy(float_predictions, test_labels),
        "tflite_test_accuracy": _accuracy(saved_predictions, test_labels),
        "agreement": agreement,
        "per_class_agreement": per_class,
        "save_check": {
            "agreement": saved.agreement,
            "checked": saved.checked or saved.note,
            "per_class": saved.per_class_agreement,
        },
        "labels_in_model": labels_in_model,
        "confidence_threshold": head.confidence_threshold,
        "train_accuracy": float(result.train_accuracy),
        "val_accuracy": None if result.val_accuracy is None else float(result.val_accuracy),
        "iterations": int(result.iterations),
        "embed_seconds": round(embed_seconds, 4),
        "train_seconds": round(train_seconds, 4),
        "serialize_seconds": round(serialize_seconds, 4),
        "output_model": str(output),
        "labels": str(labels_path),
        "extractor": str(extractor.model_path),
        "extractor_sha256": extractor.sha256,
        "training": settings.to_json(),
        "seed": args.seed,
    }
    _print_summary(metrics)
    low = {
        name: value for name, value in per_class.items() if value is not None and value < FIDELITY
    }
    if low:
        print(
            f"{PROGRAM}: warning: the saved (quantized) model agrees with the float head on "
            f"less than {100 * FIDELITY:.0f}% of the test images of "
            + ", ".join(f"{name} ({100 * value:.1f}%)" for name, value in low.items()),
            file=sys.stderr,
        )
    return metrics


_TRAINING_FLAGS = ("num_iter", "learning_rate", "batch_size", "weight_scale", "reg")


def _training_settings(args: argparse.Namespace) -> TrainingSettings:
    checks = [
        (args.num_iter is None or args.num_iter >= 1, "--num-iter must be at least 1"),
        (args.learning_rate is None or args.learning_rate > 0, "--learning-rate must be positive"),
        (args.batch_size is None or args.batch_size >= 1, "--batch-size must be at least 1"),
        (args.weight_scale is None or args.weight_scale >= 0, "--weight-scale must be >= 0"),
        (args.reg is None or args.reg >= 0, "--reg must not be negative"),
        (0 <= args.val_fraction < 1, "--val-fraction must be in [0, 1)"),
        (0 <= args.test_fraction < 1, "--test-fraction must be in [0, 1)"),
        (
            args.val_fraction + args.test_fraction < 1,
            "--val-fraction + --test-fraction must be < 1",
        ),
        (args.num_threads is None or args.num_threads >= 1, "--num-threads must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    base = PYCORAL_TRAINING if args.optimizer == "sgd" else DEFAULT_TRAINING
    given = {field: getattr(args, field) for field in _TRAINING_FLAGS}
    config = dataclasses.replace(
        base, **{field: value for field, value in given.items() if value is not None}
    )
    return TrainingSettings(config=config, val_fraction=args.val_fraction, seed=args.seed)


def _prepare_output_dir(folder: Path) -> None:
    """Create the output folder up front, so a bad path fails before minutes of work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder {folder} is not writable")


def _warn_unreadable(unreadable: list[Path]) -> None:
    if unreadable:
        examples = ", ".join(p.name for p in unreadable[:3])
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        print(
            f"{PROGRAM}: warning: skipped {len(unreadable)} unreadable image file(s): "
            f"{examples}{more}",
            file=sys.stderr,
        )


def _check_every_class_readable(session: TeachingSession) -> None:
    for name, count in zip(session.store.class_names, session.store.counts(), strict=True):
        if count == 0:
            raise UserError(f"class {name!r} has no readable image")


def _predict_test(
    session: TeachingSession, model: Path, paths: list[Path], num_threads: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float head top-1, saved model top-1, which test images were readable).

    Both see the same preprocessed image: the float head through the
    extractor, the saved model through the interpreter (on the Edge TPU when
    the extractor runs there).
    """
    extractor = session.extractor
    saved = SavedModel(model, edgetpu=extractor.on_edgetpu, num_threads=num_threads)
    head = session.head
    assert head is not None
    floats, quantized, readable = [], [], []
    for path in paths:
        image = read_rgb(path)
        readable.append(image is not None)
        if image is None:
            continue
        model_input = extractor.preprocess(image)
        embedding = extractor.embed_input(model_input)
        floats.append(int(np.argmax(head.model.predict_proba(embedding))))
        quantized.append(saved.top1(model_input))
    return np.asarray(floats, np.int64), np.asarray(quantized, np.int64), np.asarray(readable, bool)


def _accuracy(predictions: np.ndarray | None, labels: np.ndarray) -> float | None:
    if predictions is None or len(labels) == 0:
        return None
    return float(np.mean(predictions == labels))


def _print_summary(metrics: dict) -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    print(f"saved {metrics['output_model']} and {metrics['labels']}")
    print(
        f"train/val/test: {metrics['num_train']}/{metrics['num_val']}/{metrics['num_test']}; "
        f"test accuracy: float head {pct(metrics['float_test_accuracy'])}, "
        f"saved model {pct(metrics['tflite_test_accuracy'])}, "
        f"agreement {pct(metrics['agreement'])}"
    )
    print(
        f"time: embedding {metrics['embed_seconds']:.2f} s, "
        f"training {metrics['train_seconds'] * 1000:.0f} ms, "
        f"saving {metrics['serialize_seconds'] * 1000:.0f} ms"
    )


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and error.filename:
        text = f"{error.strerror}: {error.filename}"
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
