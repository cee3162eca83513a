"""EmbeddingExtractor on the real MobileNet extractor, and its one preprocessing."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from kiosk.dataset import read_rgb
from kiosk.embedding import EmbeddingExtractor
from kiosk.models import find
from kiosk.vision.preprocess import crop_box, preprocess, to_rgb_uint8
from kiosk.vision.runtime import load_interpreter


def test_describes_itself(extractor: EmbeddingExtractor) -> None:
    assert extractor.feature_dim == 1024
    assert extractor.input_size == (224, 224)
    assert extractor.on_edgetpu is False
    assert extractor.sha256 == find("mobilenet_v1_1.0_224_quant_embedding_extractor").sha256
    assert extractor.output_quantization[0] == pytest.approx(0.023528477)


def test_embedding_equals_the_bare_interpreter(extractor, cpu_extractor_path, images_dir) -> None:
    image = read_rgb(images_dir / "cat.bmp")
    embedding = extractor.embed(image)
    assert embedding.shape == (1024,)
    assert embedding.dtype == np.float32

    bare = load_interpreter(cpu_extractor_path, num_threads=1)
    (inp,), (out,) = bare.get_input_details(), bare.get_output_details()
    bare.set_tensor(inp["index"], preprocess(image, (224, 224))[np.newaxis])
    bare.invoke()
    scale, zero_point = out["quantization"]
    expected = scale * (bare.get_tensor(out["index"]).reshape(-1).astype(np.float32) - zero_point)
    np.testing.assert_allclose(embedding, expected, rtol=0, atol=1e-6)
    assert embedding.min() >= 0 and embedding.max() > 0  # average-pooled ReLU6 features


def test_same_object_embeds_closer_than_different_objects(extractor, images_dir) -> None:
    def unit(name: str) -> np.ndarray:
        vector = extractor.embed(read_rgb(images_dir / name))
        return vector / np.linalg.norm(vector)

    cat_train, cat_test, hotdog = (
        unit("cat_train_0.bmp"),
        unit("cat_test_0.bmp"),
        unit("hotdog_test_0.bmp"),
    )
    assert cat_train @ cat_test > cat_train @ hotdog


@pytest.mark.parametrize(
    "shape", [(1, 1, 3), (480, 640, 3), (640, 480, 3), (3000, 4000, 3), (224, 224, 3), (50, 7, 3)]
)
def test_any_frame_size_embeds(extractor, shape) -> None:
    frame = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    assert extractor.preprocess(frame).shape == (224, 224, 3)
    assert np.isfinite(extractor.embed(frame)).all()


def test_grey_and_rgba_frames_are_converted(extractor) -> None:
    grey = np.full((100, 120), 90, np.uint8)
    rgba = np.dstack([np.full((100, 120, 3), 90, np.uint8), np.zeros((100, 120), np.uint8)])
    np.testing.assert_array_equal(to_rgb_uint8(grey), to_rgb_uint8(rgba))
    np.testing.assert_array_equal(extractor.embed(grey), extractor.embed(rgba))


def test_bad_frames_get_clear_errors(extractor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        extractor.embed(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="RGB"):
        extractor.embed(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ValueError, match="no pixels"):
        extractor.embed(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="image array"):
        extractor.embed("cat.jpg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(224, 224, 3\)"):
        extractor.embed_input(np.zeros((10, 10, 3), np.uint8))


def test_preprocessing_is_a_centred_square_crop() -> None:
    # A wide frame: red left strip, green centre square, blue right strip.
    frame = np.zeros((100, 160, 3), np.uint8)
    frame[:, :30] = (255, 0, 0)
    frame[:, 30:130] = (0, 255, 0)
    frame[:, 130:] = (0, 0, 255)
    out = preprocess(frame, (50, 50))
    assert out.shape == (50, 50, 3)
    assert (out == (0, 255, 0)).all()
    assert crop_box(100, 160) == (0, 30, 100)
    tall = cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
    assert (preprocess(tall, (50, 50)) == (0, 255, 0)).all()


def test_batch_matches_single_and_reports_progress(extractor, images_dir) -> None:
    images = [read_rgb(images_dir / name) for name in ("cat.bmp", "sunflower.bmp")]
    seen: list[int] = []
    batch = extractor.embed_batch(images, progress=seen.append)
    assert batch.shape == (2, 1024)
    np.testing.assert_array_equal(batch[1], extractor.embed(images[1]))
    assert seen == [1, 2]
    assert extractor.embed_batch([]).shape == (0, 1024)


def test_threads_can_share_one_extractor(extractor, images_dir) -> None:
    image = read_rgb(images_dir / "grace_hopper.bmp")
    expected = extractor.embed(image)
    results: list[np.ndarray] = []

    def work() -> None:
        results.extend(extractor.embed(image) for _ in range(5))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 15
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_edgetpu_choices(cpu_extractor_path, edgetpu_extractor_path) -> None:
    with pytest.raises(
        ValueError, match=r"use the CPU model mobilenet_v1_1\.0_224_quant_embedding"
    ):
        EmbeddingExtractor(edgetpu_extractor_path)
    with pytest.raises(ValueError, match="use the CPU model"):
        EmbeddingExtractor(edgetpu_extractor_path, edgetpu=False)
    with pytest.raises(ValueError, match="not compiled for the Edge TPU"):
        EmbeddingExtractor(cpu_extractor_path, edgetpu=True)
    with pytest.raises(ValueError, match="edgetpu must be"):
        EmbeddingExtractor(cpu_extractor_path, edgetpu="yes")  # type: ignore[arg-type]


def test_models_that_are_not_extractors(tmp_path, broken_model_path) -> None:
    with pytest.raises(ValueError, match="fake-op-double"):
        EmbeddingExtractor(broken_model_path)
    with pytest.raises(ValueError, match="not found"):
        EmbeddingExtractor(tmp_path / "missing.tflite")
    text = tmp_path / "notes.tflite"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="not a TFLite model"):
        EmbeddingExtractor(text)


@pytest.mark.parametrize("shape", [(480, 640, 3), (1080, 1920, 3), (300, 300, 3), (451, 700, 3)])
def test_fast_shrink_matches_a_plain_area_resize(shape) -> None:
    # A smooth scene (what a camera sees): the two-step shrink must look like
    # one INTER_AREA resize, or embeddings would drift from dataset images.
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    scene = 127 + 60 * np.sin(rows / 23.0)[..., None] * np.cos(cols / 31.0)[..., None]
    frame = np.repeat(scene, 3, axis=2).astype(np.uint8)
    reference = cv2.resize(
        np.ascontiguousarray(center_square_of(frame)), (224, 224), interpolation=cv2.INTER_AREA
    )
    difference = np.abs(preprocess(frame, (224, 224)).astype(int) - reference.astype(int))
    assert difference.mean() < 1.0 and difference.max() <= 8


def center_square_of(frame: np.ndarray) -> np.ndarray:
    top, left, side = crop_box(*frame.shape[:2])
    return frame[top : top + side, left : left + side]
