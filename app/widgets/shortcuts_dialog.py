"""Help > Keyboard Shortcuts (F1): every shortcut of the window, menu by menu, with a filter.

A table that scrolls, sized to the screen it opens on: on a 1280x720 screen it fits, Close
button included (a message box with one row per shortcut was taller than the screen).
"""

from __future__ import annotations

import re

from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLineEdit, QMenu,
                               QMenuBar, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

SCREEN_SHARE = 0.8  # of the screen's free height, at most
PREFERRED = QSize(560, 640)


def plain(text: str) -> str:
    """A menu text without its mnemonic marks ("Pan && Zoom" -> "Pan & Zoom", "&Open" -> "Open")."""
    return re.sub(r"&(&?)", lambda m: m.group(1), text)


def shortcut_rows(menubar: QMenuBar, actions: list[QAction]) -> list[tuple[str, str, str]]:
    """(keys, command, menu) for every action with a shortcut: the menus' in their order, then the
    window's actions that no menu holds."""
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()

    def keys(act: QAction) -> str:
        return ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in act.shortcuts())

    def walk(menu: QMenu, path: str) -> None:
        for act in menu.actions():
            if act.menu() is not None:
                walk(act.menu(), f"{path} > {plain(act.text())}")
            elif not act.isSeparator() and act.shortcuts() and id(act) not in seen:
                seen.add(id(act))
                rows.append((keys(act), plain(act.text()), path))

    for top in menubar.actions():
        if top.menu() is not None:
            walk(top.menu(), plain(top.text()))
    for act in actions:
        if act.shortcuts() and id(act) not in seen:
            seen.add(id(act))
            rows.append((keys(act), plain(act.text()), ""))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, rows: list[tuple[str, str, str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: a command, a key or a menu")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._filter)
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Keys", "Command", "Menu"])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        for r, (keys, command, menu) in enumerate(rows):
            for c, text in enumerate((keys, command, menu)):
                item = QTableWidgetItem(text)
                if c == 0:
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(r, c, item)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.buttons.accepted.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(self.filter)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.buttons)
        self.resize(self.sizeHint())

    @staticmethod
    def size_for(room: QSize) -> QSize:
        """The dialog's size on a screen whose free area is ``room``: the preferred size, within a share of it."""
        return QSize(min(PREFERRED.width(), int(room.width() * 0.9)),
                     min(PREFERRED.height(), int(room.height() * SCREEN_SHARE)))

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        screen = (self.parentWidget() or self).screen()
        return self.size_for(screen.availableGeometry().size() if screen is not None else PREFERRED)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(320, 240)

    def visible_rows(self) -> list[int]:
        return [r for r in range(self.table.rowCount()) if not self.table.isRowHidden(r)]

    def _filter(self, text: str) -> None:
        needle = text.strip().lower()
        for r in range(self.table.rowCount()):
            hay = " ".join(self.table.item(r, c).text().lower() for c in range(3))
            self.table.setRowHidden(r, bool(needle) and needle not in hay)


__all__ = ["ShortcutsDialog", "plain", "shortcut_rows"]
