"""Is there somewhere to show the window? Asked before Qt is imported.

Without a display Qt does not fail, it aborts the process (exit 134, SIGABRT)
after printing that "xcb-cursor0 or libxcb-cursor0 is needed", even when that
library is installed and the real cause is an unset ``DISPLAY``. A kiosk under
systemd then restarts into the same abort. ``display_problem`` looks at what
Qt will look at and returns one line naming the problem and the fix instead.

What Qt 6 does on Linux (measured with PySide6 6.11): ``QT_QPA_PLATFORM`` names
the platform plugin, or a ``;``-separated list tried in order; unset, it tries
Wayland when ``WAYLAND_DISPLAY`` is set, then X11 (xcb). The ``eglfs`` plugin
aborts without a GPU device (``/dev/dri/card*``); ``linuxfb`` without a frame
buffer starts but shows nothing. An unknown plugin name aborts.

Linux only: on macOS and Windows Qt always has the native platform. Qt-free.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import ipaddress
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["HEADLESS_PLATFORMS", "display_problem", "qt_platform_plugins"]

# Platforms that need no window system: they draw to a device, a VNC client
# or memory. ``eglfs`` and ``linuxfb`` are the touchscreen kiosk's choices.
HEADLESS_PLATFORMS = frozenset({"offscreen", "minimal", "minimalegl", "vnc", "vkkhrdisplay"})

FIX = (
    "run kiosk in a desktop session or under the cage compositor (packaging/kiosk.service), "
    "set DISPLAY (e.g. DISPLAY=:0) or WAYLAND_DISPLAY, or set QT_QPA_PLATFORM=eglfs or "
    "linuxfb to draw on the screen without a window system; the apt packages Qt needs "
    "(such as libxcb-cursor0 and libegl1) are listed in packaging/INSTALL.md"
)
_CONNECT_TIMEOUT = 1.0


def display_problem(
    environ: Mapping[str, str] | None = None, platform: str = sys.platform
) -> str | None:
    """None when Qt can open a window here, else one line: the problem and the fix."""
    if not platform.startswith("linux"):
        return None
    environ = os.environ if environ is None else environ
    plugins = qt_platform_plugins()
    if plugins is None:
        return "the window needs PySide6, which is not installed: pip install 'kiosk[gui]'"
    requested = [
        part.split(":", 1)[0].strip()
        for part in environ.get("QT_QPA_PLATFORM", "").split(";")
        if part.strip()
    ]
    if requested:
        problems = [_platform_problem(name, environ, plugins) for name in requested]
        if any(problem is None for problem in problems):
            return None
        return f"no display: {'; '.join(p for p in problems if p)}; {FIX}"
    wayland = _wayland_problem(environ) if environ.get("WAYLAND_DISPLAY") else None
    if environ.get("WAYLAND_DISPLAY") and wayland is None:
        return None
    if environ.get("DISPLAY"):
        problem = _x11_problem(environ["DISPLAY"])
        if problem is None:
            return None
        return f"no display: {problem}; {FIX}"
    if wayland is not None:
        return f"no display: {wayland}; {FIX}"
    return f"no display: neither DISPLAY nor WAYLAND_DISPLAY is set; {FIX}"


def qt_platform_plugins() -> frozenset[str] | None:
    """The Qt platform plugins PySide6 ships ({"xcb", "wayland", ...}); None without PySide6.

    Found from the plugin files, without importing Qt.
    """
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    names: set[str] = set()
    for location in spec.submodule_search_locations:
        for folder in (Path(location) / "Qt" / "plugins" / "platforms",
                       Path(location) / "plugins" / "platforms"):  # fmt: skip
            for path in glob.glob(str(folder / "libq*.so")):
                names.add(Path(path).name[len("libq") : -len(".so")])
    # A layout this code does not know: let Qt decide rather than refuse.
    return frozenset(names) if names else frozenset({"*"})


def _platform_problem(name: str, environ: Mapping[str, str], plugins: frozenset[str]) -> str | None:
    if "*" not in plugins and name not in plugins:
        known = ", ".join(sorted(plugins))
        return f"QT_QPA_PLATFORM names {name!r}, which is not a Qt platform (known: {known})"
    if name in HEADLESS_PLATFORMS:
        return None
    if name == "xcb":
        if not environ.get("DISPLAY"):
            return "QT_QPA_PLATFORM=xcb but DISPLAY is not set"
        return _x11_problem(environ["DISPLAY"])
    if name.startswith("wayland"):
        if not environ.get("WAYLAND_DISPLAY") and not environ.get("WAYLAND_SOCKET"):
            # libwayland's default socket name
            environ = {**environ, "WAYLAND_DISPLAY": "wayland-0"}
        return _wayland_problem(environ)
    if name.startswith("eglfs"):
        if not glob.glob("/dev/dri/card*"):
            return "QT_QPA_PLATFORM=eglfs but there is no GPU device /dev/dri/card*"
        return None
    if name == "linuxfb":
        options = environ.get("QT_QPA_PLATFORM", "")
        device = "/dev/fb0"
        for option in options.split(":")[1:]:
            if option.startswith("fb="):
                device = option[3:]
        if not os.path.exists(device):
            return f"QT_QPA_PLATFORM=linuxfb but there is no frame buffer {device}"
        return None
    return None


def _x11_problem(display: str) -> str | None:
    """None when an X server answers at ``display`` (":0", "host:1.0", "unix:0")."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".", 1)[0]
    if not number.isdigit() or not number.isascii():
        return f"DISPLAY={display!r} is not a display name like :0"
    if host in ("", "unix") or host.startswith("/"):
        path = host if host.startswith("/") else f"/tmp/.X11-unix/X{number}"
        # Linux X servers listen on an abstract socket as well as the file.
        for address in ("\0" + path, path):
            if _connects(socket.AF_UNIX, address):
                return _xcb_library_problem()
        return f"no X server answers on DISPLAY={display}"
    if not _is_address(host):
        # A host name: resolving it may wait on DNS for longer than a start
        # should, so Qt gets to try (ssh -X uses "localhost:10.0", checked below).
        return _xcb_library_problem()
    if _connects(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, 6000 + int(number))):
        return _xcb_library_problem()
    return f"no X server answers on DISPLAY={display} (TCP port {6000 + int(number)} of {host})"


def _is_address(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _xcb_library_problem() -> str | None:
    # Qt 6.5+ loads its xcb plugin only with libxcb-cursor; without it, it aborts.
    try:
        ctypes.CDLL("libxcb-cursor.so.0")
    except OSError:
        return "Qt's X11 support needs libxcb-cursor.so.0 (apt install libxcb-cursor0)"
    return None


def _wayland_problem(environ: Mapping[str, str]) -> str | None:
    if environ.get("WAYLAND_SOCKET"):
        return None  # a connected socket handed over by the compositor
    name = environ.get("WAYLAND_DISPLAY", "wayland-0")
    if name.startswith("/"):
        path = name
    else:
        runtime = environ.get("XDG_RUNTIME_DIR")
        if not runtime:
            return f"WAYLAND_DISPLAY={name} but XDG_RUNTIME_DIR is not set"
        path = os.path.join(runtime, name)
    if _connects(socket.AF_UNIX, path):
        return None
    return f"no Wayland compositor answers at {path}"


def _connects(family: int, address: object) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(_CONNECT_TIMEOUT)
            probe.connect(address)  # type: ignore[arg-type]
    except (OSError, ValueError, UnicodeError):
        return False
    return True
