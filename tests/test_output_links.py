"""Outputs named through a symbolic link are written to the link's target; the link stays.

The bug: ``kiosk-train --metrics-json`` onto a symlink replaced the link with a
regular file (an atomic write renames a new file over the name it is given).
Decision: write through the link, as a shell redirection does; a link (or a
path) to a folder, FIFO or device is refused before any work is done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kiosk.cli import extractor as extractor_cli
from kiosk.cli import train
from tests.conftest import MOBILENET_V1_SMALL
from tests.corpus.files import image_folder


def _train(tmp_path: Path, metrics: Path, cpu_extractor_path: Path) -> int:
    data = tmp_path / "data"
    if not data.exists():
        image_folder(data, classes=2, per_class=3)
    return train.main([
        "--data-dir", str(data), "--output-dir", str(tmp_path / "out"), "--num-iter", "5",
        "--embedding-extractor", str(cpu_extractor_path), "--metrics-json", str(metrics),
    ])  # fmt: skip


@pytest.mark.slow
def test_metrics_json_is_written_through_a_symlink(tmp_path, cpu_extractor_path, capsys):
    shared = tmp_path / "reports"
    shared.mkdir()
    target = shared / "latest.json"
    target.write_text("{}")
    link = tmp_path / "metrics.json"
    link.symlink_to(target)
    assert _train(tmp_path, link, cpu_extractor_path) == 0
    assert link.is_symlink() and link.resolve() == target
    assert json.loads(target.read_text())["num_classes"] == 2
    # A dangling link: its target is created, the link kept.
    dangling = tmp_path / "next.json"
    dangling.symlink_to(shared / "next-target.json")
    assert _train(tmp_path, dangling, cpu_extractor_path) == 0
    assert dangling.is_symlink() and (shared / "next-target.json").is_file()
    capsys.readouterr()


@pytest.mark.parametrize("target", ["folder", "fifo", "/dev/null"])
def test_metrics_json_onto_a_special_file_is_refused_before_training(
    tmp_path, cpu_extractor_path, capsys, target
):
    if target == "folder":
        (tmp_path / "folder").mkdir()
        path = tmp_path / "folder"
    elif target == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    else:
        path = tmp_path / "to-null"
        path.symlink_to(target)
    assert _train(tmp_path, path, cpu_extractor_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write metrics" in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_extractor_output_through_a_symlink(tmp_path, capsys):
    target = tmp_path / "models" / "small.tflite"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "small.tflite"
    link.symlink_to(target)
    assert extractor_cli.main([str(MOBILENET_V1_SMALL), "-o", str(link)]) == 0
    assert link.is_symlink() and target.read_bytes()[4:8] == b"TFL3"
    # A link to the input is the input: refused, nothing written.
    classifier = tmp_path / "classifier.tflite"
    classifier.write_bytes(MOBILENET_V1_SMALL.read_bytes())
    alias = tmp_path / "alias.tflite"
    alias.symlink_to(classifier)
    assert extractor_cli.main([str(classifier), "-o", str(alias)]) == 2
    assert "would overwrite the classifier" in capsys.readouterr().err
    assert classifier.read_bytes() == MOBILENET_V1_SMALL.read_bytes()
