"""kiosk.safe_io: special files refused before opening, sizes before reading, links kept."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kiosk.safe_io import (
    FileRefused,
    check_regular_file,
    expand_user,
    format_size,
    open_regular_file,
    read_regular_file,
    writable_target,
)


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.tflite"
    os.mkfifo(path)
    return path


def _sparse(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "big.bin"
    with open(path, "wb") as stream:
        stream.truncate(size)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: tmp, "is a folder"),
        (_fifo, "named pipe (FIFO)"),
        (lambda tmp: Path("/dev/zero"), "character device"),
        (lambda tmp: Path("/dev/null"), "character device"),
        (lambda tmp: _sparse(tmp, 3 * 10**9), "3 GB; the largest accepted is 1 MB"),
    ],
    ids=["missing", "folder", "fifo", "dev-zero", "dev-null", "3-gb"],
)
def test_refused_before_opening(tmp_path: Path, make, words: str) -> None:
    path = make(tmp_path)
    for call in (check_regular_file, open_regular_file, read_regular_file):
        with pytest.raises(FileRefused) as error:
            call(path, 10**6, "model file")
        message = str(error.value)
        assert words in message and "\n" not in message
        assert message.startswith("model file ")


def test_links_are_followed_and_dangling_ones_named(tmp_path: Path) -> None:
    target = tmp_path / "real.bin"
    target.write_bytes(b"12345")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    assert read_regular_file(link, 10, "file") == b"12345"
    (tmp_path / "to-zero").symlink_to("/dev/zero")
    with pytest.raises(FileRefused, match="character device"):
        read_regular_file(tmp_path / "to-zero", 10, "image")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    with pytest.raises(FileRefused, match="symbolic link to nothing"):
        read_regular_file(tmp_path / "dangling", 10, "image")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(FileRefused, match="cannot read image"):
        read_regular_file(tmp_path / "a", 10, "image")


def test_a_file_swapped_for_a_fifo_after_the_check_does_not_block(
    tmp_path: Path, monkeypatch
) -> None:
    """The open itself is non-blocking and re-checked: the race loses nothing."""
    from kiosk import safe_io

    path = _fifo(tmp_path)
    monkeypatch.setattr(safe_io, "check_regular_file", lambda *args: None)
    done: list[BaseException] = []

    def attempt() -> None:
        try:
            safe_io.open_regular_file(path, None, "model file")
        except BaseException as error:
            done.append(error)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "opening a FIFO blocked"
    assert isinstance(done[0], FileRefused) and "FIFO" in str(done[0])


def test_sizes_and_growth(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, 100, "f") == b"x" * 100
    with pytest.raises(FileRefused, match="100 bytes; the largest accepted is 99 bytes"):
        read_regular_file(path, 99, "f")
    with open_regular_file(path, None, "f") as stream:
        assert stream.read() == b"x" * 100
    assert format_size(6 * 10**9) == "6 GB" and format_size(1536) == "1.5 kB"


def test_names_that_are_not_one_line_stay_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileRefused) as error:
        check_regular_file(tmp_path / "two\nlines", 10, "image")
    assert "\n" not in str(error.value) and "two\\nlines" in str(error.value)


def test_writable_target_goes_through_links(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    link = tmp_path / "metrics.json"
    link.symlink_to(target)
    assert writable_target(link) == target  # dangling: the target will be created
    target.write_text("{}")
    assert writable_target(link) == target
    assert writable_target(tmp_path / "new.json") == tmp_path / "new.json"
    for bad, word in ((tmp_path, "folder"), (_fifo(tmp_path), "FIFO"), ("/dev/null", "device")):
        with pytest.raises(FileRefused, match=word):
            writable_target(bad, "metrics")
    (tmp_path / "to-null").symlink_to("/dev/null")
    with pytest.raises(FileRefused, match="device"):
        writable_target(tmp_path / "to-null", "metrics")


def test_expand_user() -> None:
    assert expand_user("~/x") == Path.home() / "x"
    with pytest.raises(FileRefused) as error:
        expand_user("~nosuchuser-kiosk/x", "data folder (KIOSK_DATA_DIR)")
    assert str(error.value) == (
        "data folder (KIOSK_DATA_DIR) '~nosuchuser-kiosk/x' cannot be expanded: "
        "there is no user 'nosuchuser-kiosk'"
    )
