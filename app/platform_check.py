"""Can Qt open a window here? Checked before Qt is imported, because Qt cannot say it itself.

When Qt's platform plugin cannot load, Qt prints a misleading hint (since 6.5 it always names
libxcb-cursor0, whichever library is missing) and aborts the process with SIGABRT. So on Linux,
before the first Qt import, :func:`gui_problem` works out which platform plugin Qt will pick
(the same order Qt 6 uses: ``QT_QPA_PLATFORM``, else Wayland when ``WAYLAND_DISPLAY`` or
``XDG_SESSION_TYPE=wayland``, else X11 when ``DISPLAY``), loads every system library that plugin
needs with ctypes and, when some are missing or there is no display at all, returns a message
naming them and the command that installs them. macOS and Windows need nothing (the wheels
bundle everything), so the check only runs on Linux. ``PSPNET_STUDIO_NO_PLATFORM_CHECK=1`` skips
it (should it ever be wrong about a machine).

The tables are the ``NEEDED`` entries of PySide6's ``libQt6Gui.so.6`` (every platform,
offscreen included), ``plugins/platforms/libqxcb.so`` and ``libQt6XcbQpa.so.6`` (X11) that the
wheel does not bundle; tests/test_main.py checks them against the installed PySide6.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence


@dataclass(frozen=True)
class Library:
    """A shared library and the package that provides it on Debian/Ubuntu, Fedora and Arch."""

    soname: str
    debian: str
    fedora: str
    arch: str


def _lib(soname: str, debian: str, fedora: str, arch: str) -> Library:
    return Library(soname, debian, fedora, arch)


# QtGui itself (every platform plugin, offscreen too); QtDBus, which QtGui links, needs libdbus
QT_GUI_LIBRARIES: tuple[Library, ...] = (
    _lib("libGL.so.1", "libgl1", "libglvnd-glx", "libglvnd"),
    _lib("libEGL.so.1", "libegl1", "libglvnd-egl", "libglvnd"),
    _lib("libfontconfig.so.1", "libfontconfig1", "fontconfig", "fontconfig"),
    _lib("libfreetype.so.6", "libfreetype6", "freetype", "freetype2"),
    _lib("libglib-2.0.so.0", "libglib2.0-0", "glib2", "glib2"),
    _lib("libgthread-2.0.so.0", "libglib2.0-0", "glib2", "glib2"),
    _lib("libX11.so.6", "libx11-6", "libX11", "libx11"),
    _lib("libxkbcommon.so.0", "libxkbcommon0", "libxkbcommon", "libxkbcommon"),
    _lib("libdbus-1.so.3", "libdbus-1-3", "dbus-libs", "dbus"),
)

# the X11 platform plugin (libqxcb.so and libQt6XcbQpa.so.6)
XCB_LIBRARIES: tuple[Library, ...] = (
    _lib("libX11-xcb.so.1", "libx11-xcb1", "libX11-xcb", "libx11"),
    _lib("libxcb.so.1", "libxcb1", "libxcb", "libxcb"),
    _lib("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    _lib("libxcb-icccm.so.4", "libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    _lib("libxcb-image.so.0", "libxcb-image0", "xcb-util-image", "xcb-util-image"),
    _lib("libxcb-keysyms.so.1", "libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    _lib("libxcb-randr.so.0", "libxcb-randr0", "libxcb", "libxcb"),
    _lib("libxcb-render.so.0", "libxcb-render0", "libxcb", "libxcb"),
    _lib("libxcb-render-util.so.0", "libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil"),
    _lib("libxcb-shape.so.0", "libxcb-shape0", "libxcb", "libxcb"),
    _lib("libxcb-shm.so.0", "libxcb-shm0", "libxcb", "libxcb"),
    _lib("libxcb-sync.so.1", "libxcb-sync1", "libxcb", "libxcb"),
    _lib("libxcb-util.so.1", "libxcb-util1", "xcb-util", "xcb-util"),
    _lib("libxcb-xfixes.so.0", "libxcb-xfixes0", "libxcb", "libxcb"),
    _lib("libxcb-xkb.so.1", "libxcb-xkb1", "libxcb", "libxcb"),
    _lib("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
)

_INSTALLERS = {  # package field -> (distribution family shown, install command)
    "debian": ("Debian/Ubuntu", "apt-get install"),
    "fedora": ("Fedora", "dnf install"),
    "arch": ("Arch", "pacman -S"),
}
VIRTUAL_DISPLAY = 'xvfb-run -s "-screen 0 1280x720x24" python main.py'


def missing_libraries(libraries: Sequence[Library], load: Callable[[str], object] = ctypes.CDLL) -> list[Library]:
    """The libraries of ``libraries`` that the dynamic loader cannot load (by soname, as Qt would)."""
    missing = []
    for lib in libraries:
        try:
            load(lib.soname)
        except OSError:
            missing.append(lib)
    return missing


def distribution_family(os_release: Mapping[str, str] | None = None) -> str | None:
    """"debian", "fedora" or "arch" from /etc/os-release (ID and ID_LIKE); None when unknown."""
    if os_release is None:
        try:
            os_release = platform.freedesktop_os_release()
        except OSError:
            return None
    ids = [os_release.get("ID", ""), *os_release.get("ID_LIKE", "").split()]
    for family, members in (("debian", ("debian", "ubuntu")), ("fedora", ("fedora", "rhel", "centos")),
                            ("arch", ("arch",))):
        if any(i in members for i in ids):
            return family
    return None


def install_command(missing: Sequence[Library], family: str | None = None, root: bool | None = None) -> str:
    """The one line that installs ``missing`` on ``family`` (Debian's when unknown)."""
    family = family if family in _INSTALLERS else "debian"
    packages = list(dict.fromkeys(getattr(lib, family) for lib in missing))
    root = (os.geteuid() == 0) if root is None and hasattr(os, "geteuid") else bool(root)
    name, command = _INSTALLERS[family]
    return f"install them ({name}): {'' if root else 'sudo '}{command} {' '.join(packages)}"


def chosen_platform(environ: Mapping[str, str], screenshot: bool = False) -> str | None:
    """The platform plugin Qt 6 will try first, or None when there is no display to try.

    ``--screenshot`` renders offscreen when QT_QPA_PLATFORM is not set (app.launch does that)."""
    requested = environ.get("QT_QPA_PLATFORM", "").strip()
    if requested:
        return requested.split(";")[0].split(":")[0].strip()
    if screenshot:
        return "offscreen"
    if environ.get("WAYLAND_DISPLAY") or environ.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    if environ.get("DISPLAY"):
        return "xcb"
    return None


def _xcb_plugin() -> Path | None:
    """PySide6's X11 platform plugin, found without importing PySide6."""
    spec = importlib.util.find_spec("PySide6")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        plugin = Path(folder) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def _missing_message(what: str, missing: Sequence[Library], family: str | None) -> list[str]:
    names = ", ".join(lib.soname for lib in missing)
    hint = install_command(missing, family)
    if family is None:
        hint += " (README.md's Quick start lists the Fedora and Arch packages)"
    return [f"{what} needs libraries that are not installed: {names}", hint]


def gui_problem(environ: Mapping[str, str] | None = None, *, screenshot: bool = False,
                gui_libraries: Sequence[Library] | None = None, xcb_libraries: Sequence[Library] | None = None,
                family: str | None = None, system: str | None = None) -> str | None:
    """Why the window cannot open here (a message of a few lines), or None when Qt can start.

    Only Linux is checked. The library tables default to :data:`QT_GUI_LIBRARIES` and
    :data:`XCB_LIBRARIES`; ``family`` (debian / fedora / arch) to /etc/os-release's."""
    environ = os.environ if environ is None else environ
    if not (system or sys.platform).startswith("linux") or environ.get("PSPNET_STUDIO_NO_PLATFORM_CHECK") == "1":
        return None
    gui_libraries = QT_GUI_LIBRARIES if gui_libraries is None else gui_libraries
    xcb_libraries = XCB_LIBRARIES if xcb_libraries is None else xcb_libraries
    family = family or distribution_family()
    lines: list[str] = []
    missing = missing_libraries(gui_libraries)
    if missing:
        lines += _missing_message("Qt (PySide6) cannot start: it", missing, family)
    name = chosen_platform(environ, screenshot)
    xcb = "Qt's X11 platform plugin (xcb)"
    if name is None or (name == "xcb" and not environ.get("DISPLAY")):
        why = "DISPLAY and WAYLAND_DISPLAY are not set" if name is None else "QT_QPA_PLATFORM=xcb but DISPLAY is not set"
        lines[:0] = [f"no display to open the window on ({why})",
                     "without a desktop: `python main.py gui --screenshot OUT.png` saves the window as a PNG "
                     f"(offscreen); or run it on a virtual display: `{VIRTUAL_DISPLAY}`"]
        name, xcb = "xcb", xcb + ", which a virtual display uses,"  # say now what that will need too
    if name == "xcb" and not missing:
        missing_xcb = missing_libraries(xcb_libraries)
        if missing_xcb:
            lines += _missing_message(xcb, missing_xcb, family)
        elif xcb_libraries is XCB_LIBRARIES and (plugin := _xcb_plugin()) is not None:
            try:  # a library our table does not know of: the loader names it
                ctypes.CDLL(str(plugin))
            except OSError as exc:
                lines += [f"{xcb} cannot be loaded: {exc}", "README.md's Quick start lists the system packages it needs"]
    return "\n".join(lines) or None


__all__ = ["Library", "QT_GUI_LIBRARIES", "XCB_LIBRARIES", "missing_libraries", "distribution_family",
           "install_command", "chosen_platform", "gui_problem"]
