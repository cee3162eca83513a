"""Edge TPU fall-back at start: the CPU twin loads and the window says so.

There is no Edge TPU on the test machines, so the ``_edgetpu`` extractor fails
to load here exactly as it does on a kiosk whose Coral was unplugged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kiosk.cli import kiosk as cli
from kiosk.cli.kiosk import CPU_FALLBACK_MESSAGE, load_extractor
from kiosk.ui import app, dialogs
from kiosk.ui.app import build
from kiosk.vision import runtime
from kiosk.vision.sources import DemoSource
from tests.fakes import picture


class TwinStandIn:
    """Stands in for the Edge TPU extractor: the same embeddings size, another digest."""

    on_edgetpu = False

    def __init__(self, cpu) -> None:
        self._cpu = cpu
        self.feature_dim = cpu.feature_dim
        self.model_path = cpu.model_path.with_name(cpu.model_path.stem + "_edgetpu.tflite")
        self.sha256 = "0" * 64

    def preprocess(self, image):
        return self._cpu.preprocess(image)

    def embed_input(self, model_input):
        return self._cpu.embed_input(model_input)

    def embed(self, image):
        return self._cpu.embed(image)


@pytest.fixture
def model_folder(tmp_path, cpu_extractor_path, edgetpu_extractor_path) -> Path:
    """A models folder holding both twins, as `kiosk-models fetch` leaves it."""
    folder = tmp_path / "models"
    folder.mkdir()
    for path in (cpu_extractor_path, edgetpu_extractor_path):
        shutil.copyfile(path, folder / path.name)
    return folder


@pytest.fixture(autouse=True)
def no_edgetpu() -> None:
    if runtime.edgetpu_available():
        pytest.skip("an Edge TPU is present: nothing to fall back from")


def test_edgetpu_model_falls_back_to_its_cpu_twin(model_folder, edgetpu_extractor_path) -> None:
    extractor, note = load_extractor(model_folder / edgetpu_extractor_path.name, 2)
    assert note == CPU_FALLBACK_MESSAGE
    assert extractor.model_path == model_folder / runtime.cpu_twin_name(edgetpu_extractor_path)
    assert not extractor.on_edgetpu
    assert extractor.embed(picture(0)).shape == (extractor.feature_dim,)


def test_no_twin_means_the_original_error(tmp_path, edgetpu_extractor_path) -> None:
    lonely = tmp_path / edgetpu_extractor_path.name
    shutil.copyfile(edgetpu_extractor_path, lonely)
    with pytest.raises(ValueError, match="needs an Edge TPU"):
        load_extractor(lonely, 2)


def test_a_broken_edgetpu_named_file_is_not_hidden_by_the_twin(model_folder) -> None:
    broken = model_folder / "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite"
    broken.write_bytes(b"garbage, not a model")
    with pytest.raises(ValueError, match="not a TFLite model"):
        load_extractor(broken, 2)


def test_main_passes_the_note_to_the_window(monkeypatch, tmp_path, model_folder) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text("")
    seen: dict = {}

    class Built(Exception):
        pass

    def fake_build(extractor, source, **kwargs):
        seen.update(kwargs, extractor=extractor)
        raise Built

    monkeypatch.setattr(app, "build", fake_build)
    model = model_folder / "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite"
    with pytest.raises(Built):
        cli.main(["--config", str(config), "--model", str(model), "--source", "demo"])
    assert seen["model_note"] == CPU_FALLBACK_MESSAGE
    assert seen["extractor"].model_path.name == runtime.cpu_twin_name(model)


def test_window_shows_a_badge_and_a_status_message(qtbot, extractor, tmp_path) -> None:
    kiosk = build(extractor, DemoSource(), model_note=CPU_FALLBACK_MESSAGE)
    qtbot.addWidget(kiosk.window)
    try:
        kiosk.window.resize(1280, 800)
        kiosk.window.show()
        qtbot.waitExposed(kiosk.window)
        badge = kiosk.window.cpu_badge
        video = kiosk.window.video
        assert badge.isVisible() and badge.text() == CPU_FALLBACK_MESSAGE
        # Whole (not clipped), in the picture's top-left corner under the banner band.
        assert badge.parentWidget() is video
        assert badge.height() >= badge.heightForWidth(badge.width())
        assert badge.x() < video.width() // 4
        assert video.banner_height() < badge.y() < video.height() // 2
        assert badge.geometry().right() <= video.width() // 2
        kiosk.window.resize(900, 700)
        qtbot.waitUntil(lambda: badge.geometry().right() <= video.width() // 2)
        assert CPU_FALLBACK_MESSAGE in kiosk.window.status.text()
    finally:
        kiosk.close()


def test_autosave_from_the_edgetpu_model_is_explained(
    qtbot, extractor, tmp_path, monkeypatch
) -> None:
    """CPU embeddings differ from the Edge TPU's: the autosave refuses them, clearly."""
    monkeypatch.setattr(dialogs, "ask_confirm", lambda *a, **k: False)  # keep them
    folder = tmp_path / "autosave"
    tpu = TwinStandIn(extractor)
    first = build(tpu, DemoSource(), autosave_dir=folder)
    qtbot.addWidget(first.window)
    for k in range(3):
        first.controller.session.capture(0, picture(k))
    first.close()

    second = build(extractor, DemoSource(), autosave_dir=folder, model_note=CPU_FALLBACK_MESSAGE)
    qtbot.addWidget(second.window)
    try:
        text = second.window.status.text()
        assert CPU_FALLBACK_MESSAGE in text
        assert "made on the Edge TPU model" in text and "autosave-kept-" in text
        assert second.controller.session.store.counts() == [0, 0]
    finally:
        second.close()
    # Nothing was lost: the new session's autosave moved the Edge TPU journal
    # aside, whole, instead of writing over it.
    (kept,) = tmp_path.glob("autosave-kept-*")
    state = json.loads((kept / "journal.json").read_text("utf-8"))
    assert sum(s["rows"] for s in state["segments"]) == 3


