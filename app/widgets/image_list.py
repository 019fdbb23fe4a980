"""The image list dock: the images of the open project or folder with their state and uncertainty.

Rows follow the folder's order, or the uncertainty score (most uncertain first) when "Sort by
uncertainty" is on; signals and methods always speak in folder indices, not rows.
"""

from __future__ import annotations

import functools

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QCheckBox, QLabel, QListWidget, QListWidgetItem, QProgressBar, QVBoxLayout, QWidget

import core
from app.image_folder import ImageEntry, ImageFolder

STATE_COLORS = {core.NO_MASK: "#9aa0a6", core.MASK: "#1a73e8", core.UNREADABLE: "#d93025", "predicted": "#188038"}


def state_icon(entry: ImageEntry) -> QIcon:
    """A dot: grey (no mask), blue (mask) or red (unreadable mask); a green ring when predicted."""
    return _icon(entry.mask_state, entry.predicted)


@functools.lru_cache(maxsize=16)
def _icon(mask_state: str, predicted: bool) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    if predicted:
        p.setBrush(QColor(STATE_COLORS["predicted"]))
        p.drawEllipse(0, 0, 14, 14)
    p.setBrush(QColor(STATE_COLORS.get(mask_state, STATE_COLORS[core.NO_MASK])))
    p.drawEllipse(3, 3, 8, 8)
    p.end()
    return QIcon(pix)


def entry_text(entry: ImageEntry) -> str:
    parts = [entry.mask_state] + (["predicted"] if entry.predicted else [])
    if entry.score is not None:
        parts.append(f"uncertainty {entry.score:.3f}")
    return f"{entry.path.name}\n{', '.join(parts)}"


def _tooltip(entry: ImageEntry) -> str:
    tip = f"{entry.path}\n{entry_text(entry).splitlines()[1]}"
    if entry.score is not None:
        tip += ("\nuncertainty: the main head's entropy, raised where the main and aux heads disagree, "
                "over the pixels without a label (0 = sure, 1 = clueless)")
    return tip


class ImageList(QWidget):
    activated = Signal(int)  # index in the folder's entries

    def __init__(self, parent=None):
        super().__init__(parent)
        self.folder: ImageFolder | None = None
        self.order: list[int] = []  # row -> folder index
        self.title = QLabel("No folder open")
        self.title.setWordWrap(True)
        self.title.setStyleSheet("color: #5f6368;")
        self.sort_box = QCheckBox("Sort by uncertainty")
        self.sort_box.setToolTip("Most uncertain images first (scores every image in the background when they "
                                 "are not ranked yet: Image > Rank Images by Uncertainty)")
        self.sort_box.toggled.connect(lambda _: self.resort())
        self.rank_progress = QProgressBar()  # the ranking's progress (the sort control starts one)
        self.rank_progress.setTextVisible(True)
        self.rank_progress.setMaximumHeight(16)
        self.rank_progress.setVisible(False)
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        self.list.currentRowChanged.connect(self._row_changed)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.sort_box)
        lay.addWidget(self.rank_progress)
        lay.addWidget(self.list, 1)

    def show_ranking(self, done: int, total: int) -> None:
        """Images scored so far by a ranking (shown under the sort control until it ends)."""
        self.rank_progress.setRange(0, max(1, total))
        self.rank_progress.setValue(done)
        self.rank_progress.setFormat(f"ranking by uncertainty: {done}/{total}")
        self.rank_progress.setVisible(True)

    def ranking_finished(self) -> None:
        self.rank_progress.setVisible(False)

    def _row_changed(self, row: int) -> None:
        if 0 <= row < len(self.order):
            self.activated.emit(self.order[row])

    def _sorted_order(self) -> list[int]:
        if self.folder is None:
            return []
        n = len(self.folder.entries)
        if not self.sort_box.isChecked():
            return list(range(n))
        entries = self.folder.entries
        return sorted(range(n), key=lambda i: (entries[i].score is None, -(entries[i].score or 0.0), i))

    def set_folder(self, folder: ImageFolder) -> None:
        """Show a folder model; its rows' changes (entryChanged, rowsChanged) update the list."""
        if self.folder is not None:
            try:
                self.folder.entryChanged.disconnect(self.update_entry)
                self.folder.rowsChanged.disconnect(self.resort)
            except (RuntimeError, TypeError):
                pass
        self.folder = folder
        folder.entryChanged.connect(self.update_entry)
        folder.rowsChanged.connect(self.resort)
        self._fill()
        n_mask = sum(e.mask_path is not None for e in folder.entries)
        kind = "project" if folder.is_project else "folder"
        self.title.setText(f"{kind} {folder.root.name}: {len(folder.entries)} images, {n_mask} with masks")

    def _fill(self) -> None:
        current = self.current_index()
        self.order = self._sorted_order()
        self.list.blockSignals(True)
        self.list.clear()
        for i in self.order:
            e = self.folder.entries[i]
            item = QListWidgetItem(state_icon(e), entry_text(e))
            item.setToolTip(_tooltip(e))
            self.list.addItem(item)
        if current >= 0 and current in self.order:
            self.list.setCurrentRow(self.order.index(current))
        self.list.blockSignals(False)

    def resort(self) -> None:
        """Re-apply the order (after scores changed)."""
        if self.folder is not None:
            self._fill()

    def row_of(self, index: int) -> int:
        try:
            return self.order.index(index)
        except ValueError:
            return -1

    def current_index(self) -> int:
        row = self.list.currentRow()
        return self.order[row] if 0 <= row < len(self.order) else -1

    def update_entry(self, index: int) -> None:
        if self.folder is None or not 0 <= index < len(self.folder.entries):
            return
        row = self.row_of(index)
        if row < 0:
            return
        e = self.folder.entries[index]
        item = self.list.item(row)
        item.setIcon(state_icon(e))
        item.setText(entry_text(e))
        item.setToolTip(_tooltip(e))

    def set_current(self, index: int) -> None:
        row = self.row_of(index)
        if row >= 0:
            self.list.blockSignals(True)
            self.list.setCurrentRow(row)
            self.list.blockSignals(False)
            self.list.scrollToItem(self.list.item(row))

    def state_of(self, index: int) -> str:
        return self.folder.entries[index].state if self.folder is not None else ""

    def text_of(self, index: int) -> str:
        row = self.row_of(index)
        return self.list.item(row).text() if row >= 0 else ""
