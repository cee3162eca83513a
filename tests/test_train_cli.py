"""kiosk-train end to end on real CORe50 frames with the real MobileNet extractor."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kiosk.cli import train as train_cli
from kiosk.vision.runtime import load_interpreter


@pytest.fixture(scope="module")
def trained_run(
    tmp_path_factory, core50_dir: Path, cpu_extractor_path: Path
) -> tuple[Path, dict, str]:
    """One kiosk-train run: its output folder, its metrics and what it wrote to stderr."""
    out = tmp_path_factory.mktemp("train")
    metrics_path = out / "metrics.json"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = train_cli.main(
            [
                "--data-dir", str(core50_dir),
                "--embedding-extractor", str(cpu_extractor_path),
                "--output-dir", str(out),
                "--metrics-json", str(metrics_path),
                "--seed", "1",
            ]
        )  # fmt: skip
    assert status == 0
    return out, json.loads(metrics_path.read_text()), stderr.getvalue()


@pytest.fixture(scope="module")
def trained(trained_run) -> tuple[Path, dict]:
    out, metrics, _ = trained_run
    return out, metrics


@pytest.mark.slow
def test_progress_counts_the_refit_in_the_schedule(trained_run) -> None:
    *_, stderr = trained_run
    (line,) = [line for line in stderr.splitlines() if line.startswith("training")]
    # 60 hold-out iterations and a 30-iteration refit: the bar ends full, at 90/90.
    assert line.startswith("training: 100%") and " 90/90 " in line, line


@pytest.mark.slow
def test_writes_a_model_and_labels_that_load(trained, core50_dir: Path) -> None:
    out, metrics = trained
    classes = sorted(p.name for p in core50_dir.iterdir() if p.is_dir())
    assert (out / "labels.txt").read_text().splitlines() == [
        f"{i} {name}" for i, name in enumerate(classes)
    ]
    interpreter = load_interpreter(out / "retrained_model.tflite")
    (output,) = interpreter.get_output_details()
    assert tuple(output["shape"]) == (1, len(classes))
    assert output["dtype"] == np.uint8
    assert metrics["output_model"] == str(out / "retrained_model.tflite")


@pytest.mark.slow
def test_metrics_are_complete_and_sane(trained) -> None:
    _, metrics = trained
    for key in (
        "num_classes", "num_train", "num_val", "num_test", "float_test_accuracy",
        "tflite_test_accuracy", "agreement", "embed_seconds", "train_seconds",
        "serialize_seconds", "output_model",
    ):  # fmt: skip
        assert key in metrics, key
    assert metrics["num_classes"] == 10
    # The hold-out that evaluates the head (and sets "not sure") is part of training.
    assert metrics["num_train"] + metrics["num_test"] == 90
    assert 0 < metrics["num_val"] < metrics["num_train"]
    # The same pipeline as the window: mirrored copies, a threshold, what Save checked.
    assert metrics["num_mirrored"] == metrics["num_train"]
    assert 0.0 < metrics["confidence_threshold"] < 1.0
    assert "mirrored" in metrics["save_check"]["checked"]
    assert metrics["num_test"] >= 10  # one per class at least
    # Real objects held up to a camera: the head must learn them, and the saved
    # quantized model must agree with the float head.
    assert metrics["float_test_accuracy"] >= 0.7
    assert metrics["agreement"] >= 0.9
    assert abs(metrics["tflite_test_accuracy"] - metrics["float_test_accuracy"]) <= 0.1
    assert metrics["train_accuracy"] >= 0.95


@pytest.mark.slow
def test_metrics_give_per_class_agreement(trained) -> None:
    _, metrics = trained
    per_class = metrics["per_class_agreement"]
    assert list(per_class) == metrics["class_names"]
    assert all(value is None or 0.0 <= value <= 1.0 for value in per_class.values())
    # The overall agreement is the test-count-weighted mean of the per-class ones.
    assert min(v for v in per_class.values() if v is not None) <= metrics["agreement"]


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli.train", *args], capture_output=True, text=True
    )


def _assert_one_line_error(done: subprocess.CompletedProcess, fragment: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], done.stderr


def test_missing_folder(tmp_path: Path, cpu_extractor_path: Path) -> None:
    done = _run_cli(
        "--data-dir", str(tmp_path / "nope"), "--embedding-extractor", str(cpu_extractor_path)
    )
    _assert_one_line_error(done, "data folder not found")


def test_fewer_than_two_classes(tmp_path: Path, core50_dir: Path, cpu_extractor_path) -> None:
    shutil.copytree(core50_dir / "cup", tmp_path / "cup")
    done = _run_cli("--data-dir", str(tmp_path), "--embedding-extractor", str(cpu_extractor_path))
    _assert_one_line_error(done, "at least 2")


def test_class_without_a_readable_image(tmp_path: Path, core50_dir, cpu_extractor_path) -> None:
    shutil.copytree(core50_dir / "cup", tmp_path / "cup")
    (tmp_path / "ghost").mkdir()
    (tmp_path / "ghost" / "a.jpg").write_bytes(b"not a jpeg")
    done = _run_cli("--data-dir", str(tmp_path), "--embedding-extractor", str(cpu_extractor_path))
    _assert_one_line_error(done, "class 'ghost' has no readable image")


@pytest.mark.slow
def test_unreadable_files_are_skipped_and_counted(
    tmp_path: Path, core50_dir: Path, cpu_extractor_path: Path
) -> None:
    for name in ("cup", "ball", "can"):
        shutil.copytree(core50_dir / name, tmp_path / "data" / name)
    (tmp_path / "data" / "cup" / "broken.png").write_bytes(b"\x89PNG truncated")
    (tmp_path / "data" / "ball" / "zero.jpg").write_bytes(b"")
    done = _run_cli(
        "--data-dir", str(tmp_path / "data"),
        "--embedding-extractor", str(cpu_extractor_path),
        "--output-dir", str(tmp_path / "out"),
        "--metrics-json", str(tmp_path / "m.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "skipped 2 unreadable image file(s)" in done.stderr
    assert json.loads((tmp_path / "m.json").read_text())["num_unreadable"] == 2
    assert (tmp_path / "out" / "retrained_model.tflite").is_file()


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--num-iter", "0"], "--num-iter must be at least 1"),
        (["--learning-rate", "-1"], "--learning-rate must be positive"),
        (["--val-fraction", "0.6", "--test-fraction", "0.5"], "must be < 1"),
        (["--test-fraction", "1.5"], "--test-fraction must be in [0, 1)"),
    ],
)
def test_bad_flags(tmp_path: Path, core50_dir, cpu_extractor_path, flags, fragment) -> None:
    done = _run_cli(
        "--data-dir", str(core50_dir), "--embedding-extractor", str(cpu_extractor_path), *flags
    )
    _assert_one_line_error(done, fragment)


@pytest.mark.slow
def test_bad_models(tmp_path: Path, core50_dir, edgetpu_extractor_path, broken_model_path) -> None:
    done = _run_cli(
        "--data-dir", str(core50_dir), "--embedding-extractor", str(edgetpu_extractor_path)
    )
    _assert_one_line_error(done, "use the CPU model")
    done = _run_cli("--data-dir", str(core50_dir), "--embedding-extractor", str(broken_model_path))
    _assert_one_line_error(done, "fake-op-double")
    done = _run_cli("--data-dir", str(core50_dir), "--embedding-extractor", "nope.tflite")
    _assert_one_line_error(done, "model not found")


def test_unwritable_output_dir(tmp_path: Path, core50_dir, cpu_extractor_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    done = _run_cli(
        "--data-dir", str(core50_dir),
        "--embedding-extractor", str(cpu_extractor_path),
        "--output-dir", str(blocker / "out"),
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_warns_when_a_class_agrees_less_than_the_threshold(
    tmp_path: Path, core50_dir: Path, cpu_extractor_path: Path, monkeypatch, capsys
) -> None:
    # Above 100 %, every class is "low": the warning line must name them.
    monkeypatch.setattr(train_cli, "FIDELITY", 1.01)
    status = train_cli.main(
        [
            "--data-dir", str(core50_dir),
            "--embedding-extractor", str(cpu_extractor_path),
            "--output-dir", str(tmp_path / "out"),
            "--seed", "1",
        ]
    )  # fmt: skip
    assert status == 0
    err = capsys.readouterr().err
    assert "kiosk-train: warning: the saved (quantized) model agrees" in err
    assert "ball" in err


@pytest.mark.slow
def test_labels_read_back_from_inside_the_model(trained, core50_dir: Path) -> None:
    _, metrics = trained
    assert metrics["labels_in_model"] == sorted(p.name for p in core50_dir.iterdir() if p.is_dir())
