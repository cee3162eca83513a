"""After an Edge TPU fall-back: offer to restore the autosave by re-embedding it.

The autosave made on the Edge TPU model cannot be mixed with the CPU twin's
embeddings, but its stored images can be embedded again. The operator is asked
first (it takes a while, and the head must be trained again); the work runs off
the GUI thread, and the autosave starts writing only once it has finished, so
the Edge TPU's journal stays on disk until the re-embedded session replaces it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.persist import Limits, ProjectError, read_journal, reembed_contents
from kiosk.persist.journal import STATE
from kiosk.persist.legacy import LEGACY_AUTOSAVE_STATE, read_legacy_autosave
from kiosk.session import TeachingSession
from kiosk.ui import dialogs

if TYPE_CHECKING:  # the controller and window import Qt; this module is imported late
    from PySide6.QtWidgets import QWidget

    from kiosk.persist import Autosaver
    from kiosk.ui.controller import Controller


def restore_reembedded(session: TeachingSession, folder: str | os.PathLike[str]) -> int:
    """Read another model's autosave, re-embed it with the session's model and swap it in
    (the head is dropped); returns how many samples came back. Never writes to ``folder``."""
    folder = Path(folder)
    if (folder / LEGACY_AUTOSAVE_STATE).exists() and not (folder / STATE).exists():
        contents, _ = read_legacy_autosave(
            folder, session.extractor, session.default_settings, any_model=True
        )
    else:
        contents = read_journal(
            folder,
            session.extractor,
            limits=Limits.of(session.store),
            hold_beyond_limits=True,
            default_settings=session.default_settings,
            any_model=True,
        ).contents
    contents = reembed_contents(contents, session.extractor)
    session.replace(contents)
    return contents.num_samples


def offer_reembed(
    window: QWidget,
    controller: Controller,
    saver: Autosaver,
    model_note: str,
    give_up: Callable[[], None] | None = None,
) -> bool:
    """Ask, and when accepted start re-embedding; returns whether it started.

    When it returns True the caller must not start ``saver``: it is started when
    the re-embedding has finished. When it fails, ``give_up()`` is called: the
    caller must then never write with ``saver`` (not even at exit), so nothing of
    the old autosave is lost.
    """
    from kiosk.persist.autosave import autosave_summary

    try:
        count, made_by = autosave_summary(saver.folder)
    except ProjectError:
        return False
    if count == 0:
        return False
    model = controller.session.extractor.model_path.name
    if not dialogs.ask_confirm(
        window,
        f"Re-embed {count} samples with this model?",
        f"{model_note}. The autosaved samples were made on "
        f"{made_by.get('name') or 'the Edge TPU model'}. "
        f"Their stored images can be embedded again with {model} (this takes a moment; "
        "train again afterwards), or keep them for when the Edge TPU is back.",
        ok_text="Re-embed",
    ):
        return False

    def done(restored: int) -> None:
        saver.start()  # writes the re-embedded session; the old journal is kept aside
        controller.message.emit(
            f"Restored {restored} samples, re-embedded with {model}: train again to see "
            "predictions",
            "ok",
        )

    def failed(error: Exception) -> None:
        # The old journal stays untouched: autosave is off for this session.
        if give_up is not None:
            give_up()
        controller.message.emit(
            f"Could not re-embed the autosaved samples: {error}. They are kept in "
            f"{saver.folder}; autosave is off until the next start",
            "error",
        )

    return controller.run_task(
        f"Re-embedding {count} samples with {model}…",
        lambda: restore_reembedded(controller.session, saver.folder),
        done,
        failed,
    )
