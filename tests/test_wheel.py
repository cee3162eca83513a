"""The wheel: built from a copy of the tree, installed into a fresh venv, run from elsewhere.

This is what a deployment does, so it catches a resource the wheel forgets or a
console script that only works from the checkout. It downloads the build
backend and the dependencies from the package index (a local mirror in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kiosk import __version__

ROOT = Path(__file__).resolve().parents[1]
BIN = "Scripts" if os.name == "nt" else "bin"

pytestmark = pytest.mark.slow


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_and_runs_from_anywhere(tmp_path):
    # Build from a copy: a build in place writes build/ and *.egg-info into the
    # checkout, where a concurrent run could pick them up.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "test-artifacts",
            ".pytest_cache", ".ruff_cache", ".hypothesis", "*.tflite",
        ),
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    settings = tmp_path / "kiosk.toml"  # never the real user's settings
    settings.write_text("burst_hz = 12.5\n")
    env["KIOSK_CONFIG"] = str(settings)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"),
         str(source)], tmp_path, env)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("kiosk-*.whl")

    # Every resource file is in the wheel, under kiosk/resources.
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p for p in (ROOT / "resources").iterdir() if p.is_file() and p.suffix != ".pyc"]
    assert shipped
    for path in shipped:
        assert f"kiosk/resources/{path.name}" in names, path.name
    assert "kiosk/py.typed" in names  # type checkers use kiosk's annotations
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"\nVersion: {__version__}\n" in text  # read from kiosk.__version__

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python = venv / BIN / "python"
    run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(wheel)], tmp_path, env)  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([str(python), "-c", "import kiosk; print(kiosk.__file__)"], elsewhere, env)
    assert Path(where.strip()).is_relative_to(venv)

    assert run([str(venv / BIN / "kiosk"), "--version"], elsewhere, env).strip() == (
        f"kiosk {__version__}"
    )
    assert "--data-dir" in run([str(venv / BIN / "kiosk-train"), "--help"], elsewhere, env)
    listing = run([str(venv / BIN / "kiosk-models"), "list"], elsewhere, env)
    assert "mobilenet_v1_1.0_224_quant_embedding_extractor" in listing
    # The settings report needs no Qt: the wheel without [gui] can still show it.
    report = run([str(venv / BIN / "kiosk"), "--print-config"], elsewhere, env)
    assert f"# config file: {settings}" in report
    assert any(
        line.startswith("burst_hz = 12.5") and line.endswith(f"# {settings}")
        for line in report.splitlines()
    )
