"""Remembered settings: window layout, recent files, view options (QSettings).

With ``PSPNET_STUDIO_HOME`` set (tests, portable installs) the settings are an INI file in that
folder instead of the platform's store; the same variable moves the demo project (app.demo).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

ORG = "PSPNet Studio"
APP = "PSPNet Studio"
MAX_RECENT = 10
HOME_ENV = "PSPNET_STUDIO_HOME"


def studio_home() -> Path:
    """Where the app keeps its own files (demo project, trained demo model)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env)
    loc = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(loc) if loc else Path.home() / ".pspnet-studio"


class Settings:
    def __init__(self) -> None:
        env = os.environ.get(HOME_ENV)
        if env:
            self.q = QSettings(str(Path(env) / "settings.ini"), QSettings.Format.IniFormat)
        else:
            self.q = QSettings(ORG, APP)

    def value(self, key: str, default: Any = None, type: type | None = None) -> Any:
        if type is None:
            return self.q.value(key, default)
        return self.q.value(key, default, type=type)

    def set(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)

    # --- the main window's geometry (app/window_geometry.py places the window with it) ---
    def window_geometry(self) -> QByteArray | None:
        geo = self.q.value("window/geometry")
        return geo if isinstance(geo, QByteArray) and not geo.isEmpty() else None

    def set_window_geometry(self, geometry: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)

    # --- recent files: "recent/images", "recent/models", "recent/projects" ---
    def recent(self, kind: str) -> list[str]:
        raw = self.q.value(f"recent/{kind}", [])
        if isinstance(raw, str):  # QSettings turns a one-item list into a string in INI files
            raw = [raw] if raw else []
        return [str(r) for r in (raw or [])]

    def add_recent(self, kind: str, entry: str) -> list[str]:
        items = [entry] + [r for r in self.recent(kind) if r != entry]
        items = items[:MAX_RECENT]
        self.q.setValue(f"recent/{kind}", items)
        return items

    def clear_recent(self, kind: str) -> None:
        self.q.setValue(f"recent/{kind}", [])

    def sync(self) -> None:
        self.q.sync()
