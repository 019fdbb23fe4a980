"""The class legend: names and colours, per-class visibility, each class's share of the image."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QTableWidget, QTableWidgetItem,
                               QToolButton, QVBoxLayout, QWidget)
from superqt import QElidingLabel

import core

MIN_ROWS = 5  # class rows the table always has room for

class _ShareItem(QTableWidgetItem):
    """Sorts by the numeric share, not the text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a = self.data(Qt.ItemDataRole.UserRole)
        b = other.data(Qt.ItemDataRole.UserRole)
        return (a or 0.0) < (b or 0.0)


def swatch(color: tuple[int, int, int], size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*color))
    return QIcon(pix)


class LegendWidget(QWidget):
    hiddenChanged = Signal(object)  # set of hidden class ids
    classActivated = Signal(int)  # double-click: show this class's probability

    def __init__(self, parent=None):
        super().__init__(parent)
        self.classes: core.ClassTable | None = None
        self.shares: np.ndarray | None = None
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Class", "Share"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSortingEnabled(True)
        rows = self.table.verticalHeader()
        rows.setDefaultSectionSize(self.table.fontMetrics().height() + 8)  # compact rows: more classes in view
        rows.setMinimumSectionSize(self.table.fontMetrics().height() + 4)
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height()
                                    + MIN_ROWS * rows.defaultSectionSize() + 2 * self.table.frameWidth())
        self.table.itemChanged.connect(self._item_changed)
        self.table.cellDoubleClicked.connect(self._double_clicked)
        self.present_only = QCheckBox("Present only")
        self.present_only.setToolTip("List only the classes found in the image")
        self.present_only.toggled.connect(self._filter)
        show_all = QToolButton()
        show_all.setText("All")
        show_all.setToolTip("Show every class")
        show_all.clicked.connect(lambda: self.set_all_visible(True))
        hide_all = QToolButton()
        hide_all.setText("None")
        hide_all.setToolTip("Hide every class")
        hide_all.clicked.connect(lambda: self.set_all_visible(False))
        self.title = QElidingLabel("")  # elides in a narrow dock (the full text is its tool tip)
        self.title.setStyleSheet("color: #5f6368;")
        top = QHBoxLayout()  # one line above the table: the table gets the height
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.present_only)
        top.addWidget(show_all)
        top.addWidget(hide_all)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        self._updating = False

    def height_for_rows(self, rows: int) -> int:
        """The panel's height that shows ``rows`` class rows whole (for the docks' default layout)."""
        lay = self.layout()
        m = lay.contentsMargins()
        top = lay.itemAt(0).sizeHint().height()
        header = self.table.horizontalHeader().sizeHint().height()
        table = header + rows * self.table.verticalHeader().defaultSectionSize()
        return m.top() + m.bottom() + top + lay.spacing() + table + 2 * self.table.frameWidth() + 2

    # --- inputs ---
    def set_classes(self, classes: core.ClassTable) -> None:
        self.classes = classes
        self.shares = None
        self._updating = True
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(classes))
        for i, (name, color) in enumerate(zip(classes.names, classes.colors)):
            item = QTableWidgetItem(swatch(color), f"{i}  {name}")
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            item.setToolTip(f"class {i}: {name}, colour RGB{tuple(color)}. Double-click: its probability map")
            share = _ShareItem("")
            share.setData(Qt.ItemDataRole.UserRole, 0.0)
            share.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(i, 0, item)
            self.table.setItem(i, 1, share)
        self.table.setSortingEnabled(True)
        self._updating = False
        table = f" ({classes.name})" if classes.name else ""
        self.title.setText(f"{len(classes)} classes{table}")
        self.title.setToolTip(f"{len(classes)} classes{table}")
        self._filter()

    def set_shares(self, shares: np.ndarray | None) -> None:
        """Each class's fraction of the image's pixels (None clears the column)."""
        if self.classes is None:
            return
        self.shares = None if shares is None else np.asarray(shares)
        self._updating = True
        self.table.setUpdatesEnabled(False)
        self.table.model().blockSignals(True)  # one layout change at the end, not one per cell
        self.table.setSortingEnabled(False)
        for row in range(self.table.rowCount()):
            cid = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
            item = self.table.item(row, 1)
            v = float(self.shares[cid]) if self.shares is not None and cid < len(self.shares) else None
            item.setData(Qt.ItemDataRole.UserRole, v or 0.0)
            item.setText("" if v is None else (f"{100 * v:.1f} %" if v >= 0.001 or v == 0 else "<0.1 %"))
        self.table.model().blockSignals(False)
        self.table.setSortingEnabled(True)
        if self.shares is not None:
            self.table.sortItems(1, Qt.SortOrder.DescendingOrder)
        else:
            self.table.model().layoutChanged.emit()
        self._updating = False
        self._filter()
        self.table.setUpdatesEnabled(True)

    # --- visibility ---
    def hidden(self) -> set[int]:
        out = set()
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item.checkState() != Qt.CheckState.Checked:
                out.add(int(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def set_class_visible(self, cid: int, visible: bool) -> None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item.data(Qt.ItemDataRole.UserRole) == cid:
                item.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
                return

    def set_all_visible(self, visible: bool) -> None:
        self._updating = True
        for row in range(self.table.rowCount()):
            self.table.item(row, 0).setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
        self._updating = False
        self.hiddenChanged.emit(self.hidden())

    def row_of(self, cid: int) -> int:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == cid:
                return row
        return -1

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if not self._updating and item.column() == 0:
            self.hiddenChanged.emit(self.hidden())

    def _double_clicked(self, row: int, _col: int) -> None:
        self.classActivated.emit(int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)))

    def _filter(self) -> None:
        only = self.present_only.isChecked() and self.shares is not None
        for row in range(self.table.rowCount()):
            v = self.table.item(row, 1).data(Qt.ItemDataRole.UserRole) or 0.0
            self.table.setRowHidden(row, only and v <= 0.0)
