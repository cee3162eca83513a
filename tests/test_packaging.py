"""Deployment files: the systemd unit, the .desktop entry, the PyInstaller spec, the icon."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
UNIT = PACKAGING / "kiosk.service"


def unit_sections(text: str) -> configparser.ConfigParser:
    # systemd allows repeated keys (Environment=); keep the last for the lookups here.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in units
    parser.read_string(text)
    return parser


def test_unit_starts_the_kiosk_under_cage_and_restarts_it():
    text = UNIT.read_text("utf-8")
    service = unit_sections(text)["Service"]
    assert service["ExecStart"].startswith("/usr/bin/cage ")
    assert "kiosk --fullscreen" in service["ExecStart"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == "kiosk"
    assert set(service["SupplementaryGroups"].split()) >= {"video", "render", "input"}
    assert "Environment=QT_QPA_PLATFORM=wayland" in text.splitlines()
    assert unit_sections(text)["Install"]["WantedBy"] == "graphical.target"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart's program exists; cage is not installed on
    # build machines, so a stand-in takes its path and everything else is checked.
    cage = tmp_path / "cage"
    cage.write_text("#!/bin/sh\n")
    cage.chmod(0o755)
    unit = tmp_path / "kiosk.service"
    unit.write_text(UNIT.read_text("utf-8").replace("/usr/bin/cage", str(cage)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown keys are only warnings (exit 0), so stderr must be empty as well.
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_desktop_entry_has_the_required_keys():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(PACKAGING / "kiosk.desktop", encoding="utf-8")
    entry = parser["Desktop Entry"]
    for key in ("Type", "Name", "Exec", "Icon", "Categories"):
        assert entry.get(key), key
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "kiosk"
    assert entry["Icon"] == "kiosk"
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";")
    for action in entry["Actions"].rstrip(";").split(";"):
        assert parser[f"Desktop Action {action}"]["Exec"].startswith("kiosk ")


def test_pyinstaller_spec_compiles_and_bundles_the_resources():
    source = (PACKAGING / "kiosk.spec").read_text("utf-8")
    compile(source, "kiosk.spec", "exec")
    assert '"kiosk/resources"' in source and "COLLECT(" in source  # one-folder bundle
    assert "pyinstaller --noconfirm packaging/kiosk.spec" in (PACKAGING / "INSTALL.md").read_text()


def test_icon_is_an_svg_shipped_as_a_resource():
    icon = resources.files("kiosk.resources").joinpath("kiosk.svg")
    root = ET.fromstring(icon.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 256 256"


def test_install_guide_covers_the_deployment_steps():
    guide = (PACKAGING / "INSTALL.md").read_text("utf-8")
    for needle in (
        "libegl1",
        "libxkbcommon0",
        "libxcb-cursor0",
        "libxcb-icccm4",
        "libxcb-keysyms1",
        "libgl1",
        "libfontconfig1",
        "libdbus-1-3",
        "cage",
        "libedgetpu1-std",
        "video",
        "kiosk-models fetch --source /media/usb",
        "kiosk --clear-pin",
        "pin_hash",
        "kiosk.toml",
    ):
        assert needle in guide, needle
