"""The core (everything under kiosk/ but kiosk/ui) never imports Qt."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kiosk"
FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "PyQt5", "PyQt6")

# Runs in a fresh interpreter: imports every core module without importing
# kiosk.ui (pkgutil.walk_packages would import it to look inside), then lists
# any Qt module that came along.
_PROBE = """
import importlib, json, pkgutil, sys
import kiosk

def walk(path, prefix):
    for info in pkgutil.iter_modules(path):
        name = prefix + info.name
        if name == "kiosk.ui" or info.name == "__main__":
            continue
        module = importlib.import_module(name)
        yield name
        if info.ispkg:
            yield from walk(module.__path__, name + ".")

imported = list(walk(kiosk.__path__, "kiosk."))
forbidden = sorted(
    m for m in sys.modules if m.split(".")[0] in FORBIDDEN
)
print(json.dumps({"imported": imported, "forbidden": forbidden}))
"""


def test_importing_the_core_pulls_in_no_qt() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    probe = f"FORBIDDEN = {FORBIDDEN!r}\n{_PROBE}"
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    # The walk really covered the core.
    for expected in [
        "kiosk.store",
        "kiosk.session",
        "kiosk.vision.sources",
        "kiosk.vision.grabber",
    ]:
        assert expected in report["imported"]
    assert not any(name.startswith("kiosk.ui") for name in report["imported"])
    assert report["forbidden"] == [], f"Qt modules imported by the core: {report['forbidden']}"


def _core_files() -> list[Path]:
    return [
        p for p in sorted(PACKAGE.rglob("*.py")) if "ui" not in p.relative_to(PACKAGE).parts[:1]
    ]


def test_core_source_has_no_qt_imports() -> None:
    offenders = []
    files = _core_files()
    assert any(p.name == "session.py" for p in files)
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            bad = [n for n in names if n.split(".")[0] in FORBIDDEN]
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {', '.join(bad)}")
    assert not offenders, "\n".join(offenders)
