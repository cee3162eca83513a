"""The README's Python API snippet runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_api_snippet() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_python_api_snippet_runs_as_written(tmp_path, core50_dir, cpu_extractor_path):
    """As a user runs it: models where `kiosk-models fetch` put them, photos/ beside the script."""
    snippet = python_api_snippet()
    assert "photos/" in snippet and '"mobilenet_v1_1.0_224_quant_embedding_extractor"' in snippet
    (tmp_path / "photos").symlink_to(core50_dir, target_is_directory=True)
    (tmp_path / "snippet.py").write_text(snippet, "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_MODEL")}
    env["KIOSK_MODEL_DIR"] = str(cpu_extractor_path.parent)
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    model = tmp_path / "model.tflite"
    assert model.stat().st_size > cpu_extractor_path.stat().st_size
    from kiosk.learn.metadata import read_metadata

    assert read_metadata(model) is None or read_metadata(model)["class_names"]


def test_readme_says_which_runtime_needs_numpy_below_2():
    text = (ROOT / "README.md").read_text("utf-8")
    assert "tflite-runtime" in text and "numpy < 2" in text
