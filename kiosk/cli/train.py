"""``kiosk-train``: retrain the last layer of an embedding extractor on an image folder.

The command-line counterpart of the kiosk, and a drop-in for pycoral's
``backprop_last_layer.py``: one sub-folder of images per class in, a
``retrained_model.tflite`` plus ``labels.txt`` out, checked by reloading the
saved model and measuring it on a held-out test split.
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
from kiosk.atomic import atomic_write, staged_writes
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
from kiosk.evaluation import per_class_agreement
from kiosk.learn import (
    DEFAULT_TRAINING,
    PYCORAL_TRAINING,
    SoftmaxRegression,
    TrainingConfig,
    TrainingProgress,
    TrainingResult,
)
from kiosk.learn.metadata import read_metadata
from kiosk.models import ModelError, resolve_model
from kiosk.safe_io import writable_target
from kiosk.session import FIDELITY_THRESHOLD as FIDELITY
from kiosk.session import format_labels
from kiosk.vision.runtime import load_interpreter

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
    parser.add_argument("--val-fraction", type=finite_float, default=0.1, help="default 0.1")
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
    """Embed, split, train, save and verify; returns the metrics dict."""
    config = _training_config(args)
    dataset = scan_image_folder(args.data_dir)
    _prepare_output_dir(args.output_dir)
    extractor = EmbeddingExtractor(resolve_model(args.embedding_extractor), args.num_threads)
    where = "Edge TPU" if extractor.on_edgetpu else "CPU"
    print(
        f"{len(dataset.paths)} images of {len(dataset.class_names)} classes; "
        f"extractor {extractor.model_path.name} on the {where}",
        file=sys.stderr,
    )

    started = time.perf_counter()
    embeddings, labels, kept_paths = _embed_folder(extractor, dataset.paths, dataset.labels)
    embed_seconds = time.perf_counter() - started
    _check_every_class_readable(dataset.class_names, labels)

    train, val, test = stratified_split(labels, args.val_fraction, args.test_fraction, args.seed)
    data = {
        "data_train": embeddings[train],
        "labels_train": labels[train],
        "data_val": embeddings[val],
        "labels_val": labels[val],
    }
    model = SoftmaxRegression(
        extractor.feature_dim,
        len(dataset.class_names),
        weight_scale=config.weight_scale,
        reg=config.reg,
        seed=args.seed,
    )
    bar = ProgressBar("training", config.num_iter)

    def report(progress: TrainingProgress) -> None:
        bar.update(progress.iteration, f"loss {progress.loss:.4f}")

    started = time.perf_counter()
    result = model.fit(data, config, callback=report)
    train_seconds = time.perf_counter() - started
    bar.close(result.iterations)
    if result.diverged:
        raise UserError("training diverged (loss became NaN); lower --learning-rate")

    started = time.perf_counter()
    model_bytes = model.serialize_model(
        extractor.model_path,
        metadata=_model_metadata(
            dataset.class_names, labels[train], config, result, extractor, args.seed
        ),
    )
    serialize_seconds = time.perf_counter() - started
    suffix = "_edgetpu" if extractor.on_edgetpu else ""
    output = args.output_dir / f"retrained_model{suffix}.tflite"
    labels_path = args.output_dir / "labels.txt"
    # Model and labels land together or not at all.
    with staged_writes(
        {output: model_bytes, labels_path: format_labels(dataset.class_names).encode("utf-8")}
    ):
        pass
    # Read the description back from the file on disk: what any later reader sees.
    labels_in_model = (read_metadata(output) or {}).get("class_names")
    if labels_in_model != dataset.class_names:
        raise UserError(f"{output} was written but its stored labels do not read back")

    float_predictions = model.predict(embeddings[test]) if len(test) else np.zeros(0, np.int64)
    float_accuracy = _accuracy(float_predictions, labels[test])
    saved_predictions = None
    if len(test):
        saved_predictions = _predict_saved(
            model_bytes, extractor, [kept_paths[i] for i in test], args.num_threads
        )
    tflite_accuracy = _accuracy(saved_predictions, labels[test])
    agreement = (
        float(np.mean(saved_predictions == float_predictions))
        if saved_predictions is not None
        else None
    )
    # Per true class of the test images: a class the quantized head loses shows here.
    per_class = (
        dict(
            zip(
                dataset.class_names,
                per_class_agreement(
                    float_predictions, saved_predictions, labels[test], len(dataset.class_names)
                ),
                strict=True,
            )
        )
        if saved_predictions is not None
        else {}
    )
    metrics = {
        "num_classes": len(dataset.class_names),
        "class_names": dataset.class_names,
        "num_train": len(train),
        "num_val": len(val),
        "num_test": len(test),
        "num_unreadable": int(len(dataset.paths) - len(kept_paths)),
        "float_test_accuracy": float_accuracy,
        "tflite_test_accuracy": tflite_accuracy,
        "agreement": agreement,
        "per_class_agreement": per_class,
        "labels_in_model": labels_in_model,
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
        "training": dataclasses.asdict(config),
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


def _model_metadata(
    class_names: list[str],
    train_labels: np.ndarray,
    config: TrainingConfig,
    result: TrainingResult,
    extractor: EmbeddingExtractor,
    seed: int,
) -> dict:
    """What the saved model says about itself (schema in ``kiosk.learn.metadata``).

    Test metrics need the saved model, so only training-time metrics are stored.
    """
    counts = np.bincount(train_labels, minlength=len(class_names))
    val = result.val_accuracy
    return {
        "class_names": list(class_names),
        "sample_counts": [int(c) for c in counts],
        "training": {**dataclasses.asdict(config), "seed": seed, "tool": PROGRAM},
        "metrics": {
            "train_accuracy": float(result.train_accuracy),
            "val_accuracy": None if val is None else float(val),
            "iterations": int(result.iterations),
        },
        "extractor": extractor.model_path.name,
        "extractor_sha256": extractor.sha256,
        "feature_dim": int(extractor.feature_dim),
    }


_TRAINING_FLAGS = ("num_iter", "learning_rate", "batch_size", "weight_scale", "reg")


def _training_config(args: argparse.Namespace) -> TrainingConfig:
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
    return dataclasses.replace(
        base, **{field: value for field, value in given.items() if value is not None}
    )


def _prepare_output_dir(folder: Path) -> None:
    """Create the output folder up front, so a bad path fails before minutes of work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder {folder} is not writable")


