"""The window: the only package that imports Qt."""

import os

# superqt reaches Qt through qtpy, which would take PyQt5 or PyQt6 if one were
# installed beside PySide6; the window's widgets are PySide6 objects.
os.environ.setdefault("QT_API", "pyside6")
