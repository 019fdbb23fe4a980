"""The main window: docks, menus, toolbar, status bar and the wiring between them.

State lives in the :class:`~app.controller.Controller`; the views show what its signals carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PySide6.QtCore import QByteArray, Qt, QUrl
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow, QMenu, QMessageBox,
                               QProgressBar, QStyle, QTabWidget, QToolButton, QWidget)

from app.controller import Controller
from app.correcting import CorrectingMixin
from app.demo import DemoLauncher
from app.folder import IMAGE_FILTER, is_image
from app.settings import Settings
from app.tools.base import ToolSettings
from app.tools.interaction import CanvasTools
from app.views.heads_view import HeadsView
from app.views.pyramid_view import PyramidView
from app.views.segmentation_view import MODES, SegmentationView, hover_text
from app.widgets.image_list import ImageList
from app.widgets.legend import LegendWidget
from app.widgets.model_panel import ModelPanel
from app.widgets.retrain_panel import RetrainPanel
from app.widgets.tool_panel import ToolPanel
import core

MODEL_SUFFIXES = {".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar"}
MODEL_FILTER = "Checkpoints (*.safetensors *.pth *.pt *.bin *.ckpt *.tar);;All files (*)"
VIEWS = ("overlay", "pyramid", "heads")
ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"


class MainWindow(CorrectingMixin, QMainWindow):
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
        self.setCentralWidget(self.tabs)
        self.tool_settings = ToolSettings(self)
        self.canvas_tools = CanvasTools(self.seg.canvas, self.tool_settings, self)
        self.canvas_tools.prediction_source = self.editor.prediction

        # docks
        self.image_list = ImageList()
        self.legend = LegendWidget()
        self.model_panel = ModelPanel()
        self.images_dock = self._dock("Images", self.image_list, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.legend_dock = self._dock("Classes", self.legend, Qt.DockWidgetArea.RightDockWidgetArea)
        self.model_dock = self._dock("Model", self.model_panel, Qt.DockWidgetArea.RightDockWidgetArea)

        self._status_bar()
        self._actions()
        self._edit_actions()
        self.tool_panel = ToolPanel(self.tool_settings, self.act_tools,
                                    [self.act_undo, self.act_redo, self.act_accept_all, self.act_save_masks])
        self.retrain_panel = RetrainPanel(self.act_retrain, self.act_cancel_retrain)
        self.tools_dock = self._dock("Tools", self.tool_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.retrain_dock = self._dock("Retrain", self.retrain_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.model_dock, self.retrain_dock)
        self.model_dock.raise_()
        self._menus()
        self._toolbar()
        self._wire()
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
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _status_bar(self) -> None:
        sb = self.statusBar()
        self.info = QLabel("")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setMinimumWidth(200)
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
        self.train_progress = QProgressBar()
        self.train_progress.setFixedWidth(160)
        self.train_progress.setVisible(False)
        self.device_label = QLabel("")
        sb.addWidget(self.info, 1)
        sb.addPermanentWidget(self.train_label)
        sb.addPermanentWidget(self.train_progress)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_btn)
        sb.addPermanentWidget(self.device_label)

    def _action(self, text: str, slot: Any = None, shortcut: Any = None, tip: str = "",
                checkable: bool = False, icon: QStyle.StandardPixmap | None = None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            seqs = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            act.setShortcuts([QKeySequence(s) for s in seqs])
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(f"{tip} ({act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                           if shortcut is not None else tip)
        if icon is not None:
            act.setIcon(self.style().standardIcon(icon))
        act.setCheckable(checkable)
        if slot is not None:
            (act.toggled if checkable else act.triggered).connect(slot)
        self.addAction(act)  # shortcuts work even with the menu bar hidden
        return act

    def _actions(self) -> None:
        sp = QStyle.StandardPixmap
        a = self._action
        self.act_open_image = a("&Open Image...", self.open_image_dialog, QKeySequence.StandardKey.Open,
                                "Open an image", icon=sp.SP_FileIcon)
        self.act_open_folder = a("Open &Folder or Project...", self.open_folder_dialog, "Ctrl+Shift+O",
                                 "Open a folder of images or a project", icon=sp.SP_DirOpenIcon)
        self.act_open_model = a("Open &Model...", self.open_model_dialog, "Ctrl+M",
                                "Open a checkpoint (ours, torchvision, semseg, CSAIL encoder + decoder, mmseg)",
                                icon=sp.SP_DriveHDIcon)
        self.act_demo = a("Open &Demo Project", self.open_demo, "Ctrl+D", "Open the built-in demo project")
        self.act_new_project = a("&New Project...", self.new_project_dialog, "Ctrl+N",
                                 "Make a project (images/, masks/, model history) of the open folder's images or "
                                 "of chosen images, with the model's classes, to correct masks in")
        self.act_screenshot = a("Save &Screenshot...", self.save_screenshot_dialog, "Ctrl+Shift+S",
                                "Save the window as a PNG image")
        self.act_quit = a("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit PSPNet Studio")

        self.act_views = []
        for i, name in enumerate(("&Segmentation", "&Pyramid Levels", "Main vs &Aux Head")):
            self.act_views.append(a(name, lambda _=False, i=i: self.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}",
                                    f"Show the {name.replace('&', '').lower()} view"))
        self.mode_group = QActionGroup(self)
        self.act_modes = {}
        for i, (key, text) in enumerate(MODES.items()):
            act = a(text, None, f"Alt+{i + 1}", f"Overlay: {text.lower()}", checkable=True)
            act.triggered.connect(lambda _=False, k=key: self.seg.set_mode(k))
            self.mode_group.addAction(act)
            self.act_modes[key] = act
        self.act_modes["labels"].setChecked(True)
        self.act_overlay = a("Show &Overlay", self.seg.set_overlay_visible, "O", "Show or hide the overlay",
                             checkable=True)
        self.act_overlay.setChecked(True)
        self.act_more_opaque = a("More Opaque", lambda: self._nudge_opacity(0.1), "Ctrl+]", "Overlay opacity up")
        self.act_less_opaque = a("More Transparent", lambda: self._nudge_opacity(-0.1), "Ctrl+[",
                                 "Overlay opacity down")
        self.act_zoom_in = a("Zoom &In", lambda: self._canvas().zoom(1.25), QKeySequence.StandardKey.ZoomIn,
                             "Zoom in")
        self.act_zoom_out = a("Zoom O&ut", lambda: self._canvas().zoom(0.8), QKeySequence.StandardKey.ZoomOut,
                              "Zoom out")
        self.act_fit = a("&Fit to Window", lambda: self._canvas().fit(), "Ctrl+0", "Fit the image to the view")

        self.act_next = a("&Next Image", lambda: self.controller.step_image(1), ["PgDown", "Ctrl+Right"],
                          "Open the next image of the list", icon=sp.SP_ArrowForward)
        self.act_prev = a("&Previous Image", lambda: self.controller.step_image(-1), ["PgUp", "Ctrl+Left"],
                          "Open the previous image of the list", icon=sp.SP_ArrowBack)
        self.act_predict = a("P&redict Again", self._repredict, "F5", "Run the model on the image again",
                             icon=sp.SP_BrowserReload)
        self.act_cancel = a("&Cancel", self.controller.cancel, "Esc", "Cancel the running prediction",
                            icon=sp.SP_BrowserStop)
        self.act_all_levels = a("All Pyramid &Levels On", lambda: self.controller.set_disabled_levels(()),
                                "Ctrl+L", "Switch every pyramid level back on")
        self.act_train_demo = a("&Train Demo Model", self.train_demo_model, None,
                                "Train the demo model again on the demo project, in the background")
        self.act_shortcuts = a("&Keyboard Shortcuts", self.show_shortcuts, "F1", "List the keyboard shortcuts")
        self.act_about = a("&About PSPNet Studio", self.show_about)

    def _menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([self.act_open_image, self.act_open_folder, self.act_open_model, self.act_new_project])
        self.recent_menus = {}
        for kind, title in (("images", "Recent &Images"), ("folders", "Recent F&olders"), ("models", "Recent Mo&dels")):
            sub = m.addMenu(title)
            sub.aboutToShow.connect(lambda k=kind, s=sub: self._fill_recent(k, s))
            self.recent_menus[kind] = sub
        m.addSeparator()
        m.addAction(self.act_demo)
        m.addAction(self.act_screenshot)
        m.addSeparator()
        m.addAction(self.act_quit)

        m = mb.addMenu("&Edit")
        m.addActions([self.act_undo, self.act_redo])
        m.addSeparator()
        m.addActions(list(self.act_tools.values()))
        m.addSeparator()
        classes = m.addMenu("&Class")
        classes.addActions(self.act_classes)
        m.addActions([self.act_brush_smaller, self.act_brush_larger, self.act_preserve])
        m.addSeparator()
        m.addActions([self.act_accept_all, self.act_save_masks])

        m = mb.addMenu("&View")
        m.addActions(self.act_views)
        m.addSeparator()
        m.addActions(list(self.act_modes.values()))
        m.addSeparator()
        m.addActions([self.act_overlay, self.act_show_mask, self.act_more_opaque, self.act_less_opaque])
        m.addSeparator()
        m.addActions([self.act_zoom_in, self.act_zoom_out, self.act_fit])
        m.addSeparator()
        panels = m.addMenu("&Panels")
        for dock in (self.images_dock, self.tools_dock, self.legend_dock, self.model_dock, self.retrain_dock):
            panels.addAction(dock.toggleViewAction())

        m = mb.addMenu("&Image")
        m.addActions([self.act_prev, self.act_next, self.act_predict, self.act_cancel])
        m.addSeparator()
        m.addActions([self.act_next_region, self.act_rank])

        m = mb.addMenu("&Model")
        m.addAction(self.act_open_model)
        self.device_menu = m.addMenu("&Device")
        self.device_group = QActionGroup(self)
        for d in core.available_devices():
            act = QAction(core.device_name(d), self, checkable=True)
            act.setData(d)
            act.triggered.connect(lambda _=False, dev=d: self.controller.set_device(dev))
            self.device_group.addAction(act)
            self.device_menu.addAction(act)
        m.addAction(self.act_all_levels)
        m.addSeparator()
        m.addActions([self.act_retrain, self.act_cancel_retrain])
        m.addSeparator()
        m.addAction(self.act_train_demo)

        m = mb.addMenu("&Help")
        m.addActions([self.act_shortcuts, self.act_about])

    def _toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addActions([self.act_open_image, self.act_open_folder, self.act_open_model])
        tb.addSeparator()
        tb.addActions([self.act_prev, self.act_next, self.act_predict, self.act_cancel])
        tb.addSeparator()
        tb.addActions([self.act_undo, self.act_redo, self.act_next_region, self.act_retrain])

    def _wire(self) -> None:
        c = self.controller
        c.message.connect(self.show_message)
        c.error.connect(self.show_error)
        c.modelLoading.connect(self.model_panel.set_loading)
        c.modelChanged.connect(self._model_changed)
        c.deviceChanged.connect(self._device_changed)
        c.classesChanged.connect(self._classes_changed)
        c.folderChanged.connect(self.image_list.set_folder)
        c.folderChanged.connect(lambda f: self.settings.add_recent("folders", str(f.root)))
        c.entryChanged.connect(self.image_list.update_entry)
        c.imageChanged.connect(self._image_changed)
        c.predictionStarted.connect(self._prediction_started)
        c.predictionProgress.connect(self._prediction_progress)
        c.outcomeReady.connect(self._outcome_ready)
        c.pyramidReady.connect(self.pyramid.set_summary)
        c.levelsChanged.connect(self.pyramid.set_disabled)
        self.image_list.activated.connect(c.open_index)
        self.legend.hiddenChanged.connect(self._hidden_changed)
        self.legend.classActivated.connect(lambda cid: (self.seg.set_mode("class", cid),
                                                        self.tabs.setCurrentWidget(self.seg)))
        self.model_panel.deviceRequested.connect(c.set_device)
        self.model_panel.openRequested.connect(self.open_model_dialog)
        self.pyramid.levelToggled.connect(c.set_level_enabled)
        self.pyramid.allOnRequested.connect(lambda: c.set_disabled_levels(()))
        self.seg.hovered.connect(self._hovered)
        self.seg.modeChanged.connect(lambda m: self.act_modes[m].setChecked(True))
        self.seg.show_box.toggled.connect(self.act_overlay.setChecked)
        self.cancel_btn.clicked.connect(c.cancel)
        self.tabs.currentChanged.connect(lambda _: self._pyramid_shown())
        self._wire_editing()

    # ------------------------------------------------------------------------------------------
    # settings
    def _restore(self) -> None:
        geo = self.settings.value("window/geometry")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self.seg.set_opacity(float(self.settings.value("view/opacity", 0.6)))
        tab = int(self.settings.value("view/tab", 0))
        self.tabs.setCurrentIndex(max(0, min(tab, self.tabs.count() - 1)))

    def save_settings(self) -> None:
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.set("window/state", self.saveState())
        self.settings.set("view/opacity", self.seg.opacity.value() / 100)
        self.settings.set("view/tab", self.tabs.currentIndex())
        self.settings.sync()

    def _fill_recent(self, kind: str, menu: QMenu) -> None:
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

    def open_folder(self, path: str | Path) -> None:
        self.controller.open_folder(path)

    def open_model(self, paths: Sequence[str | Path] | str | Path) -> None:
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        self.settings.add_recent("models", "\n".join(str(Path(p).resolve()) for p in paths))
        self.controller.open_model(paths)

    def open_demo(self, with_model: bool | None = None) -> DemoLauncher:
        if self.demo is None:
            self.demo = DemoLauncher(self.controller, parent=self)
            self.demo.trainingStarted.connect(self._training_started)
            self.demo.trainingProgress.connect(self._training_progress)
            self.demo.trainingFinished.connect(self._training_finished)
            self.demo.failed.connect(self.show_error)
            self.demo.failed.connect(lambda _: self._training_finished(""))
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
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._start_dir("images"), IMAGE_FILTER)
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

    def dragEnterEvent(self, ev) -> None:  # noqa: N802
        if ev.mimeData().hasUrls() and self._local_paths(ev.mimeData().urls()):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev) -> None:  # noqa: N802
        self.dragEnterEvent(ev)

    def dropEvent(self, ev) -> None:  # noqa: N802
        paths = self._local_paths(ev.mimeData().urls())
        if not paths:
            ev.ignore()
            return
        ev.acceptProposedAction()
        self.open_paths(paths)

    def open_paths(self, paths: Sequence[Path]) -> None:
        """What a drop does: checkpoints become the model, a folder the image list, an image is opened."""
        models = [p for p in paths if p.suffix.lower() in MODEL_SUFFIXES]
        images = [p for p in paths if p.is_file() and is_image(p)]
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
    # signal handlers
    def _canvas(self):
        w = self.tabs.currentWidget()
        if w is self.pyramid:
            return self.pyramid.result
        if w is self.heads:
            return self.heads.main
        return self.seg.canvas

    def _nudge_opacity(self, delta: float) -> None:
        self.seg.set_opacity(self.seg.opacity.value() / 100 + delta)

    def _repredict(self) -> None:
        self.controller.repredict(use_cache=False)

    def _model_changed(self, loaded: Any) -> None:
        self.model_panel.set_model(loaded)
        self.pyramid.set_bins(tuple(loaded.model.bins) if loaded is not None else ())
        self.pyramid.set_disabled(self.controller.disabled_levels)

    def _device_changed(self, device: str) -> None:
        if self.persist:
            self.settings.set("model/device", device)
        self.model_panel.set_device(device)
        self.device_label.setText(core.device_name(device))
        for act in self.device_group.actions():
            act.setChecked(act.data() == device)

    def _classes_changed(self, classes: Any) -> None:
        self.legend.set_classes(classes)
        self.tool_panel.set_classes(classes)
        for v in (self.seg, self.pyramid, self.heads):
            v.set_classes(classes)
        if self.controller.outcome is not None:
            self.legend.set_shares(self.controller.outcome.shares)

    def _hidden_changed(self, hidden: set[int]) -> None:
        for v in (self.seg, self.pyramid, self.heads):
            v.set_hidden_classes(hidden)

    def _image_changed(self, data: Any) -> None:
        for v in (self.seg, self.pyramid, self.heads):
            v.set_image(data.image)
        if self.editor.mask is not None:  # an image edited before: its mask was ready before the photo
            self._mask_changed(self.editor.mask)
        self.legend.set_shares(None)
        self.image_list.set_current(self.controller.current_index())
        self.setWindowTitle(f"{data.path.name}[*] - PSPNet Studio")
        self.setWindowModified(self.editor.dirty)

    def _prediction_started(self) -> None:
        # busy until the first window is done (a single pass reports only its end)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Predicting ...")
        self.progress.setVisible(True)
        self.cancel_btn.setVisible(True)

    def _prediction_progress(self, value: float) -> None:
        if value < 0 or value >= 1.0:
            self.progress.setVisible(False)
            self.cancel_btn.setVisible(False)
        elif value > 0:
            self.progress.setRange(0, 100)
            self.progress.setFormat("Predicting %p %")
            self.progress.setValue(int(100 * value))

    def _outcome_ready(self, outcome: Any) -> None:
        for v in (self.seg, self.pyramid, self.heads):
            v.set_outcome(outcome)
        self.legend.set_shares(outcome.shares)
        self._pyramid_shown()

    def _pyramid_shown(self) -> None:
        if self.tabs.currentWidget() is self.pyramid:
            self.controller.prepare_levels()

    def _hovered(self, px: Any) -> None:
        if px is None:
            self.info.setText(self._message)
            return
        self.info.setText(hover_text(self.controller.outcome, self.controller.classes, *px))

    def show_message(self, text: str) -> None:
        self._message = text
        self.info.setStyleSheet("")
        self.info.setText(text)

    def show_error(self, text: str) -> None:
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

    def _training_progress(self, rec: Any) -> None:
        self.train_progress.setValue(rec.step)
        self.train_progress.setFormat(f"step %v/%m, loss {rec.loss:.2f}")
        self.train_label.setText(f"Training demo model, ETA {rec.eta_s:.0f} s")

    def _training_finished(self, message: str) -> None:
        self.train_label.setVisible(False)
        self.train_progress.setVisible(False)
        if message:
            self.show_message(message)

    def show_shortcuts(self) -> None:
        rows = []
        for act in self.actions():
            seq = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if seq:
                rows.append(f"<tr><td><b>{seq}</b></td><td>{act.text().replace('&', '')}</td></tr>")
        QMessageBox.information(self, "Keyboard shortcuts", "<table>" + "".join(rows) + "</table>")

    def show_about(self) -> None:
        QMessageBox.about(self, "About PSPNet Studio",
                          "<b>PSPNet Studio</b><br>Pyramid scene parsing (Zhao et al., CVPR 2017) you can look "
                          "inside: the segmentation, the pyramid pooling levels, and the main and auxiliary heads.")

    # ------------------------------------------------------------------------------------------
    def closeEvent(self, ev) -> None:  # noqa: N802
        if not self._unsaved_handled():
            ev.ignore()
            return
        if self.persist:
            self.save_settings()
        self.show_message("Stopping background work ...")
        QApplication.processEvents()
        self.controller.shutdown()
        super().closeEvent(ev)
