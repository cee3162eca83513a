"""Instant predictions, evaluation, "not sure" and the fidelity gate, through the session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kiosk.embedding import EmbeddingExtractor
from kiosk.learn.fit_process import fit_here
from kiosk.learn.gate import activation_patterns
from kiosk.learn.gate import novelty as gate_novelty
from kiosk.learn.metadata import read_confidence_threshold, read_metadata
from kiosk.session import SaveCancelled, SaveReport, TeachingSession
from kiosk.vision.demo import OBJECT_NAMES, DemoScene

OBJECTS = (0, 1, 2)


@pytest.fixture(scope="module")
def scene() -> DemoScene:
    return DemoScene(seed=0)


@pytest.fixture(scope="module")
def trained(extractor: EmbeddingExtractor, scene: DemoScene) -> TeachingSession:
    """Three demo objects, 10 captures each (2 of each held out), trained once."""
    session = TeachingSession(extractor)
    for obj in OBJECTS:
        index = session.store.add_class(OBJECT_NAMES[obj])
        for k in range(10):
            session.capture(index, scene.render(0.7 * k, obj, k))
    result = session.train()
    assert not result.cancelled and not result.diverged
    return session


def test_imprinted_predictions_before_training(
    extractor: EmbeddingExtractor, scene: DemoScene
) -> None:
    session = TeachingSession(extractor)
    first = session.store.add_class("red disc")
    second = session.store.add_class("blue square")
    frame = scene.render(30.0, 1, 500)
    assert session.predict_live(frame) is None  # nothing captured
    for k in range(3):
        session.capture(first, scene.render(0.7 * k, 0, k))
    assert session.predict_live(frame) is None  # one class cannot be told apart
    for k in range(3):
        session.capture(second, scene.render(0.7 * k, 1, k))
    assert session.predict(frame) is None  # no trained head yet...
    prediction = session.predict_live(frame)  # ...but an instant one
    assert prediction is not None and prediction.source == "imprinted"
    assert prediction.class_name == "blue square" and prediction.sure
    assert prediction.probabilities.shape == (2,)
    # Cached until the store changes; a capture refreshes it.
    cached = session.predictor.imprinted_head()
    assert session.predictor.imprinted_head()[1] is cached[1]
    session.capture(first, scene.render(3.0, 0, 9))
    assert session.predictor.imprinted_head()[1] is not cached[1]
    assert session.predictor.imprinted_head()[1].counts == (4, 3)


@pytest.mark.slow
def test_training_evaluates_and_sets_a_threshold(
    trained: TeachingSession, scene: DemoScene
) -> None:
    head = trained.head
    assert head is not None and head.evaluation is not None
    evaluation = head.evaluation
    assert evaluation.class_names == tuple(OBJECT_NAMES[o] for o in OBJECTS)
    assert evaluation.num_samples == 3 * 2  # 15 % of 10, rounded, per class
    assert evaluation.confusion.shape == (3, 3)
    assert 0.4 <= head.confidence_threshold <= 0.9
    prediction = trained.predict_live(scene.render(41.0, 2, 900))
    assert prediction.source == "trained"
    assert prediction.threshold == head.confidence_threshold
    assert prediction.class_name == OBJECT_NAMES[2]


def test_not_sure_below_the_threshold(trained: TeachingSession) -> None:
    head = trained.head
    # An embedding halfway between two classes' means gets a split vote.
    x, y = trained.store.snapshot().as_arrays([0, 1])
    middle = 0.5 * (x[y == 0].mean(axis=0) + x[y == 1].mean(axis=0))
    prediction = trained.predict_embedding(middle)
    probabilities = head.model.predict_proba(middle)
    assert prediction.confidence == pytest.approx(float(np.max(probabilities)))
    assert prediction.sure == (prediction.confidence >= head.confidence_threshold)


@pytest.mark.slow
def test_save_reports_per_class_agreement_and_stores_the_threshold(
    trained: TeachingSession, tmp_path: Path
) -> None:
    asked: list[SaveReport] = []
    report = trained.save(tmp_path / "model.tflite", confirm=lambda r: asked.append(r) or True)
    assert list(report.per_class_agreement) == [OBJECT_NAMES[o] for o in OBJECTS]
    assert all(0.9 <= v <= 1.0 for v in report.per_class_agreement.values())
    assert asked == [] or report.low_fidelity_classes()  # asked only when low
    info = read_metadata(tmp_path / "model.tflite")
    assert info["confidence_threshold"] == pytest.approx(trained.head.confidence_threshold)
    assert read_confidence_threshold(tmp_path / "model.tflite") == pytest.approx(
        trained.head.confidence_threshold
    )
    assert len(info["metrics"]["val_per_class_accuracy"]) == 3


@pytest.mark.slow
def test_fidelity_gate_asks_before_replacing_files(
    trained: TeachingSession, tmp_path: Path
) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"earlier model")
    (tmp_path / "labels.txt").write_text("earlier labels")
    asked: list[SaveReport] = []

    def decline(report: SaveReport) -> bool:
        asked.append(report)
        assert model.read_bytes() == b"earlier model"  # still staged while asking
        return False

    # A threshold above 100 % makes every class "low", so the gate must ask.
    with pytest.raises(SaveCancelled):
        trained.save(model, confirm=decline, fidelity_threshold=1.01)
    assert len(asked) == 1
    assert asked[0].low_fidelity_classes(1.01) == [OBJECT_NAMES[o] for o in OBJECTS]
    assert model.read_bytes() == b"earlier model"
    assert (tmp_path / "labels.txt").read_text() == "earlier labels"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "model.tflite"]

    report = trained.save(model, confirm=lambda r: True, fidelity_threshold=1.01)
    assert report.model_path == model and model.read_bytes() != b"earlier model"


def test_capture_feedback_flags_the_same_view_twice(
    extractor: EmbeddingExtractor, scene: DemoScene
) -> None:
    session = TeachingSession(extractor)
    index = session.store.add_class("red disc")
    frame = scene.render(1.0, 0, 1)
    first = session.capture(index, frame)
    again = session.capture(index, frame)  # the object did not move
    moved = session.capture(index, scene.render(9.0, 0, 77))
    assert session.capture_feedback(first).similarity is None
    assert session.capture_feedback(again).duplicate
    assert not session.capture_feedback(moved).duplicate
    session.undo()
    assert session.capture_feedback(moved) is None  # gone


def test_flipped_copies_train_only_beside_their_originals(
    extractor: EmbeddingExtractor, scene: DemoScene
) -> None:
    session = TeachingSession(extractor)
    for obj in (0, 1):
        index = session.store.add_class(OBJECT_NAMES[obj])
        for k in range(10):
            session.capture(index, scene.render(0.7 * k, obj, k))
    samples = [s for c in session.store.snapshot().samples for s in c]
    # Every capture carries its own mirrored embedding: one owner, no side table.
    assert all(s.flipped is not None and s.flipped.shape == s.embedding.shape for s in samples)
    seen: list[dict] = []

    def spy(model, data, config, **kwargs):  # the fitter hook sees exactly what is fitted
        seen.append(data)
        return fit_here(model, data, config, **kwargs)

    session.train(fitter=spy)
    data = seen[0]  # the hold-out fit
    held_out = [s for s in samples if any(np.array_equal(s.embedding, v) for v in data["data_val"])]
    assert held_out  # 10 a class: some are held out
    train_rows = [tuple(row) for row in data["data_train"]]
    for sample in held_out:  # neither a held-out sample nor its mirror is fitted
        assert tuple(sample.flipped) not in train_rows
    trained = [s for s in samples if s not in held_out]
    assert all(tuple(s.flipped) in train_rows for s in trained)
    assert len(data["data_train"]) == 2 * len(trained)
    assert session.head is not None and session.head.mirrored_counts == (10, 10)


def test_observe_gives_prediction_and_novelty_from_one_embedding() -> None:
    from tests.fakes import FakeExtractor, picture

    session = TeachingSession(FakeExtractor())
    assert session.observe(picture(1)) == (None, None)  # nothing stored: not even embedded
    session.add_class("a")
    session.capture(0, picture(1))
    prediction, novelty = session.observe(picture(1))
    assert prediction is None  # one class: nothing to tell apart
    assert novelty == pytest.approx(0.0, abs=0.02)
    far = session.observe(picture(999))[1]
    assert far is not None and far > novelty
    session.capture(0, picture(999))  # the cached matrix follows the store
    assert session.observe(picture(999))[1] == pytest.approx(0.0, abs=0.02)


def test_the_live_answer_averages_the_mirror_and_the_gate_flags_new_views() -> None:
    from kiosk.learn.live import mirrored
    from tests.fakes import FakeExtractor, picture

    session = TeachingSession(FakeExtractor())
    for c in range(2):
        session.add_class(f"c{c}")
        for k in range(6):
            session.capture(c, picture(100 * c + k))
    session.train()
    head = session.head
    assert head.gate is not None and head.gate.threshold == head.confidence_threshold
    frame = picture(3)
    prediction, novelty = session.observe(frame)
    extractor = session.extractor
    model_input = extractor.preprocess(frame)
    views = [extractor.embed_input(model_input), extractor.embed_input(mirrored(model_input))]
    expected = np.mean([head.model.predict_proba(v) for v in views], axis=0)
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)
    assert prediction.novelty == novelty and prediction.sure
    # Novelty, too, is measured on both views, against every sample and its mirrored copy.
    snapshot = session.store.snapshot()
    samples = [s for group in snapshot.samples for s in group]
    stored = [s.embedding for s in samples] + [s.flipped for s in samples if s.flipped is not None]
    both = gate_novelty(activation_patterns(np.stack(stored)), *views)
    assert novelty == pytest.approx(both, abs=1e-6)
    assert len(stored) > len(samples)
    # A view unlike anything stored is "not sure", however confident the head is.
    far = session.predictor.predict_embedding(views[0], views[1], novelty=0.9)
    assert far.confidence == prediction.confidence and not far.sure
