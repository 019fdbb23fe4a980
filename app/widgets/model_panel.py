"""The model panel: architecture, classes, provenance and load report, the device choice and the
test protocol (the model's own, shown, or the user's base size, windows, scales and mirror)."""

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


DEFAULT = "default"  # a protocol choice's item data: the model's own value

# (field, label, tooltip, [(text, value), ...]); values are what TestProtocol.replace takes
PROTOCOL_CHOICES = (
    ("base_size", "Base size", "The photo's long (or short) side at scale 1: what the network sees. The model's "
     "own is what its authors test at; native runs the photo at full resolution (in windows: slower, and "
     "objects look larger than in training)",
     [("512 px", 512), ("1024 px", 1024), ("2048 px", 2048), ("native (full resolution)", None)]),
    ("crop", "Windows", "The side of the square windows the scaled photo is run in (stride 2/3 of it), or the "
     "whole scaled photo in one pass", [("473 px", 473), ("713 px", 713), ("whole image", None)]),
    ("scales", "Scales", "Scales relative to the base size; the probabilities are averaged over them",
     [("single (1)", (1.0,)), ("multi-scale (0.5 ... 1.75)", core.MULTI_SCALES)]),
    ("flip", "Mirror", "Also run the mirror image and average (twice the time)", [("on", True), ("off", False)]),
)


def _value_text(field: str, value: object) -> str:
    if field == "base_size":
        return "native" if value is None else f"{value} px"
    if field == "crop":
        return "whole image" if value is None else f"{value} px"
    if field == "scales":
        return ", ".join(f"{v:g}" for v in value)  # type: ignore[union-attr]
    return "on" if value else "off"


class ModelPanel(QWidget):
    deviceRequested = Signal(str)
    openRequested = Signal()
    protocolRequested = Signal(object)  # dict of the fields chosen over the model's own protocol

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
        self.default_protocol: core.TestProtocol | None = None
        self.protocol_boxes: dict[str, QComboBox] = {}
        for field, label, tip, options in PROTOCOL_CHOICES:
            box = QComboBox()
            box.setToolTip(tip)
            box.addItem("the model's", DEFAULT)
            for text, value in options:
                box.addItem(text, value)
            box.activated.connect(lambda _i: self._protocol_picked())
            box.setEnabled(False)
            self.protocol_boxes[field] = box
        self.protocol = QLabel("")
        self.protocol.setWordWrap(True)
        self.protocol.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        open_btn = QPushButton("Open model...")
        open_btn.clicked.connect(self.openRequested)
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow("Model", self.name)
        form.addRow("Architecture", self.arch)
        form.addRow("Classes", self.classes)
        form.addRow("Device", self.device)
        for field, label, _tip, _options in PROTOCOL_CHOICES:
            form.addRow(label, self.protocol_boxes[field])
        form.addRow("Test protocol", self.protocol)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(form)
        lay.addWidget(self.details, 1)
        lay.addWidget(open_btn)

    def set_loading(self, what: str) -> None:
        self.name.setText(f"loading {html.escape(what)} ...")

    def set_model(self, loaded: core.LoadedModel | None) -> None:
        self.loaded = loaded
        self._show_defaults(core.model_protocol(loaded.model) if loaded is not None else None)
        if loaded is None:
            self.protocol.setText("")
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

    # --- the test protocol ---
    def choices(self) -> dict[str, object]:
        """The fields chosen over the model's own protocol (empty: the model's own)."""
        out: dict[str, object] = {}
        for field, box in self.protocol_boxes.items():
            value = box.currentData()
            if not (isinstance(value, str) and value == DEFAULT):
                out[field] = tuple(value) if isinstance(value, list) else value
        return out

    def choose(self, **fields: object) -> None:
        """Pick values (as a user would; ``DEFAULT`` for the model's own) and ask for them."""
        for field, value in fields.items():
            box = self.protocol_boxes[field]
            i = next((k for k in range(box.count()) if _same(box.itemData(k), value)), -1)
            if i < 0:
                raise ValueError(f"{field}: no choice {value!r}")
            box.setCurrentIndex(i)
        self._protocol_picked()

    def _protocol_picked(self) -> None:
        self.protocolRequested.emit(self.choices())

    def set_protocol(self, protocol: core.TestProtocol) -> None:
        """Show the protocol in use (the combo boxes' first items name the model's own values)."""
        default = self.default_protocol
        self.protocol.setText(html.escape(protocol.describe())
                              + (f"<br><i>the model's own: {html.escape(default.source or default.describe())}</i>"
                                 if default is not None else ""))
        self.protocol.setToolTip(protocol.source)

    def _show_defaults(self, protocol: core.TestProtocol | None) -> None:
        self.default_protocol = protocol
        for field, box in self.protocol_boxes.items():
            box.setEnabled(protocol is not None)
            text = "the model's" if protocol is None else f"the model's ({_value_text(field, getattr(protocol, field))})"
            box.setItemText(0, text)

    def set_device(self, device: str) -> None:
        i = self.device.findData(device)
        if i < 0:
            self.device.addItem(core.device_name(device), device)
            i = self.device.count() - 1
        self.device.setCurrentIndex(i)


def _same(a: object, b: object) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return tuple(a) == tuple(b)
    return type(a) is type(b) and a == b if not (a is None or b is None) else a is b
