"""Data files shipped with kiosk (model manifest, icons, styles)."""
