"""The model a project's history has in use cannot be loaded: say why, offer the others.

The list holds the history's other models (newest first, with their note, time and validation
mIoU; a missing file is shown and cannot be chosen) and the extra models offered (for the demo,
its bundled model). ``chosen`` is a ``core.CheckpointEntry`` or a ``Path`` after accept;
``open_file`` True when the user wants to pick a checkpoint file instead.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem,
                               QVBoxLayout, QWidget)

import core
from app.controllers.project_opening import InUseProblem


def describe_entry(e: core.CheckpointEntry) -> str:
    m = e.metrics.get("val_miou") if e.metrics else None
    miou = f", validation mIoU {m:.3f}" if isinstance(m, (int, float)) else ""
    when = f", {e.time[:16].replace('T', ' ')}" if e.time else ""
    return f"model {e.id}{when}{miou}" + (f": {e.note}" if e.note else "")


class ModelInUseDialog(QDialog):
    def __init__(self, problem: InUseProblem, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("The project's model cannot be loaded")
        self.problem = problem
        self.chosen: core.CheckpointEntry | Path | None = None
        self.open_file = False
        text = QLabel(problem.text)
        text.setWordWrap(True)
        text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setWordWrap(True)
        for e in problem.others:
            item = QListWidgetItem(describe_entry(e), self.list)
            item.setData(Qt.ItemDataRole.UserRole, e)
            if not e.path.is_file():
                item.setText(item.text() + " (its file is missing)")
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled & ~Qt.ItemFlag.ItemIsSelectable)
        for p in problem.alternatives:
            item = QListWidgetItem(f"{p.name} ({p.parent})", self.list)
            item.setData(Qt.ItemDataRole.UserRole, Path(p))
        first = next((i for i in range(self.list.count()) if self.list.item(i).flags() & Qt.ItemFlag.ItemIsEnabled),
                     None)
        if first is not None:
            self.list.setCurrentRow(first)
        self.list.itemDoubleClicked.connect(lambda _: self._use())
        self.buttons = QDialogButtonBox()
        self.use_button = self.buttons.addButton("Use the selected model", QDialogButtonBox.ButtonRole.AcceptRole)
        self.use_button.setEnabled(first is not None)
        self.file_button = self.buttons.addButton("Open a model file...", QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton("Not now", QDialogButtonBox.ButtonRole.RejectRole)
        self.use_button.clicked.connect(self._use)
        self.file_button.clicked.connect(self._file)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(text)
        hint = QLabel("The models of the project's history" + (" and the others offered" if problem.alternatives
                                                                 else "") + ":")
        lay.addWidget(hint)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.buttons)
        self.resize(640, 380)

    def select(self, choice: core.CheckpointEntry | Path) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == choice:
                self.list.setCurrentRow(i)
                return
        raise ValueError(f"{choice} is not offered")

    def _use(self) -> None:
        item = self.list.currentItem()
        if item is None or not item.flags() & Qt.ItemFlag.ItemIsEnabled:
            return
        self.chosen = item.data(Qt.ItemDataRole.UserRole)
        self.accept()

    def _file(self) -> None:
        self.open_file = True
        self.accept()
