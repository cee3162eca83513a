"""Bad input: a broken model at start, odd frames, awkward class names.

Each must give a clear answer (a one-line error, a ValueError naming the
problem, a converted frame) and never a crash, a hang or a corrupt file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.labels import format_labels
from kiosk.session import TeachingSession
from kiosk.store import MAX_NAME_LENGTH, EmbeddingStore, class_name_key, normalize_class_name
from kiosk.vision.grabber import FrameGrabber
from kiosk.vision.sources import FrameSource, bgr_to_rgb
from tests.fakes import picture

# -- a broken model at start ----------------------------------------------------


def run_kiosk(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m kiosk ARGS`` headless, with its own empty config and data folder."""
    config = tmp_path / "kiosk.toml"
    config.write_text("")
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "KIOSK_DATA_DIR": str(tmp_path / "data"),
        "KIOSK_CONFIG": str(config),
    }
    env.pop("KIOSK_MODEL", None)
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"this is not a model at all\n", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param("truncated", id="truncated"),
        pytest.param("huge-shape", id="corrupt-shape"),
    ],
)
def test_corrupt_model_at_start_is_one_line_and_exit_2(
    tmp_path, cpu_extractor_path, content
) -> None:
    model = tmp_path / "garbage.tflite"
    if content == "truncated":
        content = cpu_extractor_path.read_bytes()[:100_000]
    elif content == "huge-shape":
        from tests.test_fuzz_models import _input_width_offset

        data = bytearray(cpu_extractor_path.read_bytes())
        at = _input_width_offset(bytes(data))
        data[at : at + 4] = (2097376).to_bytes(4, "little")
        content = bytes(data)
    model.write_bytes(content)
    completed = run_kiosk(tmp_path, "--model", str(model), "--source", "demo")
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("kiosk: ") and "garbage.tflite" in lines[0]
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("state.json"))


# -- odd frames -----------------------------------------------------------------


@pytest.fixture
def session(extractor) -> TeachingSession:
    session = TeachingSession(extractor)
    session.store.add_class("a")
    session.store.add_class("b")
    for i in range(4):
        session.capture(i % 2, picture(i, size=64))
    session.train()
    return session


def _odd_frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "huge 4000x3000": rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8),
        "1x1": np.full((1, 1, 3), 200, np.uint8),
        "1x4000": rng.integers(0, 256, (1, 4000, 3), dtype=np.uint8),
        "4000x1": rng.integers(0, 256, (4000, 1, 3), dtype=np.uint8),
        "grey": rng.integers(0, 256, (480, 640), dtype=np.uint8),
        "grey 1 channel": rng.integers(0, 256, (480, 640, 1), dtype=np.uint8),
        "RGBA": rng.integers(0, 256, (480, 640, 4), dtype=np.uint8),
        "strided view": rng.integers(0, 256, (960, 1280, 3), dtype=np.uint8)[::2, ::2],
        "read-only": _read_only(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)),
    }


def _read_only(frame: np.ndarray) -> np.ndarray:
    frame.flags.writeable = False
    return frame


@pytest.mark.parametrize("name", list(_odd_frames()))
def test_odd_frames_capture_and_predict(session, name) -> None:
    frame = _odd_frames()[name]
    before = session.store.counts()
    sample_id = session.capture(0, frame)
    assert session.store.counts() == [before[0] + 1, before[1]]
    stored = next(s for s in session.store.samples(0) if s.id == sample_id)
    assert stored.embedding.shape == (session.extractor.feature_dim,)
    assert np.isfinite(stored.embedding).all()
    prediction = session.predict(frame)
    assert prediction is not None and 0.0 <= prediction.confidence <= 1.0


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (np.zeros((480, 640, 3), np.uint16), "uint8"),
        (np.zeros((480, 640, 3), np.float32), "uint8"),
        (np.zeros((0, 0, 3), np.uint8), "no pixels"),
        (np.zeros((480, 640, 2), np.uint8), "shape"),
        (np.zeros((2, 480, 640, 3), np.uint8), "shape"),
    ],
    ids=["uint16", "float", "empty", "2 channels", "4-d"],
)
def test_frames_that_are_not_images_are_clear_errors(session, frame, match) -> None:
    before = session.store.snapshot().version
    with pytest.raises(ValueError, match=match):
        session.capture(0, frame)
    with pytest.raises(ValueError, match=match):
        session.predict(frame)
    assert session.store.snapshot().version == before


