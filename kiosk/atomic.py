"""Atomic file writes: a file is either the old one or the complete new one.

Each new file is written to a temporary file in the target's own folder
(same file system, so the final rename is atomic), flushed and fsynced, and
only then moved over the target with ``os.replace``. On any failure the
temporary files are removed and the targets are untouched.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["atomic_write", "staged_writes"]


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically. Raises ``OSError`` on failure.

    ``mode`` (e.g. ``0o600`` for a file holding a secret) is set before the new
    file appears under its name; by default the old file's mode is kept.
    """
    target = Path(path)
    temporary = _write_temporary(target, data, mode)
    try:
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(target.parent)


@contextlib.contextmanager
def staged_writes(contents: Mapping[Path, bytes]) -> Iterator[dict[Path, Path]]:
    """Write several files so they can be checked before any target changes.

    Yields {target: temporary file} with every temporary file complete and on
    disk. When the block ends normally the temporaries replace their targets,
    in the given order; when it raises (or staging fails) they are deleted and
    no target is touched.

    Raises:
        OSError: a temporary file could not be written or a rename failed.
    """
    staged: dict[Path, Path] = {}
    try:
        for target, data in contents.items():
            staged[Path(target)] = _write_temporary(Path(target), data)
        yield dict(staged)
        while staged:
            target, temporary = next(iter(staged.items()))
            os.replace(temporary, target)
            del staged[target]
            _fsync_folder(target.parent)
    finally:
        for temporary in staged.values():
            with contextlib.suppress(OSError):
                temporary.unlink()


def _write_temporary(target: Path, data: bytes, mode: int | None = None) -> Path:
    """A fully written, fsynced temporary file beside ``target``."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            # mkstemp makes 0600 files; give the result the mode a plain
            # open() would (or the old file's), so other users can read a model.
            os.chmod(temporary, _mode_for(target) if mode is None else mode)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return temporary


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: fsync the folder (POSIX only; a no-op elsewhere)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
