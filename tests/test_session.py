"""TeachingSession end to end with the real MobileNet extractor, LiteRT and files."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kiosk.capture import decode_model_input
from kiosk.embedding import EmbeddingExtractor
from kiosk.labels import format_labels
from kiosk.session import SaveError, TeachingSession
from kiosk.store import EmbeddingStore
from kiosk.vision.demo import OBJECT_NAMES, DemoScene
from kiosk.vision.runtime import load_interpreter

OBJECTS = (0, 1, 2)  # red disc, blue square, green triangle
CAPTURES = 10


@pytest.fixture(scope="module")
def scene() -> DemoScene:
    return DemoScene(seed=0)


def teach(session: TeachingSession, scene: DemoScene, captures: int = CAPTURES) -> None:
    """One class per demo object, ``captures`` frames each, spread over 7 s of motion."""
    for obj in OBJECTS:
        index = session.store.add_class(OBJECT_NAMES[obj])
        for k in range(captures):
            session.capture(index, scene.render(0.7 * k, obj, k))


@pytest.fixture(scope="module")
def trained(extractor: EmbeddingExtractor, scene: DemoScene) -> TeachingSession:
    """A session taught the three objects and trained once. Tests must not change it."""
    session = TeachingSession(extractor)
    teach(session, scene)
    session.store.add_class("Nothing yet")  # an empty class is left out of training
    result = session.train()
    assert not result.cancelled and not result.diverged
    return session


def fresh_frames(scene: DemoScene) -> list[tuple[int, np.ndarray]]:
    """Frames never captured: later times, other positions, other light and noise."""
    return [
        (obj, scene.render(40.0 + 1.3 * k + obj, obj, 1000 + k))
        for obj in OBJECTS
        for k in range(8)
    ]


# -- capture -------------------------------------------------------------------


def test_capture_stores_a_reproducible_embedding(
    extractor: EmbeddingExtractor, scene: DemoScene
) -> None:
    session = TeachingSession(extractor)
    session.store.add_class()
    frame = scene.render(1.0, 0, 1)
    frame.flags.writeable = False  # as the grabber hands frames out
    sample_id = session.capture(0, frame)
    (sample,) = session.store.samples(0)
    assert sample.id == sample_id
    assert sample.thumbnail.shape == (96, 96, 3) and sample.thumbnail.dtype == np.uint8
    assert sample.image[:2] == b"\xff\xd8"  # JPEG
    # Re-embedding the stored image gives exactly the stored embedding.
    again = extractor.embed_input(decode_model_input(sample.image))
    np.testing.assert_array_equal(again, sample.embedding)
    # And JPEG at quality 95 is close to the raw frame's embedding.
    raw = extractor.embed(frame)
    cosine = raw @ again / (np.linalg.norm(raw) * np.linalg.norm(again))
    assert cosine > 0.97


def test_capture_takes_frames_of_any_shape(extractor: EmbeddingExtractor) -> None:
    session = TeachingSession(extractor)
    session.store.add_class()
    rng = np.random.default_rng(0)
    frames = [
        np.zeros((1, 1, 3), np.uint8),
        rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8),
        rng.integers(0, 255, (480, 640), dtype=np.uint8),  # grey
        rng.integers(0, 255, (100, 50, 4), dtype=np.uint8),  # RGBA
        rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),  # exactly the input size
    ]
    for frame in frames:
        session.capture(0, frame)
    assert session.store.counts() == [len(frames)]
    with pytest.raises(IndexError):
        session.capture(1, frames[0])
    with pytest.raises(ValueError):
        session.capture(0, np.zeros((4, 4, 3), np.float32))
    assert session.store.counts() == [len(frames)]


# -- training and prediction ---------------------------------------------------


def test_can_train_needs_two_classes_with_samples(
    extractor: EmbeddingExtractor, scene: DemoScene
) -> None:
    session = TeachingSession(extractor)
    assert not session.can_train
    assert session.predict(scene.render(0, 0)) is None
    for _ in range(3):
        session.store.add_class()
    session.capture(0, scene.render(0, 0))
    assert not session.can_train
    with pytest.raises(ValueError, match="two classes"):
        session.train()
    session.capture(2, scene.render(0, 1))
    assert session.can_train
    with pytest.raises(ValueError, match="256-d"):
        TeachingSession(extractor, EmbeddingStore(256))


@pytest.mark.slow
def test_trained_head_predicts_fresh_demo_frames(
    trained: TeachingSession, scene: DemoScene
) -> None:
    head = trained.head
    assert head is not None and head.num_classes == 3
    assert head.trained_names == tuple(OBJECT_NAMES[o] for o in OBJECTS)
    assert not trained.head_is_stale and trained.head_is_usable
    correct = 0
    frames = fresh_frames(scene)
    for obj, frame in frames:
        prediction = trained.predict(frame)
        assert prediction is not None
        assert prediction.probabilities.shape == (3,)
        assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert prediction.class_names == ("red disc", "blue square", "green triangle")
        assert prediction.class_indices == (0, 1, 2)
        assert prediction.class_name == trained.store.class_names[prediction.class_index]
        correct += prediction.class_index == OBJECTS.index(obj)
    assert correct / len(frames) >= 0.9


def test_training_reports_progress_and_is_reproducible(
    extractor: EmbeddingExtractor, scene: DemoScene
) -> None:
    session = TeachingSession(extractor)
    teach(session, scene, captures=4)
    progress = []
    result = session.train(callback=progress.append)
    assert progress and progress[-1].iteration <= progress[-1].num_iter
    assert result.train_accuracy > 0.9
    weights = session.head.model.weights.copy()
    session.train()
    np.testing.assert_allclose(session.head.model.weights, weights)  # seeded


def test_cancel_keeps_the_previous_head(extractor: EmbeddingExtractor, scene: DemoScene) -> None:
    session = TeachingSession(extractor)
    teach(session, scene, captures=3)
    cancelled_at_start = threading.Event()
    cancelled_at_start.set()
    result = session.train(cancel=cancelled_at_start)
    assert result.cancelled and session.head is None

    session.train()
    first = session.head
    assert first is not None
    swaps = []
    session.events.headChanged.connect(swaps.append)
    stop = threading.Event()

    def stop_soon(progress: object) -> None:
        stop.set()

    result = session.train(callback=stop_soon, cancel=stop)
    assert result.cancelled
    assert session.head is first and swaps == []
    result = session.train(cancel=lambda: False)
    assert not result.cancelled and session.head is not first and swaps == [session.head]


def test_capture_while_training_and_one_training_at_a_time(
    extractor: EmbeddingExtractor, scene: DemoScene
) -> None:
    session = TeachingSession(extractor)
    teach(session, scene, captures=3)
    in_training = threading.Event()
    go_on = threading.Event()
    outcome: dict[str, object] = {}

    def callback(progress: object) -> None:
        in_training.set()
        go_on.wait(10)

    def worker() -> None:
        outcome["result"] = session.train(callback=callback)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert in_training.wait(10)
        assert session.is_training
        with pytest.raises(RuntimeError, match="already running"):
            session.train()
        # Captures go on while the worker trains on its snapshot.
        session.capture(0, scene.render(9.0, OBJECTS[0], 9))
        session.capture(1, scene.render(9.0, OBJECTS[1], 9))
    finally:
        go_on.set()
        thread.join(30)
    assert not outcome["result"].cancelled
    assert session.head is not None and not session.is_training
    assert session.store.counts() == [4, 4, 3]
    assert session.head_is_stale  # trained before the two new captures


def test_staleness_and_deleted_classes(extractor: EmbeddingExtractor, scene: DemoScene) -> None:
    session = TeachingSession(extractor)
    teach(session, scene, captures=3)
    session.train()
    frame = scene.render(50.0, OBJECTS[2], 50)
    session.rename_class(0, "Tomato")
    assert not session.head_is_stale  # renames are fine
    assert session.predict(frame).class_names[0] == "Tomato"
    session.add_class("Empty")
    assert not session.head_is_stale  # so is a new empty class
    session.capture(3, scene.render(0, None))
    assert session.head_is_stale  # a new class with samples
    session.remove_class(3)
    assert not session.head_is_stale
    session.undo()  # "Empty" comes back with its sample
    assert session.head_is_stale and session.store.counts() == [3, 3, 3, 1]
    session.undo()  # its capture goes
    assert not session.head_is_stale
    session.undo()  # then the class itself
    session.undo()  # then the rename
    assert session.store.class_names == ["red disc", "blue square", "green triangle"]
    session.store.remove_samples([session.store.samples(2)[-1].id])
    assert session.head_is_stale
    # Deleting a trained class: the head cannot name one of its outputs any more.
    session.store.remove_class(0)
    assert not session.head_is_usable
    assert session.predict(frame) is None
    with pytest.raises(SaveError, match="train again"):
        session.save(Path("/nonexistent/model.tflite"))
    session.train()
    prediction = session.predict(frame)
    assert prediction is not None and prediction.class_names == ("blue square", "green triangle")
    assert prediction.class_name == "green triangle" and prediction.class_index == 1


# -- saving --------------------------------------------------------------------


@pytest.mark.slow
def test_save_writes_a_model_that_agrees_with_the_float_head(
    trained: TeachingSession, scene: DemoScene, tmp_path: Path
) -> None:
    report = trained.save(tmp_path / "model.tflite")
    assert report.model_path == tmp_path / "model.tflite"
    assert report.labels_path == tmp_path / "labels.txt"
    # Two new views of every stored sample (the head fitted the samples themselves).
    assert report.num_checked == 2 * 3 * CAPTURES
    assert report.checked.startswith("60 new views of 30 stored samples")
    assert report.agreement is not None and report.agreement >= 0.95
    assert report.note is None and report.seconds > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "model.tflite"]
    assert (tmp_path / "model.tflite").stat().st_mode & 0o777 != 0o600  # not mkstemp's mode

    lines = (tmp_path / "labels.txt").read_text(encoding="utf-8").splitlines()
    labels = dict(line.split(" ", 1) for line in lines)
    assert labels == {"0": "red disc", "1": "blue square", "2": "green triangle"}

    # The saved model runs on its own and agrees with the live prediction.
    interpreter = load_interpreter(tmp_path / "model.tflite")
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    assert tuple(output_detail["shape"]) == (1, 3)
    agree = 0
    frames = fresh_frames(scene)
    for _, frame in frames:
        interpreter.set_tensor(input_detail["index"], trained.extractor.preprocess(frame)[None])
        interpreter.invoke()
        top = int(np.argmax(interpreter.get_tensor(output_detail["index"])))
        agree += top == trained.predict(frame).class_index
    assert agree / len(frames) >= 0.95


def test_save_uses_current_names_and_a_custom_labels_path(
    extractor: EmbeddingExtractor, scene: DemoScene, tmp_path: Path
) -> None:
    session = TeachingSession(extractor)
    teach(session, scene, captures=2)
    session.train()
    session.store.rename_class(1, "Blaues Quadrat ☐")
    report = session.save(tmp_path / "m.tflite", tmp_path / "sub-labels.txt")
    assert report.labels_path == tmp_path / "sub-labels.txt"
    assert report.labels_path.read_text(encoding="utf-8") == format_labels(
        ["red disc", "Blaues Quadrat ☐", "green triangle"]
    )


@pytest.mark.slow
def test_failed_saves_keep_earlier_files_and_leave_no_temporaries(
    trained: TeachingSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, labels = tmp_path / "model.tflite", tmp_path / "labels.txt"
    model.write_bytes(b"earlier model")
    labels.write_text("0 earlier\n")

    def unchanged() -> bool:
        return (
            model.read_bytes() == b"earlier model"
            and labels.read_text() == "0 earlier\n"
            and sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "model.tflite"]
        )

    with pytest.raises(SaveError, match="does not exist"):
        trained.save(tmp_path / "missing" / "model.tflite")
    with pytest.raises(SaveError, match="is a folder"):
        trained.save(tmp_path)
    with pytest.raises(SaveError, match="same file"):
        trained.save(model, model)

    # The disk fills up while the files are written.
    import kiosk.atomic

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(kiosk.atomic.os, "fsync", disk_full)
        with pytest.raises(SaveError, match="disk is full"):
            trained.save(model)
    assert unchanged()

    # The head cannot be serialized, or serializes to something that does not load.
    head_model = trained.head.model
    with monkeypatch.context() as patch:
        patch.setattr(head_model, "serialize_model", lambda path, **_: 1 / 0)
        with pytest.raises(SaveError, match="could not be built"):
            trained.save(model)
        patch.setattr(head_model, "serialize_model", lambda path, **_: b"\0\0\0\0TFL3 broken")
        with pytest.raises(SaveError, match="does not load"):
            trained.save(model)
    assert unchanged()


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """Make a folder unwritable even for root (chattr +i), else by its mode bits."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], check=False).returncode:
        pytest.skip("running as root without chattr +i: cannot make a folder read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_save_into_a_read_only_folder_fails_cleanly(
    trained: TeachingSession, tmp_path: Path
) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(b"earlier")
    with unwritable(folder):
        with pytest.raises(SaveError, match="not writable"):
            trained.save(folder / "model.tflite")
        assert (folder / "model.tflite").read_bytes() == b"earlier"
        assert [p.name for p in folder.iterdir()] == ["model.tflite"]


