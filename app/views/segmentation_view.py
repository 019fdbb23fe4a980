"""The segmentation view: the photo with the label overlay, or a confidence / entropy /
class-probability map; opacity and show/hide; the hover readout text; and above them the
editable mask (the user's corrections), which is redrawn only where it changes."""

from __future__ import annotations

import math


import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from app import colormaps
from app.views.mask_layer import MaskLayer
from app.views.canvas import ImageCanvas
from app.widgets.color_bar import ColorBar
from app.widgets.flow_bar import FlowBar
import core

MODES = {"labels": "Labels", "confidence": "Confidence", "entropy": "Entropy", "class": "Class probability"}


def hover_text(outcome: core.Outcome | None, classes: core.ClassTable | None, x: int, y: int, k: int = 3) -> str:
    """The status-bar readout for pixel (x, y): position, class, its probability, the top-k classes."""
    if outcome is None:
        return f"x {x}, y {y}"
    pred = outcome.prediction
    names = classes.names if classes is not None else [f"class {i}" for i in range(pred.num_classes)]
    c = int(pred.labels[y, x])
    p = pred.probs_at(y, x).astype(np.float64)  # one pixel's probabilities, from the working-resolution maps
    top = np.argsort(-p, kind="stable")[:k]
    tops = ", ".join(f"{names[i]} {100 * p[i]:.1f} %" for i in top)
    entropy = float(-(p * np.log(np.clip(p, 1e-12, 1.0))).sum())
    return f"x {x}, y {y}  |  {names[c]} {100 * p[c]:.1f} %  |  top-{k}: {tops}  |  entropy {entropy:.2f}"


INLINE_MAP_PIXELS = 2_000_000  # heat maps of larger photos are made by a job (mapWanted), not here


