"""``kiosk-extractor``: cut the classification head off a quantized classifier.

The result is an embedding extractor for ``kiosk`` and ``kiosk-train``: the same
network up to the feature vector that fed the classifier's logits layer (for
MobileNet v2, the pooled 1280-d tensor), as a new, smaller .tflite.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from kiosk import logs
from kiosk.atomic import atomic_write
from kiosk.cli.common import ArgumentParser, fail, user_path
from kiosk.learn import tflite_head
from kiosk.learn.surgery import cut_classifier_head
from kiosk.safe_io import writable_target

PROGRAM = "kiosk-extractor"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROGRAM,
        description="Turn a uint8 quantized image classifier (.tflite) into an embedding "
        "extractor by removing its logits layer and the ops after it.",
    )
    parser.add_argument("classifier", type=user_path, help="the classifier .tflite (CPU build)")
    parser.add_argument(
        "-o",
        "--output",
        type=user_path,
        help="where to write the extractor (default: <input stem>_embedding_extractor.tflite "
        "beside the input); a symbolic link is written through, to its target",
    )
    logs.add_log_level_argument(parser)
    return parser


def default_output(classifier: Path) -> Path:
    """``<stem>_embedding_extractor.tflite`` in the classifier's folder."""
    return classifier.with_name(f"{classifier.stem}_embedding_extractor.tflite")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = args.output or default_output(args.classifier)
    try:
        logs.setup_logging(PROGRAM, logs.log_level(args.log_level))
        model = tflite_head.read_model_bytes(args.classifier)
        target = writable_target(output, "output")
        # realpath never raises (a symlink loop resolves to some path): compare what is written.
        if os.path.realpath(target) == os.path.realpath(args.classifier):
            raise ValueError("the output would overwrite the classifier; choose another -o")
        started = time.perf_counter()
        result = cut_classifier_head(model)
        seconds = time.perf_counter() - started
        atomic_write(target, result.model)
    except ValueError as error:
        return fail(PROGRAM, error)
    except OSError as error:
        return fail(PROGRAM, f"cannot write {output}: {error.strerror or error}")
    print(f"feature tensor: {result.feature_name} {list(result.feature_shape)} uint8")
    print(f"removed ops: {', '.join(result.removed_ops)}")
    print(
        f"removed {result.removed_tensors} tensors and {result.removed_buffers} buffers"
        + (
            f"; dropped metadata {', '.join(result.dropped_metadata)}"
            if result.dropped_metadata
            else ""
        )
    )
    if result.rewritten_metadata:
        print(
            f"rewrote metadata {', '.join(result.rewritten_metadata)} for the feature output "
            "(name, author, license and input normalization kept)"
        )
    if result.dropped_files:
        print(f"left out the packed files {', '.join(result.dropped_files)} (the old classes)")
    print(
        f"wrote {output} ({len(result.model):,} bytes, was {len(model):,}) "
        f"in {seconds * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
