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

__all__ = ["StagedFiles", "atomic_write", "staged_writes"]


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically. Raises ``OSError`` on failure.

    ``mode``: the new file's permissions (default: the old file's, else what
    ``open`` would give).
    """
    StagedFiles({Path(path): data}, mode).commit()


class StagedFiles:
    """Files written beside their targets, waiting for ``commit`` or ``discard``.

    Attributes:
        temporaries: {target: its complete, fsynced temporary file}.
    """

    def __init__(self, contents: Mapping[Path, bytes], mode: int | None = None) -> None:
        """Write every temporary file; OSError (nothing left behind) when one fails."""
        self.temporaries: dict[Path, Path] = {}
        try:
            for target, data in contents.items():
                self.temporaries[Path(target)] = _write_temporary(Path(target), data, mode)
        except BaseException:
            self.discard()
            raise

    def commit(self) -> None:
        """Move every temporary over its target, in order (OSError on failure: the
        temporaries not yet moved are removed)."""
        try:
            while self.temporaries:
                target, temporary = next(iter(self.temporaries.items()))
                os.replace(temporary, target)
                del self.temporaries[target]
                _fsync_folder(target.parent)
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the temporaries not committed; the targets stay as they were."""
        for temporary in self.temporaries.values():
            with contextlib.suppress(OSError):
                temporary.unlink()
        self.temporaries.clear()


@contextlib.contextmanager
def staged_writes(
    contents: Mapping[Path, bytes], mode: int | None = None
) -> Iterator[dict[Path, Path]]:
    """Write several files so they can be checked before any target changes.

    Yields {target: temporary file} with every temporary file complete and on
    disk. When the block ends normally the temporaries replace their targets,
    in the given order; when it raises (or staging fails) they are deleted and
    no target is touched.

    Raises:
        OSError: a temporary file could not be written or a rename failed.
    """
    staged = StagedFiles(contents, mode)
    try:
        yield dict(staged.temporaries)
        staged.commit()
    finally:
        staged.discard()


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