def test_camera_formats_are_normalised_before_the_session(session) -> None:
    """What a camera driver hands OpenCV (uint16, BGRA, grey) becomes uint8 RGB."""
    rng = np.random.default_rng(3)
    for raw in (
        rng.integers(0, 65536, (480, 640, 3), dtype=np.uint16),
        rng.integers(0, 256, (480, 640, 4), dtype=np.uint8),
        rng.integers(0, 256, (480, 640), dtype=np.uint8),
        rng.integers(0, 65536, (3000, 4000), dtype=np.uint16),
    ):
        frame = bgr_to_rgb(raw)
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert session.predict(frame) is not None


class OddFrameSource(FrameSource):
    """Hands out each of the odd frames in turn, forever."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.index = 0

    def describe(self) -> str:
        return "odd frames"

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        frame = self.frames[self.index % len(self.frames)].copy()
        self.index += 1
        time.sleep(0.001)
        return frame

    def close(self) -> None:
        pass


def test_odd_frames_through_the_grabber(session) -> None:
    frames = list(_odd_frames().values())
    grabber = FrameGrabber(OddFrameSource(frames))
    grabber.start()
    try:
        seen: set[tuple[int, ...]] = set()
        last = 0
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            got = grabber.wait_for_frame(after=last, timeout=2.0)
            assert got is not None, grabber.error
            last, frame = got
            assert not frame.flags.writeable  # the grabber hands out read-only frames
            seen.add(frame.shape)
            assert session.predict_live(frame) is not None
        assert len(seen) >= 4 and grabber.error is None
    finally:
        assert grabber.stop(1.0)


# -- awkward class names --------------------------------------------------------


def _parse_labels(text: str) -> list[str]:
    """Read labels.txt the way pycoral's read_label_file does: "<index> <name>" lines."""
    labels = {}
    for line in text.splitlines():
        index, name = line.strip().split(maxsplit=1)
        labels[int(index)] = name.strip()
    return [labels[i] for i in range(len(labels))]


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a\nb", "line breaks"),
        ("tab\there", "line breaks"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
        ("\u200b", "invisible characters \\(U\\+200B ZERO WIDTH SPACE\\)"),
        ("cat\u200b", "invisible characters"),
        ("c\u200dat", "U\\+200D ZERO WIDTH JOINER"),
        ("c\u200cat", "U\\+200C ZERO WIDTH NON-JOINER"),
        ("\ufeffcat", "U\\+FEFF"),
        ("ca\u00adt", "U\\+00AD SOFT HYPHEN"),
        ("\u2060cat", "U\\+2060 WORD JOINER"),
        ("\u3164", "U\\+3164 HANGUL FILLER"),
        ("\u2800", "U\\+2800"),
        ("\ue000cat", "U\\+E000"),
        ("\u202etac", "text-direction controls \\(U\\+202E RIGHT-TO-LEFT OVERRIDE\\)"),
        ("cat\u2067x\u2069", "text-direction controls"),
        ("\u200fcat", "U\\+200F RIGHT-TO-LEFT MARK"),
        ("\u0301", "at least one visible"),
        ("\x00cat", "control characters"),
    ],
    ids=[
        "empty",
        "blank",
        "newline",
        "tab",
        "too long",
        "zero-width space",
        "trailing zwsp",
        "zwj",
        "zwnj",
        "bom",
        "soft hyphen",
        "word joiner",
        "hangul filler",
        "braille blank",
        "private use",
        "rtl override",
        "isolate",
        "rlm",
        "lone mark",
        "nul",
    ],
)
def test_bad_class_names_are_clear_errors(name, match) -> None:
    store = EmbeddingStore(4)
    store.add_class("cup")
    version = store.version
    with pytest.raises(ValueError, match=match):
        store.rename_class(0, name)
    with pytest.raises(ValueError, match=match):
        store.add_class(name)
    assert store.class_names == ["cup"] and store.version == version


