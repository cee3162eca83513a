"""``python -m kiosk``: the kiosk window (same as the ``kiosk`` command)."""

from __future__ import annotations

import multiprocessing

from kiosk.cli.kiosk import main

if __name__ == "__main__":
    # Training runs in a child process; in a frozen bundle that child starts
    # as this executable, and freeze_support hands it to multiprocessing.
    multiprocessing.freeze_support()
    raise SystemExit(main())
