"""The Menu button: projects, images, settings, full screen and quitting, by touch.

One button in the action row opens a touch-sized panel (``MenuPanel``) of big
rows, no hover needed: Save project…, Open project…, Import images…, Export
samples…, Settings…, Full screen (windowed mode) and Quit. Project operations
run off the GUI thread through ``Controller.run_task`` (a busy status line
meanwhile); their folders are chosen in the places browser
(``dialogs.ask_place``): the projects folder and USB drives, and outside
kiosk mode Home and Computer too. In kiosk mode all four need the operator PIN (the window's
``OperatorLock``): they replace, add or copy out the visitors' data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kiosk.persist import ImportReport
from kiosk.session import SessionContents, TeachingSession
from kiosk.ui import dialogs
from kiosk.ui.places_view import PlaceChoice, PlaceRequest

if TYPE_CHECKING:  # the window imports this module
    from kiosk.ui.main_window import MainWindow

# Rows of the panel: comfortably above the 48 px touch-target minimum.
ROW_PX = 56

# (attribute, label, method): the left column works on projects and images...
PROJECT_ROWS: tuple[tuple[str, str, str], ...] = (
    ("save_button", "Save project…", "save_project"),
    ("open_button", "Open project…", "open_project"),
    ("import_button", "Import images…", "import_images"),
    ("export_button", "Export samples…", "export_samples"),
)
# ...the right column on the kiosk itself (methods of the window).
KIOSK_ROWS: tuple[tuple[str, str, str], ...] = (
    ("settings_button", "Settings…", "edit_settings"),
    ("fullscreen_button", "Full screen", "toggle_fullscreen"),
    ("quit_button", "Quit", "quit"),
)


class MenuPanel(QDialog):
    """The menu: finger-sized rows in two columns and Cancel; ``choice`` is the method picked."""

    def __init__(self, parent: QWidget | None, *, kiosk: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Menu")
        self.setModal(True)
        self.choice: str | None = None
        # The window's stylesheet sizes buttons for the action row; rows here are taller.
        self.setStyleSheet(f"QPushButton {{ min-height: {ROW_PX}px; text-align: left; }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 14, 20, 14)
        layout.setSpacing(10)
        heading = QLabel("Menu")
        heading.setObjectName("DialogMessage")
        layout.addWidget(heading)
        grid = QGridLayout()
        grid.setSpacing(10)
        self.rows: list[QPushButton] = []
        for column, rows in enumerate((PROJECT_ROWS, KIOSK_ROWS)):
            # Kiosk mode is always full screen: that row would do nothing there.
            shown = [r for r in rows if not (kiosk and r[2] == "toggle_fullscreen")]
            for row, (attribute, label, method) in enumerate(shown):
                button = QPushButton(label)
                button.setAccessibleName(label.rstrip("…"))
                button.setMinimumHeight(ROW_PX)
                button.setMinimumWidth(240)
                button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
                button.clicked.connect(lambda _=False, m=method: self._pick(m))
                setattr(self, attribute, button)
                self.rows.append(button)
                grid.addWidget(button, row, column)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel")
        self.cancel_button.setMinimumHeight(ROW_PX)
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel_button.clicked.connect(self.reject)
        grid.addWidget(self.cancel_button, len(PROJECT_ROWS) - 1, 1)
        layout.addLayout(grid)

    def _pick(self, method: str) -> None:
        self.choice = method
        self.accept()


def ask_menu_action(parent: QWidget | None, *, kiosk: bool = False) -> str | None:
    """The method the operator picked in the menu, or None (tests replace this)."""
    panel = MenuPanel(parent, kiosk=kiosk)
    dialogs.run_modal(panel)
    choice = panel.choice
    panel.deleteLater()
    return choice


class ProjectActions:
    """What the Menu's project rows do, for one window and its controller."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.controller = window.controller

    # ---------------------------------------------------------------- helpers
    @property
    def session(self) -> TeachingSession:
        return self.controller.session

    def _say(self, text: str, level: str = "info") -> None:
        self.controller.message.emit(text, level)

    def _ready(self) -> bool:
        snapshot = self.controller.snapshot()
        if snapshot.busy or snapshot.capturing_class is not None:
            self._say("Wait until the current operation has finished", "error")
            return False
        return True

    def _choose(self, request: PlaceRequest) -> PlaceChoice | None:
        # Home and Computer (the rest of the file system) only outside kiosk mode.
        return dialogs.ask_place(
            self.window, self.window.places, request, whole_computer=not self.window.kiosk
        )

    def _guard(self, action: str) -> bool:
        return bool(self.window.lock.request(self.window, action))

    # ---------------------------------------------------------------- actions
    def save_project(self, folder: Path | None = None) -> bool:
        """Save classes, samples, head and settings to a folder (operator only, off the GUI)."""
        from kiosk.persist import save_project

        if not self._ready() or not self._guard("save the project"):
            return False
        if folder is None:
            choice = self._choose(
                PlaceRequest(
                    "Save project",
                    "projects",
                    (self.window.places.projects,),
                    "Save",
                    name_prefix="project",
                    replace_kinds=("project",),
                )
            )
            if choice is None:
                return False
            folder = choice.path
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
        if folder is None:
            choice = self._choose(
                PlaceRequest(
                    "Open project",
                    "projects",
                    (self.window.places.projects,),
                    "Open",
                    pick_kinds=("project",),
                )
            )
            if choice is None:
                return False
            folder = choice.path
        return self._open(Path(folder), reembed=False)

    def _open(self, folder: Path, *, reembed: bool) -> bool:
        from kiosk.persist import Limits, OtherModelError, open_project

        session = self.session

        def read() -> SessionContents:
            return open_project(
                folder,
                session.extractor,
                limits=Limits.of(session.store),
                default_settings=session.default_settings,
                reembed=reembed,
            )

        def done(contents: SessionContents) -> None:
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
                # A new task from inside the read task's callback: that task counts as done.
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
        if folder is None:
            choice = self._choose(
                PlaceRequest(
                    "Import images: a folder with one folder of images per class",
                    "folders",
                    (self.window.places.projects,),
                    "Import",
                    pick_kinds=("folder",),
                    drives="first",
                )
            )
            if choice is None:
                return False
            folder = choice.path
        session = self.session

        def done(report: ImportReport) -> None:
            self._say(
                report.message() + " (Undo takes it back)", "error" if report.stopped else "ok"
            )

        return self.controller.run_task(
            f"Importing images from {folder}…", lambda: import_image_folder(session, folder), done
        )

    def export_samples(self, folder: Path | None = None) -> bool:
        """Write every stored sample image as ``folder/<class>/<n>.jpg`` (operator only)."""
        from kiosk.persist import export_samples

        if not self._ready() or not self._guard("export the samples"):
            return False
        if folder is None:
            choice = self._choose(
                PlaceRequest(
                    "Export samples",
                    "folders",
                    (self.window.places.projects,),
                    "Export",
                    name_prefix="samples",
                    drives="first",
                )
            )
            if choice is None:
                return False
            folder = choice.path
        session = self.session

        def done(count: int) -> None:
            self._say(f"Exported {count} sample images to {folder}", "ok")

        return self.controller.run_task(
            f"Exporting samples to {folder}…", lambda: export_samples(session, folder), done
        )


def make_menu_button(window: MainWindow) -> QPushButton:
    """The action row's Menu button (it calls ``window.show_menu``)."""
    button = QPushButton("Menu")
    button.setObjectName("MenuButton")
    button.setAccessibleName("Menu")
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    button.clicked.connect(window.show_menu)
    return button
