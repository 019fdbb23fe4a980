"""The main window's part for correcting masks: tool, class and retrain actions, their wiring,
the prompts (recover a crashed session's edits, unsaved masks on close), the new-project dialog.

A mixin of :class:`app.main_window.MainWindow` (it uses the window's ``_action``, docks and
status line); the state lives in the controller's Editor, Retrainer and Ranker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QStyle

import core
from app.folder import IMAGE_FILTER
from app.retrain import agreement_text


class CorrectingMixin:
    """Actions and handlers for mask editing, "what to correct next" and retraining."""

    def _edit_actions(self) -> None:
        """Mask editing, "what next" and retraining."""
        a = self._action
        sp = QStyle.StandardPixmap
        self.tool_group = QActionGroup(self)
        self.act_tools: dict[str, QAction] = {}
        for name, tool in self.canvas_tools.tools.items():
            act = a(tool.title, None, tool.shortcut, tool.tip, checkable=True)
            act.setIconText(tool.short)
            act.triggered.connect(lambda _=False, n=name: self.canvas_tools.set_tool(n))
            self.tool_group.addAction(act)
            self.act_tools[name] = act
        self.act_tools["pan"].setChecked(True)
        self.act_classes = [a(f"Class {k}", lambda _=False, k=k: self.choose_class(k), str(k),
                              f"Paint class {k}") for k in range(10)]
        self.act_brush_smaller = a("Smaller Brush", lambda: self.tool_settings.grow(1 / 1.25), "[", "Brush smaller")
        self.act_brush_larger = a("Larger Brush", lambda: self.tool_settings.grow(1.25), "]", "Brush larger")
        self.act_preserve = a("&Preserve Existing Labels", lambda v: self.tool_settings.set_option("preserve", v),
                              "Ctrl+P", "Edits change only pixels without a label", checkable=True)
        self.act_undo = a("&Undo", self.editor.undo, QKeySequence.StandardKey.Undo, "Undo the last edit")
        self.act_redo = a("&Redo", self.editor.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo the last undone edit")
        self.act_accept_all = a("Accept Prediction &Everywhere",
                                lambda: self.editor.accept_everywhere(self.tool_settings.preserve), "Ctrl+Shift+A",
                                "Copy the prediction into the mask over the whole image (with Preserve: only "
                                "where nothing is labelled)")
        self.act_save_masks = a("&Save Masks", self.editor.save_dirty, QKeySequence.StandardKey.Save,
                                "Save the corrected masks now (they are also saved 1.5 s after each edit)",
                                icon=sp.SP_DialogSaveButton)
        self.act_accept_all.setIconText("Accept all")
        self.act_save_masks.setIconText("Save")
        self.act_show_mask = a("Show &Mask", self.seg.set_mask_visible, "M", "Show or hide the corrected mask",
                               checkable=True)
        self.act_show_mask.setChecked(True)
        self.seg.mask_box.toggled.connect(self.act_show_mask.setChecked)
        self.act_next_region = a("Next &Uncertain Region", self.ranker.next_region, "N",
                                 "Zoom to the most uncertain region that has no label yet")
        self.act_rank = a("&Rank Images by Uncertainty", self.ranker.rank_all, "Ctrl+U",
                          "Predict and score every image: main/aux disagreement and entropy where unlabelled")
        self.act_retrain = a("&Retrain on Corrections", self.retrain, "Ctrl+R",
                             "Fine-tune the model on the project's corrected masks, in the background",
                             icon=sp.SP_MediaPlay)
        self.act_cancel_retrain = a("Cancel Retrain", self.retrainer.cancel, "Ctrl+Shift+R",
                                    "Stop retraining; the model in use stays as it is", icon=sp.SP_MediaStop)
        self.act_cancel_retrain.setEnabled(False)

    def _wire_editing(self) -> None:
        ed, rt, rk, tools = self.editor, self.retrainer, self.ranker, self.canvas_tools
        ed.maskChanged.connect(self._mask_changed)
        ed.regionChanged.connect(self.seg.update_mask_region)
        ed.historyChanged.connect(self._history_changed)
        ed.dirtyChanged.connect(self._dirty_changed)
        ed.readOnlyChanged.connect(self._history_changed)
        ed.message.connect(self.show_message)
        ed.error.connect(self.show_error)
        ed.recovery_handler = self.ask_recovery
        tools.notice.connect(self.show_message)
        tools.toolChanged.connect(lambda n: self.act_tools[n].setChecked(True))
        tools.toolChanged.connect(lambda n: n != "pan" and self.tabs.setCurrentWidget(self.seg))
        self.tool_settings.changed.connect(lambda: self.act_preserve.setChecked(self.tool_settings.preserve))
        self.tool_settings.labelChanged.connect(self._label_changed)
        rt.started.connect(self._retrain_started)
        rt.progress.connect(self.retrain_panel.add_record)
        rt.status.connect(self.retrain_panel.show_status)
        rt.finished.connect(self._retrain_finished)
        rt.cancelled.connect(lambda: self._retrain_done("Cancelled: the previous model stays in use"))
        rt.failed.connect(self._retrain_failed)
        rt.comparisonReady.connect(self._comparison_ready)
        rt.historyChanged.connect(self._refresh_history)
        self.retrain_panel.restoreRequested.connect(rt.restore)
        self.retrain_panel.imageRequested.connect(self._open_project_image)
        rk.scored.connect(self.image_list.update_entry)
        rk.rankingFinished.connect(self.image_list.resort)
        rk.rankingProgress.connect(lambda done, n: self.show_message(f"Ranking images by uncertainty: {done}/{n}"))
        rk.regionRequested.connect(self.zoom_to_region)
        rk.message.connect(self.show_message)

    # --- editing
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

    def _mask_changed(self, mask: Any) -> None:
        self.seg.set_mask(mask.data if mask is not None else None)
        self.canvas_tools.set_mask(mask, self.editor.reason)
        self._history_changed()

    def _history_changed(self, *_: Any) -> None:
        ed = self.editor
        m = ed.mask
        self.act_undo.setEnabled(m is not None and m.can_undo)
        self.act_redo.setEnabled(m is not None and m.can_redo)
        self.act_accept_all.setEnabled(m is not None)
        if m is None:
            self.tool_panel.set_state(ed.reason or "no mask", error=ed.reason.startswith("read-only"))
            self.canvas_tools.set_mask(None, ed.reason)
            return
        state = "unsaved changes (autosave in 1.5 s)" if m.dirty else "saved"
        self.tool_panel.set_state(f"{ed.name}: {state}; {m.undo_count} undo / {m.redo_count} redo steps")

    def _dirty_changed(self, dirty: bool) -> None:
        self.setWindowModified(dirty)
        self._history_changed()

    def zoom_to_region(self, region: Any) -> None:
        y0, y1, x0, x1 = region.region if hasattr(region, "region") else region
        self.tabs.setCurrentWidget(self.seg)
        self.seg.canvas.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.3)

    def _open_project_image(self, name: str) -> None:
        project = self.editor.project
        if project is not None:
            try:
                self.controller.open_image(project.image_path(name))
            except core.StudioError as exc:
                self.show_error(str(exc))

    # --- prompts (tests replace ``ask``)
    def ask(self, title: str, text: str, buttons: QMessageBox.StandardButton,
            default: QMessageBox.StandardButton) -> QMessageBox.StandardButton:
        return QMessageBox.question(self, title, text, buttons, default)

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
        """Closing: ask about unsaved masks. False = stay open."""
        ed = self.editor
        if not ed.dirty:
            return True
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
        failures = ed.save_all_now()
        if failures:
            self.show_error("Could not save: " + "; ".join(f"{n}: {e}" for n, e in failures.items()))
            return False
        return True

    # --- retraining
    def retrain(self) -> None:
        self.retrain_dock.show()
        self.retrain_dock.raise_()
        self.retrainer.start(self.retrain_panel.options())

    def _retrain_started(self, steps: int) -> None:
        self.retrain_panel.started(steps)
        self.act_retrain.setEnabled(False)
        self.act_cancel_retrain.setEnabled(True)
        self.show_message(f"Retraining on the corrections ({steps} steps) ...")

    def _retrain_done(self, text: str, error: bool = False, short: str = "") -> None:
        self.act_retrain.setEnabled(True)
        self.act_cancel_retrain.setEnabled(False)
        self.retrain_panel.finished(text, error, short or ("failed" if error else "cancelled"))
        (self.show_error if error else self.show_message)(text)

    def _retrain_failed(self, text: str) -> None:
        self._retrain_done(text, error=True)

    def _retrain_finished(self, result: Any) -> None:
        m = result.entry.metrics.get("val_miou")
        val = f", validation mIoU {m:.3f}" if isinstance(m, (int, float)) else ""
        self._retrain_done(f"Model {result.entry.id} trained ({result.steps_done} steps, {result.seconds:.0f} s{val}) "
                           "and in use; comparing with the previous model ...", short="done")

    def _comparison_ready(self, rows: list) -> None:
        self.retrain_panel.set_comparison(rows)
        self.show_message(agreement_text(rows))

    def _refresh_history(self) -> None:
        self.retrain_panel.set_history(self.retrainer.history(), self.retrainer.current_id())

    def new_project_dialog(self) -> None:
        classes = self.controller.current_classes()
        if classes is None:
            self.show_error("Open a model first: a new project takes the model's class table")
            return
        folder = self.controller.folder
        images = [e.path for e in folder.entries] if folder is not None and not folder.is_project else []
        if not images:
            paths, _ = QFileDialog.getOpenFileNames(self, "Images for the new project", self._start_dir("images"),
                                                    IMAGE_FILTER)
            images = [Path(p) for p in paths]
            if not images:
                return
        root = QFileDialog.getExistingDirectory(self, f"New project of {len(images)} images: an empty folder",
                                                self._start_dir("folders"))
        if root:
            self.editor.create_project(root, classes, images)
