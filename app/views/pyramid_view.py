"""The pyramid inspector: each pooling level's grid, reduced branch and upsampled branch, and the
effect of switching levels off (the prediction re-run from cached features and the changed pixels)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QScrollArea, QSlider, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from app import colormaps
from app.views.canvas import ImageCanvas
from app.widgets.array_view import ArrayView
from app.widgets.flow_bar import FlowBar
import core

SUMMARIES = {"pca": "PCA to RGB", "mean": "Mean |activation|", "channel": "One channel"}


class ChannelPicker(QWidget):
    """A slider and a spin box on the same channel index."""

    changed = Signal(int)

    def __init__(self, label: str, parent=None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.spin = QSpinBox()
        self.slider.valueChanged.connect(self.spin.setValue)
        self.spin.valueChanged.connect(self.slider.setValue)
        self.spin.valueChanged.connect(self.changed)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel(label))
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self.set_count(1)

    def set_count(self, n: int) -> None:
        for w in (self.slider, self.spin):
            w.blockSignals(True)
            w.setRange(0, max(0, n - 1))
            w.blockSignals(False)
        self.spin.setSuffix(f" / {n}")

    def value(self) -> int:
        return self.spin.value()

    def set_value(self, v: int) -> None:
        self.spin.setValue(v)


class LevelCard(QGroupBox):
    """One pyramid level: a checkable box with the pooled grid, the reduced grid and the upsampled branch."""

    toggled_level = Signal(int, bool)

    def __init__(self, bin: int, parent=None):
        super().__init__(f"Level {bin}  ({bin}x{bin} bins)", parent)
        self.bin = bin
        self.setCheckable(True)
        self.setChecked(True)
        self.setToolTip(f"Switch the {bin}x{bin} level off or on: the heads are re-run on cached features")
        self.toggled.connect(lambda on: self.toggled_level.emit(self.bin, on))
        self.pooled = ArrayView(110)
        self.reduced = ArrayView(110)
        self.upsampled = ArrayView(110)
        self.setMinimumHeight(200)
        self.top = QLabel("")
        self.top.setWordWrap(True)
        self.top.setStyleSheet("color: #5f6368; font-size: 11px;")
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        for col, (title, view) in enumerate((("pooled", self.pooled), ("reduced", self.reduced),
                                             ("upsampled", self.upsampled))):
            cap = QLabel(title)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(cap, 0, col)
            grid.addWidget(view, 1, col)
        grid.addWidget(self.top, 2, 0, 1, 3)
        grid.setRowStretch(1, 1)

    def set_enabled_quietly(self, on: bool) -> None:
        self.blockSignals(True)
        self.setChecked(on)
        self.blockSignals(False)
        # QGroupBox disables its children when unchecked; keep the images visible
        for w in (self.pooled, self.reduced, self.upsampled, self.top):
            w.setEnabled(True)


def window_text(prediction: core.Prediction) -> str:
    """Which part of the photo the pyramid levels shown are of, in words."""
    box = prediction.internals_box
    if prediction.internals is None or box is None:
        return ""
    H, W = prediction.size
    h, w = prediction.working_size
    y0, y1, x0, x1 = box
    where = (f"the whole photo at the working resolution {w}x{h}" if (y0, x0, y1, x1) == (0, 0, H, W) else
             f"the window nearest the centre of the {w}x{h} working image (photo pixels x {x0}-{x1}, y {y0}-{y1})")
    return (f"Levels of {where}; the prediction below is the whole photo's, and switching a level re-runs "
            f"the heads on every window ({prediction.protocol.describe()}).")


class PyramidView(QWidget):
    levelToggled = Signal(int, bool)
    allOnRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.outcome: core.Outcome | None = None
        self.summary: core.PyramidSummary | None = None
        self.classes: core.ClassTable | None = None
        self.hidden: set[int] = set()
        self.cards: dict[int, LevelCard] = {}

        self.summary_box = QComboBox()
        for key, text in SUMMARIES.items():
            self.summary_box.addItem(text, key)
        self.summary_box.currentIndexChanged.connect(lambda _: self.refresh_levels())
        self.pooled_channel = ChannelPicker("pooled channel")
        self.branch_channel = ChannelPicker("branch channel")
        self.pooled_channel.changed.connect(lambda _: self._channel_moved())
        self.branch_channel.changed.connect(lambda _: self._channel_moved())
        all_on = QPushButton("All levels on")
        all_on.clicked.connect(self.allOnRequested)
        controls = FlowBar()  # wraps onto a second line on a narrow view instead of widening the window
        controls.add_group(QLabel("Show"), self.summary_box)
        controls.add_group(self.pooled_channel)
        controls.add_group(self.branch_channel)
        controls.add_group(all_on)
        self.window_note = QLabel("")  # which part of the photo the level maps are of
        self.window_note.setObjectName("windowNote")
        self.window_note.setWordWrap(True)

        self.levels_row = QHBoxLayout()
        self.levels_row.setContentsMargins(6, 0, 6, 0)
        levels_widget = QWidget()
        levels_widget.setLayout(self.levels_row)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(levels_widget)
        self.placeholder = QLabel("Open a model and an image to see the pyramid levels.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.levels_row.addWidget(self.placeholder)

        self.result = ImageCanvas()
        self.changed = ImageCanvas()
        self.changed.link_to(self.result)
        self.changed.set_photo_opacity(0.35)
        self.result_label = QLabel("Prediction with the levels shown")
        self.changed_label = QLabel("Changed pixels")
        self.changed_label.setObjectName("changedLabel")
        for label in (self.result_label, self.changed_label):
            label.setWordWrap(True)  # long texts wrap: they must not widen the window
        bottom = QGridLayout()
        bottom.setContentsMargins(6, 0, 6, 0)
        bottom.addWidget(self.result_label, 0, 0)
        bottom.addWidget(self.changed_label, 0, 1)
        bottom.addWidget(self.result, 1, 0)
        bottom.addWidget(self.changed, 1, 1)
        bottom.setRowStretch(1, 1)
        bottom_widget = QWidget()
        bottom_widget.setLayout(bottom)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(scroll)
        split.addWidget(bottom_widget)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([290, 600])
        scroll.setMinimumHeight(200)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(controls)
        lay.addWidget(self.window_note)
        lay.addWidget(split, 1)

    # --- inputs ---
    def set_bins(self, bins: tuple[int, ...]) -> None:
        if tuple(bins) == tuple(self.cards) and bins:
            return  # the same levels (a model fine-tuned from this one): keep the cards
        for card in self.cards.values():
            self.levels_row.removeWidget(card)
            card.deleteLater()
        self.cards = {}
        self.placeholder.setVisible(not bins)
        if not bins:
            self.placeholder.setText("This model has no pyramid pooling module.")
        for b in bins:
            card = LevelCard(b)
            card.toggled_level.connect(self.levelToggled)
            self.cards[b] = card
            self.levels_row.addWidget(card, 1)

    def set_disabled(self, disabled: tuple[int, ...]) -> None:
        for b, card in self.cards.items():
            card.set_enabled_quietly(b not in disabled)

    def set_classes(self, classes: core.ClassTable) -> None:
        self.classes = classes
        self._show_result()

    def set_hidden_classes(self, hidden: set[int]) -> None:
        self.hidden = set(hidden)
        if self.classes is not None:
            self.result.set_lut(colormaps.class_lut(self.classes, self.hidden))

    def set_image(self, rgb: np.ndarray | None) -> None:
        self.outcome = None
        self.summary = None
        for c in (self.result, self.changed):
            c.set_overlay(None)
            c.set_photo(rgb)
        self.changed_label.setText("Changed pixels")
        self.window_note.setText("")
        for card in self.cards.values():
            for v in (card.pooled, card.reduced, card.upsampled):
                v.set_array(None, "")
            card.top.setText("")

    def set_busy(self, text: str | None) -> None:
        """Say that a level switch is being computed (None: it is done; the result's texts return)."""
        if text:
            self.result_label.setText(text)
            self.changed_label.setText("Changed pixels: computing ...")
        else:
            self._show_result()

    def set_outcome(self, outcome: core.Outcome) -> None:
        new_base = self.outcome is None or outcome.base is not self.outcome.base
        self.outcome = outcome
        if new_base:
            self.summary = None
            inner = outcome.base.internals
            if inner is not None and inner.levels:
                self.pooled_channel.set_count(inner.levels[0].pooled.shape[1])
                self.branch_channel.set_count(inner.levels[0].reduced.shape[1])
            self.refresh_levels()
        self.window_note.setText(window_text(outcome.base))
        self._show_result()

    def set_summary(self, summary: core.PyramidSummary) -> None:
        self.summary = summary
        self.refresh_levels()

    # --- drawing ---
    def _channel_moved(self) -> None:
        if self.summary_box.currentData() != "channel":
            self.summary_box.setCurrentIndex(list(SUMMARIES).index("channel"))  # refreshes
        else:
            self.refresh_levels()

    def refresh_levels(self) -> None:
        inner = self.outcome.base.internals if self.outcome is not None else None
        if inner is None:
            for card in self.cards.values():
                for v in (card.pooled, card.reduced, card.upsampled):
                    v.set_array(None, "computing ... (a first look has no pyramid levels)"
                                if self.outcome is not None else "")
            return
        mode = self.summary_box.currentData()
        by_bin = {lv.bin: lv for lv in inner.levels}
        summaries = {s.bin: s for s in self.summary.levels} if self.summary is not None else {}
        pc, bc = self.pooled_channel.value(), self.branch_channel.value()
        for b, card in self.cards.items():
            lv = by_bin.get(b)
            if lv is None:
                continue
            s = summaries.get(b)
            if mode == "pca":
                if s is None:
                    for v in (card.pooled, card.reduced, card.upsampled):
                        v.set_array(None, "computing ...")
                    continue
                card.pooled.set_array(s.pooled_pca, "pooled grid, PCA of layer4's channels to RGB")
                card.reduced.set_array(s.reduced_pca, "reduced branch, PCA to RGB")
                card.upsampled.set_array(s.upsampled_pca, "upsampled branch, PCA to RGB")
            elif mode == "mean":
                for v, t, name in ((card.pooled, lv.pooled, "pooled"), (card.reduced, lv.reduced, "reduced"),
                                   (card.upsampled, lv.upsampled, "upsampled")):
                    m = core.mean_abs_activation(t)
                    v.set_array(core.to_uint8(m, 0.0, None), f"{name}: mean |activation|, 0 ... {m.max():.3g}")
            else:
                for v, t, c, name in ((card.pooled, lv.pooled, pc, "pooled"), (card.reduced, lv.reduced, bc, "reduced"),
                                      (card.upsampled, lv.upsampled, bc, "upsampled")):
                    m = core.channel_map(t, min(c, t.shape[1] - 1))
                    v.set_array(core.to_uint8(m), f"{name}: channel {c}, {m.min():.3g} ... {m.max():.3g}")
            if s is not None:
                card.top.setText("top channels (mean |act|): pooled " +
                                 ", ".join(f"{c}" for c, _ in s.top_pooled) +
                                 "; reduced " + ", ".join(f"{c}" for c, _ in s.top_reduced))

    def _show_result(self) -> None:
        if self.outcome is None:
            return
        pred = self.outcome.prediction
        classes = self.classes
        if classes is None or len(classes) != pred.num_classes:
            classes = core.ClassTable.default(pred.num_classes)
        self.result.set_overlay(pred.labels, colormaps.class_lut(classes, self.hidden))
        self.result.set_overlay_opacity(0.65)
        change = self.outcome.change
        off = self.outcome.disabled_levels
        if change is None:
            self.changed.set_overlay(np.zeros(pred.labels.shape, np.uint8), colormaps.mask_lut())
            self.changed_label.setText("Changed pixels: none (all levels on)")
            self.result_label.setText("Prediction, all levels on")
        else:
            self.changed.set_overlay(change.mask.view(np.uint8), colormaps.mask_lut())
            self.changed_label.setText(f"Changed pixels: {change.changed:,} of {change.total:,} "
                                       f"({100 * change.share:.2f} %)")
            self.result_label.setText(f"Prediction with level(s) {', '.join(map(str, off))} off "
                                      f"(heads re-run in {1000 * self.outcome.seconds:.0f} ms)")
        self.changed.set_overlay_opacity(1.0)
