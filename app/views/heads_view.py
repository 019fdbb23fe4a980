"""Main head versus auxiliary head: both predictions side by side (zoom and pan linked), their
disagreement, and each head's pixel accuracy and mIoU when the image has a mask."""

from __future__ import annotations

import math


import numpy as np
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

import core
from app import colormaps
from app.views.canvas import ImageCanvas


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


class HeadsView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.outcome: core.Outcome | None = None
        self.classes: core.ClassTable | None = None
        self.hidden: set[int] = set()
        self.main = ImageCanvas()
        self.aux = ImageCanvas()
        self.diff = ImageCanvas()
        self.aux.link_to(self.main)
        self.diff.link_to(self.main)
        self.diff.set_photo_opacity(0.35)
        self.main_title = QLabel("Main head (pyramid pooling on layer4)")
        self.aux_title = QLabel("Auxiliary head (layer3)")
        self.diff_title = QLabel("Disagreement")
        self.main_metrics = QLabel("")
        self.aux_metrics = QLabel("")
        self.diff_metrics = QLabel("")
        for lab in (self.main_metrics, self.aux_metrics, self.diff_metrics):
            lab.setStyleSheet("color: #3c4043;")
        for lab in (self.main_title, self.aux_title, self.diff_title, self.main_metrics, self.aux_metrics,
                    self.diff_metrics):
            lab.setWordWrap(True)  # long texts wrap: they must not widen the window
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 4, 6, 4)
        for col, (title, canvas, metrics) in enumerate(((self.main_title, self.main, self.main_metrics),
                                                        (self.aux_title, self.aux, self.aux_metrics),
                                                        (self.diff_title, self.diff, self.diff_metrics))):
            grid.addWidget(title, 0, col)
            grid.addWidget(canvas, 1, col)
            grid.addWidget(metrics, 2, col)
            grid.setColumnStretch(col, 1)
        grid.setRowStretch(1, 1)

    def set_classes(self, classes: core.ClassTable) -> None:
        self.classes = classes
        self.refresh()

    def set_hidden_classes(self, hidden: set[int]) -> None:
        self.hidden = set(hidden)
        self.refresh()

    def set_image(self, rgb: np.ndarray | None) -> None:
        self.outcome = None
        for c in (self.main, self.aux, self.diff):
            c.set_overlay(None)
            c.set_photo(rgb)
        for lab in (self.main_metrics, self.aux_metrics, self.diff_metrics):
            lab.setText("")

    def set_outcome(self, outcome: core.Outcome) -> None:
        self.outcome = outcome
        self.refresh()

    def refresh(self) -> None:
        o = self.outcome
        if o is None:
            return
        classes = self.classes
        if classes is None or len(classes) != o.prediction.num_classes:
            classes = core.ClassTable.default(o.prediction.num_classes)
        lut = colormaps.class_lut(classes, self.hidden)
        self.main.set_overlay(o.prediction.labels, lut)
        self.main.set_overlay_opacity(0.7)
        off = o.disabled_levels
        self.main_title.setText("Main head (pyramid on layer4)" + (f", level(s) {', '.join(map(str, off))} off"
                                                                    if off else ""))
        if o.aux_labels is None:
            self.aux.set_overlay(None)
            self.diff.set_overlay(None)
            self.aux_metrics.setText("computing ... (a first look has the main head only)" if o.prediction.is_preview
                                     else "this model has no auxiliary head")
            self.diff_metrics.setText("")
        else:
            self.aux.set_overlay(o.aux_labels, lut)
            self.aux.set_overlay_opacity(0.7)
            d = o.disagreement
            self.diff.set_overlay(d.mask.view(np.uint8), colormaps.mask_lut())
            self.diff.set_overlay_opacity(1.0)
            self.diff_metrics.setText(f"heads disagree on {d.changed:,} of {d.total:,} pixels "
                                      f"({100 * d.share:.2f} %)")
        if o.metrics:
            for name, lab in (("main", self.main_metrics), ("aux", self.aux_metrics)):
                m = o.metrics.get(name)
                if m is not None:
                    lab.setText(f"against the mask: pixel accuracy {_pct(m.pixel_acc)}, mIoU {_pct(m.miou)}")
        else:
            self.main_metrics.setText("no mask for this image: no accuracy")
            if o.aux_labels is not None:
                self.aux_metrics.setText("")
