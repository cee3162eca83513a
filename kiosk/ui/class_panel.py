"""The class list: one card per class with its big capture button.

A card shows the class colour and name (tap the name to rename), its sample
count, the newest thumbnails, and a capture button: a tap stores one sample,
holding it records a burst. Less common actions (rename, clear, delete) sit in
a ⋮ menu with finger-sized rows; nothing is hidden behind hover.

When the full cards do not all fit, every card drops its thumbnails
(``MEDIUM``: three classes on an 800x480 panel), and when those do not fit
either it turns compact (``COMPACT``): one row with the name, the capture
button and ⋮, so up to six classes' capture buttons are on screen at 800x480
without scrolling. The list scrolls by flicking; a flick that starts on
a capture button scrolls and captures nothing. Renaming, clearing and deleting
need the operator PIN in kiosk mode.

Beside the count an amber note coaches the class (``kiosk.coaching.card_hints``:
"needs 3 more", "too few": under a third of the largest class); a near-duplicate
capture replaces it for ``DUPLICATE_NOTE_S`` with "duplicate" (the status line says more).
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kiosk.coaching import card_hints
from kiosk.ui import dialogs, reasons
from kiosk.ui.controller import Controller, Snapshot
from kiosk.ui.lock import OperatorLock
from kiosk.ui.style import TOUCH, class_color, px
from kiosk.ui.touch import DisabledTapExplainer, ElidedLabel, enable_flick

# How much a card shows (ClassPanel picks the most that fits for all of them).
FULL, MEDIUM, COMPACT = "full", "medium", "compact"
THUMBNAILS = 4
THUMB_PX = 52
CAPTURE_PX = 60
# Card margins (left, top, right, bottom) and the gap between its rows, full and compact.
FULL_MARGINS = (12, 8, 8, 10)
COMPACT_MARGINS = (8, 3, 3, 3)
CARD_SPACING = 6
BORDER = 2
LIST_SPACING = 6
# How long a card says "duplicate" after a near-duplicate capture.
DUPLICATE_NOTE_S = 2.5
NOTE_COLOR = "#ffb74d"


def thumbnail_pixmap(image: np.ndarray, size: int) -> QPixmap:
    """(h, w, 3) uint8 RGB -> a ``size`` x ``size`` pixmap (centre-cropped)."""
    image = np.ascontiguousarray(image)
    height, width, _ = image.shape
    qimage = QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    scaled = qimage.scaled(
        size,
        size,
        Qt.AspectRatioMode.KeepAspectRatioByExpanding,
        Qt.TransformationMode.SmoothTransformation,
    )
    x = (scaled.width() - size) // 2
    y = (scaled.height() - size) // 2
    # copy() detaches the pixels from the numpy buffer.
    return QPixmap.fromImage(scaled.copy(x, y, size, size))


def _capture_button_sheet(color: QColor) -> str:
    pressed = color.darker(125).name()
    disabled = QColor(color)
    return (
        "QPushButton#CaptureButton {"
        f" background-color: {color.name()}; color: #101317; }}"
        f"QPushButton#CaptureButton:pressed {{ background-color: {pressed}; }}"
        "QPushButton#CaptureButton:disabled {"
        f" background-color: rgba({disabled.red()}, {disabled.green()}, {disabled.blue()}, 70);"
        " color: #5b6270; }"
    )


def full_card_height(scale: float) -> int:
    """Height of a full card (name row, thumbnails, capture button) at ``scale``."""
    _, top, _, bottom = FULL_MARGINS
    rows = px(TOUCH, scale) + px(THUMB_PX, scale) + px(CAPTURE_PX, scale)
    return rows + 2 * CARD_SPACING + top + bottom + 2 * BORDER


def medium_card_height(scale: float) -> int:
    """Height of a card without thumbnails (name row, a touch-sized capture button)."""
    _, top, _, bottom = FULL_MARGINS
    return 2 * px(TOUCH, scale) + CARD_SPACING + top + bottom + 2 * BORDER


def compact_card_height(scale: float) -> int:
    """Height of a compact card (one row, a touch-sized capture button) at ``scale``."""
    _, top, _, bottom = COMPACT_MARGINS
    return px(TOUCH, scale) + top + bottom + 2 * BORDER


class ClassCard(QFrame):
    """One class: name, count, thumbnails and a capture button (or one compact row)."""

    captureDown = Signal(int)
    captureUp = Signal(int)
    renameRequested = Signal(int)
    clearRequested = Signal(int)
    deleteRequested = Signal(int)

    def __init__(
        self,
        index: int,
        scale: float = 1.0,
        parent: QWidget | None = None,
        *,
        density: str = FULL,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("ClassCard")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.index = index
        self.name = ""
        self.count = -1
        self.density = ""
        self._recording = False
        self._scale = scale

        outer = QVBoxLayout(self)
        outer.setSpacing(CARD_SPACING)
        self._outer = outer

        header = QHBoxLayout()
        header.setSpacing(6)
        self._header = header
        self.dot = QLabel("●")
        self.dot.setStyleSheet(
            f"color: {class_color(index).name()}; background: transparent;"
            f" font-size: {px(26, scale)}px;"
        )
        # The name and, under it, the count: one big tap target that renames.
        self.name_button = QPushButton()
        self.name_button.setObjectName("ClassName")
        self.name_button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.name_button.clicked.connect(self._on_name_clicked)
        name_lines = QVBoxLayout(self.name_button)
        name_lines.setContentsMargins(4, 2, 4, 2)
        name_lines.setSpacing(0)
        self.name_label = ElidedLabel()
        self.name_label.setObjectName("ClassNameText")
        self.count_label = QLabel()
        self.count_label.setObjectName("ClassCount")
        # The coaching note sits beside the count, so showing it never moves the card.
        self.note_label = ElidedLabel()
        self.note_label.setObjectName("ClassNote")
        self.note_label.setStyleSheet(f"color: {NOTE_COLOR}; background: transparent;")
        self.note = ""
        self._coaching = ""
        self._duplicate_timer = QTimer(self)
        self._duplicate_timer.setSingleShot(True)
        self._duplicate_timer.timeout.connect(self._end_duplicate)
        count_line = QHBoxLayout()
        count_line.setContentsMargins(0, 0, 0, 0)
        count_line.setSpacing(8)
        count_line.addWidget(self.count_label)
        count_line.addWidget(self.note_label, 1)
        for label in (self.name_label, self.count_label, self.note_label):
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        name_lines.addWidget(self.name_label)
        name_lines.addLayout(count_line)
        self.menu_button = QToolButton()
        self.menu_button.setObjectName("CardMenuButton")
        self.menu_button.setText("⋮")
        self.menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu = QMenu(self.menu_button)
        self.rename_action = QAction("Rename…", self)
        self.clear_action = QAction("Clear samples…", self)
        self.delete_action = QAction("Delete class…", self)
        self.rename_action.triggered.connect(self._on_rename)
        self.clear_action.triggered.connect(self._on_clear)
        self.delete_action.triggered.connect(self._on_delete)
        self.menu.addAction(self.rename_action)
        self.menu.addAction(self.clear_action)
        self.menu.addSeparator()
        self.menu.addAction(self.delete_action)
        self.menu_button.setMenu(self.menu)
        header.addWidget(self.dot)
        header.addWidget(self.name_button, 1)
        header.addWidget(self.menu_button)
        outer.addLayout(header)

        self.thumbs = QWidget()
        self.thumbs.setObjectName("Thumbnails")
        thumbs_row = QHBoxLayout(self.thumbs)
        thumbs_row.setContentsMargins(0, 0, 0, 0)
        thumbs_row.setSpacing(6)
        size = px(THUMB_PX, scale)
        self.thumb_labels: list[QLabel] = []
        for _ in range(THUMBNAILS):
            label = QLabel()
            label.setFixedSize(size, size)
            label.setScaledContents(False)
            self.thumb_labels.append(label)
            thumbs_row.addWidget(label)
        self.hint = QLabel("Tap: one sample · hold: record")
        self.hint.setObjectName("ThumbHint")
        self.hint.setWordWrap(True)
        thumbs_row.addWidget(self.hint, 1)
        thumbs_row.addStretch(0)
        self.thumbs.setFixedHeight(size)
        outer.addWidget(self.thumbs)

        self.capture_button = QPushButton()
        self.capture_button.setObjectName("CaptureButton")
        self.capture_button.setStyleSheet(_capture_button_sheet(class_color(index)))
        self.capture_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        # Touch: a press starts capturing, the release ends it; no click needed.
        self.capture_button.pressed.connect(self._on_pressed)
        self.capture_button.released.connect(self._on_released)
        outer.addWidget(self.capture_button)
        self.set_density(density)

    @property
    def compact(self) -> bool:
        return self.density == COMPACT

    # ----------------------------------------------------------------- display
    def set_density(self, density: str) -> None:
        """FULL (thumbnails), MEDIUM (no thumbnails) or COMPACT (one row: name, capture, ⋮)."""
        if density == self.density:
            return
        self.density = density
        compact = density == COMPACT
        self._outer.removeWidget(self.capture_button)
        self._header.removeWidget(self.capture_button)
        if compact:
            # The button's colour names the class: the dot makes room for the name.
            self._header.insertWidget(2, self.capture_button, 0)
            self._outer.setContentsMargins(*COMPACT_MARGINS)
            self.capture_button.setMinimumWidth(px(92, self._scale))
        else:
            self._outer.addWidget(self.capture_button)
            self._outer.setContentsMargins(*FULL_MARGINS)
            self.capture_button.setMinimumWidth(0)
        self.thumbs.setVisible(density == FULL)
        self.dot.setVisible(not compact)
        self.setProperty("compact", compact)
        self.style().unpolish(self)
        self.style().polish(self)
        # Touch-sized rather than tall when the card is short of room.
        self.capture_button.setProperty("compact", density != FULL)
        self.capture_button.style().unpolish(self.capture_button)
        self.capture_button.style().polish(self.capture_button)
        self._update_capture_text()

    def set_name(self, name: str) -> None:
        if name != self.name:
            self.name = name
            self.name_label.setText(name)
            self.name_button.setAccessibleName(f"Rename {name}")
            self.capture_button.setAccessibleName(f"Capture into {name}")
            self.menu_button.setAccessibleName(f"Rename, clear or delete {name}")

    def set_count(self, count: int) -> None:
        if count != self.count:
            self.count = count
            self.count_label.setText(f"{count} sample{'s' if count != 1 else ''}")

    def set_coaching(self, text: str | None) -> None:
        """The class's coaching note ("needs 3 more"), or None for none."""
        self._coaching = f"⚠ {text}" if text else ""
        if not self._duplicate_timer.isActive():
            self._set_note(self._coaching)

    def flag_duplicate(self, seconds: float = DUPLICATE_NOTE_S) -> None:
        """Say for a moment that the last capture looked like an earlier one."""
        self._set_note("⚠ duplicate")
        self._duplicate_timer.start(round(1000 * seconds))

    @property
    def duplicate_flagged(self) -> bool:
        return self._duplicate_timer.isActive()

    def _end_duplicate(self) -> None:
        self._set_note(self._coaching)

    def _set_note(self, text: str) -> None:
        if text != self.note:
            self.note = text
            self.note_label.setText(text)
            self.note_label.update()

    def set_thumbnails(self, images: list[np.ndarray]) -> None:
        """Show the newest thumbnails (newest first); the hint fills an empty row."""
        size = self.thumb_labels[0].width()
        for i, label in enumerate(self.thumb_labels):
            if i < len(images):
                label.setPixmap(thumbnail_pixmap(images[i], size))
                label.show()
            else:
                label.clear()
                label.hide()
        self.hint.setVisible(not images)

    def set_recording(self, recording: bool) -> None:
        if recording != self._recording:
            self._recording = recording
            self._update_capture_text()

    def set_enabled_parts(self, capture: bool, edit: bool) -> None:
        self.capture_button.setEnabled(capture)
        self.menu_button.setEnabled(edit)
        self.name_button.setEnabled(edit)

    def _update_capture_text(self) -> None:
        key = f"[{self.index + 1}]" if self.index < 9 else ""
        if self._recording:
            text = "●  Rec…" if self.compact else "●  Recording…"
        elif self.compact:
            text = "Capture"
        else:
            text = f"Hold to record   {key}".strip()
        self.capture_button.setText(text)

    # ------------------------------------------------------------------ intent
    @Slot()
    def _on_pressed(self) -> None:
        self.captureDown.emit(self.index)

    @Slot()
    def _on_released(self) -> None:
        self.captureUp.emit(self.index)

    @Slot()
    def _on_name_clicked(self) -> None:
        self.renameRequested.emit(self.index)

    @Slot()
    def _on_rename(self) -> None:
        self.renameRequested.emit(self.index)

    @Slot()
    def _on_clear(self) -> None:
        self.clearRequested.emit(self.index)

    @Slot()
    def _on_delete(self) -> None:
        self.deleteRequested.emit(self.index)


