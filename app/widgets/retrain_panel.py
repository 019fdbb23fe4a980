"""The retrain dock: options, progress with ETA, live curves (main and aux loss, learning rate,
validation mIoU), the before/after agreement per corrected image, and the model history.

It fits a small screen: the whole panel scrolls when the dock is short, and when the dock is too
short for the curves and the tables one above the other, the curves become the first tab beside
the tables (``stacked`` says which layout is shown)."""

from __future__ import annotations

import math
from typing import Sequence

import pyqtgraph as pg
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QFontMetricsF, QResizeEvent
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDoubleSpinBox, QFrame, QGridLayout, QHBoxLayout,
                               QHeaderView, QLabel, QPushButton, QScrollArea, QSpinBox, QTableWidget,
                               QTableWidgetItem, QTabWidget, QToolButton, QVBoxLayout, QWidget)

import core
from app.controllers.retrainer import RetrainOptions
from app.widgets.fit_progress import FitProgressBar


REDRAW_MS = 0  # records that arrive in one pass of the event loop are drawn together (measured: a longer
# interval did not shorten the GUI thread's stalls in tests/benchmarks/retrain_stall.py)
CURVES_MIN = 200  # pixels: three plots of about 50 px each, tick labels apart, and the step axis
CURVES_MIN_COMPACT = 195  # ... when they share a tab with the tables (a small screen): about 50 px each
TABLES_MIN = 150  # pixels: the tab bar, the summary, the header and three rows
NARROW_TABLE = 380  # below this width the before/after table leaves out its Pixels column (each row's tip has it)
AXIS_WIDTH = 54  # the plots' left axes (label and ticks) have one width: the x-linked plots line up


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class SparseAxis(pg.AxisItem):
    """A left axis whose labels stay apart on a short plot: pyqtgraph always labels its major ticks,
    about log(height) of them, and they overlap below some 80 px. The major spacing is widened
    (1, 2, 5 x 10^k) until the labels are ``GAP`` text heights apart, or, where that would leave
    fewer than two labels, just apart (``MIN_GAP``)."""

    GAP, MIN_GAP = 1.5, 1.15

    def __init__(self, orientation: str = "left", **kw):
        super().__init__(orientation, **kw)
        self.setStyle(maxTextLevel=0)

    @staticmethod
    def _nice_above(value: float) -> float:
        exp = math.floor(math.log10(value))
        for m in (1, 2, 5, 10):
            if m * 10 ** exp >= value * (1 - 1e-9):
                return m * 10 ** exp
        return 10 ** (exp + 1)

    def tickSpacing(self, minVal: float, maxVal: float, size: float):  # noqa: N802 N803 (pyqtgraph names)
        levels = super().tickSpacing(minVal, maxVal, size)
        span = maxVal - minVal
        if not levels or span <= 0 or size <= 0:
            return levels
        font = self.style.get("tickFont") or QFont()
        text = QFontMetricsF(font).height() * span / size  # a label's height, in data units

        def labels(step: float) -> int:  # labels that fit whole between the ends (pyqtgraph drops the others)
            lo, hi = minVal + 0.5 * text, maxVal - 0.5 * text
            return max(0, int(math.floor(hi / step) - math.ceil(lo / step)) + 1)

        steps = [self._nice_above(self.MIN_GAP * text)]
        while steps[-1] < span:
            steps.append(self._nice_above(steps[-1] * 1.01))
        spacing = next((st for st in steps if st >= self.GAP * text and labels(st) >= 2),
                       next((st for st in steps if labels(st) >= 2), self._nice_above(self.GAP * text)))
        # only this level is labelled (maxTextLevel 0); finer levels draw their ticks and grid lines
        return [(spacing, 0)] + [lv for lv in levels if lv[0] < spacing][:1]


class _NumberItem(QTableWidgetItem):
    """Sorts by its number, not its text."""

    def __init__(self, text: str, value: float):
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        return (a if a is not None else -math.inf) < (b if b is not None else -math.inf)


class _Body(QWidget):
    """The panel's contents in its scroll area: as tall as the view, or as its minimum needs at this
    width (QScrollArea asks ``heightForWidth``, which would otherwise be the preferred height)."""

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt name)
        lay = self.layout()
        return lay.totalMinimumHeightForWidth(width) if lay is not None else super().heightForWidth(width)


