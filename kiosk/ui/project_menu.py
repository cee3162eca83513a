"""The Project button: save and open projects, import and export images.

One button in the action row opens a touch-sized panel (``ProjectPanel``) of
four big rows, no hover needed. Every operation runs off the GUI thread through
``Controller.run_task`` (a busy status line meanwhile); folders are chosen with
``dialogs.ask_folder``. Open and Import replace or change the classes, so in
kiosk mode they need the operator PIN (the window's ``OperatorLock``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from kiosk.ui import dialogs

# Rows of the panel: comfortably above the 48 px touch-target minimum.
ROW_PX = 56

# (attribute, label, method of ProjectActions)
ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("save_button", "Save project…", "save_project"),
    ("open_button", "Open project…", "open_project"),
    ("import_button", "Import images…", "import_images"),
    ("export_button", "Export samples…", "export_samples"),
)


class ProjectPanel(QDialog):
    """The menu: four finger-sized rows and Cancel; ``choice`` is the method picked."""

    def __init__(self, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Project")
        self.setModal(True)
        self.choice: str | None = None
        # The window's stylesheet sizes buttons for the action row; rows here are taller.
        self.setStyleSheet(f"QPushButton {{ min-height: {ROW_PX}px; text-align: left; }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(10)
        heading = QLabel("Project")
        heading.setObjectName("DialogMessage")
        layout.addWidget(heading)
        self.rows: list[QPushButton] = []
        for attribute, label, method in ACTIONS:
            button = QPushButton(label)
            button.setMinimumHeight(ROW_PX)
            button.setMinimumWidth(320)
            button.clicked.connect(lambda _=False, m=method: self._pick(m))
            setattr(self, attribute, button)
            self.rows.append(button)
            layout.addWidget(button)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setMinimumHeight(ROW_PX)
        self.cancel_button.clicked.connect(self.reject)
        layout.addWidget(self.cancel_button)

    def _pick(self, method: str) -> None:
        self.choice = method
        self.accept()


def ask_project_action(parent: QWidget | None) -> str | None:
    """The ``ProjectActions`` method the operator picked, or None (tests replace this)."""
    panel = ProjectPanel(parent)
    dialogs.run_modal(panel)
    choice = panel.choice
    panel.deleteLater()
    return choice


class ProjectActions:
    """What the Project panel's rows do, for one window and its controller."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.controller = window.controller
        self.last_folder: Path | None = None

    # ---------------------------------------------------------------- helpers
    @property
    def session(self) -> Any:
        return self.controller.session

    def _say(self, text: str, level: str = "info") -> None:
        self.controller.message.emit(text, level)

    def _ready(self) -> bool:
        snapshot = self.controller.snapshot()
        if snapshot.busy or snapshot.capturing_class is not None:
            self._say("Wait until the current operation has finished", "error")
            return False
        return True

    def _folder(self, title: str, *, existing: bool) -> Path | None:
        start = self.last_folder or Path.home()
        folder = dialogs.ask_folder(self.window, title, start, existing=existing)
        if folder is not None:
            self.last_folder = Path(folder)
        return folder

    def _guard(self, action: str) -> bool:
        return bool(self.window.lock.request(self.window, action))

    # ---------------------------------------------------------------- the menu
    @Slot()
    def show_menu(self) -> None:
        """The Project button: pick a row, then run it."""
        if not self._ready():
            return
        choice = ask_project_action(self.window)
        if choice is not None:
            getattr(self, choice)()

    # ---------------------------------------------------------------- actions
    def save_project(self, folder: Path | None = None) -> bool:
        """Save classes, samples, head and settings to a folder (off the GUI thread)."""
        from kiosk.persist import save_project

        if not self._ready():
            return False
        folder = folder or self._folder("Save the project in a folder", existing=False)
        if folder is None:
            return False
        session = self.session

        def done(manifest: Path) -> None:
            counts = session.store.counts()
            self._say(
                f"Saved the project ({sum(counts)} samples in {len(counts)} classes) "
                f"to {Path(manifest).parent}",
                "ok",
            )

        return self.controller.run_task(
            f"Saving the project to {folder}…", lambda: save_project(session, folder), done
        )

    def open_project(self, folder: Path | None = None) -> bool:
        """Replace the classes and samples with a saved project's (operator only)."""
        if not self._ready() or not self._guard("open a project"):
            return False
        folder = folder or self._folder("Open a project folder", existing=True)
        if folder is None:
            return False
        return self._open(Path(folder), reembed=False)

    def _open(self, folder: Path, *, reembed: bool) -> bool:
        from kiosk.persist import Limits, OtherModelError, open_project

        session = self.session

        def read() -> Any:
            return open_project(
                folder,
                session.extractor,
                limits=Limits.of(session.store),
                default_settings=session.default_settings,
                reembed=reembed,
            )

        def done(contents: Any) -> None:
            try:
                session.replace(contents)
            except (ValueError, RuntimeError) as error:
                self._say(f"Not opened: {error}", "error")
                return
            counts = session.store.counts()
            text = f"Opened {folder.name}: {sum(counts)} samples in {len(counts)} classes"
            if reembed:
                text += ", re-embedded: train again to see predictions"
            elif session.head_is_usable:
                text += ", live predictions are on"
            self._say(text, "ok")

        def failed(error: Exception) -> None:
            if not isinstance(error, OtherModelError):
                self._say(f"Not opened: {error}", "error")
                return
            made_by = error.model_name or "another model"
            here = session.extractor.model_path.name
            if not error.reembeddable:
                self._say(
                    f"Not opened: the project was made with {made_by}, this kiosk uses {here}, "
                    "and it has no stored images to re-embed",
                    "error",
                )
                return
            if dialogs.ask_confirm(
                self.window,
                f"Re-embed {error.num_samples or 'its'} samples with this model?",
                f"The project was made with {made_by}; this kiosk uses {here}. Its stored "
                "images can be embedded again with this model (train again afterwards).",
                ok_text="Re-embed",
            ):
                # Runs right after the read task's callback: its thread is done by then.
                self._open(folder, reembed=True)
            else:
                self._say(f"Not opened: the project was made with {made_by}", "info")

        verb = "Re-embedding the project's samples…" if reembed else "Reading the project…"
        return self.controller.run_task(f"{verb} ({folder})", read, done, failed)

    def import_images(self, folder: Path | None = None) -> bool:
        """Add a class-per-sub-folder image folder to the classes (operator only)."""
        from kiosk.persist import import_image_folder

        if not self._ready() or not self._guard("import images"):
            return False
        folder = folder or self._folder(
            "Import a folder with one sub-folder per class", existing=True
        )
        if folder is None:
            return False
        session = self.session

        def done(report: Any) -> None:
            self._say(
                report.message() + " (Undo takes it back)", "error" if report.stopped else "ok"
            )

        return self.controller.run_task(
            f"Importing images from {folder}…", lambda: import_image_folder(session, folder), done
        )

    def export_samples(self, folder: Path | None = None) -> bool:
        """Write every stored sample image as ``folder/<class>/<n>.jpg``."""
        from kiosk.persist import export_samples

        if not self._ready():
            return False
        folder = folder or self._folder("Export the samples to a folder", existing=False)
        if folder is None:
            return False
        session = self.session

        def done(count: int) -> None:
            self._say(f"Exported {count} sample images to {folder}", "ok")

        return self.controller.run_task(
            f"Exporting samples to {folder}…", lambda: export_samples(session, folder), done
        )


def make_project_button(window: Any) -> QPushButton:
    """The action row's Project button, wired to a ``ProjectActions`` kept on the window."""
    window.project = ProjectActions(window)
    button = QPushButton("Project")
    button.setObjectName("ProjectButton")
    button.setToolTip("Save or open a project, import or export images")
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    button.clicked.connect(window.project.show_menu)
    return button