class ClassPanel(QWidget):
    """A flick-scrolling column of class cards with an Add class button below it."""

    # The cards' scroll area. Named like QWidget.scroll, the method it hides (never
    # called on a panel): the window and the tests reach the list through it.
    scroll: QScrollArea  # type: ignore[assignment]

    def __init__(
        self,
        controller: Controller,
        parent: QWidget | None = None,
        *,
        lock: OperatorLock | None = None,
        explainer: DisabledTapExplainer | None = None,
    ) -> None:
        """
        Args:
            controller: the kiosk's state.
            lock: guards rename, clear and delete (default: an open lock).
            explainer: says why a disabled control is disabled when tapped
                (default: one of its own; connect its ``explain`` signal).
        """
        super().__init__(parent)
        self.setObjectName("ClassPanel")
        self._controller = controller
        # Deleting, clearing and renaming are the operator's: visitors must not wipe a demo.
        self._lock = lock if lock is not None else OperatorLock(None, parent=self)
        self.explainer = explainer if explainer is not None else DisabledTapExplainer(self)
        self._scale = 1.0
        self.cards: list[ClassCard] = []
        self.density = FULL
        self._snapshot: Snapshot | None = None

        layout = self._layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)

        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setAccessibleName("Classes")
        self._list = QWidget()
        self._list.setObjectName("ClassList")
        self._list_layout = QVBoxLayout(self._list)
        self._list_layout.setContentsMargins(0, 0, 0, 0)
        self._list_layout.setSpacing(LIST_SPACING)
        self._list_layout.addStretch(1)
        self.scroll.setWidget(self._list)
        self.scroller = enable_flick(self.scroll)
        self._scroll_target: int | None = None
        self._scroll_until = 0.0
        self.scroll.verticalScrollBar().rangeChanged.connect(self._scroll_to_target)
        layout.addWidget(self.scroll, 1)

        self.add_button = QPushButton("+  Add class")
        self.add_button.setObjectName("AddClassButton")
        self.add_button.setAccessibleName("Add class")
        self.add_button.clicked.connect(self._on_add)
        self.explainer.watch(self.add_button)
        layout.addWidget(self.add_button)

        controller.changed.connect(self.on_changed)
        controller.duplicateCaptured.connect(self.flag_duplicate)
        self.on_changed(controller.snapshot())

    # ----------------------------------------------------------------- display
    def set_scale(self, scale: float) -> None:
        """Rebuild the cards at a new size scale (window moved between size classes)."""
        if scale != self._scale:
            self._scale = scale
            self._rebuild(len(self.cards))
            if self._snapshot is not None:
                self._apply(self._snapshot, force_thumbs=True)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update_density()

    def list_height(self) -> int:
        """The height the cards have: the panel less the Add class button."""
        button = max(self.add_button.sizeHint().height(), px(TOUCH, self._scale))
        return self.height() - button - self._layout.spacing()

    @property
    def compact(self) -> bool:
        return self.density == COMPACT

    def _update_density(self) -> None:
        # The most each card can show while all of them fit (one look for all).
        count = len(self.cards)
        room = self.list_height() - max(0, count - 1) * LIST_SPACING
        density = COMPACT
        for candidate, height in (
            (FULL, full_card_height(self._scale)),
            (MEDIUM, medium_card_height(self._scale)),
        ):
            if count * height <= room:
                density = candidate
                break
        if density != self.density:
            self.density = density
            for card in self.cards:
                card.set_density(density)

    @Slot(object)
    def on_changed(self, snapshot: Snapshot) -> None:
        force = len(snapshot.class_names) != len(self.cards)
        if force:
            self._rebuild(len(snapshot.class_names))
        self._apply(snapshot, force_thumbs=force)

    def _rebuild(self, count: int) -> None:
        for card in self.cards:
            self._list_layout.removeWidget(card)
            card.hide()
            card.deleteLater()
        self.cards = []
        for index in range(count):
            card = ClassCard(index, self._scale, density=self.density)
            card.captureDown.connect(self._on_capture_down)
            card.captureUp.connect(self._on_capture_up)
            card.renameRequested.connect(self.rename)
            card.clearRequested.connect(self.clear)
            card.deleteRequested.connect(self.delete)
            for widget in (card.capture_button, card.name_button, card.menu_button):
                self.explainer.watch(widget)
            self._list_layout.insertWidget(index, card)
            self.cards.append(card)
        self._update_density()

    def _apply(self, snapshot: Snapshot, force_thumbs: bool = False) -> None:
        self._snapshot = snapshot
        capture_why = reasons.capture_reason(snapshot)
        edit_why = reasons.edit_reason(snapshot)
        for card, name, count in zip(
            self.cards, snapshot.class_names, snapshot.counts, strict=True
        ):
            card.set_name(name)
            if force_thumbs or count != card.count:
                card.set_count(count)
                card.set_thumbnails(self._controller.thumbnails(card.index))
            card.set_recording(snapshot.capturing_class == card.index)
            card.set_enabled_parts(snapshot.can_capture, snapshot.can_edit_classes)
            self.explainer.set_reason(card.capture_button, capture_why)
            self.explainer.set_reason(card.name_button, edit_why)
            self.explainer.set_reason(card.menu_button, edit_why)
        for card, note in zip(self.cards, card_hints(snapshot.counts), strict=True):
            card.set_coaching(note)
        self.add_button.setEnabled(
            snapshot.can_edit_classes and len(snapshot.class_names) < snapshot.max_classes
        )
        self.explainer.set_reason(self.add_button, reasons.add_class_reason(snapshot))

    @Slot(int, str)
    def flag_duplicate(self, index: int, message: str = "") -> None:
        """Mark card ``index`` for a moment: its last capture was a near-duplicate."""
        if 0 <= index < len(self.cards):
            self.cards[index].flag_duplicate()

    def scroll_to(self, index: int) -> None:
        """Bring card ``index`` into view (now, and again once the layout has settled)."""
        if 0 <= index < len(self.cards):
            self._scroll_target = index
            self._scroll_until = time.monotonic() + 0.5
            self.scroll.ensureWidgetVisible(self.cards[index], 0, 0)
            QTimer.singleShot(0, self._scroll_to_target)

    @Slot()
    def _scroll_to_target(self) -> None:
        # A new card changes the scroll range only after the layout runs.
        index = self._scroll_target
        if time.monotonic() > self._scroll_until:
            self._scroll_target = None  # later range changes are the user's business
        elif index is not None and 0 <= index < len(self.cards):
            self.scroll.ensureWidgetVisible(self.cards[index], 0, 0)

    # ------------------------------------------------------------------ intent
    @Slot(int)
    def _on_capture_down(self, index: int) -> None:
        self._controller.begin_capture(index)

    @Slot(int)
    def _on_capture_up(self, index: int) -> None:
        self._controller.end_capture()

    @Slot()
    def _on_add(self) -> None:
        index = self._controller.add_class()
        if index is not None:
            self.scroll_to(index)

    @Slot(int)
    def rename(self, index: int) -> None:
        """Ask for a new name until it is accepted or the operator cancels (PIN in kiosk mode)."""
        if not self._lock.request(self.window(), "rename a class"):
            return
        error: str | None = None
        current = self._controller.snapshot().class_names[index]
        text = current
        while True:
            answer = dialogs.ask_text(self.window(), f"Rename “{current}”", text, error)
            if answer is None:
                return
            error = self._controller.rename_class(index, answer)
            if error is None:
                return
            text = answer

    @Slot(int)
    def clear(self, index: int) -> None:
        snapshot = self._controller.snapshot()
        name, count = snapshot.class_names[index], snapshot.counts[index]
        if count == 0:
            return
        if not self._lock.request(self.window(), "clear a class"):
            return
        if dialogs.ask_confirm(
            self.window(),
            f"Clear “{name}”?",
            f"All {count} samples of “{name}” will be deleted. The class stays.",
            "Clear samples",
            danger=True,
        ):
            self._controller.clear_class(index)

    @Slot(int)
    def delete(self, index: int) -> None:
        snapshot = self._controller.snapshot()
        name, count = snapshot.class_names[index], snapshot.counts[index]
        detail = f" and its {count} samples" if count else ""
        if not self._lock.request(self.window(), "delete a class"):
            return
        if dialogs.ask_confirm(
            self.window(),
            f"Delete “{name}”?",
            f"The class “{name}”{detail} will be deleted.",
            "Delete class",
            danger=True,
        ):
            self._controller.remove_class(index)
