"""Every command of the window as a QAction, with its shortcut and tip, and the menus and the
toolbar built from them. The window holds one :class:`Actions` as ``window.act``; tests and
scripts trigger ``window.act.retrain`` as a click on the menu does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenuBar, QStyle, QToolBar

import core
from app.views.segmentation_view import MODES

if TYPE_CHECKING:  # pragma: no cover
    from app.main_window import MainWindow


class Actions:
    """The window's actions (each also added to the window, so shortcuts work with the menu bar hidden)."""

    def __init__(self, w: "MainWindow"):
        self.w = w
        sp = QStyle.StandardPixmap
        a = self._action
        c, ed, rk, rt = w.controller, w.editor, w.ranker, w.retrainer
        # --- file
        self.open_image = a("&Open Image...", w.open_image_dialog, QKeySequence.StandardKey.Open, "Open an image",
                            icon=sp.SP_FileIcon)
        self.open_folder = a("Open &Folder or Project...", w.open_folder_dialog, "Ctrl+Shift+O",
                             "Open a folder of images or a project", icon=sp.SP_DirOpenIcon)
        self.open_model = a("Open &Model...", w.open_model_dialog, "Ctrl+M",
                            "Open a checkpoint (ours, torchvision, semseg, CSAIL encoder + decoder, mmseg)",
                            icon=sp.SP_DriveHDIcon)
        self.demo = a("Open &Demo Project", w.open_demo, "Ctrl+D", "Open the built-in demo project")
        self.new_project = a("&New Project...", w.new_project_dialog, "Ctrl+N",
                             "Make a project (images/, masks/, model history) of the open folder's images or "
                             "of chosen images, with the model's classes, to correct masks in")
        self.edit_classes = a("Project &Classes...", lambda: w.project_ui.edit_classes_dialog(), None,
                              "Rename, recolour or add classes of the open project (every mask keeps its ids)")
        self.get_model = a("&Get a Pretrained Model...", lambda: w.project_ui.get_model_dialog(), "Ctrl+Shift+M",
                           "Download a PSPNet trained on real photos (ADE20K, Cityscapes, VOC) and use it")
        self.adapt_model = a("&Adapt Model to the Project's Classes", lambda: w.project_ui.adapt_model(), None,
                             "Rebuild the model's classifier for the project's class table (classes it knows by "
                             "name keep their training), then retrain it on your corrections")
        self.screenshot = a("Save &Screenshot...", w.save_screenshot_dialog, "Ctrl+Shift+S",
                            "Save the window as a PNG image")
        self.quit = a("&Quit", w.close, QKeySequence.StandardKey.Quit, "Quit PSPNet Studio")
        # --- view
        self.views = [a(name, lambda _=False, i=i: w.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}",
                        f"Show the {name.replace('&', '').lower()} view")
                      for i, name in enumerate(("&Segmentation", "&Pyramid Levels", "Main vs &Aux Head"))]
        self.mode_group = QActionGroup(w)
        self.modes: dict[str, QAction] = {}
        for i, (key, text) in enumerate(MODES.items()):
            act = a(text, None, f"Alt+{i + 1}", f"Overlay: {text.lower()}", checkable=True)
            act.triggered.connect(lambda _=False, k=key: w.seg.set_mode(k))
            self.mode_group.addAction(act)
            self.modes[key] = act
        self.modes["labels"].setChecked(True)
        self.overlay = a("Show &Overlay", w.seg.set_overlay_visible, "O", "Show or hide the overlay", checkable=True)
        self.overlay.setChecked(True)
        self.more_opaque = a("More Opaque", lambda: w.nudge_opacity(0.1), "Ctrl+]", "Overlay opacity up")
        self.less_opaque = a("More Transparent", lambda: w.nudge_opacity(-0.1), "Ctrl+[", "Overlay opacity down")
        self.zoom_in = a("Zoom &In", lambda: w.current_canvas().zoom(1.25), QKeySequence.StandardKey.ZoomIn, "Zoom in")
        self.zoom_out = a("Zoom O&ut", lambda: w.current_canvas().zoom(0.8), QKeySequence.StandardKey.ZoomOut,
                          "Zoom out")
        self.fit = a("&Fit to Window", lambda: w.current_canvas().fit(), "Ctrl+0", "Fit the image to the view")
        # --- image and model
        self.next = a("&Next Image", lambda: c.step_image(1), ["PgDown", "Ctrl+Right"],
                      "Open the next image of the list", icon=sp.SP_ArrowForward)
        self.prev = a("&Previous Image", lambda: c.step_image(-1), ["PgUp", "Ctrl+Left"],
                      "Open the previous image of the list", icon=sp.SP_ArrowBack)
        self.predict = a("P&redict Again", lambda: c.repredict(use_cache=False), "F5", "Run the model on the image again",
                         icon=sp.SP_BrowserReload)
        self.cancel = a("&Cancel", c.cancel, "Esc", "Cancel the running prediction", icon=sp.SP_BrowserStop)
        self.all_levels = a("All Pyramid &Levels On", lambda: c.set_disabled_levels(()), "Ctrl+L",
                            "Switch every pyramid level back on")
        self.train_demo = a("&Train Demo Model", w.train_demo_model, None,
                            "Train the demo model again on the demo project, in the background")
        self.shortcuts = a("&Keyboard Shortcuts", w.show_shortcuts, "F1", "List the keyboard shortcuts")
        self.about = a("&About PSPNet Studio", w.show_about)
        self.device_group = QActionGroup(w)
        self.devices: list[QAction] = []
        for d in core.available_devices():
            act = QAction(core.device_name(d), w, checkable=True)
            act.setData(d)
            act.triggered.connect(lambda _=False, dev=d: c.set_device(dev))
            self.device_group.addAction(act)
            self.devices.append(act)
        # --- mask editing
        self.tool_group = QActionGroup(w)
        self.tools: dict[str, QAction] = {}
        for name, tool in w.canvas_tools.tools.items():
            act = a(tool.title, None, tool.shortcut, tool.tip, checkable=True)
            act.setIconText(tool.short)
            act.triggered.connect(lambda _=False, n=name: w.canvas_tools.set_tool(n))
            self.tool_group.addAction(act)
            self.tools[name] = act
        self.tools["pan"].setChecked(True)
        self.classes = [a(f"Class {k}", lambda _=False, k=k: w.choose_class(k), str(k), f"Paint class {k}")
                        for k in range(10)]
        ts = w.tool_settings
        self.brush_smaller = a("Smaller Brush", lambda: ts.grow(1 / 1.25), "[", "Brush smaller")
        self.brush_larger = a("Larger Brush", lambda: ts.grow(1.25), "]", "Brush larger")
        self.preserve = a("&Preserve Existing Labels", lambda v: ts.set_option("preserve", v), "Ctrl+P",
                          "Edits change only pixels without a label", checkable=True)
        self.undo = a("&Undo", ed.undo, QKeySequence.StandardKey.Undo, "Undo the last edit")
        self.redo = a("&Redo", ed.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo the last undone edit")
        self.accept_all = a("Accept Prediction &Everywhere", lambda: ed.accept_everywhere(ts.preserve),
                            "Ctrl+Shift+A", "Copy the prediction into the mask over the whole image (with Preserve: "
                            "only where nothing is labelled)")
        self.save_masks = a("&Save Masks", ed.save_dirty, QKeySequence.StandardKey.Save,
                            "Save the corrected masks now (they are also saved 1.5 s after each edit)",
                            icon=sp.SP_DialogSaveButton)
        self.accept_all.setIconText("Accept all")
        self.save_masks.setIconText("Save")
        self.show_mask = a("Show &Mask", w.seg.set_mask_visible, "M", "Show or hide the corrected mask", checkable=True)
        self.show_mask.setChecked(True)
        # --- what to correct next, retraining
        self.next_region = a("Next &Uncertain Region", rk.next_region, "N",
                             "Outline the most uncertain unlabelled region left in the project and zoom to it "
                             "(opening its image), and say why it was chosen")
        self.rank = a("&Rank Images by Uncertainty", rk.rank_all, "Ctrl+U",
                      "Predict and score every image: main/aux disagreement and entropy where unlabelled")
        self.retrain = a("&Retrain on Corrections", w.retrain, "Ctrl+R",
                         "Fine-tune the model on the project's corrected masks, in the background",
                         icon=sp.SP_MediaPlay)
        self.cancel_retrain = a("Cancel Retrain", rt.cancel, "Ctrl+Shift+R",
                                "Stop retraining; the model in use stays as it is", icon=sp.SP_MediaStop)
        self.cancel_retrain.setEnabled(False)

    def _action(self, text: str, slot: Any = None, shortcut: Any = None, tip: str = "",
                checkable: bool = False, icon: QStyle.StandardPixmap | None = None) -> QAction:
        w = self.w
        act = QAction(text, w)
        if shortcut is not None:
            seqs = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            act.setShortcuts([QKeySequence(s) for s in seqs])
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(f"{tip} ({act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                           if shortcut is not None else tip)
        if icon is not None:
            act.setIcon(w.style().standardIcon(icon))
        act.setCheckable(checkable)
        if slot is not None:
            (act.toggled if checkable else act.triggered).connect(slot)
        w.addAction(act)  # shortcuts work even with the menu bar hidden
        return act

    def edit_buttons(self) -> list[QAction]:
        """The tool panel's row of buttons."""
        return [self.undo, self.redo, self.accept_all, self.save_masks]

    def build_menus(self, mb: QMenuBar) -> None:
        w = self.w
        m = mb.addMenu("&File")
        m.addActions([self.open_image, self.open_folder, self.open_model, self.new_project, self.edit_classes])
        w.recent_menus = {}
        for kind, title in (("images", "Recent &Images"), ("folders", "Recent F&olders"), ("models", "Recent Mo&dels")):
            sub = m.addMenu(title)
            sub.aboutToShow.connect(lambda k=kind, s=sub: w.fill_recent(k, s))
            w.recent_menus[kind] = sub
        m.addSeparator()
        m.addAction(self.demo)
        m.addAction(self.screenshot)
        m.addSeparator()
        m.addAction(self.quit)

        m = mb.addMenu("&Edit")
        m.addActions([self.undo, self.redo])
        m.addSeparator()
        m.addActions(list(self.tools.values()))
        m.addSeparator()
        classes = m.addMenu("&Class")
        classes.addActions(self.classes)
        m.addActions([self.brush_smaller, self.brush_larger, self.preserve])
        m.addSeparator()
        m.addActions([self.accept_all, self.save_masks])

        m = mb.addMenu("&View")
        m.addActions(self.views)
        m.addSeparator()
        m.addActions(list(self.modes.values()))
        m.addSeparator()
        m.addActions([self.overlay, self.show_mask, self.more_opaque, self.less_opaque])
        m.addSeparator()
        m.addActions([self.zoom_in, self.zoom_out, self.fit])
        m.addSeparator()
        panels = m.addMenu("&Panels")
        for dock in (w.images_dock, w.tools_dock, w.legend_dock, w.model_dock, w.retrain_dock):
            panels.addAction(dock.toggleViewAction())

        m = mb.addMenu("&Image")
        m.addActions([self.prev, self.next, self.predict, self.cancel])
        m.addSeparator()
        m.addActions([self.next_region, self.rank])

        m = mb.addMenu("&Model")
        m.addAction(self.open_model)
        m.addAction(self.get_model)
        m.addAction(self.adapt_model)
        w.device_menu = m.addMenu("&Device")
        w.device_menu.addActions(self.devices)
        m.addAction(self.all_levels)
        m.addSeparator()
        m.addActions([self.retrain, self.cancel_retrain])
        m.addSeparator()
        m.addAction(self.train_demo)

        m = mb.addMenu("&Help")
        m.addActions([self.shortcuts, self.about])

    def build_toolbar(self, tb: QToolBar) -> None:
        tb.addActions([self.open_image, self.open_folder, self.open_model])
        tb.addSeparator()
        tb.addActions([self.prev, self.next, self.predict, self.cancel])
        tb.addSeparator()
        tb.addActions([self.undo, self.redo, self.next_region, self.retrain])
