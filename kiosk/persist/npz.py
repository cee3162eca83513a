"""``.npz`` files written by streaming and read with every size checked first.

Writing: ``NpzWriter`` builds a standard, uncompressed ``.npz`` (a zip of
``.npy`` members, what ``np.load`` reads) member by member, each from an
iterable of row chunks, so a 1 GiB segment never exists twice in memory. The
file is written under a temporary name, fsynced, and renamed into place: a
reader sees the old file or the complete new one.

Reading: ``read_npz`` and ``iter_rows`` refuse special files, check the zip's
member count and declared sizes, parse each ``.npy`` header themselves and
check that its shape times its item size is exactly the member's size before
allocating anything: a header claiming 10^12 elements, a zip bomb or a
truncated file is a ``ProjectError`` naming the file, never a hang or a
MemoryError. Object arrays (pickles) are refused.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

import numpy as np

from kiosk.persist.files import ProjectError, check_regular_file, fsync_folder

__all__ = ["NpzWriter", "iter_byte_rows", "iter_rows", "member_shapes", "read_npz"]

# A file with more members than this is not one of ours.
MAX_MEMBERS = 64
# npy headers are a few hundred bytes; numpy's own reader caps them at 10,000.
MAX_HEADER = 10_000


class NpzWriter:
    """Writes ``path`` as an ``.npz``, one member at a time, atomically.

    Use as a context manager: the file replaces ``path`` only when the block
    ends normally (and ``mode``, if given, is its permission bits); on an
    error the temporary file is removed.
    """

    def __init__(self, path: Path, mode: int | None = None) -> None:
        self.path = Path(path)
        self.mode = mode
        fd, name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        self._temporary = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "w+b")
        self._zip = zipfile.ZipFile(self._file, "w", zipfile.ZIP_STORED, allowZip64=True)

    def write(self, name: str, array: np.ndarray) -> None:
        """One whole (small) array as member ``name``."""
        array = np.ascontiguousarray(array)
        self.stream(name, array.dtype, array.shape, [array])

    def stream(
        self,
        name: str,
        dtype: np.dtype | type,
        shape: tuple[int, ...],
        chunks: Iterable[np.ndarray],
    ) -> None:
        """Member ``name`` of ``shape`` and ``dtype`` from row chunks (C order, first axis).

        Raises ValueError when the chunks do not add up to ``shape``.
        """
        dtype = np.dtype(dtype)
        expected = math.prod(shape) * dtype.itemsize
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": tuple(int(d) for d in shape),
        }
        written = 0
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            for chunk in chunks:
                data = np.ascontiguousarray(chunk, dtype=dtype)
                member.write(data.data.cast("B"))
                written += data.nbytes
        if written != expected:
            raise ValueError(f"{name}: wrote {written} bytes, the shape needs {expected}")

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            self._zip.close()
            if kind is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if kind is None:
                if self.mode is not None:
                    os.chmod(self._temporary, self.mode)
                os.replace(self._temporary, self.path)
                fsync_folder(self.path.parent)
        finally:
            with contextlib.suppress(OSError):
                self._file.close()
            with contextlib.suppress(OSError):
                self._temporary.unlink()


def _members(archive: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ProjectError(f"{label} has {len(infos)} arrays; it is not a kiosk file")
    members = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise ProjectError(f"{label} holds {info.filename!r}, which is not an array")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ProjectError(f"{label} uses a compression this kiosk does not read")
        members[info.filename[:-4]] = info
    return members


def _open_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, budget: int
) -> tuple[IO[bytes], tuple[int, ...], np.dtype]:
    """The member opened after its header, with its checked (shape, dtype)."""
    name = info.filename[:-4]
    if info.file_size > budget:
        raise ProjectError(f"{label}: {name} declares {info.file_size} bytes, more than allowed")
    stream = archive.open(info)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, MAX_HEADER)
        else:
            raise ValueError(f"npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile) as error:
        stream.close()
        raise ProjectError(f"{label}: {name} is not a readable array ({error})") from None
    if dtype.hasobject or dtype.kind not in "biuf" or fortran:
        stream.close()
        raise ProjectError(f"{label}: {name} holds {dtype} data, which this kiosk does not read")
    if any(d < 0 for d in shape):
        stream.close()
        raise ProjectError(f"{label}: {name} has a negative size")
    header_size = stream.tell()
    if math.prod(shape) * dtype.itemsize != info.file_size - header_size:
        stream.close()
        raise ProjectError(f"{label}: {name} declares shape {shape}, which its size does not match")
    return stream, tuple(int(d) for d in shape), dtype


def _open_archive(path: Path, max_bytes: int) -> zipfile.ZipFile:
    label = path.name
    check_regular_file(path, max_bytes, label)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ProjectError(f"{label} is damaged or not an npz file ({error})") from None


def read_npz(
    path: Path, spec: Mapping[str, tuple[str, int]], max_bytes: int
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` named in ``spec`` = {name: (dtype kinds, ndim)}, checked.

    Dtype kinds are numpy's letters ("f", "i", "u", "b"; "iu" allows either).
    Arrays are read-only. ``max_bytes`` caps the file and the sum of the arrays.

    Raises:
        ProjectError: missing, special, damaged, too big, or not matching ``spec``.
    """
    label = path.name
    arrays: dict[str, np.ndarray] = {}
    budget = max_bytes
    with _open_archive(path, max_bytes) as archive:
        members = _members(archive, label)
        for name, (kinds, ndim) in spec.items():
            info = members.get(name)
            if info is None:
                raise ProjectError(f"{label} has no array {name!r}")
            stream, shape, dtype = _open_member(archive, info, label, budget)
            with stream:
                if dtype.kind not in kinds or len(shape) != ndim:
                    raise ProjectError(
                        f"{label}: {name} is {dtype} of shape {shape}, expected {ndim}-d {kinds}"
                    )
                try:
                    data = _read_exact(stream, math.prod(shape) * dtype.itemsize)
                except (OSError, EOFError, zipfile.BadZipFile) as error:
                    raise ProjectError(f"{label}: {name} is damaged ({error})") from None
            budget -= len(data)
            arrays[name] = np.frombuffer(data, dtype).reshape(shape)
    return arrays


