"""The retrain dock: options, progress with ETA, live curves (main and aux loss, learning rate,
validation mIoU), the before/after agreement per corrected image, and the model history."""

from __future__ import annotations

import math
from typing import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDoubleSpinBox, QGridLayout, QHBoxLayout,
                               QHeaderView, QLabel, QProgressBar, QPushButton, QSpinBox, QTableWidget,
                               QTableWidgetItem, QTabWidget, QToolButton, QVBoxLayout, QWidget)

import core
from app.controllers.retrainer import RetrainOptions


REDRAW_MS = 0  # records that arrive in one pass of the event loop are drawn together (measured: a longer
# interval did not shorten the GUI thread's stalls in tests/benchmarks/retrain_stall.py)


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class _NumberItem(QTableWidgetItem):
    """Sorts by its number, not its text."""

    def __init__(self, text: str, value: float):
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        return (a if a is not None else -math.inf) < (b if b is not None else -math.inf)


class RetrainPanel(QWidget):
    restoreRequested = Signal(str)  # checkpoint id
    imageRequested = Signal(str)  # image name (before/after row double-clicked)

    def __init__(self, retrain_action: QAction | None = None, cancel_action: QAction | None = None, parent=None):
        super().__init__(parent)
        # --- options
        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setToolTip("Optimizer steps")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(0.001)
        self.lr.setToolTip("Learning rate of the backbone (the pyramid and heads learn 10x faster); poly decay")
        self.batch = QSpinBox()
        self.batch.setRange(2, 256)
        self.batch.setToolTip("Images per step (at least 2: the 1x1 pyramid level's BatchNorm needs them)")
        self.crop = QSpinBox()
        self.crop.setRange(0, 4096)
        self.crop.setSingleStep(8)
        self.crop.setSpecialValueText("auto")
        self.crop.setToolTip("Training crop in pixels (auto: the images' size, at most 473)")
        self.freeze = QCheckBox("Freeze backbone")
        self.freeze.setToolTip("Train only the pyramid pooling and the heads: much faster, needs fewer corrections")
        self.cache = QCheckBox("Cache features")
        self.cache.setToolTip("With the frozen backbone: run it once per image, then train on its features "
                              "(many times faster; no augmentation)")
        self.freeze.toggled.connect(self.cache.setEnabled)
        self.aux_weight = QDoubleSpinBox()
        self.aux_weight.setRange(0.0, 2.0)
        self.aux_weight.setSingleStep(0.1)
        self.aux_weight.setToolTip("Weight of the auxiliary (layer3) head's loss; the paper's 0.4")
        self.set_options(RetrainOptions())

        form = QGridLayout()
        form.setHorizontalSpacing(6)
        form.setVerticalSpacing(2)
        for i, (label, w) in enumerate((("Steps", self.steps), ("LR", self.lr), ("Batch", self.batch),
                                        ("Crop", self.crop), ("Aux w.", self.aux_weight))):
            form.addWidget(QLabel(label), i // 2, 2 * (i % 2))
            form.addWidget(w, i // 2, 2 * (i % 2) + 1)
        checks = QHBoxLayout()
        checks.addWidget(self.freeze)
        checks.addWidget(self.cache)
        checks.addStretch(1)
        form.addLayout(checks, 3, 0, 1, 4)

        # --- run
        self.retrain_btn = QToolButton()
        self.cancel_btn = QToolButton()
        if retrain_action is not None:
            self.retrain_btn.setDefaultAction(retrain_action)
        if cancel_action is not None:
            self.cancel_btn.setDefaultAction(cancel_action)
        self.retrain_btn.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("Paint corrections, then Retrain (Ctrl+R)")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #5f6368;")
        run = QHBoxLayout()
        run.addWidget(self.retrain_btn)
        run.addWidget(self.cancel_btn)
        run.addWidget(self.progress, 1)

        # --- curves
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setMinimumHeight(220)
        self.loss_plot = self.plots.addPlot(row=0, col=0, title="loss")
        self.loss_plot.addLegend(offset=(-5, 5))
        self.main_curve = self.loss_plot.plot(pen=pg.mkPen("#1a73e8", width=2), name="main")
        self.aux_curve = self.loss_plot.plot(pen=pg.mkPen("#e8710a", width=2), name="aux")
        self.lr_plot = self.plots.addPlot(row=1, col=0, title="learning rate")
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen("#9334e6", width=2))
        self.val_plot = self.plots.addPlot(row=2, col=0, title="validation mIoU (fixed split)")
        self.val_curve = self.val_plot.plot(pen=pg.mkPen("#188038", width=2), symbol="o", symbolSize=6,
                                            symbolBrush="#188038")
        self.val_plot.setYRange(0, 1)
        for p in (self.lr_plot, self.val_plot):
            p.setXLink(self.loss_plot)
        for p in (self.loss_plot, self.lr_plot, self.val_plot):
            p.showGrid(x=True, y=True, alpha=0.2)
            p.setMouseEnabled(x=False, y=False)
            p.hideButtons()
        self.val_plot.setLabel("bottom", "step")
        self.series: dict[str, list[float]] = {}
        self._pending: core.TrainProgress | None = None  # the newest record not drawn yet
        self._last_step: core.TrainProgress | None = None  # the newest step (not validation) record
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.flush)
        self.clear_curves()

        # --- before / after and history
        self.compare_label = QLabel("After a retrain: how much better each corrected image is predicted")
        self.compare_label.setWordWrap(True)
        self.compare = QTableWidget(0, 5)
        self.compare.setHorizontalHeaderLabels(["Image", "Labelled px", "Before", "After", "Change"])
        self._table_style(self.compare)
        self.compare.cellDoubleClicked.connect(
            lambda r, _c: self.imageRequested.emit(self.compare.item(r, 0).text()))
        self.history = QTableWidget(0, 5)
        self.history.setHorizontalHeaderLabels(["Model", "Time", "Val mIoU", "Steps", "Note"])
        self._table_style(self.history)
        self.history.setSortingEnabled(False)
        self.restore_btn = QPushButton("Restore selected model")
        self.restore_btn.setToolTip("Make the selected model of the history the current one and use it")
        self.restore_btn.clicked.connect(self._restore_clicked)
        self.history.cellDoubleClicked.connect(lambda r, _c: self._restore_clicked())
        compare_page = QWidget()
        cl = QVBoxLayout(compare_page)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.compare_label)
        cl.addWidget(self.compare, 1)
        history_page = QWidget()
        hl = QVBoxLayout(history_page)
        hl.setContentsMargins(0, 0, 0, 0)
        hl.addWidget(self.history, 1)
        hl.addWidget(self.restore_btn)
        self.tabs = QTabWidget()
        self.tabs.addTab(compare_page, "Before / after")
        self.tabs.addTab(history_page, "Model history")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(form)
        lay.addLayout(run)
        lay.addWidget(self.status)
        lay.addWidget(self.plots, 3)
        lay.addWidget(self.tabs, 2)

    @staticmethod
    def _table_style(t: QTableWidget) -> None:
        t.verticalHeader().setVisible(False)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        t.horizontalHeader().setStretchLastSection(True)
        t.setSortingEnabled(True)

    # ---- options --------------------------------------------------------------------------------
    def options(self) -> RetrainOptions:
        return RetrainOptions(steps=self.steps.value(), lr=self.lr.value(), batch=self.batch.value(),
                              crop=self.crop.value(), freeze_backbone=self.freeze.isChecked(),
                              cache_features=self.cache.isChecked(), aux_weight=self.aux_weight.value())

    def set_options(self, o: RetrainOptions) -> None:
        self.steps.setValue(o.steps)
        self.lr.setValue(o.lr)
        self.batch.setValue(o.batch)
        self.crop.setValue(o.crop)
        self.freeze.setChecked(o.freeze_backbone)
        self.cache.setChecked(o.cache_features)
        self.cache.setEnabled(o.freeze_backbone)
        self.aux_weight.setValue(o.aux_weight)

    # ---- a run -------------------------------------------------------------------------------------
    def clear_curves(self) -> None:
        self._pending = self._last_step = None
        self.series = {k: [] for k in ("step", "main", "aux", "lr", "val_step", "val")}
        for c in (self.main_curve, self.aux_curve, self.lr_curve, self.val_curve):
            c.setData([], [])

    def started(self, steps: int) -> None:
        self.clear_curves()
        self.progress.setRange(0, steps)
        self.progress.setValue(0)
        self.progress.setFormat("starting ...")
        self.status.setStyleSheet("color: #5f6368;")
        self.status.setText("Retraining on the saved corrections ...")

    def show_status(self, text: str) -> None:
        self.status.setText(text[:1].upper() + text[1:] + " ...")

    def add_record(self, rec: core.TrainProgress) -> None:
        """One core.TrainProgress: kept at once; the bar, the ETA and the curves are drawn on the next
        pass of the event loop (records queued together are drawn once)."""
        s = self.series
        if rec.val is not None:
            if not s["val_step"] or s["val_step"][-1] != rec.step:
                s["val_step"].append(rec.step)
                s["val"].append(float(rec.val.miou))
        else:
            s["step"].append(rec.step)
            s["main"].append(rec.main_loss)
            s["aux"].append(rec.aux_loss if rec.aux_loss is not None else math.nan)
            s["lr"].append(rec.lr)
            self._last_step = rec
        self._pending = rec
        if not self._redraw.isActive():
            self._redraw.start()

    def flush(self) -> None:
        """Draw the records kept since the last redraw."""
        self._redraw.stop()
        rec, self._pending = self._pending, None
        if rec is None:
            return
        s = self.series
        self.main_curve.setData(s["step"], s["main"])
        if any(not math.isnan(v) for v in s["aux"]):
            self.aux_curve.setData(s["step"], s["aux"])
        self.lr_curve.setData(s["step"], s["lr"])
        self.val_curve.setData(s["val_step"], s["val"])
        step = self._last_step
        if step is not None:
            self.progress.setRange(0, step.steps)
            self.progress.setValue(step.step)
            self.progress.setFormat(f"step %v/%m  ETA {_eta(step.eta_s)}")
        if rec.val is not None:
            self.status.setText(f"Step {rec.step}: validation mIoU {rec.val.miou:.3f}")
            return
        aux = f", aux {rec.aux_loss:.3f}" if rec.aux_loss is not None else ""
        self.status.setText(f"Step {rec.step}/{rec.steps}: loss {rec.main_loss:.3f}{aux}, lr {rec.lr:.2g}, "
                            f"{rec.images_per_s:.1f} images/s" + (f" - {rec.message}" if rec.message else ""))

    def finished(self, text: str, error: bool = False, short: str = "") -> None:
        """The run ended: ``text`` below the bar, ``short`` (done / cancelled / failed) in it."""
        self.flush()
        if self.progress.maximum() <= 1 or error:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        self.progress.setFormat(short or ("failed" if error else "done"))
        self.status.setStyleSheet("color: #c5221f;" if error else "color: #188038;")
        self.status.setText(text)

    # ---- results -------------------------------------------------------------------------------------
    def set_comparison(self, rows: Sequence[core.Agreement]) -> None:
        self.compare.setSortingEnabled(False)
        self.compare.setRowCount(len(rows))
        for r, a in enumerate(rows):
            self.compare.setItem(r, 0, QTableWidgetItem(a.name))
            self.compare.setItem(r, 1, _NumberItem(str(a.labelled), a.labelled))
            self.compare.setItem(r, 2, _NumberItem(f"{100 * a.before:.1f} %", a.before))
            self.compare.setItem(r, 3, _NumberItem(f"{100 * a.after:.1f} %", a.after))
            gain = _NumberItem(f"{100 * a.gain:+.1f}", a.gain)
            gain.setForeground(Qt.GlobalColor.darkGreen if a.gain > 0 else
                               (Qt.GlobalColor.darkRed if a.gain < 0 else Qt.GlobalColor.gray))
            self.compare.setItem(r, 4, gain)
        self.compare.setSortingEnabled(True)
        self.compare.sortItems(4, Qt.SortOrder.DescendingOrder)
        self.compare_label.setText(core.agreement_text(list(rows)))
        self.tabs.setCurrentIndex(0)

    def set_history(self, entries: Sequence[core.CheckpointEntry], current: str | None) -> None:
        self.history.setRowCount(len(entries))
        for r, e in enumerate(reversed(list(entries))):  # newest first
            miou = e.metrics.get("val_miou", e.metrics.get("miou"))  # "miou": an older command-line record
            items = [QTableWidgetItem(e.id + ("  (in use)" if e.id == current else "")),
                     QTableWidgetItem(e.time.replace("T", " ")[:19]),
                     _NumberItem(f"{miou:.3f}" if isinstance(miou, (int, float)) else "-",
                                 miou if isinstance(miou, (int, float)) else None),
                     _NumberItem(str(e.metrics.get("steps", "-")), e.metrics.get("steps")),
                     QTableWidgetItem(e.note)]
            items[0].setData(Qt.ItemDataRole.UserRole, e.id)
            for c, item in enumerate(items):
                if e.id == current:
                    f = QFont(item.font())
                    f.setBold(True)
                    item.setFont(f)
                self.history.setItem(r, c, item)

    def selected_model(self) -> str | None:
        row = self.history.currentRow()
        item = self.history.item(row, 0) if row >= 0 else None
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _restore_clicked(self) -> None:
        ckpt = self.selected_model()
        if ckpt:
            self.restoreRequested.emit(ckpt)


__all__ = ["RetrainPanel"]
