"""The image list dock: the images of the open project or folder with their state."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from app.folder import ImageEntry, ImageFolder

STATE_COLORS = {"no mask": "#9aa0a6", "mask": "#1a73e8", "unreadable mask": "#d93025", "predicted": "#188038"}


def state_icon(entry: ImageEntry) -> QIcon:
    """A dot: grey (no mask), blue (mask) or red (unreadable mask); a green ring when predicted."""
    pix = QPixmap(14, 14)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    if entry.predicted:
        p.setBrush(QColor(STATE_COLORS["predicted"]))
        p.drawEllipse(0, 0, 14, 14)
    p.setBrush(QColor(STATE_COLORS.get(entry.mask_state, STATE_COLORS["no mask"])))
    p.drawEllipse(3, 3, 8, 8)
    p.end()
    return QIcon(pix)


def entry_text(entry: ImageEntry) -> str:
    parts = [entry.mask_state] + (["predicted"] if entry.predicted else [])
    return f"{entry.path.name}\n{', '.join(parts)}"


class ImageList(QWidget):
    activated = Signal(int)  # index in the folder's entries

    def __init__(self, parent=None):
        super().__init__(parent)
        self.folder: ImageFolder | None = None
        self.title = QLabel("No folder open")
        self.title.setWordWrap(True)
        self.title.setStyleSheet("color: #5f6368;")
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        self.list.currentRowChanged.connect(lambda row: row >= 0 and self.activated.emit(row))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.list, 1)

    def set_folder(self, folder: ImageFolder) -> None:
        self.folder = folder
        self.list.blockSignals(True)
        self.list.clear()
        for e in folder.entries:
            item = QListWidgetItem(state_icon(e), entry_text(e))
            item.setToolTip(f"{e.path}\n{entry_text(e).splitlines()[1]}")
            self.list.addItem(item)
        self.list.blockSignals(False)
        n_mask = sum(e.mask_path is not None for e in folder.entries)
        kind = "project" if folder.is_project else "folder"
        self.title.setText(f"{kind} {folder.root.name}: {len(folder.entries)} images, {n_mask} with masks")

    def update_entry(self, index: int) -> None:
        if self.folder is None or not 0 <= index < self.list.count():
            return
        e = self.folder.entries[index]
        item = self.list.item(index)
        item.setIcon(state_icon(e))
        item.setText(entry_text(e))
        item.setToolTip(f"{e.path}\n{entry_text(e).splitlines()[1]}")

    def set_current(self, index: int) -> None:
        if 0 <= index < self.list.count():
            self.list.blockSignals(True)
            self.list.setCurrentRow(index)
            self.list.blockSignals(False)
            self.list.scrollToItem(self.list.item(index))

    def state_of(self, index: int) -> str:
        return self.folder.entries[index].state if self.folder is not None else ""
