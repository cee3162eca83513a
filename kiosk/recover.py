"""Restoring an autosave that another model made, by re-embedding its stored images.

After the Edge TPU falls back to its CPU twin, ``Autosaver.restore`` refuses the
journal: its embeddings came from the other model. The JPEG model inputs are
in the journal too, so the samples can be recomputed exactly with the model
that runs now. This reads the journal without the extractor check, re-embeds,
and puts the classes and samples into a session; it never writes to the
autosave folder (the autosaver writes the re-embedded session later, and only
then drops the old files). No Qt here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kiosk.autosave import FORMAT, STATE, VERSION
from kiosk.persist import ProjectError, SampleRecord, read_json, unpack_samples
from kiosk.project import reembed_records
from kiosk.session import TeachingSession
from kiosk.store import StoreFullError

__all__ = ["ReembedReport", "autosave_facts", "read_autosave", "restore_reembedded"]


class ReembedReport:
    """What ``restore_reembedded`` put back."""

    def __init__(self, samples: int, classes: int, note: str | None = None) -> None:
        self.samples = samples
        self.classes = classes
        self.note = note

    def message(self, model_name: str) -> str:
        text = (
            f"Restored {self.samples} samples in {self.classes} classes, "
            f"re-embedded with {model_name}: train again to see predictions"
        )
        return text + (f" ({self.note})" if self.note else "")


def _state(folder: Path) -> dict[str, Any]:
    state = read_json(folder / STATE)
    if state.get("format") != FORMAT or state.get("version") != VERSION:
        raise ProjectError(f"{folder / STATE} is not a kiosk autosave this version can read")
    return state


def autosave_facts(folder: str | os.PathLike[str]) -> tuple[int, dict[str, Any]]:
    """(how many samples the autosave in ``folder`` holds, its "extractor" entry).

    Raises ``ProjectError`` when there is no readable autosave.
    """
    state = _state(Path(folder))
    try:
        count = sum(len(c["samples"]) for c in state["classes"])
    except (KeyError, TypeError) as error:
        raise ProjectError(f"{Path(folder) / STATE} is incomplete or wrong: {error}") from None
    return count, dict(state.get("extractor") or {})


def read_autosave(folder: str | os.PathLike[str]) -> tuple[list[str], list[SampleRecord]]:
    """The class names and samples (``key`` = class position) of an autosave, any model's."""
    folder = Path(folder)
    state = _state(folder)
    try:
        feature_dim = int(state["extractor"]["feature_dim"])
        segments = [str(name) for name in state["segments"]]
        classes = [
            (str(c["name"]), [None if r is None else (int(r[0]), int(r[1])) for r in c["samples"]])
            for c in state["classes"]
        ]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ProjectError(f"{folder / STATE} is incomplete or wrong: {error}") from None
    rows: dict[tuple[int, int], SampleRecord] = {}
    for index, name in enumerate(segments):
        if Path(name).name != name or not name.endswith(".npz"):
            raise ProjectError(f"{folder / STATE} names a bad file {name!r}")
        for row, record in enumerate(unpack_samples(folder / name, feature_dim)):
            rows[(index, row)] = record
    names, records = [], []
    for position, (name, refs) in enumerate(classes):
        names.append(name)
        for ref in refs:
            record = rows.get(ref) if ref is not None else None
            if record is not None:
                records.append(
                    SampleRecord(
                        position, record.embedding, record.thumbnail, record.image, record.created
                    )
                )
    return names, records


def restore_reembedded(session: TeachingSession, folder: str | os.PathLike[str]) -> ReembedReport:
    """Replace the session's classes and samples with the autosave's, re-embedded.

    Everything is read and re-embedded before the session is touched. The head
    is not restored (it was trained on the other model's embeddings).

    Raises:
        ProjectError: the autosave is unreadable, or some samples have no stored image.
    """
    names, records = read_autosave(folder)
    fresh = reembed_records(records, session.extractor)
    store = session.store
    for index in reversed(range(store.num_classes)):
        store.remove_class(index)
    for name in names:
        store.add_class(name)
    restored, note = 0, None
    for record in fresh:
        try:
            store.add_sample(record.key, record.embedding, record.thumbnail, image=record.image)
        except StoreFullError as error:
            note = str(error)
            break
        restored += 1
    return ReembedReport(restored, len(names), note)