def member_shapes(path: Path, max_bytes: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{member: (shape, dtype)} of an ``.npz``, from the checked headers only."""
    label = path.name
    shapes = {}
    with _open_archive(path, max_bytes) as archive:
        for name, info in _members(archive, label).items():
            stream, shape, dtype = _open_member(archive, info, label, max_bytes)
            stream.close()
            shapes[name] = (shape, dtype)
    return shapes


def iter_rows(path: Path, name: str, rows_per_chunk: int, max_bytes: int) -> Iterator[np.ndarray]:
    """Member ``name`` of an ``.npz`` in chunks of rows (first axis), without reading it whole."""
    label = path.name
    with _open_archive(path, max_bytes) as archive:
        info = _members(archive, label).get(name)
        if info is None:
            raise ProjectError(f"{label} has no array {name!r}")
        stream, shape, dtype = _open_member(archive, info, label, max_bytes)
        with stream:
            row_shape = shape[1:]
            row_bytes = math.prod(row_shape) * dtype.itemsize
            left = shape[0] if shape else 0
            while left:
                count = min(rows_per_chunk, left)
                try:
                    data = _read_exact(stream, count * row_bytes)
                except (OSError, EOFError, zipfile.BadZipFile) as error:
                    raise ProjectError(f"{label}: {name} is damaged ({error})") from None
                yield np.frombuffer(data, dtype).reshape((count, *row_shape))
                left -= count


def iter_byte_rows(
    path: Path, name: str, lengths: np.ndarray, max_bytes: int
) -> Iterator[np.ndarray]:
    """A 1-d uint8 member of an ``.npz`` cut into consecutive rows of ``lengths`` bytes."""
    label = path.name
    with _open_archive(path, max_bytes) as archive:
        info = _members(archive, label).get(name)
        if info is None:
            raise ProjectError(f"{label} has no array {name!r}")
        stream, shape, dtype = _open_member(archive, info, label, max_bytes)
        with stream:
            if dtype.itemsize != 1 or len(shape) != 1 or int(np.sum(lengths)) != shape[0]:
                raise ProjectError(f"{label}: {name} does not match its offsets")
            for length in lengths:
                try:
                    data = _read_exact(stream, int(length))
                except (OSError, EOFError, zipfile.BadZipFile) as error:
                    raise ProjectError(f"{label}: {name} is damaged ({error})") from None
                yield np.frombuffer(data, np.uint8)


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"ended after {len(data)} of {size} bytes")
    return data