class SegmentationView(QWidget):
    hovered = Signal(object)  # (x, y) or None
    modeChanged = Signal(str)
    mapWanted = Signal(object, str, int)  # prediction, mode, class id: a heat map to make off the GUI thread

    def __init__(self, parent=None):
        super().__init__(parent)
        self.canvas = ImageCanvas()
        self.canvas.hovered.connect(self.hovered)
        self.outcome: core.Outcome | None = None
        self.classes: core.ClassTable | None = None
        self.hidden: set[int] = set()
        self.mode = "labels"
        self.class_id = 0
        self._maps: dict[tuple, np.ndarray] = {}  # uint8 heat maps of the current outcome
        self._heat = colormaps.heat_lut()
        self._waiting: tuple | None = None  # the heat map asked for (mapWanted) and not yet here
        self.busy_label = QLabel(self)  # over the canvas: what is being computed ("Predicting 40 %")
        self.busy_label.setObjectName("busyNote")
        self.busy_label.setStyleSheet("QLabel#busyNote { background: rgba(32, 33, 36, 200); color: white; "
                                      "padding: 6px 10px; border-radius: 4px; }")
        self.busy_label.setVisible(False)
        self._busy_texts: dict[str, str] = {}

        self.mode_box = QComboBox()
        for key, text in MODES.items():
            self.mode_box.addItem(text, key)
        self.mode_box.setToolTip("What the overlay shows (Alt+1 ... Alt+4)")
        self.mode_box.currentIndexChanged.connect(lambda _: self.set_mode(self.mode_box.currentData()))
        self.class_box = QComboBox()
        self.class_box.setToolTip("The class whose probability is shown")
        self.class_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_box.setMinimumContentsLength(12)  # long class names elide, not widen the window
        self.class_box.currentIndexChanged.connect(self._class_picked)
        self.show_box = QCheckBox("Overlay")
        self.show_box.setChecked(True)
        self.show_box.setToolTip("Show or hide the overlay (O)")
        self.show_box.toggled.connect(self.canvas.set_overlay_visible)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.setFixedWidth(140)  # in a group of its own: the row wraps, it does not widen
        self.opacity.setToolTip("Overlay opacity (Ctrl+[ and Ctrl+])")
        self.opacity.valueChanged.connect(lambda v: self.canvas.set_overlay_opacity(v / 100))
        self.canvas.set_overlay_opacity(0.6)
        self.mask_layer = MaskLayer()
        self.canvas.vb.addItem(self.mask_layer)
        self.mask_box = QCheckBox("Mask")
        self.mask_box.setChecked(True)
        self.mask_box.setToolTip("Show or hide your corrections, the editable mask (M)")
        self.mask_box.toggled.connect(self.mask_layer.setVisible)
        self.mask_opacity = QSlider(Qt.Orientation.Horizontal)
        self.mask_opacity.setRange(0, 100)
        self.mask_opacity.setValue(80)
        self.mask_opacity.setFixedWidth(90)
        self.mask_opacity.setToolTip("Mask opacity")
        self.mask_opacity.valueChanged.connect(lambda v: self.mask_layer.setOpacity(v / 100))
        self.mask_layer.setOpacity(0.8)
        self.color_bar = ColorBar()  # what the heat map's colours mean
        fit = QToolButton()
        fit.setText("Fit")
        fit.setToolTip("Fit the image to the view (Ctrl+0)")
        fit.clicked.connect(self.canvas.fit)

        # groups that wrap onto a second line when the view is narrow (a small screen)
        bar = FlowBar()
        bar.add_group(QLabel("Show"), self.mode_box)
        self._heat_group = bar.add_group(self.class_box, self.color_bar)  # not in the Labels mode
        bar.add_group(self.show_box, QLabel("Opacity"), self.opacity)
        bar.add_group(self.mask_box, self.mask_opacity)
        bar.add_group(fit)
        self.bar = bar
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(bar)
        lay.addWidget(self.canvas, 1)
        self.class_box.setVisible(False)
        self._heat_group.setVisible(False)

    # --- inputs ---
    def set_image(self, rgb: np.ndarray | None) -> None:
        self.outcome = None
        self._maps.clear()
        self._waiting = None
        self.set_busy("map", None)
        self.canvas.set_overlay(None)
        self.set_mask(None)
        self.canvas.set_photo(rgb)

    def set_mask(self, mask: np.ndarray | None) -> None:
        """Show an editable mask: a LabelMask's own buffer (``mask.data``), drawn without a copy."""
        if mask is not None and self.canvas.photo.image is not None \
                and tuple(mask.shape) != tuple(self.canvas.photo.image.shape[:2]):
            mask = None  # not this photo's mask
        self.mask_layer.set_mask(mask, self.mask_lut() if mask is not None else None)

    def update_mask_region(self, region: core.Region) -> None:
        """Repaint the part of the mask that changed (a core.Region)."""
        if self.mask_layer.data is not None:
            self.mask_layer.update_region(region)

    def mask_lut(self) -> np.ndarray:
        classes = self.classes if self.classes is not None else _default_classes(self.outcome)
        return colormaps.class_lut(classes, self.hidden)

    def set_mask_visible(self, visible: bool) -> None:
        self.mask_box.setChecked(visible)

    def set_classes(self, classes: core.ClassTable) -> None:
        self.classes = classes
        self.hidden = {c for c in self.hidden if c < len(classes)}
        self.class_box.blockSignals(True)
        self.class_box.clear()
        for i, name in enumerate(classes.names):
            self.class_box.addItem(f"{i}: {name}", i)
        self.class_id = min(self.class_id, len(classes) - 1)
        self.class_box.setCurrentIndex(self.class_id)
        self.class_box.blockSignals(False)
        self.refresh()
        if self.mask_layer.data is not None:
            self.mask_layer.setLookupTable(self.mask_lut())

    def set_outcome(self, outcome: core.Outcome) -> None:
        self.outcome = outcome
        self._maps.clear()
        self._waiting = None
        self.set_busy("map", None)
        self.refresh()

    def set_map(self, prediction: core.Prediction, mode: str, class_id: int, values: np.ndarray) -> None:
        """A heat map made by a job (see ``mapWanted``): shown if it is still the one wanted."""
        if self.outcome is None or self.outcome.prediction is not prediction:
            return
        key = (mode, class_id if mode == "class" else None)
        self._maps[key] = values
        if self._waiting == key:
            self._waiting = None
            self.set_busy("map", None)
        self.refresh()

    def map_failed(self, prediction: core.Prediction) -> None:
        if self.outcome is not None and self.outcome.prediction is prediction:
            self._waiting = None
            self.set_busy("map", None)

    # --- what is being computed, over the canvas ---
    def set_busy(self, what: str, text: str | None) -> None:
        """Show (``text``) or clear (None) a note over the canvas; ``what`` keys it ("predict", "map",
        "levels"), so each job clears only its own."""
        if text:
            self._busy_texts[what] = text
        else:
            self._busy_texts.pop(what, None)
        shown = "\n".join(self._busy_texts.values())
        self.busy_label.setText(shown)
        self.busy_label.setVisible(bool(shown))
        if shown:
            self.busy_label.adjustSize()
            self._place_busy()
            self.busy_label.raise_()

    def busy_text(self) -> str:
        return self.busy_label.text() if self.busy_label.isVisible() else ""

    def _place_busy(self) -> None:
        geo = self.canvas.geometry()
        self.busy_label.move(geo.x() + 12, geo.y() + 12)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._place_busy()

    def set_hidden_classes(self, hidden: set[int]) -> None:
        self.hidden = set(hidden)
        if self.mode == "labels":
            self.canvas.set_lut(self.lut())
        if self.mask_layer.data is not None:
            self.mask_layer.setLookupTable(self.mask_lut())

    def set_mode(self, mode: str, class_id: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown display mode {mode!r}; modes are {', '.join(MODES)}")
        if class_id is not None:
            self.class_id = int(class_id)
            self.class_box.blockSignals(True)
            self.class_box.setCurrentIndex(self.class_id)
            self.class_box.blockSignals(False)
        changed = mode != self.mode
        self.mode = mode
        self.mode_box.blockSignals(True)
        self.mode_box.setCurrentIndex(list(MODES).index(mode))
        self.mode_box.blockSignals(False)
        self.class_box.setVisible(mode == "class")
        self.refresh()
        if changed:
            self.modeChanged.emit(mode)

    def _class_picked(self, index: int) -> None:
        if index >= 0:
            self.class_id = index
            if self.mode == "class":
                self.refresh()

    def set_opacity(self, opacity: float) -> None:
        self.opacity.setValue(int(round(100 * max(0.0, min(1.0, opacity)))))

    def set_overlay_visible(self, visible: bool) -> None:
        self.show_box.setChecked(visible)

    # --- what is shown ---
    def lut(self) -> np.ndarray:
        if self.mode == "labels":
            if self.classes is None:
                return colormaps.class_lut(_default_classes(self.outcome), self.hidden)
            return colormaps.class_lut(self.classes, self.hidden)
        return self._heat

    def overlay_index(self) -> np.ndarray | None:
        """The (H, W) uint8 index map the overlay shows in the current mode."""
        if self.outcome is None:
            return None
        pred = self.outcome.prediction
        if self.mode == "labels":
            return pred.labels
        key = (self.mode, self.class_id if self.mode == "class" else None)
        m = self._maps.get(key)
        if m is None:
            h, w = pred.size
            if h * w > INLINE_MAP_PIXELS:  # seconds for a big photo: a job makes it, a note says so
                if self._waiting != key:
                    self._waiting = key
                    self.set_busy("map", f"Making the {MODES[self.mode].lower()} map ...")
                    self.mapWanted.emit(pred, self.mode, self.class_id)
                return None
            m = core.overlay_map(pred, self.mode, self.class_id)
            self._maps[key] = m
        return m

    def refresh(self) -> None:
        index = self.overlay_index()
        self.canvas.set_overlay(index, self.lut() if index is not None else None)
        if self.mode == "labels":
            self.color_bar.set_map(None)
        else:
            n = self.outcome.prediction.num_classes if self.outcome is not None else 2
            high, tip = {"confidence": ("1", "Confidence: the probability of the predicted class, 0 ... 1"),
                         "entropy": (f"{math.log(max(2, n)):.2f}", f"Entropy of the class probabilities: "
                                     f"0 ... ln({n}) = {math.log(max(2, n)):.2f} nats (most uncertain)"),
                         "class": ("1", "The probability of the chosen class, 0 ... 1")}[self.mode]
            self.color_bar.set_map(self._heat, "0", high, tip)
        self._heat_group.setVisible(self.mode != "labels")


def _default_classes(outcome: core.Outcome | None) -> core.ClassTable:
    n = outcome.prediction.num_classes if outcome is not None else 1
    return core.ClassTable.default(n)
