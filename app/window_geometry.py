"""Where the main window opens and how its docks share it.

- First start (no saved geometry): maximised on a small screen (below ``MAXIMISE_BELOW``, e.g.
  1280x720 or 1366x768), otherwise ``PREFERRED`` (at most 90 % of the screen) centred on it.
- Later starts: the saved geometry (app/settings.py), moved and shrunk onto the screen when it
  no longer fits there (a screen smaller than the one it was saved on).
- Docks with no saved layout: the side columns get a share of the width and the Classes dock a
  share of the right column's height (``default_docks``), so that the view keeps most of the
  window and the class table shows several rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QGuiApplication

if TYPE_CHECKING:  # pragma: no cover
    from app.main_window import MainWindow
    from app.settings import Settings

PREFERRED = QSize(1600, 1000)
MAXIMISE_BELOW = QSize(1500, 900)
SCREEN_SHARE = 0.9
CLASS_ROWS_SMALL, CLASS_ROWS_LARGE = 6, 10  # class rows the Classes dock shows at first (short, tall window)


def first_geometry(available: QRect, preferred: QSize = PREFERRED) -> tuple[QRect, bool]:
    """(geometry, maximised) of a window opened the first time on a screen whose free area is
    ``available``."""
    if available.width() < MAXIMISE_BELOW.width() or available.height() < MAXIMISE_BELOW.height():
        return QRect(available), True
    w = min(preferred.width(), int(available.width() * SCREEN_SHARE))
    h = min(preferred.height(), int(available.height() * SCREEN_SHARE))
    rect = QRect(0, 0, w, h)
    rect.moveCenter(available.center())
    return rect, False


def fitted(rect: QRect, available: QRect) -> QRect:
    """``rect`` shrunk to ``available`` and moved inside it."""
    w, h = min(rect.width(), available.width()), min(rect.height(), available.height())
    x = min(max(rect.x(), available.x()), available.x() + available.width() - w)
    y = min(max(rect.y(), available.y()), available.y() + available.height() - h)
    return QRect(x, y, w, h)


def _screen_area(window: "MainWindow") -> QRect:
    screen = window.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect(0, 0, PREFERRED.width(), PREFERRED.height())


def place_first(window: "MainWindow") -> None:
    """The first start: maximised on a small screen, else centred."""
    rect, maximised = first_geometry(_screen_area(window))
    window.setGeometry(rect)
    if maximised:
        window.setWindowState(window.windowState() | Qt.WindowState.WindowMaximized)


def restore(window: "MainWindow", settings: "Settings") -> bool:
    """The saved geometry, kept on the screen; False when there is none (or it is unreadable)."""
    geo = settings.window_geometry()
    if geo is None or not window.restoreGeometry(geo):
        return False
    if not window.isMaximized() and not window.isFullScreen():
        area = _screen_area(window)
        if not area.contains(window.geometry()):
            window.setGeometry(fitted(window.geometry(), area))
    return True


def default_docks(window: "MainWindow") -> None:
    """Share the window between the view and the docks (no saved layout)."""
    w, h = window.width(), window.height()
    side_left = max(200, min(300, int(0.19 * w)))
    side_right = max(280, min(460, int(0.27 * w)))
    window.resizeDocks([window.images_dock, window.legend_dock], [side_left, side_right], Qt.Orientation.Horizontal)
    column = max(200, h - window.menuBar().height() - window.statusBar().height() - 60)
    title = max(0, window.legend_dock.height() - window.legend.height()) or 24  # the dock's title bar
    rows = CLASS_ROWS_LARGE if column >= 800 else CLASS_ROWS_SMALL
    classes = max(160, min(window.legend.height_for_rows(rows) + title, int(0.45 * column)))
    window.resizeDocks([window.legend_dock, window.model_dock], [classes, column - classes], Qt.Orientation.Vertical)
    tools = min(window.tools_dock.widget().sizeHint().height() + 30, int(0.55 * column))
    window.resizeDocks([window.images_dock, window.tools_dock], [column - tools, tools], Qt.Orientation.Vertical)


__all__ = ["PREFERRED", "first_geometry", "fitted", "place_first", "restore", "default_docks"]
