"""``python -m kiosk``: the kiosk window (same as the ``kiosk`` command)."""

from __future__ import annotations

from kiosk.ui.app import main

if __name__ == "__main__":
    raise SystemExit(main())