class _Tabs(QTabWidget):
    """Tabs that ask for their minimum height only (a wrapped label's preferred height would hold the
    scrolling body taller than the dock)."""

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt name)
        return False


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
        self.progress = FitProgressBar()
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

        # --- curves: one above the other, x-linked, the step axis below the last one only
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setMinimumHeight(CURVES_MIN)
        self.plots.ci.setContentsMargins(2, 2, 6, 2)
        self.plots.ci.setSpacing(2)
        self.loss_plot = self.plots.addPlot(row=0, col=0, axisItems={"left": SparseAxis("left")})
        self.loss_plot.addLegend(offset=(-5, 2), labelTextSize="8pt", verSpacing=-6, brush=pg.mkBrush(0, 0, 0, 170))
        self.main_curve = self.loss_plot.plot(pen=pg.mkPen("#1a73e8", width=2), name="main")
        self.aux_curve = self.loss_plot.plot(pen=pg.mkPen("#e8710a", width=2), name="aux")
        self.lr_plot = self.plots.addPlot(row=1, col=0, axisItems={"left": SparseAxis("left")})
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen("#9334e6", width=2))
        self.val_plot = self.plots.addPlot(row=2, col=0, axisItems={"left": SparseAxis("left")})
        self.val_curve = self.val_plot.plot(pen=pg.mkPen("#188038", width=2), symbol="o", symbolSize=6,
                                            symbolBrush="#188038")
        self.val_plot.setYRange(0, 1, padding=0.2)  # room for the labels 0 and 1
        self.loss_plot.getViewBox().setDefaultPadding(0.12)  # room for the labels at the ends
        for p in (self.lr_plot, self.val_plot):
            p.setXLink(self.loss_plot)
        for p, name, tip in ((self.loss_plot, "loss", "training loss of the main and the auxiliary head"),
                             (self.lr_plot, "LR", "learning rate of the backbone (poly decay)"),
                             (self.val_plot, "val mIoU", "mIoU on the project's fixed validation split")):
            p.showGrid(x=True, y=True, alpha=0.2)
            p.setMouseEnabled(x=False, y=False)
            p.hideButtons()
            p.setLabel("left", name)
            p.getAxis("left").setWidth(AXIS_WIDTH)
            p.getAxis("left").enableAutoSIPrefix(False)  # "0.005", not "5" and "(x0.001)" in the label
            p.getAxis("left").setToolTip(tip)
            if p is not self.val_plot:  # the x-linked plots above share the last one's step axis
                p.getAxis("bottom").setStyle(showValues=False)
                p.getAxis("bottom").setHeight(4)
        self.val_plot.getAxis("bottom").setToolTip("optimizer step")
        self.curves_page = QWidget()  # the curves, above the tables or in a tab of their own
        cv = QVBoxLayout(self.curves_page)
        cv.setContentsMargins(0, 0, 0, 0)
        cv.addWidget(self.plots)
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
        self.compare.setHorizontalHeaderLabels(["Image", "Pixels", "Before", "After", "Change"])
        self.compare.horizontalHeaderItem(1).setToolTip("Labelled pixels of the image")
        self.compare.horizontalHeaderItem(4).setToolTip("Change in points (percent of the labelled pixels)")
        self._table_style(self.compare)
        self.compare.cellDoubleClicked.connect(
            lambda r, _c: self.imageRequested.emit(self.compare.item(r, 0).text()))
        self.history = QTableWidget(0, 5)
        self.history.setHorizontalHeaderLabels(["Model", "Time", "Val mIoU", "Steps", "Note"])
        self._table_style(self.history, stretch=4)
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
        self.tabs = _Tabs()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(compare_page, "Before / after")
        self.tabs.addTab(history_page, "Model history")
        self.compare_page = compare_page
        self.tabs.setMinimumHeight(TABLES_MIN)

        self.body = _Body()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(4, 4, 4, 4)
        self.body_layout.addLayout(form)
        self.body_layout.addLayout(run)
        self.body_layout.addWidget(self.status)
        self.body_layout.addWidget(self.curves_page, 3)
        self.body_layout.addWidget(self.tabs, 2)
        self.stacked = True
        self.scroll = QScrollArea()  # a dock shorter than the panel scrolls it
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.body)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.scroll)
        self._top = (form, run)
        # what the status line speaks of: the model the last retrain made, a model restored since
        self.result_entry: core.CheckpointEntry | None = None
        self.result_text = ""
        self.restored_entry: core.CheckpointEntry | None = None
        self._comparison_text = ""
        self.running = False

    # ---- layout: curves above the tables, or beside them in a tab -----------------------------------------
    def stacked_height(self) -> int:
        """The height from which the curves and the tables are shown one above the other."""
        lay = self.body_layout
        width = max(100, self.width())
        top = 0
        for i in range(3):  # the options, the run row, the status line
            item = lay.itemAt(i)
            top += item.minimumHeightForWidth(width) if item.hasHeightForWidth() else item.minimumSize().height()
        m = lay.contentsMargins()
        return m.top() + m.bottom() + top + 4 * lay.spacing() + CURVES_MIN + TABLES_MIN

    def set_stacked(self, stacked: bool) -> None:
        if stacked == self.stacked:
            return
        self.stacked = stacked
        current = self.tabs.currentWidget()
        if stacked:
            self.tabs.removeTab(self.tabs.indexOf(self.curves_page))
            self.body_layout.insertWidget(3, self.curves_page, 3)
            self.curves_page.show()
            if current is self.curves_page:
                self.tabs.setCurrentWidget(self.compare_page)
        else:
            self.body_layout.removeWidget(self.curves_page)
            self.tabs.insertTab(0, self.curves_page, "Curves")
            self.tabs.setCurrentWidget(self.curves_page if self.running or current is None else current)
        self.plots.setMinimumHeight(CURVES_MIN if stacked else CURVES_MIN_COMPACT)
        self.tabs.setMinimumHeight(TABLES_MIN)
        QTimer.singleShot(0, self, self._refit)  # (not after the panel is gone)

    def _refit(self) -> None:
        """The body's minimum changed with the layout: let the scroll area size it to its view again
        (it does not shrink a widget whose minimum got smaller by itself)."""
        self.scroll.setWidgetResizable(True)

    def resizeEvent(self, ev: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(ev)
        self.compare.setColumnHidden(1, ev.size().width() < NARROW_TABLE)
        need = self.stacked_height()
        h = ev.size().height()
        if self.stacked and h < need:
            self.set_stacked(False)
        elif not self.stacked and h >= need + 16:  # a margin: no flicker at the threshold
            self.set_stacked(True)

    def show_results(self) -> None:
        """Bring the before/after table forward (in the compact layout, where it shares the curves' tab)."""
        self.tabs.setCurrentWidget(self.compare_page)

    def show_curves(self) -> None:
        if not self.stacked:
            self.tabs.setCurrentWidget(self.curves_page)

    @staticmethod
    def _table_style(t: QTableWidget, stretch: int = 0) -> None:
        """Numbers sized to their contents, the ``stretch`` column (a name, a note) takes the rest and
        elides: the numbers stay in view in a narrow dock."""
        t.verticalHeader().setVisible(False)
        t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 6)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = t.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(36)
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

    def started(self, steps: int, what: str = "the saved corrections") -> None:
        self.clear_curves()
        self.running = True
        self.progress.setRange(0, steps)
        self.progress.setValue(0)
        self.progress.set_texts("starting ...")
        self.status.setStyleSheet("color: #5f6368;")
        self.status.setText(f"Retraining on {what} ...")
        self.show_curves()

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
        if s["lr"]:  # from 0 (where the poly decay ends), with room for the top label
            self.lr_plot.setYRange(0, max(s["lr"]) * 1.15 or 1e-3, padding=0)
        self.val_curve.setData(s["val_step"], s["val"])
        step = self._last_step
        if step is not None:
            self.progress.setRange(0, step.steps)
            self.progress.setValue(step.step)
            eta = _eta(step.eta_s)
            self.progress.set_texts(f"step %v/%m  ETA {eta}", f"%v/%m  ETA {eta}", f"%v/%m {eta}", "%v/%m", "%p%")
        if rec.val is not None:
            self.status.setText(f"Step {rec.step}: validation mIoU {rec.val.miou:.3f}")
            return
        aux = f", aux {rec.aux_loss:.3f}" if rec.aux_loss is not None else ""
        self.status.setText(f"Step {rec.step}/{rec.steps}: loss {rec.main_loss:.3f}{aux}, lr {rec.lr:.2g}, "
                            f"{rec.images_per_s:.1f} images/s" + (f" - {rec.message}" if rec.message else ""))

    def finished(self, text: str, error: bool = False, short: str = "") -> None:
        """The run ended: ``text`` below the bar, ``short`` (done / cancelled / failed) in it."""
        self.flush()
        self.running = False
        if self.progress.maximum() <= 1 or error:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        self.progress.set_texts(short or ("failed" if error else "done"))
        self._say(text, "color: #c5221f;" if error else "color: #188038;")

    def _say(self, text: str, style: str = "color: #5f6368;") -> None:
        self.status.setStyleSheet(style)
        self.status.setText(text)

    def trained(self, result: core.ProjectFinetune) -> str:
        """A retrain made ``result`` (in use now): what the status line says, while the models are compared."""
        m = result.metrics.get("val_miou")
        val = f", validation mIoU {m:.3f}" if isinstance(m, (int, float)) else ""
        name = f"Model {result.entry.id}" if result.entry is not None else "The new model"
        self.result_entry, self.restored_entry = result.entry, None
        self.result_text = f"{name} trained ({result.steps_done} steps, {result.seconds:.0f} s{val}) and in use"
        return self.result_text + "; comparing with the previous model ..."

    def restored(self, entry: core.CheckpointEntry) -> None:
        """``entry`` of the history is the project's current model again (loaded; being put in use)."""
        self.restored_entry = entry
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.set_texts("restored")
        self._say(f"Model {entry.id} restored: putting it in use ...")
        self._label_results()

    def model_in_use(self, sources: list[Path]) -> None:
        """The model in use changed (``sources``: its files): keep the status line true."""
        if self.running:
            return
        path = Path(sources[0]).resolve() if sources else None
        restored, result = self.restored_entry, self.result_entry
        if restored is not None and path == Path(restored.path).resolve():
            when = restored.time.replace("T", " ")[:16]
            note = f": {restored.note}" if restored.note else ""
            self._say(f"Model {restored.id} restored and in use (from {when}{note})", "color: #188038;")
        elif result is not None and path == Path(result.path).resolve():
            self._say(self.result_text, "color: #188038;")
        elif restored is not None or result is not None:
            name = path.name if path is not None else "no model"
            self._say(f"In use now: {name}. Paint corrections, then Retrain (Ctrl+R)")
        self._label_results()

    def _label_results(self) -> None:
        """The before/after table speaks of the last retrain: say so once another model is in use."""
        text = self._comparison_text
        if not text or self.result_entry is None:
            return
        if self.restored_entry is not None and self.restored_entry.id != self.result_entry.id:
            text = f"From the retrain that made model {self.result_entry.id} (model {self.restored_entry.id} is " \
                   f"in use now): {text[:1].lower() + text[1:]}"
        self.compare_label.setText(text)

    # ---- results -------------------------------------------------------------------------------------
    def set_comparison(self, rows: Sequence[core.Agreement], text: str | None = None) -> None:
        """The before/after rows of the last retrain and their summary (``text``; core's when None)."""
        self.compare.setSortingEnabled(False)
        self.compare.setRowCount(len(rows))
        for r, a in enumerate(rows):
            name = QTableWidgetItem(a.name)
            name.setToolTip(f"{a.name}: {a.labelled:,} labelled pixels; double-click to open it")
            self.compare.setItem(r, 0, name)
            self.compare.setItem(r, 1, _NumberItem(f"{a.labelled:,}", a.labelled))
            self.compare.setItem(r, 2, _NumberItem(f"{100 * a.before:.1f} %", a.before))
            self.compare.setItem(r, 3, _NumberItem(f"{100 * a.after:.1f} %", a.after))
            gain = _NumberItem(f"{100 * a.gain:+.1f}", a.gain)
            gain.setForeground(Qt.GlobalColor.darkGreen if a.gain > 0 else
                               (Qt.GlobalColor.darkRed if a.gain < 0 else Qt.GlobalColor.gray))
            self.compare.setItem(r, 4, gain)
        self.compare.setSortingEnabled(True)
        self.compare.sortItems(4, Qt.SortOrder.DescendingOrder)
        self._comparison_text = text if text is not None else core.agreement_text(list(rows))
        self.compare_label.setText(self._comparison_text)
        if self.result_text and self.restored_entry is None:
            self._say(self.result_text, "color: #188038;")  # compared: no longer "comparing ..."
        self.show_results()

    def set_history(self, entries: Sequence[core.CheckpointEntry], current: str | None) -> None:
        self.history.setRowCount(len(entries))
        for r, e in enumerate(reversed(list(entries))):  # newest first
            miou = e.metrics.get("val_miou", e.metrics.get("miou"))  # "miou": an older command-line record
            items = [QTableWidgetItem(e.id + ("  (in use)" if e.id == current else "")),
                     QTableWidgetItem(e.time.replace("T", " ")[:16]),
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
