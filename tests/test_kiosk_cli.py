"""The ``kiosk`` command before the window: arguments, display, model, logging (no Qt here)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kiosk import __version__, logs
from kiosk.cli import kiosk as cli
from kiosk.cli.display import display_problem, qt_platform_plugins
from kiosk.cli.kiosk import main, parse_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path: Path, monkeypatch) -> dict[str, str]:
    """An empty config file and a data folder in tmp; a headless display."""
    config = tmp_path / "kiosk.toml"
    config.write_text("")
    values = {
        "KIOSK_CONFIG": str(config),
        "KIOSK_DATA_DIR": str(tmp_path / "data"),
        "QT_QPA_PLATFORM": "offscreen",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KIOSK_LOG_LEVEL", raising=False)
    yield values
    logs.remove_handlers()  # close the log file in tmp


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"kiosk {__version__}"


def test_version_is_written_once():
    """pyproject reads kiosk.__version__; the installed metadata and saved models agree."""
    from importlib.metadata import version

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert version("kiosk") == __version__
    from kiosk.learn.metadata import embed_metadata, read_metadata
    from tests.conftest import CPU_EXTRACTOR

    saved = embed_metadata(CPU_EXTRACTOR.read_bytes(), {"class_names": ["a", "b"]})
    assert read_metadata(saved)["kiosk_version"] == __version__
    assert (ROOT / "kiosk" / "py.typed").is_file()


def test_arguments(env):
    args = parse_args(["--source", "demo", "--fullscreen", "--output", "out", "--threads", "2"])
    assert (args.source, args.fullscreen, args.output, args.threads) == ("demo", True, "out", 2)
    assert parse_args([]).source == "0"
    assert parse_args(["--check"]).check and not parse_args([]).check


def test_missing_model_is_one_line_and_exit_2(capsys, tmp_path, env):
    assert main(["--model", str(tmp_path / "nope.tflite"), "--source", "demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kiosk: ") and "\n" not in err
    assert "nope.tflite" in err


def test_broken_model_is_one_line_and_exit_2(capsys, broken_model_path, env):
    assert main(["--model", str(broken_model_path), "--source", "demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kiosk: ") and "\n" not in err


def test_unknown_source_is_one_line_and_exit_2(capsys, cpu_extractor_path, tmp_path, env):
    assert main(["--model", str(cpu_extractor_path), "--source", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown frame source" in err and "\n" not in err


@pytest.mark.parametrize("text", ["²", "٣", "１"])
def test_non_ascii_digits_are_not_camera_numbers(capsys, cpu_extractor_path, env, text):
    assert main(["--model", str(cpu_extractor_path), "--source", text, "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "digits 0-9" in err and "invalid literal" not in err and "\n" not in err


@pytest.mark.parametrize("name", ["mobilenet_v2_1.0_224_quant", "mobilenet_v1_0.25_128_quant"])
def test_a_full_classifier_is_refused_as_an_extractor(capsys, env, name):
    from tests.conftest import MODELS

    path = MODELS / f"{name}.tflite"
    assert main(["--model", str(path), "--source", "demo", "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "full classifier (1001 class scores after a softmax)" in err
    assert f"kiosk-extractor {path}" in err


def test_check_stops_where_the_window_would_open(capsys, cpu_extractor_path, env, monkeypatch):
    monkeypatch.setattr("kiosk.ui.app.run", _never)
    assert main(["--model", str(cpu_extractor_path), "--source", "demo", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ready: model ") and "source demo" in out


def _never(*args, **kwargs):
    raise AssertionError("the window was opened")


def test_python_dash_m_kiosk():
    done = subprocess.run(
        [sys.executable, "-m", "kiosk", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"kiosk {__version__}"


def test_the_console_script_points_at_the_cli_module():
    from importlib.metadata import entry_points

    (point,) = entry_points(group="console_scripts", name="kiosk")
    assert point.value == "kiosk.cli.kiosk:main"
    import kiosk.ui.app as app

    for name in ("main", "parse_args", "build_parser", "load_core", "set_pin", "clear_pin"):
        assert not hasattr(app, name), f"kiosk.ui.app still has {name}"


def test_the_cli_module_does_not_import_qt():
    code = (
        "import sys, kiosk.cli.kiosk, kiosk.cli.display; "
        "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'kiosk.ui'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


# ------------------------------------------------------------------- no display
def _listening_display() -> tuple[socket.socket, str]:
    """An X-like listener on an abstract socket, as a Linux X server has: (socket, DISPLAY)."""
    number = 200 + uuid.uuid4().int % 700
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(f"\0/tmp/.X11-unix/X{number}")
    server.listen(16)  # never accepted: each probe takes a slot
    return server, f":{number}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check is Linux-only")
class TestDisplay:
    def test_no_display_names_the_problem_and_the_fixes(self):
        problem = display_problem({})
        assert problem is not None and "\n" not in problem
        for words in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "libxcb-cursor0",
                      "cage"):  # fmt: skip
            assert words in problem

    def test_headless_platforms_need_nothing(self):
        for name in ("offscreen", "minimal", "vnc", "wayland;offscreen"):
            assert display_problem({"QT_QPA_PLATFORM": name}) is None

    def test_a_listening_x_server_is_enough(self):
        server, display = _listening_display()
        with server:
            assert display_problem({"DISPLAY": display}) is None
            assert display_problem({"DISPLAY": f"unix{display}.0"}) is None
            assert display_problem({"QT_QPA_PLATFORM": "xcb", "DISPLAY": display}) is None
        assert f"no X server answers on DISPLAY={display}" in display_problem({"DISPLAY": display})

    def test_a_listening_wayland_compositor_is_enough(self, tmp_path):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(tmp_path / "wayland-7"))
        server.listen(16)  # never accepted: each probe takes a slot
        env = {"WAYLAND_DISPLAY": "wayland-7", "XDG_RUNTIME_DIR": str(tmp_path)}
        with server:
            assert display_problem(env) is None
            assert display_problem({**env, "QT_QPA_PLATFORM": "wayland"}) is None
        assert "no Wayland compositor answers" in display_problem(env)

    @pytest.mark.parametrize(
        ("env", "words"),
        [
            ({"QT_QPA_PLATFORM": "bogus"}, "'bogus', which is not a Qt platform"),
            ({"QT_QPA_PLATFORM": "xcb"}, "QT_QPA_PLATFORM=xcb but DISPLAY is not set"),
            ({"DISPLAY": "not-a-display"}, "not a display name"),
            ({"QT_QPA_PLATFORM": "linuxfb:fb=/dev/fb77"}, "no frame buffer /dev/fb77"),
        ],
    )
    def test_problems_are_named(self, env, words):
        assert words in display_problem(env)

    def test_qt_plugins_are_found_without_importing_qt(self):
        assert {"xcb", "offscreen", "wayland", "eglfs"} <= qt_platform_plugins()

    def test_the_real_command_says_so_in_one_line_and_exits_2(self, tmp_path, env):
        """The bug: Qt aborted (exit 134) saying "xcb-cursor0 is needed"."""
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "kiosk", "--source", "demo"],
            env=clean, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kiosk: no display: "), done.stderr
        assert "xcb-cursor0 or libxcb-cursor0 is needed" not in done.stderr


# ---------------------------------------------------------------------- logging
def test_the_kiosk_logs_to_a_rotating_file_in_the_data_folder(cpu_extractor_path, env, capsys):
    assert main(["--model", str(cpu_extractor_path), "--source", "demo", "--check"]) == 0
    path = Path(env["KIOSK_DATA_DIR"]) / "kiosk.log"
    handlers = [h for h in logging.getLogger().handlers if hasattr(h, "maxBytes")]
    assert [Path(h.baseFilename) for h in handlers] == [path]
    assert handlers[0].maxBytes == logs.MAX_LOG_BYTES and handlers[0].backupCount == 3
    logging.getLogger("kiosk.test").info("an info line for the device log")
    handlers[0].flush()
    text = path.read_text("utf-8")
    assert f"kiosk {__version__} starting" in text and "an info line" in text
    assert capsys.readouterr().err == ""  # info goes to the file, not the terminal


def test_start_failures_are_in_the_log_file_too(tmp_path, env, capsys):
    assert main(["--model", str(tmp_path / "nope.tflite"), "--check"]) == 2
    for handler in logging.getLogger().handlers:
        handler.flush()
    log_text = (Path(env["KIOSK_DATA_DIR"]) / "kiosk.log").read_text("utf-8")
    assert "not started: model not found" in log_text
    assert capsys.readouterr().err.count("\n") == 1  # printed once, not also by logging


def test_log_level_flag_and_variable(cpu_extractor_path, env, monkeypatch, capsys):
    argv = ["--model", str(cpu_extractor_path), "--source", "demo", "--check"]
    assert main([*argv, "--log-level", "DEBUG"]) == 0
    assert "kiosk: info: kiosk" in capsys.readouterr().err
    monkeypatch.setenv("KIOSK_LOG_LEVEL", "info")
    assert main(argv) == 0
    assert "kiosk: info: kiosk" in capsys.readouterr().err
    assert main([*argv, "--log-level", "error"]) == 0  # the flag wins
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("KIOSK_LOG_LEVEL", "loud")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "kiosk: KIOSK_LOG_LEVEL must be one of debug, info, warning, error, " \
                  "critical, got 'loud'\n"  # fmt: skip


def test_an_unusable_data_folder_is_one_line(tmp_path, env, monkeypatch, capsys):
    monkeypatch.setenv("KIOSK_DATA_DIR", "~nosuchuser-kiosk/x")
    assert main(["--source", "demo", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "there is no user 'nosuchuser-kiosk'" in err


def test_no_log_file_is_a_warning_not_a_failure(cpu_extractor_path, env, monkeypatch, capsys):
    data = Path(env["KIOSK_DATA_DIR"])
    data.mkdir()
    os.mkfifo(data / "kiosk.log")  # appending to it would block
    assert main(["--model", str(cpu_extractor_path), "--source", "demo", "--check"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("kiosk: warning: no log file: ") and "FIFO" in err
    assert err.count("\n") == 1


def test_load_core_is_patched_by_name(monkeypatch, env):
    """Tests replace load_core on the module; main must look it up there."""
    seen = []
    monkeypatch.setattr(cli, "load_core", lambda args: seen.append(args) or _raise())
    assert main(["--source", "demo", "--check"]) == 2
    assert seen


def _raise():
    raise ValueError("stand-in failure")
