"""The app restores the autosaved session at start and says so in the status line."""

from __future__ import annotations

from pathlib import Path

from kiosk.session import TeachingSession
from kiosk.ui.app import _restore_autosave, build
from kiosk.vision.sources import DemoSource
from tests.fakes import picture


def test_restart_restores_samples_and_says_so(qtbot, extractor, tmp_path: Path) -> None:
    folder = tmp_path / "autosave"
    first = build(extractor, DemoSource(), autosave_dir=folder)
    qtbot.addWidget(first.window)
    store = first.controller.session.store
    for k in range(3):
        first.controller.session.capture(0, picture(k))
    store.rename_class(1, "Ünïcode / name")
    first.close()

    session = TeachingSession(extractor)
    _, message = _restore_autosave(session, folder, fresh=False)
    assert message == ("Restored 3 samples in 2 classes", "ok", False)

    second = build(extractor, DemoSource(), autosave_dir=folder)
    qtbot.addWidget(second.window)
    try:
        assert second.controller.session.store.counts() == [3, 0]
        assert second.controller.session.store.class_names[1] == "Ünïcode / name"
    finally:
        second.close()
    third = build(extractor, DemoSource(), autosave_dir=folder, fresh=True)
    qtbot.addWidget(third.window)
    third.close()
    assert third.controller.session.store.counts() == [0, 0]
