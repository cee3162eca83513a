"""Persistence: one journal format for the autosave and projects, image folders in and out.

Rooms: ``files`` (checked reads, durable writes), ``npz`` (streamed, size-checked
``.npz``), ``records`` (samples and heads as files), ``journal`` (the format,
its reader and its incremental writer), ``autosave`` (the journal in a writer
thread), ``project`` (Save/Open project), ``images`` (import/export image
folders), ``reembed`` (another model's embeddings), ``legacy`` (kiosk 0.1 files).
"""

from __future__ import annotations

from kiosk.persist.autosave import Autosaver, RestoreReport
from kiosk.persist.files import OtherModelError, ProjectError
from kiosk.persist.images import ImportReport, export_samples, import_image_folder
from kiosk.persist.journal import Limits, read_journal, read_summary
from kiosk.persist.project import (
    ProjectSummary,
    describe_project,
    load_project,
    open_project,
    save_project,
)
from kiosk.persist.reembed import reembed_contents, reembed_session

__all__ = [
    "Autosaver",
    "ImportReport",
    "Limits",
    "OtherModelError",
    "ProjectError",
    "ProjectSummary",
    "RestoreReport",
    "describe_project",
    "export_samples",
    "import_image_folder",
    "load_project",
    "open_project",
    "read_journal",
    "read_summary",
    "reembed_contents",
    "reembed_session",
    "save_project",
]
