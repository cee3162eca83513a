"""What every command-line entry point shares: one-line errors and progress bars."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class UserError(Exception):
    """Bad input from the user: reported as one line, exit status 2, no traceback."""


def fail(program: str, message: str) -> int:
    """Print ``program: error: message`` to stderr; return the exit status 2."""
    print(f"{program}: error: {message}", file=sys.stderr)
    return 2


class ProgressBar:
    """A one-line text progress bar on stderr.

    On a terminal it redraws in place; otherwise (logs, CI) it prints only the
    final line, so captured output stays readable.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 28):
        self.label = label
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.width = width
        self.interactive = getattr(self.stream, "isatty", lambda: False)()
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._extra = ""

    def update(self, done: int, extra: str = "") -> None:
        """Show ``done`` of ``total`` with an optional note (e.g. the loss)."""
        self._extra = extra
        now = time.perf_counter()
        # Redraw at most ~20 times a second: drawing is slower than training steps.
        if self.interactive and (now - self._last_draw > 0.05 or done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line(done))
            self.stream.flush()

    def close(self, done: int | None = None) -> None:
        """Finish the bar, leaving its last state on a line of its own."""
        done = self.total if done is None else done
        prefix = "\r" if self.interactive else ""
        self.stream.write(prefix + self._line(done) + "\n")
        self.stream.flush()

    def _line(self, done: int) -> str:
        fraction = min(done / self.total, 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        extra = f"  {self._extra}" if self._extra else ""
        return f"{self.label:<10} [{bar}] {done}/{self.total}  {elapsed:5.1f}s{extra}"
