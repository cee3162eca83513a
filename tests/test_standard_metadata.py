"""Standard TFLite metadata (TFLITE_METADATA + packed labels) in every saved model."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.learn import SoftmaxRegression
from kiosk.learn.metadata import (
    embed_metadata,
    read_labels,
    read_metadata,
    read_standard_metadata,
)
from kiosk.learn.tflite_metadata import (
    LABELS_FILE,
    TENSOR_AXIS_LABELS,
    AssociatedFile,
    ModelDescription,
    TensorDescription,
    build_model_metadata,
    pack_files,
    packed_files,
    parse_model_metadata,
)
from kiosk.vision.runtime import load_interpreter
from tests.conftest import CORE50

NAMES = ["ball", "Ünïcode  café", "glasses"]


@pytest.fixture(scope="module")
def saved_model(extractor, tmp_path_factory) -> Path:
    """The real MobileNet v1 extractor + a head trained on real CORe50 frames."""
    folders = [CORE50 / "ball", CORE50 / "can", CORE50 / "glasses"]
    x, y = [], []
    for label, folder in enumerate(folders):
        for path in sorted(folder.glob("*.png"))[:4]:
            x.append(extractor.embed(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)))
            y.append(label)
    model = SoftmaxRegression(extractor.feature_dim, 3, seed=0)
    model.fit({"data_train": np.stack(x), "labels_train": np.asarray(y)})
    model.center_logits(np.stack(x))
    info = {"class_names": NAMES, "extractor": extractor.model_path.name}
    path = tmp_path_factory.mktemp("standard") / "model.tflite"
    path.write_bytes(model.serialize_model(extractor.model_path, metadata=info))
    return path


def test_model_metadata_round_trips():
    labels = AssociatedFile("labels.txt", "names", TENSOR_AXIS_LABELS)
    described = ModelDescription(
        name="n",
        description="d",
        version="1",
        author="a",
        license="Apache-2.0",
        inputs=(TensorDescription("image", "i", True, (128.0,), (128.0,), (0.0,), (255.0,)),),
        outputs=(TensorDescription("probability", "p", False, files=(labels,)),),
    )
    assert parse_model_metadata(build_model_metadata(described)) == described
    with pytest.raises(ValueError):
        parse_model_metadata(b"not metadata at all")


def test_packed_files_round_trip_and_are_optional():
    model = b"\x10\x00\x00\x00TFL3" + bytes(64)
    assert packed_files(model) == {}
    packed = pack_files(model, {"a.txt": b"1\n", "b.txt": "é".encode()})
    assert packed.startswith(model)
    assert packed_files(packed) == {"a.txt": b"1\n", "b.txt": "é".encode()}


def test_saved_model_carries_names_normalization_and_labels(saved_model: Path):
    found = read_standard_metadata(saved_model)
    assert found is not None
    described, files = found
    assert described.name and "3 classes" in described.description
    (image,) = described.inputs
    assert image.image and image.mean == (128.0,) and image.std == (128.0,)
    assert described.label_file == LABELS_FILE and LABELS_FILE in files
    # Whitespace runs fold to one space, as in labels.txt.
    assert read_labels(saved_model) == ["ball", "Ünïcode café", "glasses"]
    # kiosk's own entry is still there and still readable.
    assert read_metadata(saved_model)["class_names"] == NAMES


def test_saving_again_keeps_one_entry_and_one_labels_file(saved_model: Path):
    again = embed_metadata(saved_model.read_bytes(), {"class_names": ["x", "y", "z"]})
    assert read_labels(again) == ["x", "y", "z"]
    assert list(packed_files(again)) == [LABELS_FILE]
    # The interpreter still runs the model with the zip appended.
    interpreter = load_interpreter(again)
    assert interpreter.get_output_details()[0]["shape"].tolist() == [1, 3]


def test_mediapipe_image_classifier_reports_the_class_names(saved_model: Path):
    if os.environ.get("KIOSK_REQUIRE_MEDIAPIPE") == "1":  # CI's interop step: never skip
        import mediapipe as mp
    else:
        mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(saved_model)), max_results=3
    )
    frame = cv2.cvtColor(
        cv2.imread(str(sorted((CORE50 / "ball").glob("*.png"))[0])), cv2.COLOR_BGR2RGB
    )
    with vision.ImageClassifier.create_from_options(options) as classifier:
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame))
    categories = result.classifications[0].categories
    assert {c.category_name for c in categories} == {"ball", "Ünïcode café", "glasses"}
    assert categories[0].category_name == "ball"