def test_save_before_training_fails(extractor: EmbeddingExtractor, tmp_path: Path) -> None:
    with pytest.raises(SaveError, match="train"):
        TeachingSession(extractor).save(tmp_path / "model.tflite")
    assert list(tmp_path.iterdir()) == []


class EdgeTpuNamedExtractor:
    """The CPU extractor's arithmetic, but claiming the Edge TPU model file
    (same network): what a session built for an Edge TPU that is not in use sees."""

    def __init__(self, cpu: EmbeddingExtractor, edgetpu_path: Path) -> None:
        self._cpu = cpu
        self.model_path = edgetpu_path
        self.feature_dim = cpu.feature_dim
        self.input_size = cpu.input_size
        self.on_edgetpu = False

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return self._cpu.preprocess(image)

    def embed_input(self, model_input: np.ndarray) -> np.ndarray:
        return self._cpu.embed_input(model_input)

    def embed(self, image: np.ndarray) -> np.ndarray:
        return self._cpu.embed(image)


def test_save_for_the_edgetpu_skips_the_check_and_says_so(
    extractor: EmbeddingExtractor, edgetpu_extractor_path: Path, scene: DemoScene, tmp_path: Path
) -> None:
    session = TeachingSession(EdgeTpuNamedExtractor(extractor, edgetpu_extractor_path))
    teach(session, scene, captures=2)
    session.train()
    report = session.save(tmp_path / "model_edgetpu.tflite")
    assert report.agreement is None and report.num_checked == 0
    assert "Edge TPU" in report.note
    assert b"edgetpu-custom-op" in report.model_path.read_bytes()