def _embed_folder(
    extractor: EmbeddingExtractor, paths: list[Path], labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Embed every readable image: ((N, D) float32, (N,) int64, their paths)."""
    bar = ProgressBar("embedding", len(paths))
    rows, kept_labels, kept_paths, unreadable = [], [], [], []
    for done, (path, label) in enumerate(zip(paths, labels, strict=True), start=1):
        image = read_rgb(path)
        if image is None:
            unreadable.append(path)
        else:
            rows.append(extractor.embed(image))
            kept_labels.append(label)
            kept_paths.append(path)
        bar.update(done)
    bar.close()
    if unreadable:
        examples = ", ".join(p.name for p in unreadable[:3])
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        print(
            f"{PROGRAM}: warning: skipped {len(unreadable)} unreadable image file(s): "
            f"{examples}{more}",
            file=sys.stderr,
        )
    embeddings = np.stack(rows) if rows else np.zeros((0, extractor.feature_dim), np.float32)
    return embeddings, np.asarray(kept_labels, np.int64), kept_paths


def _check_every_class_readable(class_names: list[str], labels: np.ndarray) -> None:
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        raise UserError(f"class {empty[0]!r} has no readable image")


def _predict_saved(
    model_bytes: bytes, extractor: EmbeddingExtractor, paths: list[Path], num_threads: int | None
) -> np.ndarray:
    """Top-1 of the saved .tflite on images, run by the interpreter: (n,) int64."""
    # The saved model runs where the extractor runs: on the Edge TPU when it is one.
    interpreter = load_interpreter(
        model_bytes, num_threads=num_threads, edgetpu=extractor.on_edgetpu, name="the saved model"
    )
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    predictions = []
    for path in paths:
        image = read_rgb(path)
        assert image is not None  # it was read once already
        interpreter.set_tensor(input_detail["index"], extractor.preprocess(image)[np.newaxis])
        interpreter.invoke()
        predictions.append(int(np.argmax(interpreter.get_tensor(output_detail["index"])[0])))
    return np.asarray(predictions, np.int64)


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
