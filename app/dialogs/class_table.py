"""Choosing a project's class table, and editing one.

:class:`ClassTableDialog` asks which classes a project's masks use: a built-in table (ADE20K-150,
PASCAL VOC-21, Cityscapes-19), the current model's, a classes file (a project's classes.json or
any table in that format), or a new list edited here (names and colours). New Project asks it,
and so does opening a project whose classes.json is missing or damaged, or a folder of images/
without one (then it also offers to open the images as plain images). With the folder's masks
given, it reads the ids they use and refuses a table too small for them.

:class:`ClassEditor` edits names and colours; the rows of an existing project's classes are
locked in place (their ids are in the masks: they may be renamed or recoloured, not removed
or moved); new classes are appended. :class:`EditClassesDialog` is File > Project Classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QColorDialog, QDialog, QDialogButtonBox,
                               QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QRadioButton, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QToolButton, QVBoxLayout, QWidget)

import core

CLASSES_FILTER = "Class tables (*.json);;All files (*)"


def swatch(rgb: Sequence[int], size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*(int(c) for c in rgb[:3])))
    return QIcon(pix)


def preview_names(table: core.ClassTable, n: int = 5) -> str:
    return ", ".join(table.names[:n]) + (", ..." if len(table) > n else "")


@dataclass
class Choice:
    key: str  # "ade20k", "voc", "cityscapes", "model", "file", "new"
    title: str  # what the notes call it: "the ADE20K class table", "the model's class table", ...
    table: core.ClassTable


class ClassEditor(QWidget):
    """A class table as rows of (colour, name); rows below ``locked`` can be removed."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.locked = 0
        self.colors: list[tuple[int, int, int]] = []
        self.grid = QTableWidget(0, 2)
        self.grid.setHorizontalHeaderLabels(["Colour", "Name"])
        self.grid.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.grid.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.grid.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.grid.verticalHeader().setDefaultSectionSize(24)
        self.grid.itemChanged.connect(lambda _: self.changed.emit())
        self.grid.itemSelectionChanged.connect(self._selection)
        self.add_button = QPushButton("Add class")
        self.add_button.clicked.connect(lambda: self.add_class())
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected new class (classes already in the masks stay)")
        self.remove_button.clicked.connect(self.remove_selected)
        self.remove_button.setEnabled(False)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.grid, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.note)

    # ---- contents ----------------------------------------------------------------------------
    def set_table(self, table: core.ClassTable | None, locked: int = 0) -> None:
        self.grid.blockSignals(True)
        self.grid.setRowCount(0)
        self.colors = []
        self.grid.blockSignals(False)
        self.locked = locked if table is not None else 0
        if table is not None:
            for name, color in zip(table.names, table.colors):
                self.add_class(name, color)
        self.note.setText(f"Classes 0..{locked - 1} are in the masks: rename or recolour them; new classes are "
                          "added after them." if locked else "")
        self._selection()
        self.changed.emit()

    def add_class(self, name: str | None = None, color: Sequence[int] | None = None) -> int:
        row = self.grid.rowCount()
        if color is None:
            color = core.ClassTable.default(row + 1).colors[row]  # distinct from the colours before it
        self.colors.append(tuple(int(v) for v in color))  # type: ignore[arg-type]
        self.grid.blockSignals(True)
        self.grid.insertRow(row)
        button = QToolButton()
        button.setIcon(swatch(color, 16))
        button.setAutoRaise(True)
        button.setToolTip("Choose the colour")
        button.clicked.connect(lambda _=False, b=button: self._pick_color(self._row_of(b)))
        self.grid.setCellWidget(row, 0, button)
        self.grid.setItem(row, 1, QTableWidgetItem(name if name is not None else f"class {row}"))
        self.grid.setVerticalHeaderItem(row, QTableWidgetItem(str(row)))
        self.grid.blockSignals(False)
        self.changed.emit()
        return row

    def _row_of(self, button: QToolButton) -> int:
        for r in range(self.grid.rowCount()):
            if self.grid.cellWidget(r, 0) is button:
                return r
        return -1

    def set_color(self, row: int, rgb: Sequence[int]) -> None:
        self.colors[row] = tuple(int(v) for v in rgb[:3])  # type: ignore[assignment]
        w = self.grid.cellWidget(row, 0)
        if isinstance(w, QToolButton):
            w.setIcon(swatch(rgb, 16))
        self.changed.emit()

    def set_name(self, row: int, name: str) -> None:
        self.grid.item(row, 1).setText(name)

    def _pick_color(self, row: int) -> None:
        if row < 0:
            return
        c = QColorDialog.getColor(QColor(*self.colors[row]), self, f"Colour of class {row}")
        if c.isValid():
            self.set_color(row, (c.red(), c.green(), c.blue()))

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.grid.selectedIndexes() if i.row() >= self.locked}, reverse=True)
        for r in rows:
            self.grid.removeRow(r)
            del self.colors[r]
        for r in range(self.grid.rowCount()):
            self.grid.setVerticalHeaderItem(r, QTableWidgetItem(str(r)))
        self._selection()
        self.changed.emit()

    def _selection(self) -> None:
        rows = {i.row() for i in self.grid.selectedIndexes()}
        self.remove_button.setEnabled(bool(rows) and min(rows) >= self.locked)

    def names(self) -> list[str]:
        return [(self.grid.item(r, 1).text() if self.grid.item(r, 1) else "").strip()
                for r in range(self.grid.rowCount())]

    def problem(self) -> str:
        """Why the rows are not a class table yet ("" when they are)."""
        names = self.names()
        if not names:
            return "Add at least one class"
        if len(names) > 254:
            return f"At most 254 classes (255 is the ignore label), not {len(names)}"
        empty = [i for i, n in enumerate(names) if not n]
        if empty:
            return f"Class {empty[0]} needs a name"
        seen: dict[str, int] = {}
        for i, n in enumerate(names):
            if n.lower() in seen:
                return f"Classes {seen[n.lower()]} and {i} have the same name, {n!r}"
            seen[n.lower()] = i
        return ""

    def table(self, name: str = "") -> core.ClassTable:
        why = self.problem()
        if why:
            raise ValueError(why)
        return core.ClassTable(tuple(self.names()), tuple(self.colors), name)