@pytest.mark.slow
def test_autosave_from_the_edgetpu_model_can_be_re_embedded(
    qtbot, extractor, tmp_path, monkeypatch
) -> None:
    """Accepting the offer brings the samples back, embedded by the CPU model."""
    from kiosk.ui.controller import AppState

    folder = tmp_path / "autosave"
    tpu = TwinStandIn(extractor)
    first = build(tpu, DemoSource(), autosave_dir=folder)
    qtbot.addWidget(first.window)
    for k in range(3):
        first.controller.session.capture(0, picture(k))
    first.controller.session.capture(1, picture(10))
    first.controller.session.store.rename_class(1, "Zwei")
    expected = first.controller.session.store.snapshot().samples[0][0].embedding
    first.close()
    before = json.loads((folder / "journal.json").read_text())
    assert before["extractor"]["sha256"] == "0" * 64

    questions: list[str] = []

    def accept(parent, title, text, **kwargs):
        questions.append(title)
        return True

    monkeypatch.setattr(dialogs, "ask_confirm", accept)
    second = build(extractor, DemoSource(), autosave_dir=folder, model_note=CPU_FALLBACK_MESSAGE)
    qtbot.addWidget(second.window)
    controller = second.controller
    try:
        assert questions == ["Re-embed 4 samples with this model?"]
        assert controller.state == AppState.WORKING
        # Until the re-embedded session is written, the Edge TPU's journal is untouched.
        assert json.loads((folder / "journal.json").read_text()) == before
        qtbot.waitUntil(lambda: controller.state != AppState.WORKING, timeout=60_000)
        assert controller.session.store.counts() == [3, 1]
        assert controller.session.store.class_names == ["Class 1", "Zwei"]
        assert "re-embedded with" in second.window.status.text()
        assert second.window.cpu_badge.text() == CPU_FALLBACK_MESSAGE
        stored = controller.session.store.snapshot().samples[0][0].embedding
        assert np.allclose(stored, expected, atol=1e-5)
    finally:
        second.close()
    after = json.loads((folder / "journal.json").read_text())
    assert after["extractor"]["sha256"] == extractor.sha256
    assert sum(s["rows"] for s in after["segments"]) == 4