@pytest.mark.slow
def test_training_in_a_child_process_gives_the_same_head(extractor, scene):
    from kiosk.learn.fit_process import FitProcess

    session = TeachingSession(extractor)
    teach(session, scene, captures=6)  # enough for a held-out evaluation
    session.train()
    here = session.head
    with FitProcess() as fitter:
        progress: list = []
        result = session.train(fitter=fitter, callback=progress.append)
    there = session.head
    assert there is not here and not result.cancelled and progress
    np.testing.assert_allclose(there.model.weights, here.model.weights, atol=1e-6)
    np.testing.assert_allclose(there.model.biases, here.model.biases, atol=1e-6)
    assert here.evaluation is not None
    assert there.evaluation.accuracy == pytest.approx(here.evaluation.accuracy)


@pytest.mark.slow
def test_a_class_named_like_the_edgetpu_op_keeps_its_cpu_model_checked(
    trained: TeachingSession, tmp_path: Path
) -> None:
    from kiosk.vision.runtime import is_edgetpu_model

    old = trained.store.class_names[0]
    trained.store.rename_class(0, "edgetpu-custom-op")
    try:
        report = trained.save(tmp_path / "model.tflite")
    finally:
        trained.store.rename_class(0, old)
    # The Edge TPU test reads the model's operator codes, never its labels.
    assert not is_edgetpu_model((tmp_path / "model.tflite").read_bytes())
    assert report.agreement is not None and report.note is None
    assert EmbeddingExtractor(trained.extractor.model_path).on_edgetpu is False
