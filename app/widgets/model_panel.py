"""The model panel: architecture, classes, provenance and load report, and the device choice."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout,
                               QWidget)

import core


def describe_architecture(cfg: core.ModelConfig) -> str:
    """One paragraph on a ModelConfig, in the paper's terms."""
    parts = [f"ResNet-{cfg.depth} ({cfg.stem} stem, base width {cfg.base_width}), output stride {cfg.output_stride}"]
    if cfg.use_ppm:
        red = "1x1 reduction" if cfg.reduction else "no reduction"
        parts.append(f"pyramid pooling: bins {', '.join(map(str, cfg.bins))}, {cfg.pooling} pooling, {red}")
    else:
        parts.append("no pyramid pooling (dilated FCN)")
    parts.append(f"main head {cfg.head_channels} ch" + (f", aux head on layer3 {cfg.aux_channels} ch" if cfg.aux
                                                       else ", no aux head"))
    parts.append(f"align_corners={cfg.align_corners}")
    return "; ".join(parts)


def parameter_count(model: core.PSPNet) -> int:
    return sum(int(p.numel()) for p in model.parameters())


class ModelPanel(QWidget):
    deviceRequested = Signal(str)
    openRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.loaded: core.LoadedModel | None = None
        self.name = QLabel("no model")
        self.name.setWordWrap(True)
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.arch = QLabel("")
        self.arch.setWordWrap(True)
        self.classes = QLabel("")
        self.classes.setWordWrap(True)
        self.device = QComboBox()
        for d in core.available_devices():
            self.device.addItem(core.device_name(d), d)
        self.device.setToolTip("Where the model runs; the prediction is recomputed after a change")
        self.device.activated.connect(lambda i: self.deviceRequested.emit(self.device.itemData(i)))
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Provenance and load report of the model")
        self.details.setMaximumBlockCount(500)
        open_btn = QPushButton("Open model...")
        open_btn.clicked.connect(self.openRequested)
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow("Model", self.name)
        form.addRow("Architecture", self.arch)
        form.addRow("Classes", self.classes)
        form.addRow("Device", self.device)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(form)
        lay.addWidget(self.details, 1)
        lay.addWidget(open_btn)

    def set_loading(self, what: str) -> None:
        self.name.setText(f"loading {html.escape(what)} ...")

    def set_model(self, loaded: core.LoadedModel | None) -> None:
        self.loaded = loaded
        if loaded is None:
            self.name.setText("no model")
            self.arch.setText("")
            self.classes.setText("")
            self.details.setPlainText("")
            return
        sources = [Path(s) for s in (getattr(loaded, "sources", None) or [])]
        self.name.setText(" + ".join(s.name for s in sources) or "model")
        self.name.setToolTip("\n".join(str(s) for s in sources))
        cfg = loaded.config
        n = parameter_count(loaded.model)
        self.arch.setText(f"{describe_architecture(cfg)}; {n / 1e6:.2f} M parameters")
        table = loaded.classes
        preview = ", ".join(table.names[:6]) + (", ..." if len(table) > 6 else "")
        self.classes.setText(f"{len(table)}{' (' + table.name + ')' if table.name else ''}: {preview}")
        lines = ["Provenance:"]
        for k, v in (loaded.provenance or {}).items():
            if isinstance(v, dict):
                v = ", ".join(f"{kk}={vv}" for kk, vv in v.items())
            elif isinstance(v, float):
                v = f"{v:.4g}"
            lines.append(f"  {k}: {v}")
        lines += ["", "Load report:"] + ["  " + s for s in loaded.report.summary().splitlines()]
        self.details.setPlainText("\n".join(lines))

    def set_device(self, device: str) -> None:
        i = self.device.findData(device)
        if i < 0:
            self.device.addItem(core.device_name(device), device)
            i = self.device.count() - 1
        self.device.setCurrentIndex(i)
