"""Image files are checked before they are decoded: size, special files, claimed pixels.

The bug: a 196-byte PNG whose header claims 60000x60000 made OpenCV raise (a
traceback in kiosk-train, raw OpenCV text on every cycle of a folder source),
and 30000x30000 (within OpenCV's own 2^30-pixel limit) made it allocate 2.7 GB.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import imagesize
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.vision.image_io import (
    MAX_IMAGE_PIXELS,
    ImageError,
    header_size,
    read_image,
    read_rgb,
)
from kiosk.vision.sources import ImageFolderSource, SourceError
from tests.corpus.files import BOMBS, image_folder, png_claiming, small_image

SUFFIXES = [".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm"]


@pytest.mark.parametrize("kind", list(BOMBS))
def test_huge_claims_are_refused_before_decoding(tmp_path, kind):
    suffix, make = BOMBS[kind]
    data = make()
    width, height = header_size(data)
    assert width * height > MAX_IMAGE_PIXELS  # the generator really makes a bomb
    path = tmp_path / f"bomb{suffix}"
    path.write_bytes(data)
    with pytest.raises(ImageError) as error:
        read_image(path)
    assert f"claims {width}x{height} pixels" in str(error.value)
    assert "largest accepted is 67 megapixels" in str(error.value)
    assert read_rgb(path) is None


def test_the_196_byte_png_of_the_issue(tmp_path):
    data = png_claiming(60000, 60000)
    assert len(data) < 200
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(ImageError, match="claims 60000x60000"):
        read_image(tmp_path / "bomb.png")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_header_sizes_match_what_opencv_decodes(tmp_path, suffix):
    data = small_image(suffix)
    assert header_size(data) == (53, 37)
    path = tmp_path / f"ok{suffix}"
    path.write_bytes(data)
    assert read_image(path).shape == (37, 53, 3)


def test_header_sizes_of_the_shared_images(images_dir, core50_dir):
    paths = sorted(images_dir.glob("*.bmp"))[:4] + sorted(core50_dir.rglob("*.*"))[:4]
    for path in paths:
        if path.suffix.lower() in (".bmp", ".png", ".jpg", ".jpeg"):
            height, width = read_image(path).shape[:2]
            assert header_size(path.read_bytes()[:4096]) == (width, height), path


@given(st.binary(max_size=300))
@settings(max_examples=400, deadline=None)
def test_header_reading_never_raises(data):
    size = header_size(data)
    assert size is None or (size[0] >= 0 and size[1] >= 0)


@pytest.mark.slow
@given(st.sampled_from(SUFFIXES), st.integers(0, 200), st.integers(0, 255), st.data())
@settings(max_examples=150, deadline=None)
def test_damaged_images_fail_cleanly(tmp_path_factory, suffix, at, value, data):
    """One byte changed in the header, or the file cut short: an image or an ImageError."""
    raw = bytearray(small_image(suffix))
    if data.draw(st.booleans()):
        raw[at % len(raw)] = value
    else:
        raw = raw[: at % len(raw)]
    path = tmp_path_factory.mktemp("img") / f"x{suffix}"
    path.write_bytes(bytes(raw))
    try:
        image = read_image(path)
    except ImageError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] * image.shape[1] <= MAX_IMAGE_PIXELS


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: _sparse(p, 6 * 10**9), "6 GB"),
        (lambda p: (os.mkfifo(p), p)[1], "FIFO"),
        (lambda p: (p.symlink_to("/dev/zero"), p)[1], "character device"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.write_bytes(b"\x89PNG junk"), p)[1], "cannot be decoded"),
    ],
    ids=["6-GB", "fifo", "dev-zero", "empty", "junk"],
)
def test_files_that_are_not_images(tmp_path, make, words):
    """A 6 GB ".jpg" costs a stat, a FIFO never blocks, /dev/zero is never read."""
    path = make(tmp_path / "photo.jpg")
    with pytest.raises(ImageError, match=words):
        read_image(path)


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as stream:
        stream.truncate(size)
    return path


def test_opencv_gets_the_same_limit_when_kiosk_comes_first():
    """Measured: OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, when cv2 loads."""
    import subprocess
    import sys

    code = (
        "import kiosk, cv2, numpy as np\n"
        "from tests.corpus.files import png_claiming\n"
        "data = np.frombuffer(png_claiming(9000, 9000), np.uint8)\n"  # 81 MP: over kiosk's limit
        "try:\n"
        "    cv2.imdecode(data, cv2.IMREAD_COLOR)\n"
        "except cv2.error as error:\n"
        "    print('refused' if 'CV_IO_MAX_IMAGE_PIXELS' in str(error) else error)\n"
        "else:\n"
        "    print('decoded')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.stdout.strip() == "refused", done.stderr


def test_imagesize_reads_a_few_bytes():
    """The header check costs the header, not the image."""
    data = png_claiming(60000, 60000)
    assert imagesize.get(io.BytesIO(data[:33])) == (60000, 60000)


# ------------------------------------------------------------- every reader
def test_folder_source_says_one_clear_line(tmp_path, capfd):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for kind, (suffix, make) in BOMBS.items():
        (folder / f"{kind}{suffix}").write_bytes(make())
    source = ImageFolderSource(folder, fps=None)
    source.open()
    with pytest.raises(SourceError) as error:
        source.read()
    message = str(error.value)
    assert message.startswith(f"Folder {folder} has no readable images (last: image ")
    assert "claims" in message and "\n" not in message
    assert "OpenCV" not in message and "Assertion" not in message
    assert len(source.skipped) == len(BOMBS)
    captured = capfd.readouterr()
    assert "OpenCV" not in captured.err and "libpng" not in captured.err


def test_folder_source_skips_bombs_between_good_images(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a.png").write_bytes(small_image(".png", 1))
    (folder / "b.png").write_bytes(png_claiming(60000, 60000))
    (folder / "c.png").write_bytes(small_image(".png", 2))
    source = ImageFolderSource(folder, fps=None)
    source.open()
    frames = [source.read() for _ in range(5)]
    assert all(frame.shape == (37, 53, 3) for frame in frames)
    assert [p.name for p in source.skipped] == ["b.png"]


def test_import_images_skips_bombs(tmp_path, extractor):
    from kiosk.persist import import_image_folder
    from kiosk.session import TeachingSession

    root = Path(image_folder(tmp_path / "data", classes=2, per_class=2, bad="bomb-png"))
    _sparse(tmp_path / "data" / "class1" / "huge.jpg", 6 * 10**9)
    session = TeachingSession(extractor)
    report = import_image_folder(session, root)
    assert sorted(p.name for p in report.skipped) == ["bad.png", "huge.jpg"]
    assert session.store.counts() == [2, 2]


def test_kiosk_train_skips_a_bomb_with_a_warning(tmp_path, capsys, cpu_extractor_path):
    from kiosk.cli import train

    data = image_folder(tmp_path / "data", classes=2, per_class=3, bad="bomb-png")
    status = train.main(
        [
            "--data-dir",
            data,
            "--output-dir",
            str(tmp_path / "out"),
            "--embedding-extractor",
            str(cpu_extractor_path),
            "--num-iter",
            "5",
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "skipped 1 unreadable image file(s): bad.png" in captured.err
    assert "Traceback" not in captured.err
    assert (tmp_path / "out" / "retrained_model.tflite").is_file()


def test_a_refused_file_is_not_decoded_again_on_every_retry(tmp_path, monkeypatch):
    from kiosk.vision import sources

    folder = tmp_path / "pictures"
    folder.mkdir()
    good = small_image(".png", 3)
    (folder / "cut.png").write_bytes(good[: len(good) // 2])  # libpng complains on stderr
    decoded: list[str] = []
    real = sources.read_image
    monkeypatch.setattr(sources, "read_image", lambda p: decoded.append(p.name) or real(p))
    source = ImageFolderSource(folder, fps=None)
    for _ in range(3):  # the grabber reopens a failed source again and again
        with pytest.raises(SourceError, match="no readable images \\(last: image "):
            source.open()
            source.read()
    assert decoded == ["cut.png"]
    (folder / "cut.png").write_bytes(good)  # fixed: tried again, and shown
    source.open()
    assert source.read().shape == (37, 53, 3)
    assert decoded == ["cut.png", "cut.png"]
