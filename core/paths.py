"""Where PSPNet Studio keeps its own files, computed without Qt.

The app asks Qt for ``QStandardPaths.AppDataLocation`` with organisation and application name
"PSPNet Studio"; core cannot import Qt, so this module gives the same folder from the same
rules (Qt's ``qstandardpaths_unix.cpp`` / ``_mac.mm`` / ``_win.cpp``: the platform's per-user
data folder, then ``<organisation>/<application>``):

- Linux and other Unix: ``$XDG_DATA_HOME`` when it is an absolute path, else
  ``~/.local/share``; then ``PSPNet Studio/PSPNet Studio``
- macOS: ``~/Library/Application Support/PSPNet Studio/PSPNet Studio``
- Windows: the roaming application data folder (``%APPDATA%``, FOLDERID_RoamingAppData), then
  ``PSPNet Studio/PSPNet Studio``

``PSPNET_STUDIO_HOME`` (tests, portable installs) replaces the whole folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

HOME_ENV = "PSPNET_STUDIO_HOME"
ORGANIZATION = "PSPNet Studio"
APPLICATION = "PSPNet Studio"


def app_data_dir(*, environ: Mapping[str, str] | None = None, platform: str | None = None,
                 home: str | Path | None = None) -> Path:
    """The app-data folder (not created). ``environ``, ``platform`` (``sys.platform`` values)
    and ``home`` default to this process's; tests pass others to check every platform."""
    env = os.environ if environ is None else environ
    override = env.get(HOME_ENV, "")
    if override:
        return Path(override).expanduser()
    plat = sys.platform if platform is None else platform
    user_home = Path(home) if home is not None else Path.home()
    if plat.startswith("win"):
        roaming = env.get("APPDATA", "")
        base = Path(roaming) if roaming and _is_absolute(roaming, windows=True) else user_home / "AppData" / "Roaming"
    elif plat == "darwin":
        base = user_home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg.startswith("/") else user_home / ".local" / "share"  # Qt ignores a relative one
    return base / ORGANIZATION / APPLICATION


def _is_absolute(path: str, *, windows: bool) -> bool:
    if not windows:
        return path.startswith("/")
    return (len(path) > 2 and path[1] == ":" and path[2] in "\\/") or path.startswith(("\\\\", "//"))


__all__ = ["app_data_dir", "HOME_ENV", "ORGANIZATION", "APPLICATION"]