@pytest.mark.parametrize(
    "duplicate",
    ["cup", "CUP", " cup ", "ｃｕｐ", "ＣＵＰ", "cuｐ", "cup\ufe0f", "Cup"],
)
def test_duplicate_class_names_are_refused(duplicate) -> None:
    store = EmbeddingStore(4)
    store.add_class("cup")
    store.add_class("pen")
    with pytest.raises(ValueError, match="already a class"):
        store.rename_class(1, duplicate)
    with pytest.raises(ValueError, match="already a class"):
        store.add_class(duplicate)
    assert store.class_names == ["cup", "pen"]


def test_fullwidth_cat_beside_cat_is_a_duplicate() -> None:
    """The issue's look-alike: fullwidth "Ｃａｔ" was accepted beside "Cat"."""
    store = EmbeddingStore(4)
    store.add_class("Cat")
    with pytest.raises(ValueError, match="already a class called 'Ｃａｔ'"):
        store.add_class("Ｃａｔ")
    assert class_name_key("Ｃａｔ") == class_name_key("cat") == class_name_key(" CAT ")
    assert class_name_key("Straße") == class_name_key("STRASSE")
    assert class_name_key("ﬁsh") == class_name_key("fish")  # the "fi" ligature
    assert class_name_key("a  b") == class_name_key("a b")  # labels.txt folds the space
    assert class_name_key("☕") == class_name_key("☕\ufe0f")
    assert class_name_key("café") == class_name_key("cafe\u0301")
    assert class_name_key("cat") != class_name_key("cot")


def test_names_are_stored_nfc() -> None:
    store = EmbeddingStore(4)
    store.add_class("cafe\u0301")  # e + combining acute
    assert store.class_names == ["café"] and len(store.class_names[0]) == 4


@given(st.text(max_size=20))
@settings(max_examples=500, deadline=None)
def test_any_accepted_name_is_visible_nfc_and_one_line(name) -> None:
    try:
        stored = normalize_class_name(name)
    except ValueError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert stored == unicodedata.normalize("NFC", stored) == stored.strip()
    assert all(unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Zl", "Zp") for ch in stored)
    assert len(format_labels([stored]).splitlines()) == 1
    assert class_name_key(stored) == class_name_key(class_name_key(stored))


def test_unusual_but_valid_names_round_trip_through_labels() -> None:
    names = [
        "a/b\\c",
        "Ünïcode ☕ 猫",
        "x" * MAX_NAME_LENGTH,
        "1 leading digit",
        "with  two  spaces",
        "emoji 🧪",
        "0",
    ]
    store = EmbeddingStore(4)
    for name in names:
        store.add_class(name)
    stored = store.class_names
    assert len(set(stored)) == len(names)
    parsed = _parse_labels(format_labels(stored))
    # Whitespace runs fold to one space; everything else comes back as stored.
    assert parsed == [" ".join(name.split()) for name in stored]
    encoded = format_labels(stored).encode("utf-8")
    assert encoded.decode("utf-8") == format_labels(stored)


def test_labels_of_names_with_line_breaks_stay_one_line_each() -> None:
    """Names that reach format_labels some other way (old projects, folder names)."""
    names = ["a\nb", "c\r\nd", "tab\tbed", "  padded  "]
    text = format_labels(names)
    assert len(text.splitlines()) == len(names)
    assert _parse_labels(text) == ["a b", "c d", "tab bed", "padded"]
