"""Why a control is disabled right now, in words a visitor understands.

A tap on a disabled button shows its reason on the status line (see
``kiosk.ui.touch.DisabledTapExplainer``): a touch screen has no hover and no
tooltips, so a grey button that says nothing looks broken.
"""

from __future__ import annotations

from kiosk.ui.controller import AppState, Snapshot

_BUSY = {
    AppState.TRAINING: "Wait until training has finished (or press Cancel training)",
    AppState.SAVING: "Wait until the model is saved",
    AppState.WORKING: "Wait until the current operation has finished",
    AppState.CAPTURING: "Let go of the capture button first",
}


def busy_reason(snapshot: Snapshot) -> str:
    """Why nothing but the picture can be used right now ("" when it can)."""
    return _BUSY.get(snapshot.state, "")


def train_reason(snapshot: Snapshot) -> str:
    if snapshot.can_train:
        return ""
    if snapshot.state in _BUSY:
        return _BUSY[snapshot.state]
    return "Capture samples for at least two classes first"


def save_reason(snapshot: Snapshot) -> str:
    if snapshot.can_save:
        return ""
    if snapshot.state in _BUSY:
        return _BUSY[snapshot.state]
    if snapshot.has_head and snapshot.head_stale:
        return "Samples changed since training: press Train again, then Save"
    return "Train first: Save writes the trained model"


def undo_reason(snapshot: Snapshot) -> str:
    if snapshot.can_undo:
        return ""
    return _BUSY.get(snapshot.state, "Nothing to undo")


def redo_reason(snapshot: Snapshot) -> str:
    if snapshot.can_redo:
        return ""
    return _BUSY.get(snapshot.state, "Nothing to redo")


def add_class_reason(snapshot: Snapshot) -> str:
    if len(snapshot.class_names) >= snapshot.max_classes:
        return f"At most {snapshot.max_classes} classes: delete one to add another"
    if not snapshot.can_edit_classes:
        return _BUSY.get(snapshot.state, "")
    return ""


def capture_reason(snapshot: Snapshot) -> str:
    return "" if snapshot.can_capture else _BUSY.get(snapshot.state, "")


def edit_reason(snapshot: Snapshot) -> str:
    return "" if snapshot.can_edit_classes else _BUSY.get(snapshot.state, "")
