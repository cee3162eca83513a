"""The "kiosk_head" metadata: round trip, replacement, unchanged outputs, writers, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kiosk.cli import models as models_cli
from kiosk.cli import train as train_cli
from kiosk.embedding import EmbeddingExtractor
from kiosk.learn import SoftmaxRegression, tflite_head
from kiosk.learn.metadata import METADATA_NAME, embed_metadata, read_metadata
from kiosk.learn.surgery import cut_classifier_head
from kiosk.session import TeachingSession
from kiosk.vision.demo import OBJECT_NAMES, DemoScene
from kiosk.vision.runtime import load_interpreter
from tests import tflite_builders as tb
from tests.conftest import MOBILENET_V1_SMALL

INFO = {
    "class_names": ["mug", "Ünïcode café", "phone"],
    "sample_counts": np.array([3, 4, 5]),  # numpy values are converted
    "training": {"num_iter": 10, "learning_rate": np.float32(0.5)},
    "metrics": {"train_accuracy": 1.0, "val_accuracy": None},
    "extractor_sha256": "ab" * 32,
}


@pytest.fixture(scope="module")
def small_extractor(tmp_path_factory) -> Path:
    """The cut MobileNet v1 0.25 classifier: a fast (128x128) real extractor."""
    path = tmp_path_factory.mktemp("meta") / "small_extractor.tflite"
    path.write_bytes(cut_classifier_head(MOBILENET_V1_SMALL.read_bytes()).model)
    return path


@pytest.fixture(scope="module")
def saved_head(small_extractor: Path) -> bytes:
    """A real extractor + 3-class head, without kiosk metadata."""
    rng = np.random.default_rng(0)
    model = SoftmaxRegression(256, 3, seed=0)
    model.fit(
        {"data_train": rng.uniform(0, 6, (30, 256)).astype(np.float32),
         "labels_train": np.arange(30) % 3}
    )  # fmt: skip
    return model.serialize_model(small_extractor)


def _names(model: bytes) -> list[bytes]:
    return [m.name for m in tflite_head._parse_model(model).metadata or []]


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = load_interpreter(model)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def test_round_trip_fills_schema_version_and_time(saved_head: bytes) -> None:
    assert read_metadata(saved_head) is None
    info = read_metadata(embed_metadata(saved_head, INFO))
    assert info is not None
    assert info["schema"] == 1 and info["num_classes"] == 3
    assert info["class_names"] == INFO["class_names"]
    assert info["sample_counts"] == [3, 4, 5]
    assert info["training"]["learning_rate"] == 0.5
    assert info["kiosk_version"] and info["created"].endswith("+00:00")


def test_replaces_instead_of_duplicating_and_keeps_other_metadata(saved_head: bytes) -> None:
    once = embed_metadata(saved_head, INFO)
    twice = embed_metadata(once, {"class_names": ["only"]})
    # The cut extractor's rewritten standard entry is replaced, not duplicated.
    assert _names(saved_head) == [b"min_runtime_version", b"TFLITE_METADATA"]
    assert _names(twice) == [b"min_runtime_version", b"TFLITE_METADATA", METADATA_NAME.encode()]
    assert read_metadata(twice)["class_names"] == ["only"]
    # The buffer is reused: saving again does not grow the buffer list.
    assert len(tflite_head._parse_model(twice).buffers) == len(
        tflite_head._parse_model(once).buffers
    )


def test_outputs_are_unchanged(saved_head: bytes) -> None:
    with_metadata = embed_metadata(saved_head, INFO)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
        np.testing.assert_array_equal(_run(with_metadata, x), _run(saved_head, x))


def test_keeps_a_builder_models_metadata_and_signature() -> None:
    model = tb.fc_extractor_2d()
    out = embed_metadata(model, {"class_names": ["a"]})
    parsed = tflite_head._parse_model(out)
    assert [m.name for m in parsed.metadata] == [
        tb.TINY_METADATA_NAME.encode(),
        b"TFLITE_METADATA",
        b"kiosk_head",
    ]
    kept = parsed.buffers[parsed.metadata[0].buffer].data
    assert bytes(kept) == tb.TINY_METADATA_BYTES
    assert parsed.signatureDefs[0].signatureKey == b"serving_default"


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"\x00" * 4 + b"TFL3" + b"\xff" * 64], ids=["empty", "text", "bad"]
)
def test_garbage_gives_none_or_a_clean_value_error(data: bytes) -> None:
    try:
        assert read_metadata(data) is None
    except ValueError as error:
        assert "TFLite" in str(error) or "kiosk_head" in str(error)
    with pytest.raises(ValueError):
        embed_metadata(data, {})


def test_bad_info_and_bad_json_are_value_errors(saved_head: bytes) -> None:
    with pytest.raises(ValueError, match="JSON-serializable"):
        embed_metadata(saved_head, {"x": object()})
    with pytest.raises(ValueError, match="dict"):
        embed_metadata(saved_head, ["not", "a", "dict"])  # type: ignore[arg-type]
    # A foreign writer's non-JSON entry under our name is reported, not crashed on.
    model_t = tflite_head._parse_model(embed_metadata(saved_head, {}))
    entry = next(m for m in model_t.metadata if m.name == b"kiosk_head")
    model_t.buffers[entry.buffer].data = np.frombuffer(b"\xff{", np.uint8).copy()
    with pytest.raises(ValueError, match="not valid JSON"):
        read_metadata(tb.pack(model_t))


def test_read_from_a_path(saved_head: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(embed_metadata(saved_head, INFO))
    assert read_metadata(path)["class_names"][1] == "Ünïcode café"
    with pytest.raises(ValueError, match="does not exist"):
        read_metadata(tmp_path / "missing.tflite")


def test_serialize_model_metadata_keyword(small_extractor: Path) -> None:
    model = SoftmaxRegression(256, 2, seed=0)
    model.fit({"data_train": np.eye(2, 256, dtype=np.float32) * 5, "labels_train": [0, 1]})
    plain = model.serialize_model(small_extractor)
    tagged = model.serialize_model(small_extractor, metadata={"class_names": ["a", "b"]})
    assert read_metadata(plain) is None
    assert read_metadata(tagged)["class_names"] == ["a", "b"]
    x = np.full((1, 128, 128, 3), 77, np.uint8)
    np.testing.assert_array_equal(_run(tagged, x), _run(plain, x))


# -- the writers and the reader on the command line -----------------------------------


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, small_extractor: Path, core50_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("train")
    status = train_cli.main(
        ["--data-dir", str(core50_dir), "--embedding-extractor", str(small_extractor),
         "--output-dir", str(out), "--num-threads", "2", "--seed", "3"]
    )  # fmt: skip
    assert status == 0
    return out


def test_kiosk_train_writes_the_class_names(trained_dir: Path, core50_dir: Path) -> None:
    info = read_metadata(trained_dir / "retrained_model.tflite")
    classes = sorted(p.name for p in core50_dir.iterdir() if p.is_dir())
    assert info["class_names"] == classes
    labels = (trained_dir / "labels.txt").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in labels] == classes
    assert len(info["sample_counts"]) == 10 and sum(info["sample_counts"]) > 0
    assert info["extractor"] == "small_extractor.tflite" and len(info["extractor_sha256"]) == 64
    assert info["feature_dim"] == 256 and info["training"]["seed"] == 3
    assert 0 <= info["metrics"]["train_accuracy"] <= 1


def test_session_save_writes_metadata(small_extractor: Path, tmp_path: Path) -> None:
    extractor = EmbeddingExtractor(small_extractor, num_threads=2, edgetpu=False)
    session = TeachingSession(extractor)
    scene = DemoScene(seed=0)
    for obj, captures in ((0, 4), (1, 5)):
        index = session.store.add_class(OBJECT_NAMES[obj])
        for k in range(captures):
            session.capture(index, scene.render(0.7 * k, obj, k))
    result = session.train()
    assert not result.cancelled and not result.diverged
    session.save(tmp_path / "model.tflite")
    info = read_metadata(tmp_path / "model.tflite")
    assert info["class_names"] == [OBJECT_NAMES[0], OBJECT_NAMES[1]]
    assert info["sample_counts"] == [4, 5]
    assert info["extractor_sha256"] == extractor.sha256
    assert info["training"]["tool"] == "kiosk"


def test_kiosk_models_info(trained_dir: Path, saved_head: bytes, tmp_path: Path, capsys) -> None:
    model = trained_dir / "retrained_model.tflite"
    assert models_cli.main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "classes (10):" in out and "train_accuracy=" in out and "samples" in out
    assert models_cli.main(["info", "--json", str(model)]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == 1

    plain = tmp_path / "plain.tflite"
    plain.write_bytes(saved_head)
    assert models_cli.main(["info", str(plain)]) == 1
    assert "no kiosk metadata" in capsys.readouterr().out

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    assert models_cli.main(["info", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kiosk-models: error: ") and err.count("\n") == 1