class ClassTableDialog(QDialog):
    """Which class table? ``choice`` (a :class:`Choice`) after accept; ``plain`` True when the
    user chose to open the folder as plain images instead."""

    def __init__(self, parent: QWidget | None = None, *, title: str = "Classes of the project", intro: str = "",
                 model_classes: core.ClassTable | None = None, allow_plain: bool = False,
                 mask_ids: Callable[[Callable[[int], None]], None] | None = None,
                 start_dir: str = "", default: str | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.choice: Choice | None = None
        self.plain = False
        self.min_classes = 0  # the masks' highest id + 1, once known
        self.start_dir = start_dir
        self.file_table: core.ClassTable | None = None
        self.options: dict[str, QRadioButton] = {}
        self.tables: dict[str, tuple[str, core.ClassTable | None]] = {}
        self.group = QButtonGroup(self)

        intro_label = QLabel(intro or "Which classes will the masks of this project use? Every mask stores class "
                                      "ids of this table; it can grow later (File > Project Classes), never shrink.")
        intro_label.setWordWrap(True)
        left = QVBoxLayout()
        for key, title_, table in core.builtin_class_tables():
            self._option(key, f"{title_} ({len(table)} classes)", f"the {title_} class table", table,
                         preview_names(table))
        if model_classes is not None:
            self._option("model", f"The current model's ({len(model_classes)} classes)", "the model's class table",
                         model_classes, preview_names(model_classes))
        self._option("file", "From a file...", "", None, "a project's classes.json, or a table in that format")
        self._option("new", "A new list, edited here", "a class table of your own", None,
                     "names and colours of your own")
        self.file_row = QWidget()
        fr = QHBoxLayout(self.file_row)
        fr.setContentsMargins(22, 0, 0, 0)
        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("classes.json")
        self.file_edit.editingFinished.connect(lambda: self.load_file(self.file_edit.text()))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        fr.addWidget(self.file_edit, 1)
        fr.addWidget(browse)
        for key in self.options:
            left.addWidget(self.options[key])
            left.addWidget(self._hint(key))
            if key == "file":
                left.addWidget(self.file_row)
        left.addStretch(1)

        self.preview = QListWidget()
        self.preview.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.editor = ClassEditor()
        self.editor.set_table(core.ClassTable.from_names(["background", "object"]))
        self.editor.changed.connect(self._update)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.preview)
        self.stack.addWidget(self.editor)
        body = QHBoxLayout()
        lw = QWidget()
        lw.setLayout(left)
        body.addWidget(lw, 2)
        body.addWidget(self.stack, 3)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox()
        self.ok = self.buttons.addButton("Use these classes", QDialogButtonBox.ButtonRole.AcceptRole)
        self.plain_button = None
        if allow_plain:
            self.plain_button = self.buttons.addButton("Open as plain images", QDialogButtonBox.ButtonRole.ActionRole)
            self.plain_button.setToolTip("Show the images without making a project: nothing is written")
            self.plain_button.clicked.connect(self._plain)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.ok.clicked.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addWidget(intro_label)
        lay.addLayout(body, 1)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self.group.buttonToggled.connect(lambda *_: self._update())
        first = default if default in self.options else ("model" if model_classes is not None
                                                          else next(iter(self.options)))
        self.options[first].setChecked(True)
        self.resize(820, 540)
        if mask_ids is not None:
            self.status.setText("Reading the class ids the masks use ...")
            mask_ids(self.set_mask_ids)

    def _option(self, key: str, text: str, title: str, table: core.ClassTable | None, hint: str) -> None:
        b = QRadioButton(text)
        b.setProperty("hint", hint)
        self.group.addButton(b)
        self.options[key] = b
        self.tables[key] = (title, table)

    def _hint(self, key: str) -> QLabel:
        label = QLabel(str(self.options[key].property("hint")))
        label.setStyleSheet("color: palette(mid); margin-left: 22px;")
        label.setWordWrap(True)
        return label

    # ---- state --------------------------------------------------------------------------------
    @property
    def selected(self) -> str:
        return next((k for k, b in self.options.items() if b.isChecked()), "")

    def select(self, key: str) -> None:
        self.options[key].setChecked(True)

    def set_mask_ids(self, highest: int) -> None:
        """The masks' highest class id: a table needs more classes than that."""
        self.min_classes = highest + 1
        self._update()

    def current_table(self) -> core.ClassTable | None:
        key = self.selected
        if key == "new":
            return self.editor.table() if not self.editor.problem() else None
        if key == "file":
            return self.file_table
        return self.tables.get(key, ("", None))[1]

    def _update(self) -> None:
        key = self.selected
        self.stack.setCurrentWidget(self.editor if key == "new" else self.preview)
        self.file_row.setEnabled(key == "file")
        table = self.current_table()
        if key != "new":
            self.preview.clear()
            if table is not None:
                for i, (name, color) in enumerate(zip(table.names, table.colors)):
                    QListWidgetItem(swatch(color), f"{i}: {name}", self.preview)
        problem = ""
        if key == "new":
            problem = self.editor.problem()
        elif table is None:
            problem = "Choose a class table file" if key == "file" else ""
        if not problem and table is not None and self.min_classes and len(table) < self.min_classes:
            problem = (f"The masks use class ids up to {self.min_classes - 1}: a table for them needs at least "
                       f"{self.min_classes} classes, this one has {len(table)}")
        note = (f"The masks use class ids up to {self.min_classes - 1}." if self.min_classes > 0 else "")
        self.status.setStyleSheet("color: #c5221f;" if problem else "")
        self.status.setText(problem or note or (f"{len(table)} classes" if table is not None else ""))
        self.ok.setEnabled(table is not None and not problem)

    def load_file(self, path: str) -> bool:
        path = path.strip()
        if not path:
            return False
        self.file_edit.setText(path)
        try:
            self.file_table = core.ClassTable.load(path)
        except (ValueError, OSError) as exc:
            self.file_table = None
            self.select("file")
            self.status.setStyleSheet("color: #c5221f;")
            self.status.setText(str(exc))
            self.ok.setEnabled(False)
            return False
        self.select("file")
        self._update()
        return True

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A class table", self.start_dir, CLASSES_FILTER)
        if path:
            self.load_file(path)

    def _accept(self) -> None:
        key = self.selected
        table = self.current_table()
        if table is None or not self.ok.isEnabled():
            return
        title = self.tables.get(key, ("", None))[0]
        if key == "file":
            title = f"the class table of {Path(self.file_edit.text()).name}"
        self.choice = Choice(key, title, table)
        self.accept()

    def _plain(self) -> None:
        self.plain = True
        self.accept()


class EditClassesDialog(QDialog):
    """The open project's classes: rename or recolour them, add new ones (at the end)."""

    def __init__(self, table: core.ClassTable, parent: QWidget | None = None, project_name: str = ""):
        super().__init__(parent)
        self.setWindowTitle(f"Classes of {project_name}" if project_name else "Project classes")
        self.original = table
        self.result_table: core.ClassTable | None = None
        intro = QLabel("Every mask keeps its class ids: the classes it has stay where they are (rename or recolour "
                       "them); new classes are added at the end. The model in use predicts the old table until it "
                       "is adapted to the new one and retrained.")
        intro.setWordWrap(True)
        self.editor = ClassEditor()
        self.editor.set_table(table, locked=len(table))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.editor.changed.connect(self._update)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.editor, 1)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self.resize(520, 520)
        self._update()

    def _update(self) -> None:
        why = self.editor.problem()
        self.status.setStyleSheet("color: #c5221f;" if why else "")
        added = len(self.editor.names()) - len(self.original)
        self.status.setText(why or (f"{added} new class(es)" if added else ""))
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(not why)

    def _accept(self) -> None:
        if self.editor.problem():
            return
        self.result_table = self.editor.table(self.original.name)
        self.accept()
