"""The main window: views, docks, status bar, and the wiring between them and the controllers.

State lives in the controllers (app/controllers/); the views show what their signals carry.
The window's commands are app/actions.py (``window.act``); the handlers here only move what a
signal carries into widgets, and the prompts (recovery, unsaved masks on close, new project).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PySide6.QtCore import QByteArray, Qt, QTimer, QUrl
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QShowEvent
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QFrame, QLabel, QMainWindow, QMenu,
                               QMessageBox, QProgressBar, QScrollArea, QTabWidget, QToolButton, QVBoxLayout,
                               QWidget)
from superqt import QElidingLabel

import core
from app.actions import Actions
from app.controllers.controller import Controller, ShownImage
from app.demo import DemoLauncher
from app.image_folder import ImageFolder
from app import window_geometry
from app.project_ui import ProjectUi
from app.settings import Settings
from app.tools.base import ToolSettings
from app.tools.interaction import CanvasTools
from app.views.canvas import ImageCanvas
from app.views.heads_view import HeadsView
from app.views.pyramid_view import PyramidView
from app.views.region_outline import RegionOutline
from app.views.segmentation_view import SegmentationView, hover_text
from app.widgets.image_list import ImageList
from app.widgets.legend import LegendWidget
from app.widgets.message_banner import ERROR, BannerArea
from app.widgets.model_panel import ModelPanel
from app.widgets.fit_progress import FitProgressBar
from app.widgets.project_locked_dialog import ask_locked
from app.widgets.retrain_panel import RetrainPanel
from app.widgets.shortcuts_dialog import ShortcutsDialog, shortcut_rows
from app.widgets.startup_progress import StartupProgress
from app.widgets.tool_panel import ToolPanel
from app.window_alerts import WindowAlerts

MODEL_SUFFIXES = {".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar"}
MODEL_FILTER = "Checkpoints (*.safetensors *.pth *.pt *.bin *.ckpt *.tar);;All files (*)"
VIEWS = ("overlay", "pyramid", "heads")
ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"


class MainWindow(QMainWindow):
    def __init__(self, controller: Controller | None = None, settings: Settings | None = None,
                 restore: bool = True):
        super().__init__()
        self.setWindowTitle("PSPNet Studio")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.settings = settings or Settings()
        if controller is None:
            device = str(self.settings.value("model/device", "cpu"))
            controller = Controller(self, device=device if device in core.available_devices() else "cpu")
        self.controller = controller
        self.demo: DemoLauncher | None = None
        self.last_error = ""
        self._message = ""
        self._predict_note = "Predicting"  # what the note over the photo says while a prediction runs
        self._closing_after_save = False  # a close waits for the masks' save (a job), then closes
        self.editor = controller.editor
        self.retrainer = controller.retrainer
        self.ranker = controller.ranker

        # central views
        self.seg = SegmentationView()
        self.pyramid = PyramidView()
        self.heads = HeadsView()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.seg, "Segmentation")
        self.tabs.addTab(self.pyramid, "Pyramid levels")
        self.tabs.addTab(self.heads, "Main vs aux head")
        self.banners = BannerArea()  # problems that last, above the views (app/window_alerts.py)
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.banners)
        central_layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.tool_settings = ToolSettings(self)
        self.canvas_tools = CanvasTools(self.seg.canvas, self.tool_settings, self)
        self.canvas_tools.prediction_source = self.editor.prediction

        # docks
        self.image_list = ImageList()
        self.legend = LegendWidget()
        self.model_panel = ModelPanel()
        self.images_dock = self._dock("Images", self.image_list, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.legend_dock = self._dock("Classes", self.legend, Qt.DockWidgetArea.RightDockWidgetArea)
        self.model_dock = self._dock("Model", self.model_panel, Qt.DockWidgetArea.RightDockWidgetArea, scroll=True)

        self._status_bar()
        self.recent_menus: dict[str, QMenu] = {}
        self.device_menu: QMenu | None = None
        self.act = Actions(self)
        self.tool_panel = ToolPanel(self.tool_settings, self.act.tools, self.act.edit_buttons())
        self.retrain_panel = RetrainPanel(self.act.retrain, self.act.cancel_retrain)
        self.tools_dock = self._dock("Tools", self.tool_panel, Qt.DockWidgetArea.LeftDockWidgetArea, scroll=True)
        self.retrain_dock = self._dock("Retrain", self.retrain_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.model_dock, self.retrain_dock)
        self.model_dock.raise_()
        self.act.build_menus(self.menuBar())
        tb = self.addToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.act.build_toolbar(tb)
        self._short_toolbar_texts()
        self._wire()
        self._wire_editing()
        self._wire_small_screen()
        self.startup_progress = StartupProgress(self.tabs)  # the first start: the demo project being written
        self.shortcuts_dialog: ShortcutsDialog | None = None
        self._docks_placed = False  # the docks' default shares, once, when no saved layout set them
        self.interactive = True  # False: never ask (the screenshot mode); problems are errors
        self.project_ui = ProjectUi(self)  # notes, the model zoo, class tables, the model a project has in use
        self.alerts = WindowAlerts(self)
        controller.access.ask_locked = self.ask_locked
        self.resize(1400, 900)
        self.persist = restore  # a window that did not restore the layout (screenshots) does not save it
        self.device_label.setText(core.device_name(self.controller.device))
        self.model_panel.set_device(self.controller.device)
        icon = ICON_DIR / "pspnet-studio.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        if restore:
            self._restore()

    # ------------------------------------------------------------------------------------------
    # construction
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea, scroll: bool = False) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        if scroll:  # a dock shorter than its panel scrolls it (a small screen), it does not make the window taller
            area_ = QScrollArea()
            area_.setWidgetResizable(True)
            area_.setFrameShape(QFrame.Shape.NoFrame)
            area_.setWidget(widget)
            widget = area_
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _status_bar(self) -> None:
        sb = self.statusBar()
        self.info = QElidingLabel("")  # a long message elides; it must not make the window wider
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setMinimumWidth(80)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.cancel_btn = QToolButton()
        self.cancel_btn.setText("Cancel")
        self.cancel_btn.setToolTip("Cancel the running prediction (Esc)")
        self.cancel_btn.setVisible(False)
        self.train_label = QLabel("")
        self.train_label.setVisible(False)
        self.train_progress = FitProgressBar()  # its text fits (the longest of its texts that does)
        self.train_progress.setFixedWidth(160)
        self.train_progress.setVisible(False)
        self.device_label = QLabel("")
        sb.addWidget(self.info, 1)
        sb.addPermanentWidget(self.train_label)
        sb.addPermanentWidget(self.train_progress)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_btn)
        sb.addPermanentWidget(self.device_label)

    def _wire(self) -> None:
        c = self.controller
        c.message.connect(self.show_message)
        c.error.connect(self.show_status_error)  # its lasting banners come through c.problem (app/window_alerts.py)
        c.modelLoading.connect(self.model_panel.set_loading)
        c.modelChanged.connect(self._model_changed)
        c.deviceChanged.connect(self._device_changed)
        c.classesChanged.connect(self._classes_changed)
        c.folderChanged.connect(self._folder_changed)
        c.imageChanged.connect(self._image_changed)
        c.predictionStarted.connect(self._prediction_started)
        c.predictionProgress.connect(self._prediction_progress)
        c.outcomeReady.connect(self._outcome_ready)
        c.pyramidReady.connect(self.pyramid.set_summary)
        c.levelsChanged.connect(self.pyramid.set_disabled)
        c.previewReady.connect(self._preview_ready)
        c.levelsBusy.connect(self._levels_busy)
        c.protocolChanged.connect(self.model_panel.set_protocol)
        c.overlayMapReady.connect(self.seg.set_map)
        c.overlayMapFailed.connect(self.seg.map_failed)
        self.seg.mapWanted.connect(c.make_overlay_map)
        self.model_panel.protocolRequested.connect(c.set_protocol_overrides)
        self.image_list.activated.connect(c.open_index)
        self.legend.hiddenChanged.connect(self._hidden_changed)
        self.legend.classActivated.connect(lambda cid: (self.seg.set_mode("class", cid),
                                                        self.tabs.setCurrentWidget(self.seg)))
        self.model_panel.deviceRequested.connect(c.set_device)
        self.model_panel.openRequested.connect(self.open_model_dialog)
        self.pyramid.levelToggled.connect(c.set_level_enabled)
        self.pyramid.allOnRequested.connect(lambda: c.set_disabled_levels(()))
        self.seg.hovered.connect(self._hovered)
        self.seg.modeChanged.connect(lambda m: self.act.modes[m].setChecked(True))
        self.seg.show_box.toggled.connect(self.act.overlay.setChecked)
        self.seg.mask_box.toggled.connect(self.act.show_mask.setChecked)
        self.cancel_btn.clicked.connect(c.cancel)
        self.tabs.currentChanged.connect(lambda _: self._pyramid_shown())

    def _wire_editing(self) -> None:
        ed, rt, rk, tools = self.editor, self.retrainer, self.ranker, self.canvas_tools
        ed.regionChanged.connect(self.seg.update_mask_region)
        ed.historyChanged.connect(self._history_changed)
        ed.dirtyChanged.connect(self._dirty_changed)
        ed.message.connect(self.show_message)
        ed.error.connect(self.show_status_error)
        ed.recovery_handler = self.ask_recovery
        tools.notice.connect(self.show_message)
        tools.toolChanged.connect(lambda n: self.act.tools[n].setChecked(True))
        tools.toolChanged.connect(lambda n: n != "pan" and self.tabs.setCurrentWidget(self.seg))
        self.tool_settings.changed.connect(lambda: self.act.preserve.setChecked(self.tool_settings.preserve))
        self.tool_settings.labelChanged.connect(self._label_changed)
        rt.started.connect(self._retrain_started)
        rt.progress.connect(self.retrain_panel.add_record)
        rt.status.connect(self.retrain_panel.show_status)
        rt.finished.connect(self._retrain_finished)
        rt.cancelled.connect(lambda: self._retrain_done("Cancelled: the previous model stays in use"))
        rt.failed.connect(lambda text: self._retrain_done(text, error=True))
        rt.comparisonReady.connect(self._comparison_ready)
        rt.historyChanged.connect(self._refresh_history)
        self.retrain_panel.restoreRequested.connect(rt.restore)
        self.retrain_panel.imageRequested.connect(self._open_project_image)
        rk.regionRequested.connect(self.zoom_to_region)
        rk.rankingStarted.connect(lambda n: self.show_message(f"Ranking {n} images by uncertainty in the background ..."))
        rk.message.connect(self.show_message)
        # what to correct next: the chosen region's outline, the ranking's progress, the sort control
        self.region_outline = RegionOutline(self.seg.canvas)
        self.controller.imageChanged.connect(lambda shown: self.region_outline.image_shown(shown.path))
        rk.rankingProgress.connect(self.image_list.show_ranking)
        rk.rankingFinished.connect(self.image_list.ranking_finished)
        self.image_list.sort_box.toggled.connect(lambda on: on and rk.ensure_ranked())

    # ------------------------------------------------------------------------------------------
    # settings
    def _restore(self) -> None:
        if not window_geometry.restore(self, self.settings):
            window_geometry.place_first(self)  # the first start: maximised on a small screen, else centred
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray) and self.restoreState(state):
            self._docks_placed = True
        self.seg.set_opacity(float(self.settings.value("view/opacity", 0.6)))
        tab = int(self.settings.value("view/tab", 0))
        self.tabs.setCurrentIndex(max(0, min(tab, self.tabs.count() - 1)))

    def save_settings(self) -> None:
        self.settings.set_window_geometry(self.saveGeometry())
        self.settings.set("window/state", self.saveState())
        self.settings.set("view/opacity", self.seg.opacity.value() / 100)
        self.settings.set("view/tab", self.tabs.currentIndex())
        self.settings.sync()

    def fill_recent(self, kind: str, menu: QMenu) -> None:
        menu.clear()
        items = self.settings.recent(kind)
        for entry in items:
            paths = entry.split("\n")
            text = " + ".join(Path(p).name for p in paths)
            act = menu.addAction(text)
            act.setToolTip("\n".join(paths))
            act.triggered.connect(lambda _=False, k=kind, p=paths: self._open_recent(k, p))
        if not items:
            menu.addAction("(none)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear", lambda k=kind: self.settings.clear_recent(k))

    def _open_recent(self, kind: str, paths: list[str]) -> None:
        if kind == "images":
            self.open_image(paths[0])
        elif kind == "folders":
            self.open_folder(paths[0])
        else:
            self.open_model(paths)

    # ------------------------------------------------------------------------------------------
    # opening things
    def open_image(self, path: str | Path) -> None:
        self.settings.add_recent("images", str(Path(path).resolve()))
        self.controller.open_image(path)

    def open_folder(self, path: str | Path, use_model: bool = True):
        """A folder or project (its class table chosen when missing; the model its history has in use)."""
        return self.controller.opening.open(path, use_model=use_model)

    def open_model(self, paths: Sequence[str | Path] | str | Path):
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        self.settings.add_recent("models", "\n".join(str(Path(p).resolve()) for p in paths))
        return self.controller.open_model(paths)

    def set_demo(self, demo: DemoLauncher) -> DemoLauncher:
        """Use ``demo`` for the built-in demo: its training shows in the status bar."""
        self.demo = demo
        demo.trainingStarted.connect(self._training_started)
        demo.trainingProgress.connect(self._training_progress)
        demo.trainingFinished.connect(self._training_finished)
        demo.failed.connect(self.show_error)
        demo.failed.connect(lambda _: self._training_finished(""))
        self.startup_progress.follow(demo)
        return demo

    def open_demo(self, with_model: bool | None = None) -> DemoLauncher:
        if self.demo is None:
            self.set_demo(DemoLauncher(self.controller, parent=self))
        self.demo.start(with_model=self.controller.loaded is None if with_model is None else with_model)
        return self.demo

    def train_demo_model(self) -> None:
        if self.demo is None:
            self.open_demo(with_model=False)
        if self.demo.training_task is not None and not self.demo.training_task.is_finished:
            self.show_message("The demo model is being trained already")
            return
        self.demo.train()

    def _start_dir(self, kind: str) -> str:
        recent = self.settings.recent(kind)
        return str(Path(recent[0].split("\n")[0]).parent) if recent else str(Path.home())

    def open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._start_dir("images"), core.image_file_filter())
        if path:
            self.open_image(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open folder or project", self._start_dir("folders"))
        if path:
            self.open_folder(path)

    def open_model_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Open model (choose both files for a CSAIL encoder + decoder)", self._start_dir("models"),
            MODEL_FILTER)
        if paths:
            self.open_model(paths)

    def new_project_dialog(self) -> None:
        self.project_ui.new_project_dialog()  # the class table, the images, the folder

    def save_screenshot(self, path: str | Path) -> bool:
        return self.grab().save(str(path), "PNG")

    def save_screenshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", str(Path.home() / "pspnet-studio.png"),
                                              "PNG image (*.png)")
        if path and not self.save_screenshot(path):
            self.show_error(f"Could not write {path}")

    # --- drag and drop ---
    @staticmethod
    def _local_paths(urls: Sequence[QUrl]) -> list[Path]:
        return [Path(u.toLocalFile()) for u in urls if u.isLocalFile()]

    def dragEnterEvent(self, ev: QDragEnterEvent) -> None:  # noqa: N802
        if ev.mimeData().hasUrls() and self._local_paths(ev.mimeData().urls()):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev: QDragEnterEvent) -> None:  # noqa: N802
        self.dragEnterEvent(ev)

    def dropEvent(self, ev: QDropEvent) -> None:  # noqa: N802
        paths = self._local_paths(ev.mimeData().urls())
        if not paths:
            ev.ignore()
            return
        ev.acceptProposedAction()
        self.open_paths(paths)

    def open_paths(self, paths: Sequence[Path]) -> None:
        """What a drop does: checkpoints become the model, a folder the image list, an image is opened."""
        models = [p for p in paths if p.suffix.lower() in MODEL_SUFFIXES]
        images = [p for p in paths if p.is_file() and core.is_image(p)]
        folders = [p for p in paths if p.is_dir()]
        if models:
            self.open_model(models)
        if folders:
            self.open_folder(folders[0])
        if images:
            self.open_image(images[0])
        if not (models or images or folders):
            self.show_error("Nothing to open: drop an image, a folder or a checkpoint "
                            f"({', '.join(sorted(MODEL_SUFFIXES))})")

    # ------------------------------------------------------------------------------------------
    # viewing: signal handlers
    def current_canvas(self) -> ImageCanvas:
        w = self.tabs.currentWidget()
        if w is self.pyramid:
            return self.pyramid.result
        if w is self.heads:
            return self.heads.main
        return self.seg.canvas

    def nudge_opacity(self, delta: float) -> None:
        self.seg.set_opacity(self.seg.opacity.value() / 100 + delta)

    def _model_changed(self, loaded: core.LoadedModel | None) -> None:
        self.model_panel.set_model(loaded)
        self.pyramid.set_bins(tuple(loaded.model.bins) if loaded is not None else ())
        self.pyramid.set_disabled(self.controller.disabled_levels)

    def _device_changed(self, device: str) -> None:
        if self.persist:
            self.settings.set("model/device", device)
        self.model_panel.set_device(device)
        self.device_label.setText(core.device_name(device))
        for act in self.act.devices:
            act.setChecked(act.data() == device)

    def _classes_changed(self, classes: core.ClassTable) -> None:
        self.legend.set_classes(classes)
        self.tool_panel.set_classes(classes)
        for v in (self.seg, self.pyramid, self.heads):
            v.set_classes(classes)
        if self.controller.outcome is not None:
            self.legend.set_shares(self.controller.outcome.shares)

    def _folder_changed(self, folder: ImageFolder) -> None:
        self.image_list.set_folder(folder)
        self.settings.add_recent("folders", str(folder.root))

    def _hidden_changed(self, hidden: set[int]) -> None:
        for v in (self.seg, self.pyramid, self.heads):
            v.set_hidden_classes(hidden)

    def _image_changed(self, shown: ShownImage) -> None:
        """The photo and its editable mask, together."""
        for v in (self.seg, self.pyramid, self.heads):
            v.set_image(shown.image)
        self.seg.set_mask(shown.mask.data if shown.mask is not None else None)
        self.canvas_tools.set_mask(shown.mask, shown.reason)
        self.legend.set_shares(None)
        self.image_list.set_current(self.controller.current_index())
        self.setWindowTitle(f"{shown.path.name}[*] - PSPNet Studio")
        self.setWindowModified(self.editor.dirty)
        self._history_changed()

    def _prediction_started(self) -> None:
        # busy until the first window is done (a single pass reports only its end)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Predicting ...")
        self.progress.setVisible(True)
        self.cancel_btn.setVisible(True)
        self._predict_note = "Predicting"
        self.seg.set_busy("predict", "Predicting ...")

    def _prediction_progress(self, value: float) -> None:
        if value < 0 or value >= 1.0:
            self.progress.setVisible(False)
            self.cancel_btn.setVisible(False)
            self.seg.set_busy("predict", None)
        elif value > 0:
            self.progress.setRange(0, 100)
            self.progress.setFormat("Predicting %p %")
            self.progress.setValue(int(100 * value))
            self.seg.set_busy("predict", f"{self._predict_note} ... {100 * value:.0f} %")

    def _preview_ready(self, outcome: core.Outcome) -> None:
        self._predict_note = "A first look (the main head); refining"

    def _levels_busy(self, text: str) -> None:
        self.pyramid.set_busy(text or None)
        self.seg.set_busy("levels", text or None)

    def _outcome_ready(self, outcome: core.Outcome) -> None:
        for v in (self.seg, self.pyramid, self.heads):
            v.set_outcome(outcome)
        self.legend.set_shares(outcome.shares)
        self._pyramid_shown()

    def _pyramid_shown(self) -> None:
        if self.tabs.currentWidget() is self.pyramid:
            self.controller.prepare_levels()

    def _hovered(self, px: tuple[int, int] | None) -> None:
        if px is None:
            self.info.setText(self._message)
            return
        self.info.setText(hover_text(self.controller.outcome, self.controller.classes, *px))

    def show_message(self, text: str) -> None:
        self._message = text
        self.info.setStyleSheet("")
        self.info.setText(text)

    def show_error(self, text: str, key: str = "error") -> None:
        """An error in the status line and in a banner that stays until closed (or replaced under ``key``)."""
        self.show_status_error(text)
        self.banners.show_message(key, text, ERROR)

    def show_status_error(self, text: str) -> None:
        """An error in the status line only (the next message replaces it)."""
        self.last_error = text
        self._message = text
        self.info.setStyleSheet("color: #c5221f;")
        self.info.setText(text)
        self.info.setToolTip(text)

    def _training_started(self, steps: int) -> None:
        self.train_label.setText("Training demo model")
        self.train_label.setVisible(True)
        self.train_progress.setRange(0, steps)
        self.train_progress.setValue(0)
        self.train_progress.setVisible(True)

    def _training_progress(self, rec: core.TrainProgress) -> None:
        self.train_progress.setValue(rec.step)
        self.train_progress.set_texts(f"step %v/%m, loss {rec.loss:.2f}", f"%v/%m, loss {rec.loss:.2f}", "%v/%m")
        self.train_label.setText(f"Training demo model, ETA {rec.eta_s:.0f} s")

    def _training_finished(self, message: str) -> None:
        self.train_label.setVisible(False)
        self.train_progress.setVisible(False)
        if message:
            self.show_message(message)

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help > Keyboard Shortcuts: a dialog that fits the screen (opened, not run: the window stays live)."""
        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(shortcut_rows(self.menuBar(), self.actions()), self)
        self.shortcuts_dialog.show()
        self.shortcuts_dialog.raise_()
        self.shortcuts_dialog.activateWindow()
        return self.shortcuts_dialog

    def show_about(self) -> None:
        QMessageBox.about(self, "About PSPNet Studio",
                          "<b>PSPNet Studio</b><br>Pyramid scene parsing (Zhao et al., CVPR 2017) you can look "
                          "inside: the segmentation, the pyramid pooling levels, and the main and auxiliary heads.")

    # ------------------------------------------------------------------------------------------
    # mask editing: signal handlers
    def choose_class(self, k: int) -> None:
        n = self.tool_settings.num_classes
        if k >= n:
            self.show_message(f"There is no class {k} (the class table has {n})")
            return
        self.tool_settings.label = k
        if self.canvas_tools.tool.name in ("pan", "eraser", "picker"):
            self.canvas_tools.set_tool("brush")

    def _label_changed(self, label: int) -> None:
        classes = self.controller.current_classes()
        name = classes.names[label] if classes is not None and label < len(classes) else str(label)
        self.show_message(f"Painting class {label}: {name}")

    def _history_changed(self) -> None:
        ed = self.editor
        m = ed.mask
        self.act.undo.setEnabled(m is not None and m.can_undo)
        self.act.redo.setEnabled(m is not None and m.can_redo)
        self.act.accept_all.setEnabled(m is not None)
        self.act.save_masks.setEnabled(ed.dirty)
        if m is None:
            self.tool_panel.set_state(ed.reason or "no mask", error=ed.reason.startswith("read-only"))
            self.canvas_tools.set_mask(None, ed.reason)
            self.seg.set_mask(ed.view_labels())  # a read-only project's saved mask, else nothing
            return
        state = "unsaved changes (autosave in 1.5 s)" if m.dirty else "saved"
        self.tool_panel.set_state(f"{ed.name}: {state}; {m.undo_count} undo / {m.redo_count} redo steps")

    def _dirty_changed(self, dirty: bool) -> None:
        self.setWindowModified(dirty)
        self._history_changed()

    def zoom_to_region(self, region: core.RegionScore | tuple[int, int, int, int]) -> None:
        y0, y1, x0, x1 = region.region if isinstance(region, core.RegionScore) else region
        self.tabs.setCurrentWidget(self.seg)
        self.seg.canvas.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.3)
        if isinstance(region, core.RegionScore) and self.controller.image is not None:
            self.region_outline.show(self.controller.image.path, region)

    def _open_project_image(self, name: str) -> None:
        project = self.editor.project
        if project is not None:
            try:
                self.controller.open_image(project.image_path(name))
            except core.StudioError as exc:
                self.show_error(str(exc))

    # --- retraining
    def retrain(self) -> None:
        self.retrain_dock.show()
        self.retrain_dock.raise_()
        self.retrainer.start(self.retrain_panel.options())

    def _retrain_started(self, steps: int) -> None:
        what = self.retrainer.training_labels()
        self.retrain_panel.started(steps, what)
        self.act.retrain.setEnabled(False)
        self.act.cancel_retrain.setEnabled(True)
        self.show_message(f"Retraining on {what} ({steps} steps) ...")

    def _retrain_done(self, text: str, error: bool = False, short: str = "") -> None:
        self.act.retrain.setEnabled(True)
        self.act.cancel_retrain.setEnabled(False)
        self.retrain_panel.finished(text, error, short or ("failed" if error else "cancelled"))
        (self.show_error if error else self.show_message)(text)

    def _retrain_finished(self, result: core.ProjectFinetune) -> None:
        self._retrain_done(self.retrain_panel.trained(result), short="done")

    def _comparison_ready(self, rows: list[core.Agreement]) -> None:
        text = self.retrainer.comparison_text(rows)  # says so when the masks are the demo's own labels
        self.retrain_panel.set_comparison(rows, text)
        self.show_message(text)

    def _refresh_history(self) -> None:
        self.retrain_panel.set_history(self.retrainer.history(), self.retrainer.current_id())

    # --- a small screen, texts that stay true (issue 14)
    def _wire_small_screen(self) -> None:
        self.retrainer.restored.connect(self.retrain_panel.restored)
        self.controller.modelChanged.connect(
            lambda loaded: self.retrain_panel.model_in_use(list(getattr(loaded, "sources", None) or [])))
        self.editor.regionChanged.connect(self._mask_edited)
        self._history_changed()  # nothing open yet: Undo, Redo, Accept and Save are off

    def _short_toolbar_texts(self) -> None:
        """Shorter toolbar labels (the menus keep the full ones): the toolbar fits a 1280 px wide window."""
        for act, text in ((self.act.open_folder, "Open Folder"), (self.act.prev, "Previous"), (self.act.next, "Next"),
                          (self.act.predict, "Predict"), (self.act.next_region, "Next Region"),
                          (self.act.retrain, "Retrain")):
            act.setIconText(text)

    def _mask_edited(self, _region: core.Region) -> None:
        """An edit of a hidden mask: show the mask (the edit would otherwise show nothing) and say so."""
        if not self.seg.mask_box.isChecked():
            self.act.show_mask.setChecked(True)
            self.show_message("The mask was hidden: it is shown again, so that you see your edit (M hides it)")

    def showEvent(self, ev: QShowEvent) -> None:  # noqa: N802 (Qt name)
        super().showEvent(ev)
        if not self._docks_placed:
            self._docks_placed = True
            QTimer.singleShot(0, self, lambda: window_geometry.default_docks(self))

    # --- prompts (tests replace ``ask``)
    def ask(self, title: str, text: str, buttons: QMessageBox.StandardButton,
            default: QMessageBox.StandardButton) -> QMessageBox.StandardButton:
        return QMessageBox.question(self, title, text, buttons, default)

    def ask_locked(self, exc: core.ProjectLockedError) -> str:
        """Another program writes this project: open it read-only, take it over, or not at all?"""
        return ask_locked(self, exc)

    def ask_recovery(self, names: list[str]) -> bool:
        """The project holds edits a crash did not save: recover them?"""
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        B = QMessageBox.StandardButton
        answer = self.ask("Recover unsaved corrections",
                          f"The last session ended before saving the corrections of {len(names)} image(s): "
                          f"{shown}.\n\nRecover them? (Discard moves the edit journals aside.)",
                          B.Yes | B.Discard, B.Yes)
        return answer != B.Discard

    def _unsaved_handled(self) -> bool:
        """Closing: ask about unsaved masks. True = close now; False = stay open (cancelled, or the
        masks are being saved by a job, after which the window closes itself)."""
        ed = self.editor
        if self._closing_after_save or not ed.dirty:
            return not self._closing_after_save
        names = ed.dirty_names()
        B = QMessageBox.StandardButton
        answer = self.ask("Unsaved corrections",
                          f"The masks of {len(names)} image(s) have unsaved changes ({', '.join(names[:5])}). "
                          "Save them before closing?", B.Save | B.Discard | B.Cancel, B.Save)
        if answer == B.Cancel:
            return False
        if answer == B.Discard:
            ed.discard_unsaved()
            return True
        task = ed.save_all()
        if task is None:
            return True
        self._closing_after_save = True
        self.show_message("Saving the masks before closing ...")

        def saved(out: core.SavedMasks) -> None:
            self._closing_after_save = False
            if out.failed:
                self.show_error("Could not save: " + "; ".join(f"{n}: {e}" for n, e in out.failed.items()))
            else:
                self.close()

        def failed(exc: BaseException) -> None:
            self._closing_after_save = False
            self.show_error(f"Could not save: {exc}")

        task.succeeded.connect(saved)
        task.failed.connect(failed)
        return False

    # ------------------------------------------------------------------------------------------
    def closeEvent(self, ev: QCloseEvent) -> None:  # noqa: N802
        if not self._unsaved_handled():
            ev.ignore()
            return
        if self.persist:
            self.save_settings()
        self.show_message("Stopping background work ...")
        QApplication.processEvents()
        self.project_ui.shutdown()
        self.controller.shutdown()
        super().closeEvent(ev)
