"""The "not sure" gate, mirror-averaged prediction and the fidelity check's views,
on real MobileNet embeddings and a saved model run by the real interpreter."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.embedding import EmbeddingExtractor
from kiosk.learn.fidelity import fidelity_inputs
from kiosk.learn.gate import (
    NOVELTY_CAP,
    NOVELTY_FLOOR,
    NOVELTY_MEASURE,
    NotSureGate,
    activation_patterns,
    is_sure,
    novelty,
    novelty_limit,
)
from kiosk.learn.live import average_views, mirrored
from kiosk.learn.recipe import LabelledEmbeddings, TrainingSettings, fit_head
from kiosk.vision.runtime import load_interpreter
from tests.conftest import CORE50, DATA

CLASSES = ("ball", "can", "glasses")
TRAIN_PER_CLASS = 4


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def taught(extractor: EmbeddingExtractor):
    """A head taught 4 CORe50 frames of 3 objects (with mirrored copies), as kiosk does."""
    train, held_out, y, y_held = [], [], [], []
    for label, name in enumerate(CLASSES):
        frames = sorted((CORE50 / name).glob("*.png"))
        inputs = [extractor.preprocess(_rgb(f)) for f in frames]
        train += inputs[:TRAIN_PER_CLASS]
        held_out += inputs[TRAIN_PER_CLASS:]
        y += [label] * TRAIN_PER_CLASS
        y_held += [label] * (len(frames) - TRAIN_PER_CLASS)
    x = np.stack([extractor.embed_input(i) for i in train])
    x_mirror = np.stack([extractor.embed_input(mirrored(i)) for i in train])
    data = LabelledEmbeddings(x, np.asarray(y), 3, x_mirror, np.ones(len(y), bool))
    fit = fit_head(data, TrainingSettings(), class_names=CLASSES)
    # What the predictor measures novelty against: the samples and their mirrored copies.
    stored = np.concatenate([x, x_mirror])
    return extractor, fit, np.stack(train), stored, np.stack(held_out)


def _novelty(stored: np.ndarray, *views: np.ndarray) -> float:
    value = novelty(activation_patterns(stored), *views)
    assert value is not None
    return value


def test_gate_round_trips_and_refuses_nonsense():
    gate = NotSureGate(0.45, 0.09)
    assert gate.to_json()["novelty_measure"] == NOVELTY_MEASURE
    assert NotSureGate.from_json(gate.to_json()) == gate
    assert NotSureGate.from_json({"threshold": 0.5}).novelty_limit == NOVELTY_CAP
    for document in ([], {}, {"threshold": "x"}, {"threshold": -1}, {"threshold": float("nan")}):
        with pytest.raises(ValueError):
            NotSureGate.from_json(document)


def test_a_limit_saved_in_the_old_measure_is_not_read_in_the_new_one():
    # Heads saved before the activation-pattern measure kept a plain-cosine limit
    # of 0.3, which in the new measure would never flag anything.
    old = NotSureGate.from_json({"threshold": 0.4, "novelty_limit": 0.3})
    assert old == NotSureGate(0.4, NOVELTY_CAP)
    other = {"threshold": 0.4, "novelty_limit": 0.3, "novelty_measure": "something else"}
    assert NotSureGate.from_json(other).novelty_limit == NOVELTY_CAP


def test_novelty_is_zero_on_a_stored_sample_and_averages_the_views():
    rng = np.random.default_rng(0)
    stored = rng.random((4, 16)).astype(np.float32)
    far = np.zeros(16, np.float32)
    far[0] = 1.0
    patterns = activation_patterns(stored)
    assert novelty(patterns, stored[2]) == pytest.approx(0.0, abs=1e-6)
    assert novelty(patterns[:0], stored[2]) is None
    one, other = novelty(patterns, far), novelty(patterns, stored[1])
    assert one is not None and one > 0.1
    assert novelty(patterns, far, stored[1]) == pytest.approx((one + 0.0) / 2, abs=1e-6)
    assert other == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        novelty(patterns)


def test_the_limit_follows_how_far_apart_the_taught_classes_are():
    rng = np.random.default_rng(1)
    # ReLU-like embeddings: the classes share most firing channels and differ in
    # ``own`` channels each; the more they differ, the higher the limit.
    shared = (rng.random(256) * (rng.random(256) < 0.3)).astype(np.float32)
    labels = np.repeat(np.arange(3), 4)

    def classes(own: int) -> np.ndarray:
        centres = np.repeat(shared[None], 3, axis=0)
        for row in centres:
            row[rng.choice(256, own, replace=False)] = rng.random(own)
        return np.repeat(centres, 4, axis=0) * (1 + 0.01 * rng.random((12, 256)))

    limits = [novelty_limit(classes(own), labels) for own in (2, 8, 40)]
    assert limits[0] == NOVELTY_FLOOR < limits[1] < limits[2] == NOVELTY_CAP
    assert novelty_limit(classes(8), np.zeros(12)) == NOVELTY_CAP  # one class: nothing to measure


def test_the_limit_of_a_big_set_is_measured_on_a_strided_subset(monkeypatch):
    from kiosk.learn import gate as gate_module

    rng = np.random.default_rng(2)
    x = np.repeat((rng.random(256) * (rng.random(256) < 0.3))[None], 300, axis=0)
    for row in x:
        row[rng.choice(256, 10, replace=False)] = rng.random(10)  # every sample differs a little
    y = np.arange(300) % 7
    exact = novelty_limit(x, y)
    assert NOVELTY_FLOOR < exact < NOVELTY_CAP
    monkeypatch.setattr(gate_module, "SPREAD_SAMPLE_ROWS", 150)
    sampled = novelty_limit(x, y)
    assert sampled != exact and sampled == pytest.approx(exact, rel=0.2)


def test_a_head_takes_its_limit_from_its_samples_unless_one_is_fixed(taught):
    _, fit, _, stored, _ = taught
    labels = np.tile(np.repeat(np.arange(3), TRAIN_PER_CLASS), 2)
    assert fit.gate is not None
    assert fit.gate.novelty_limit == pytest.approx(novelty_limit(stored, labels))
    n = len(labels) // 2
    data = LabelledEmbeddings(stored[:n], labels[:n], 3, stored[n:], np.ones(n, bool))
    fixed = fit_head(data, TrainingSettings(fixed_novelty_limit=0.2), class_names=CLASSES)
    assert fixed.gate is not None and fixed.gate.novelty_limit == 0.2
    for bad in (-0.1, 1.5, True, "0.2"):
        with pytest.raises(ValueError):
            TrainingSettings(fixed_novelty_limit=bad)
    settings = TrainingSettings(fixed_novelty_limit=0.07)
    assert TrainingSettings.from_json(settings.to_json()) == settings
    # Settings saved before the limit came from the samples named a plain-cosine
    # "novelty_limit"; it is not read as a fixed limit in the new measure.
    assert TrainingSettings.from_json({"novelty_limit": 0.3}).fixed_novelty_limit is None


def test_gate_needs_both_confidence_and_a_familiar_view():
    gate = NotSureGate(threshold=0.5, novelty_limit=0.1)
    sure = np.array([0.8, 0.1, 0.1])
    assert is_sure(sure, 0.05, gate)
    assert is_sure(sure, None, gate)  # no novelty known: the probability decides
    assert not is_sure(sure, 0.15, gate)
    assert not is_sure(np.array([0.4, 0.35, 0.25]), 0.05, gate)


def test_gate_flags_an_object_from_another_set_but_not_a_clear_view(taught):
    extractor, fit, train_inputs, stored, _ = taught
    assert fit.gate is not None
    # A clear view: a taught frame mirrored (the live picture shows it from the other side).
    clear = extractor.embed_input(mirrored(train_inputs[0]))
    assert is_sure(fit.model.predict_proba(clear), _novelty(stored, clear), fit.gate)
    # A hand showing a digit: a set the head was never taught.
    hand = extractor.embed(_rgb(sorted((DATA / "sign_digits_40" / "3").glob("*.JPG"))[0]))
    assert not is_sure(fit.model.predict_proba(hand), _novelty(stored, hand), fit.gate)


def test_average_views():
    a, b = np.array([0.6, 0.4]), np.array([0.2, 0.8])
    np.testing.assert_allclose(average_views(a, b), [0.4, 0.6])
    assert average_views(a).dtype == np.float32
    with pytest.raises(ValueError):
        average_views(a, np.ones(3))
    with pytest.raises(ValueError):
        average_views()


def test_fidelity_inputs_are_reproducible_new_views():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 40, 3), np.uint8)
    first = fidelity_inputs(images, copies=2, seed=1)
    again = fidelity_inputs(images, copies=2, seed=1)
    assert first.inputs.shape == (6, 32, 40, 3) and first.inputs.dtype == np.uint8
    assert first.source.tolist() == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(first.inputs, again.inputs)
    pairs = zip(first.inputs, first.source, strict=True)
    assert not any(np.array_equal(view, images[s]) for view, s in pairs)
    assert "6 new views of 3 stored samples" in first.description
    assert fidelity_inputs(images[:0]).inputs.shape == (0, 32, 40, 3)
    for bad in (images[0], images.astype(np.float32)):
        with pytest.raises(ValueError):
            fidelity_inputs(bad)
    with pytest.raises(ValueError):
        fidelity_inputs(images, copies=0)


@pytest.mark.slow
def test_saved_model_agrees_with_the_float_head_on_views_it_never_fitted(
    taught, cpu_extractor_path: Path
):
    extractor, fit, train_inputs, _, held_out = taught
    interpreter = load_interpreter(fit.model.serialize_model(cpu_extractor_path))
    source = interpreter.get_input_details()[0]["index"]
    sink = interpreter.get_output_details()[0]["index"]
    views = fidelity_inputs(np.concatenate([held_out, train_inputs]), copies=3, seed=0)
    agree = []
    for view in views.inputs:
        interpreter.set_tensor(source, view[None])
        interpreter.invoke()
        saved = int(np.argmax(interpreter.get_tensor(sink)))
        agree.append(saved == int(fit.model.predict(extractor.embed_input(view))))
    assert len(agree) == 3 * 31
    assert np.mean(agree) >= 0.98


def test_a_saved_model_carries_its_gate(taught, cpu_extractor_path: Path):
    from kiosk.learn.metadata import read_not_sure_gate

    _, fit, _, _, _ = taught
    model = fit.model.serialize_model(
        cpu_extractor_path,
        metadata={"class_names": list(CLASSES), "not_sure": fit.gate.to_json()},
    )
    assert read_not_sure_gate(model) == fit.gate
    older = fit.model.serialize_model(
        cpu_extractor_path, metadata={"class_names": list(CLASSES), "confidence_threshold": 0.5}
    )
    assert read_not_sure_gate(older) == NotSureGate(0.5)
    assert read_not_sure_gate(fit.model.serialize_model(cpu_extractor_path)) is None


def test_training_thins_a_big_set_before_measuring_its_spread():
    from kiosk.learn.recipe import _novelty_limit

    rng = np.random.default_rng(3)
    n = 1500  # with mirrors, more than SPREAD_SAMPLE_ROWS rows
    x = np.repeat((rng.random(256) * (rng.random(256) < 0.3))[None], 2 * n, axis=0)
    for row in x:
        row[rng.choice(256, 10, replace=False)] = rng.random(10)
    y = np.arange(n) % 9
    data = LabelledEmbeddings(x[:n], y, 9, x[n:], np.ones(n, bool))
    everything = novelty_limit(x, np.concatenate([y, y]))
    assert _novelty_limit(data, TrainingSettings()) == pytest.approx(everything, rel=0.2)
    no_mirrors = LabelledEmbeddings(x[:n], y, 9)
    assert _novelty_limit(no_mirrors, TrainingSettings()) == pytest.approx(everything, rel=0.2)


@pytest.mark.slow
def test_the_saved_model_keeps_the_probabilities_of_new_views(
    extractor: EmbeddingExtractor, cpu_extractor_path: Path
):
    # One frame of each of ten objects: new frames are far less sure than the
    # samples the range was set from, and the range must still cover their
    # runner-up logits, or the saved model bends their probabilities.
    classes = sorted(d for d in CORE50.iterdir() if d.is_dir())
    taught, new = [], []
    for folder in classes:
        frames = [extractor.preprocess(_rgb(f)) for f in sorted(folder.glob("*.png"))]
        taught.append(frames[0])
        new += frames[1:]
    x = np.stack([extractor.embed_input(i) for i in taught])
    x_mirror = np.stack([extractor.embed_input(mirrored(i)) for i in taught])
    n = len(classes)
    data = LabelledEmbeddings(x, np.arange(n), n, x_mirror, np.ones(n, bool))
    fit = fit_head(data, TrainingSettings(), class_names=tuple(d.name for d in classes))
    interpreter = load_interpreter(fit.model.serialize_model(cpu_extractor_path))
    source = interpreter.get_input_details()[0]["index"]
    sink = interpreter.get_output_details()[0]["index"]
    differences = []
    for view in new:
        interpreter.set_tensor(source, view[None])
        interpreter.invoke()
        saved = interpreter.get_tensor(sink).reshape(-1) / 256.0
        exact = fit.model.predict_proba(extractor.embed_input(view)).reshape(-1)
        differences.append(float(np.abs(saved - exact).max()))
    assert np.mean(differences) < 0.015
