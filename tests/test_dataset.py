"""Class-per-folder datasets and stratified splits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.dataset import read_rgb, scan_image_folder, stratified_split


def _write_image(path: Path, rgb: tuple[int, int, int] = (200, 30, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((8, 8, 3), rgb, np.uint8)
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(encoded.tobytes())


def test_scan_lists_sorted_classes_and_images(tmp_path: Path) -> None:
    for name in ("b.png", "a.jpg"):
        _write_image(tmp_path / "tulip" / name)
    _write_image(tmp_path / "daisy" / "x.bmp")
    (tmp_path / "daisy" / "notes.txt").write_text("not an image")
    _write_image(tmp_path / ".hidden" / "x.png")
    folder = scan_image_folder(tmp_path)
    assert folder.class_names == ["daisy", "tulip"]
    assert [p.name for p in folder.paths] == ["x.bmp", "a.jpg", "b.png"]
    assert folder.labels.tolist() == [0, 1, 1]


def test_scan_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        scan_image_folder(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        scan_image_folder(tmp_path / "file.txt")
    _write_image(tmp_path / "only" / "a.png")
    with pytest.raises(ValueError, match="at least 2"):
        scan_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="class 'empty' has no image files"):
        scan_image_folder(tmp_path)


def test_read_rgb_keeps_channel_order_and_handles_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "ünïcode" / "red.png"
    _write_image(path, (250, 0, 0))
    image = read_rgb(path)
    assert image is not None and image.shape == (8, 8, 3)
    assert tuple(image[0, 0]) == (250, 0, 0)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    assert read_rgb(broken) is None
    (tmp_path / "empty.png").write_bytes(b"")
    assert read_rgb(tmp_path / "empty.png") is None
    assert read_rgb(tmp_path / "missing.png") is None


def test_split_is_stratified_and_reproducible() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 5, 2])
    train, val, test = stratified_split(labels, 0.1, 0.1, seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(labels)))
    for label, (n_val, n_test) in enumerate([(1, 1), (2, 2), (1, 1), (0, 0)]):
        assert (labels[val] == label).sum() == n_val
        assert (labels[test] == label).sum() == n_test
    again = stratified_split(labels, 0.1, 0.1, seed=3)
    for first, second in zip((train, val, test), again, strict=True):
        np.testing.assert_array_equal(first, second)


def test_split_rejects_bad_fractions() -> None:
    labels = np.zeros(10, np.int64)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        stratified_split(labels, -0.1, 0.1)
    with pytest.raises(ValueError, match="leave samples for training"):
        stratified_split(labels, 0.5, 0.5)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=2, max_size=8),
    val=st.floats(0, 0.45),
    test=st.floats(0, 0.45),
    seed=st.integers(0, 2**16),
)
def test_split_properties(counts: list[int], val: float, test: float, seed: int) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    train, val_idx, test_idx = stratified_split(labels, val, test, seed)
    everything = np.concatenate([train, val_idx, test_idx])
    assert len(everything) == len(labels) == len(set(everything.tolist()))
    # Every class keeps at least one training sample.
    assert set(labels[train].tolist()) == set(range(len(counts)))
