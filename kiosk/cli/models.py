"""``kiosk-models``: list the known models and fetch them, checksum-verified."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kiosk import logs, models
from kiosk.cli.common import ArgumentParser, ProgressBar, fail, user_path
from kiosk.learn.metadata import read_metadata
from kiosk.learn.tflite_head import read_model_bytes
from kiosk.vision.model_check import check_model_structure

PROGRAM = "kiosk-models"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROGRAM,
        description="List and fetch the TFLite models kiosk uses. Models are verified "
        "against the sha256 in kiosk's manifest before they are installed.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show known models and whether they are installed")
    listing.add_argument(
        "--dir", type=user_path, help="model folder (default: the user data folder)"
    )
    get = commands.add_parser(
        "fetch",
        help="download models (default: the CPU and Edge TPU embedding extractors)",
        description="Download models by URL, or copy them from a local folder "
        "(--source or KIOSK_MODEL_SOURCE) on a machine without internet.",
    )
    get.add_argument("names", nargs="*", help="model names (see `kiosk-models list`)")
    get.add_argument("--all", action="store_true", help="fetch every known model")
    get.add_argument("--source", help="local folder or base URL to fetch from")
    get.add_argument(
        "--dir", type=user_path, help="where to install (default: the user data folder)"
    )
    commands.add_parser("where", help="print the extractor that `kiosk` would use by default")
    info = commands.add_parser(
        "info", help="show the labels and training facts stored inside a saved model"
    )
    info.add_argument("model", type=user_path, help="a .tflite saved by kiosk or kiosk-train")
    info.add_argument("--json", action="store_true", help="print the raw metadata as JSON")
    logs.add_log_level_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        logs.setup_logging(PROGRAM, logs.log_level(args.log_level))
        if args.command == "list":
            return _list(args.dir or models.user_model_dir())
        if args.command == "where":
            print(models.resolve_model())
            return 0
        if args.command == "info":
            return _info(args.model, as_json=args.json)
        return _fetch(args)
    except (models.ModelError, ValueError) as error:
        return fail(PROGRAM, error)
    except OSError as error:  # a model folder that cannot be listed or written
        return fail(PROGRAM, error)


def _info(path: Path, *, as_json: bool) -> int:
    """Prints a saved model's "kiosk_head" metadata; exit 1 when it has none."""
    data = read_model_bytes(path)
    # A damaged file is said to be damaged, not "without metadata".
    check_model_structure(data, str(path))
    info = read_metadata(data)
    if info is None:
        print(f"{path}: no kiosk metadata (not saved by kiosk, or saved before it was added)")
        return 1
    if as_json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    names = info.get("class_names") or []
    counts = info.get("sample_counts") or []
    print(f"{path}: kiosk metadata schema {info.get('schema')}")
    for key in ("created", "kiosk_version", "extractor", "extractor_sha256", "feature_dim"):
        if key in info:
            print(f"  {key}: {info[key]}")
    print(f"  classes ({len(names)}):")
    for i, name in enumerate(names):
        count = f"  {counts[i]} samples" if i < len(counts) else ""
        print(f"    {i} {name}{count}")
    for section in ("metrics", "training"):
        values = info.get(section)
        if isinstance(values, dict) and values:
            print(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    return 0


def _list(folder: Path) -> int:
    print(f"models in {folder}:")
    for info in models.manifest():
        state = "installed" if models.is_installed(info, folder) else "-"
        tpu = "Edge TPU" if info.edgetpu else "CPU"
        print(f"  {info.name:<56} {info.kind:<10} {tpu:<8} {state}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    if args.all:
        wanted = models.manifest()
    elif args.names:
        wanted = [models.find(name) for name in args.names]
    else:
        default = models.default_extractor()
        wanted = [default, *filter(None, [models.edgetpu_variant(default)])]
    folder = args.dir or models.user_model_dir()
    for info in wanted:
        bar = ProgressBar(info.file, None, unit_bytes=True)

        def show(done: int, total: int | None, bar: ProgressBar = bar) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done)

        try:
            path = models.fetch(info, folder, args.source, progress=show)
        finally:
            bar.close(bar.done)
        print(f"{info.name}: {path} (sha256 verified)", file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
