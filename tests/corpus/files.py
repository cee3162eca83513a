"""Bad files, made by code: special files, huge claims, damaged bytes, odd names.

A case names what it needs as a ``Thing`` (a kind and a file name); the runner
makes it in the case's own folder just before the run, so cases can be listed
at collection time and every run starts from fresh files. ``make`` returns the
text to put on the command line (for ``unknown-user`` that is a path that
cannot exist; for ``dev-zero`` it is ``/dev/zero`` itself).

To add a kind: write ``def _make_<kind>(path: Path) -> str`` below and add it to
``MAKERS``; it is then available to every entry point's table.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import CPU_EXTRACTOR, EDGETPU_EXTRACTOR, MOBILENET_V1_SMALL

# Claimed sizes: far past kiosk's 67-megapixel limit, within each format's fields.
BOMB_SIDE = 60000
WEBP_SIDE = 16383  # VP8 stores 14 bits per side


@dataclass(frozen=True)
class Thing:
    """A file-system object a case needs: ``kind`` (a key of ``MAKERS``) named ``name``."""

    kind: str
    name: str = "input"

    def make(self, folder: Path) -> str:
        return MAKERS[self.kind](folder / self.name)


# --------------------------------------------------------------- special paths
def _missing(path: Path) -> str:
    return str(path)


def _empty(path: Path) -> str:
    path.write_bytes(b"")
    return str(path)


def _folder(path: Path) -> str:
    path.mkdir()
    return str(path)


def _fifo(path: Path) -> str:
    os.mkfifo(path)  # nobody ever writes: opening it for reading blocks for ever
    return str(path)


def _dev_zero(path: Path) -> str:
    return "/dev/zero"


def _link_to_dev_zero(path: Path) -> str:
    # The name has the right suffix; only what it points at is wrong.
    path.symlink_to("/dev/zero")
    return str(path)


def _dangling_link(path: Path) -> str:
    path.symlink_to(path.with_name("nothing-here"))
    return str(path)


def _link_loop(path: Path) -> str:
    other = path.with_name(path.name + ".other")
    path.symlink_to(other)
    other.symlink_to(path)
    return str(path)


def _sparse(size: int) -> Callable[[Path], str]:
    def make(path: Path) -> str:
        # Sparse: a 6 GB file that takes no disk space and is made at once.
        with open(path, "wb") as stream:
            stream.truncate(size)
        return str(path)

    return make


def _unknown_user(path: Path) -> str:
    return f"~nosuchuser-kiosk/{path.name}"


def _long_name(path: Path) -> str:
    return str(path.with_name("x" * 300 + path.suffix))


def _newline_name(path: Path) -> str:
    target = path.with_name(f"two\nlines{path.suffix}")
    target.write_bytes(b"not what it claims to be")
    return str(target)


def _undecodable_name(path: Path) -> str:
    # A file name that is not UTF-8 (as from an old camera's SD card).
    raw = os.fsencode(path.parent) + b"/caf\xe9" + os.fsencode(path.suffix)
    with open(raw, "wb") as stream:
        stream.write(b"junk")
    return os.fsdecode(raw)


# ----------------------------------------------------------------------- models
def _copy(source: Path) -> Callable[[Path], str]:
    def make(path: Path) -> str:
        path.write_bytes(source.read_bytes())
        return str(path)

    return make


def _garbage(path: Path) -> str:
    path.write_bytes(np.random.default_rng(5).integers(0, 256, 4096, np.uint8).tobytes())
    return str(path)


def _truncated_model(path: Path) -> str:
    path.write_bytes(CPU_EXTRACTOR.read_bytes()[:100_000])
    return str(path)


def _tfl3_header_only(path: Path) -> str:
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 24)
    return str(path)


def _huge_shape_model(path: Path) -> str:
    from tests.test_fuzz_models import _input_width_offset

    data = bytearray(CPU_EXTRACTOR.read_bytes())
    at = _input_width_offset(bytes(data))
    data[at : at + 4] = (2_097_376).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return str(path)


# ----------------------------------------------------------------------- images
def small_image(suffix: str, seed: int = 0) -> bytes:
    """A real 37x53 image in the format of ``suffix``, as OpenCV writes it."""
    rng = np.random.default_rng(seed)
    ok, encoded = cv2.imencode(suffix, rng.integers(0, 256, (37, 53, 3), np.uint8))
    assert ok, suffix
    return encoded.tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG of ~70 bytes whose header claims ``width`` x ``height`` (the data is missing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 100)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def jpeg_claiming(side: int) -> bytes:
    data = bytearray(small_image(".jpg"))
    at = data.index(b"\xff\xc0")  # baseline start-of-frame: length, precision, height, width
    struct.pack_into(">HH", data, at + 5, side, side)
    return bytes(data)


def bmp_claiming(side: int) -> bytes:
    data = bytearray(small_image(".bmp"))
    struct.pack_into("<ii", data, 18, side, side)
    return bytes(data)


def webp_claiming(side: int) -> bytes:
    data = bytearray(small_image(".webp"))
    if b"VP8L" in data:
        # Lossless: after the 0x2f signature, 14 bits each of width - 1 and height - 1.
        at = data.index(b"VP8L") + 9
        (bits,) = struct.unpack_from("<I", data, at)
        bits = (bits & ~((1 << 28) - 1)) | (side - 1) | ((side - 1) << 14)
        struct.pack_into("<I", data, at, bits)
    else:
        at = data.index(b"\x9d\x01\x2a")  # the VP8 key frame start code, then 14-bit sides
        struct.pack_into("<HH", data, at + 3, side, side)
    return bytes(data)


def tiff_claiming(side: int) -> bytes:
    data = bytearray(small_image(".tiff"))
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, ifd)
    for k in range(count):
        entry = ifd + 2 + 12 * k
        tag, kind = struct.unpack_from(order + "HH", data, entry)
        if tag in (256, 257):  # ImageWidth, ImageLength
            struct.pack_into(order + ("H" if kind == 3 else "I"), data, entry + 8, side)
    return bytes(data)


def pnm_claiming(side: int) -> bytes:
    return f"P6\n{side} {side}\n255\n".encode() + b"\x00" * 64


BOMBS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "bomb-png": (".png", lambda: png_claiming(BOMB_SIDE, BOMB_SIDE)),
    "bomb-png-900mp": (".png", lambda: png_claiming(30000, 30000)),  # within OpenCV's own limit
    "bomb-png-wide": (".png", lambda: png_claiming(2**31 - 1, 1)),
    "bomb-jpeg": (".jpg", lambda: jpeg_claiming(BOMB_SIDE)),
    "bomb-bmp": (".bmp", lambda: bmp_claiming(BOMB_SIDE)),
    "bomb-webp": (".webp", lambda: webp_claiming(WEBP_SIDE)),
    "bomb-tiff": (".tiff", lambda: tiff_claiming(BOMB_SIDE)),
    "bomb-pnm": (".ppm", lambda: pnm_claiming(BOMB_SIDE)),
}


def _bytes(make_bytes: Callable[[], bytes]) -> Callable[[Path], str]:
    def make(path: Path) -> str:
        path.write_bytes(make_bytes())
        return str(path)

    return make


def _truncated_png(path: Path) -> str:
    data = small_image(".png")
    path.write_bytes(data[: len(data) // 2])
    return str(path)


# ---------------------------------------------------------------------- folders
def image_folder(path: Path, classes: int = 2, per_class: int = 2, bad: str | None = None) -> str:
    """``classes`` sub-folders of real images; ``bad`` (a kind) is added to the first class."""
    path.mkdir()
    for c in range(classes):
        sub = path / f"class{c}"
        sub.mkdir()
        for i in range(per_class):
            (sub / f"{i}.png").write_bytes(small_image(".png", seed=10 * c + i))
    if bad is not None:
        suffix = BOMBS[bad][0] if bad in BOMBS else ".jpg"
        MAKERS[bad](path / "class0" / f"bad{suffix}")
    return str(path)


def _folder_with(bad: str, classes: int = 2) -> Callable[[Path], str]:
    return lambda path: image_folder(path, classes=classes, bad=bad)


def _only_bad_images(path: Path) -> str:
    path.mkdir()
    for kind, (suffix, make_bytes) in BOMBS.items():
        (path / f"{kind}{suffix}").write_bytes(make_bytes())
    return str(path)


# Bad image files a dataset folder can hold (``folder-with-<kind>``).
IN_FOLDERS = (*BOMBS, "sparse-6gb", "fifo", "garbage", "truncated-png", "link-to-dev-zero")

MAKERS: dict[str, Callable[[Path], str]] = {
    # any path
    "missing": _missing,
    "empty": _empty,
    "folder": _folder,
    "fifo": _fifo,
    "dev-zero": _dev_zero,
    "link-to-dev-zero": _link_to_dev_zero,
    "dangling-link": _dangling_link,
    "link-loop": _link_loop,
    "sparse-3gb": _sparse(3 * 10**9),
    "sparse-6gb": _sparse(6 * 10**9),
    "unknown-user": _unknown_user,
    "long-name": _long_name,
    "newline-name": _newline_name,
    "undecodable-name": _undecodable_name,
    "garbage": _garbage,
    # models
    "extractor": _copy(CPU_EXTRACTOR),
    "edgetpu-extractor": _copy(EDGETPU_EXTRACTOR),
    "classifier": _copy(MOBILENET_V1_SMALL),
    "truncated-model": _truncated_model,
    "tfl3-header-only": _tfl3_header_only,
    "huge-shape-model": _huge_shape_model,
    # images
    **{kind: _bytes(make_bytes) for kind, (_, make_bytes) in BOMBS.items()},
    "truncated-png": _truncated_png,
    # image folders
    "only-bad-images": _only_bad_images,
    **{f"folder-with-{kind}": _folder_with(kind) for kind in IN_FOLDERS},
    "folder-one-class": _folder_with("garbage", classes=1),
}

# Kinds that are wrong for any file a command reads, with a word the message must hold.
BAD_PATHS: dict[str, str] = {
    "missing": "not",  # "not found" / "does not exist"
    "folder": "folder",
    "fifo": "FIFO",
    "dev-zero": "device",
    "link-to-dev-zero": "device",
    "dangling-link": "",
    "link-loop": "",
    "unknown-user": "nosuchuser",
    "long-name": "",
    "newline-name": "",
    "undecodable-name": "",
    "empty": "",
    "garbage": "",
}
