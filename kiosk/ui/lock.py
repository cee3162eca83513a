"""The operator lock: a PIN between visitors and the kiosk's destructive actions.

Visitors capture, train and watch predictions freely. Deleting or clearing a
class, the training settings, saving somewhere other than the configured output,
and quitting need the operator PIN, but only in kiosk mode with a PIN set;
otherwise the lock is open and asks nothing.

A right PIN unlocks until nobody has touched the screen (or a key) for
``unlock_seconds``. Several wrong PINs in a row shut the pad for a while, which
turns guessing a 4-digit PIN at a booth into an afternoon's work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QWidget

from kiosk.pin import verify_pin
from kiosk.ui import dialogs

UNLOCK_SECONDS = 60.0
MAX_ATTEMPTS = 3
LOCKOUT_SECONDS = 30.0

# What counts as someone using the kiosk (and so keeps it unlocked).
_ACTIVITY = frozenset(
    {
        QEvent.Type.MouseButtonPress,
        QEvent.Type.TouchBegin,
        QEvent.Type.KeyPress,
        QEvent.Type.Wheel,
    }
)


class OperatorLock(QObject):
    """Decides whether a guarded action may go ahead, asking for the PIN when needed."""

    lockedChanged = Signal(bool)  # True when it (re)locks, False when unlocked
    message = Signal(str, str)  # text, level: for the window's status line

    def __init__(
        self,
        pin_hash: str | None,
        *,
        unlock_seconds: float = UNLOCK_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        lockout_seconds: float = LOCKOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        parent: QObject | None = None,
    ) -> None:
        """
        Args:
            pin_hash: the salted hash from the config file, or ``None`` for no lock.
            unlock_seconds: idle time after which an unlocked kiosk locks again.
            max_attempts: wrong PINs in a row before the lockout.
            lockout_seconds: how long the pad stays shut after that.
            clock: monotonic seconds (tests pass a fake one).
        """
        super().__init__(parent)
        self.pin_hash = pin_hash
        self.unlock_seconds = unlock_seconds
        self.max_attempts = max_attempts
        self.lockout_seconds = lockout_seconds
        self.clock = clock
        self._unlocked = False
        self._last_activity = 0.0
        self._failures = 0
        self._lockout_until = 0.0
        self._watching = False
        # Checks for the idle timeout, so the lock also closes with nobody asking.
        self._expiry = QTimer(self)
        self._expiry.setInterval(1000)
        self._expiry.timeout.connect(self._check_expiry)

    # ------------------------------------------------------------------ state
    @property
    def enabled(self) -> bool:
        """Whether anything is guarded at all (kiosk mode with a PIN)."""
        return self.pin_hash is not None

    def is_unlocked(self) -> bool:
        """Whether guarded actions go ahead without asking right now."""
        if not self.enabled:
            return True
        return self._unlocked and self.clock() - self._last_activity < self.unlock_seconds

    def lockout_remaining(self) -> float:
        """Seconds until the PIN pad opens again after too many wrong PINs (0 if open)."""
        return max(0.0, self._lockout_until - self.clock())

    def touch(self) -> None:
        """Someone used the kiosk: the unlocked period starts again."""
        if self._unlocked:
            self._last_activity = self.clock()

    @Slot()
    def lock(self) -> None:
        """Lock now (idle timeout, or the operator walking away)."""
        if not self._unlocked:
            return
        self._unlocked = False
        self._expiry.stop()
        self._watch_activity(False)
        self.lockedChanged.emit(True)

    # ---------------------------------------------------------------- asking
    def request(self, parent: QWidget | None, action: str) -> bool:
        """Whether ``action`` (e.g. "delete a class") may go ahead; asks for the PIN if locked.

        A wrong PIN asks again with a message; after ``max_attempts`` wrong ones in
        a row the pad stays shut for ``lockout_seconds``. Cancelling refuses.
        """
        if self.is_unlocked():
            self.touch()
            return True
        if self._unlocked:
            self.lock()  # timed out since the last check: say so before asking
        error: str | None = None
        while True:
            remaining = self.lockout_remaining()
            if remaining > 0:
                self.message.emit(
                    f"Too many wrong PINs: try again in {math.ceil(remaining)} s", "error"
                )
                return False
            pin = dialogs.ask_pin(parent, f"Operator PIN to {action}", error)
            if pin is None:
                return False
            assert self.pin_hash is not None
            if verify_pin(pin, self.pin_hash):
                self._unlock()
                return True
            self._failures += 1
            left = self.max_attempts - self._failures
            if left <= 0:
                self._failures = 0
                self._lockout_until = self.clock() + self.lockout_seconds
                continue  # the loop reports the lockout
            error = f"Wrong PIN: {left} {'try' if left == 1 else 'tries'} left"

    def _unlock(self) -> None:
        self._failures = 0
        self._unlocked = True
        self._last_activity = self.clock()
        self._watch_activity(True)
        self._expiry.start()
        self.lockedChanged.emit(False)
        self.message.emit(
            f"Operator mode: locks again after {self.unlock_seconds:g} s without a touch", "ok"
        )

    @Slot()
    def _check_expiry(self) -> None:
        if self._unlocked and not self.is_unlocked():
            self.lock()
            self.message.emit("Operator mode ended", "info")

    # ------------------------------------------------------- activity watching
    def _watch_activity(self, on: bool) -> None:
        # An application-wide filter sees every event, so it is installed only
        # while unlocked: a locked kiosk pays nothing for it.
        app = QCoreApplication.instance()
        if app is None or on == self._watching:
            return
        if on:
            app.installEventFilter(self)
        else:
            app.removeEventFilter(self)
        self._watching = on

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in _ACTIVITY:
            self.touch()
        return False
