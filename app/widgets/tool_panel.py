"""The tools dock: tool buttons, the class to paint, brush size and shape, the tool options,
undo/redo, and whether the shown mask is saved, unsaved or read-only."""

from __future__ import annotations

from typing import Mapping, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QSizePolicy,
                               QSlider, QSpinBox, QToolButton, QVBoxLayout, QWidget)

import core
from app.tools.base import MAX_RADIUS, ToolSettings
from app.widgets.flow_bar import FlowBar


def _swatch(rgb: Sequence[int], size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*(int(c) for c in rgb[:3])))
    return QIcon(pix)


class ToolPanel(QWidget):
    def __init__(self, settings: ToolSettings, tool_actions: Mapping[str, QAction],
                 edit_actions: Sequence[QAction] = (), parent=None):
        super().__init__(parent)
        self.settings = settings
        grid = QGridLayout()
        grid.setSpacing(2)
        self.buttons: dict[str, QToolButton] = {}
        for i, (name, act) in enumerate(tool_actions.items()):
            b = QToolButton()
            b.setDefaultAction(act)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.buttons[name] = b
            grid.addWidget(b, i // 4, i % 4)

        self.class_box = QComboBox()
        self.class_box.setToolTip("The class the brush, fill and polygon paint (number keys 0-9)")
        self.class_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_box.setMinimumContentsLength(12)
        self.class_box.currentIndexChanged.connect(self._class_chosen)
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(0, 100)
        self.size_slider.setToolTip("Brush radius ([ and ])")
        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, MAX_RADIUS)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Brush radius in image pixels ([ and ])")
        self.size_slider.valueChanged.connect(lambda v: setattr(self.settings, "radius", self._from_slider(v)))
        self.size_spin.valueChanged.connect(lambda v: setattr(self.settings, "radius", v))
        self.shape_box = QComboBox()
        self.shape_box.addItems(["round", "square"])
        self.shape_box.setToolTip("Brush shape")
        self.shape_box.currentTextChanged.connect(lambda t: self.settings.set_option("shape", t))
        self.preserve_box = QCheckBox("Preserve labels")
        self.preserve_box.setToolTip("Preserve existing labels: brush, fill, polygon and accept change only pixels "
                                     "that have no label yet (Ctrl+P)")
        self.preserve_box.toggled.connect(lambda v: self.settings.set_option("preserve", v))
        self.fill_all_box = QCheckBox("Fill the whole label")
        self.fill_all_box.setToolTip("Fill every pixel with the clicked label, not only the connected region")
        self.fill_all_box.toggled.connect(lambda v: self.settings.set_option("fill_all", v))
        self.accept_box = QComboBox()
        self.accept_box.addItems(["brush", "lasso"])
        self.accept_box.setToolTip("Accept the prediction under a brush or inside a lasso")
        self.accept_box.currentTextChanged.connect(lambda t: self.settings.set_option("accept_shape", t))

        size_row = QHBoxLayout()
        size_row.addWidget(self.size_slider, 1)
        size_row.addWidget(self.size_spin)
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.addRow("Class", self.class_box)
        form.addRow("Brush", size_row)
        form.addRow("Shape", self.shape_box)
        form.addRow("Accept by", self.accept_box)

        edit_row = QHBoxLayout()
        edit_row.setSpacing(2)
        for act in edit_actions:
            b = QToolButton()
            b.setDefaultAction(act)
            edit_row.addWidget(b)
        edit_row.addStretch(1)

        self.state = QLabel("")
        self.state.setWordWrap(True)
        self.state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(grid)
        lay.addLayout(form)
        checks = FlowBar(margins=(0, 0, 0, 0))  # side by side, or one below the other in a narrow dock
        checks.add_group(self.preserve_box)
        checks.add_group(self.fill_all_box)
        lay.addWidget(checks)
        lay.addLayout(edit_row)
        lay.addWidget(self.state)
        lay.addStretch(1)
        settings.changed.connect(self.sync)
        self.sync()

    # brush radius on the slider: finer steps for small brushes (0..100 -> 0..MAX_RADIUS, quadratic)
    @staticmethod
    def _from_slider(v: int) -> float:
        return round(MAX_RADIUS * (v / 100) ** 2)

    @staticmethod
    def _to_slider(r: float) -> int:
        return int(round(100 * (max(0.0, r) / MAX_RADIUS) ** 0.5))

    def set_classes(self, classes: core.ClassTable) -> None:
        self.class_box.blockSignals(True)
        self.class_box.clear()
        palette = classes.palette()
        for i, name in enumerate(classes.names):
            key = f"  [{i}]" if i < 10 else ""
            self.class_box.addItem(_swatch(palette[i]), f"{i}: {name}{key}", i)
        self.class_box.blockSignals(False)
        self.settings.set_num_classes(len(classes))
        self.sync()

    def _class_chosen(self, index: int) -> None:
        if index >= 0:
            self.settings.label = int(self.class_box.itemData(index))

    def sync(self) -> None:
        """Show the settings (they may change from shortcuts or the picker)."""
        s = self.settings
        for w, setter in ((self.class_box, lambda: self.class_box.setCurrentIndex(self.class_box.findData(s.label))),
                          (self.size_spin, lambda: self.size_spin.setValue(int(round(s.radius)))),
                          (self.size_slider, lambda: self.size_slider.setValue(self._to_slider(s.radius))),
                          (self.shape_box, lambda: self.shape_box.setCurrentText(s.shape)),
                          (self.preserve_box, lambda: self.preserve_box.setChecked(s.preserve)),
                          (self.fill_all_box, lambda: self.fill_all_box.setChecked(s.fill_all)),
                          (self.accept_box, lambda: self.accept_box.setCurrentText(s.accept_shape))):
            w.blockSignals(True)
            setter()
            w.blockSignals(False)

    def set_state(self, text: str, error: bool = False) -> None:
        self.state.setText(text)
        self.state.setStyleSheet("color: #c5221f;" if error else "color: #5f6368;")
