"""The mask being corrected: which ``core.LabelMask`` is edited, undo/redo, autosave, recovery.

The :class:`Editor` follows the controller: when a project is opened it offers to recover the
edits a crash left in the per-stroke journals; when an image of the project is shown it loads
(in a worker) that image's mask through ``core.Project.load_mask``, which journals every
stroke to disk; a mask that cannot be parsed leaves the image read-only, with the reason.

Masks are saved by a worker (``Project.save_mask``: atomic, a consistent snapshot, safe while
painting goes on) 1.5 s after the last edit, when another image is shown and when the window
closes. The masks touched in this session are kept (with their undo history) so that going
back to an image brings its history back; the oldest saved ones are let go beyond
``MAX_OPEN_MASKS``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

import core
from app.workers import TaskRunner

log = logging.getLogger(__name__)

AUTOSAVE_MS = 1500
MAX_OPEN_MASKS = 16


def load_mask_job(project: Any, name: str, *, cancel: Any) -> Generator[float, None, Any]:
    yield 0.0
    return project.load_mask(name)


def create_project_job(root: Path, classes: Any, images: list[Path], *, cancel: Any) -> Generator[float, None, Path]:
    """A new project folder holding copies of ``images`` (each is checked first; nothing is
    copied when one cannot be read)."""
    yield 0.0
    project = core.Project.create(root, classes)
    if images:
        project.add_images(images)
    return project.root


def save_mask_job(project: Any, name: str, mask: Any, *, cancel: Any) -> Generator[float, None, tuple[str, int]]:
    """Save even when cancelled: a queued save is never dropped (it is quick and it is the user's work)."""
    yield 0.0
    project.save_mask(name, mask)
    return name, mask.saved_revision


class Editor(QObject):
    maskChanged = Signal(object)  # the current image's core.LabelMask, or None (read-only / none)
    regionChanged = Signal(object)  # core.Region of the current mask that changed
    committed = Signal()  # an undo step was completed on the current mask
    historyChanged = Signal()  # undo / redo / dirty state of the current mask changed
    dirtyChanged = Signal(bool)  # whether any mask has unsaved changes
    readOnlyChanged = Signal(str)  # why the current image cannot be edited ("" when it can)
    saved = Signal(str)  # image name
    message = Signal(str)
    error = Signal(str)

    def __init__(self, controller: Any, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.saver = TaskRunner("masks", self)  # loads and saves, one at a time
        self.project: Any = None
        self.name: str | None = None  # the current image's name in the project
        self.mask: Any = None  # its LabelMask (None while loading or when read-only)
        self.reason = "no project open: masks are corrected in a project folder"
        self.masks: OrderedDict[str, Any] = OrderedDict()  # open masks, most recent last
        self._saving: dict[str, Any] = {}  # name -> Task
        self._load_gen = 0
        self._was_dirty = False
        self.recovery_handler: Callable[[list[str]], bool] | None = None  # True: recover; default recover
        self.last_recovered: list[str] = []
        self.autosave = QTimer(self)
        self.autosave.setSingleShot(True)
        self.autosave.setInterval(AUTOSAVE_MS)
        self.autosave.timeout.connect(self.save_dirty)
        controller.folderChanged.connect(self._folder_changed)
        controller.imageChanged.connect(self._image_changed)

    # ------------------------------------------------------------------------------------------
    # state
    @property
    def editable(self) -> bool:
        return self.mask is not None

    @property
    def dirty(self) -> bool:
        """Whether any open mask has unsaved changes."""
        return any(m.dirty for m in self.masks.values())

    def dirty_names(self) -> list[str]:
        return [n for n, m in self.masks.items() if m.dirty]

    def prediction(self) -> np.ndarray | None:
        """The labels of the prediction shown for the current image (for "accept")."""
        outcome = self.controller.outcome
        if outcome is None or self.mask is None or outcome.path is None or outcome.path.stem != self.name:
            return None
        labels = outcome.prediction.labels
        return labels if labels.shape == self.mask.shape else None

    def _set_read_only(self, reason: str) -> None:
        self.mask = None
        self.reason = reason
        self.maskChanged.emit(None)
        self.readOnlyChanged.emit(reason)
        self.historyChanged.emit()

    def _emit_dirty(self) -> None:
        d = self.dirty
        if d != self._was_dirty:
            self._was_dirty = d
            self.dirtyChanged.emit(d)

    # ------------------------------------------------------------------------------------------
    # projects
    def _folder_changed(self, folder: Any) -> None:
        project = getattr(folder, "project", None)
        if project is self.project:
            return
        self._leave_project()
        self.project = project
        self.name = None
        if project is None:
            self._set_read_only("not a project: open a project folder (images/, masks/) to correct masks")
            return
        self._offer_recovery()

    def _leave_project(self) -> None:
        if self.project is None:
            return
        self.autosave.stop()
        self.saver.wait(30000)
        failures = self.save_all_now()
        for name in list(self.masks):
            if name not in failures:
                self.project.close_mask(name)
        self.masks.clear()
        self.mask = None
        self._emit_dirty()

    def _offer_recovery(self) -> None:
        """Edits a crash left in journals: recover them (they become unsaved edits) or set them aside."""
        try:
            names = self.project.recoverable()
        except core.StudioError as exc:
            self.error.emit(f"Could not check for unsaved edits: {exc}")
            return
        self.last_recovered = []
        if not names:
            return
        recover = True if self.recovery_handler is None else bool(self.recovery_handler(names))
        if not recover:
            for name in names:
                self.project.discard_journal(name)
            self.message.emit(f"Set aside the unsaved edits of {len(names)} image(s) from an earlier session")
            return
        done, notes = [], []
        for name in names:
            try:
                result = self.project.recover(name)
            except core.StudioError as exc:
                self.error.emit(f"Could not recover the edits of {name}: {exc}")
                continue
            self._keep(name, result.mask)
            done.append(name)
            if result.note:
                notes.append(result.note)
        self.last_recovered = done
        if done:
            self.message.emit(f"Recovered unsaved edits of {len(done)} image(s): {', '.join(done[:5])}"
                              + (f" ({'; '.join(notes)})" if notes else ""))
            self._emit_dirty()
            self.autosave.start()

    def create_project(self, root: str | Path, classes: Any, images: list[Path]) -> Any:
        """Make a project of ``images`` in the empty or new folder ``root`` (in the background),
        then open it."""
        if classes is None:
            self.error.emit("A new project needs a class table: open a model first")
            return None
        task = self.saver.submit("new project", create_project_job, Path(root), classes, [Path(p) for p in images])
        task.succeeded.connect(lambda path: (self.message.emit(f"New project {path} with {len(images)} images"),
                                             self.controller.open_folder(path)))
        task.failed.connect(lambda exc: self.error.emit(f"Could not create the project: {exc}"))
        return task

    # ------------------------------------------------------------------------------------------
    # images
    def name_of(self, path: Path) -> str | None:
        """The project's name for an image path, or None when it is not one of the project's images."""
        if self.project is None:
            return None
        try:
            if Path(path).resolve().parent != self.project.images_dir.resolve():
                return None
        except OSError:
            return None
        return Path(path).stem

    def _image_changed(self, data: Any) -> None:
        name = self.name_of(data.path)
        if name == self.name and self.mask is not None:
            return
        if self.name is not None and self.mask is not None and self.mask.dirty:
            self._save(self.name, self.mask)  # leaving an image saves it
        self.name = name
        self._load_gen += 1
        if name is None:
            reason = ("not a project: open a project folder (images/, masks/) to correct masks"
                      if self.project is None else f"{data.path.name} is not one of the project's images")
            self._set_read_only(reason)
            return
        if name in self.masks:
            self.masks.move_to_end(name)
            self._show(name, self.masks[name])
            return
        self._set_read_only("loading the mask ...")
        gen = self._load_gen
        task = self.saver.submit("load mask", load_mask_job, self.project, name)
        task.succeeded.connect(lambda mask: self._loaded(name, mask, gen))
        task.failed.connect(lambda exc: self._load_failed(name, exc, gen))

    def _loaded(self, name: str, mask: Any, gen: int) -> None:
        self._keep(name, mask)
        if gen == self._load_gen:
            self._show(name, mask)

    def _load_failed(self, name: str, exc: BaseException, gen: int) -> None:
        if gen != self._load_gen:
            return
        reason = getattr(exc, "reason", None) or str(exc)
        self._set_read_only(f"read-only: {reason}")
        self.error.emit(f"{name}: opened read-only: {exc}")
        self._mark_entry(name, "unreadable mask")

    def _keep(self, name: str, mask: Any) -> None:
        if name not in self.masks:
            mask.on_change.connect(lambda region, m=mask: self._changed(m, region))
            mask.on_commit.connect(lambda edit, m=mask: self._committed(m))
        self.masks[name] = mask
        self.masks.move_to_end(name)
        self._evict()

    def _evict(self) -> None:
        while len(self.masks) > MAX_OPEN_MASKS:
            victim = next((n for n, m in self.masks.items() if not m.dirty and n != self.name
                           and n not in self._saving), None)
            if victim is None:
                return
            del self.masks[victim]
            self.project.close_mask(victim)

    def _show(self, name: str, mask: Any) -> None:
        self.mask = mask
        self.reason = ""
        self.maskChanged.emit(mask)
        self.readOnlyChanged.emit("")
        self.historyChanged.emit()

    def _changed(self, mask: Any, region: Any) -> None:
        if mask is self.mask:
            self.regionChanged.emit(region)

    def _committed(self, mask: Any) -> None:
        self.autosave.start()  # restarts: 1.5 s after the last edit
        if mask is self.mask:
            self.committed.emit()
            self.historyChanged.emit()
        self._emit_dirty()

    # ------------------------------------------------------------------------------------------
    # edits that are not mouse strokes
    def undo(self) -> None:
        if self.mask is not None and self.mask.can_undo:
            self.mask.undo()
            self.historyChanged.emit()

    def redo(self) -> None:
        if self.mask is not None and self.mask.can_redo:
            self.mask.redo()
            self.historyChanged.emit()

    def accept_everywhere(self, preserve: bool = False) -> bool:
        """Accept the prediction over the whole image (with ``preserve``: only unlabelled pixels)."""
        if self.mask is None:
            self.message.emit(f"This image cannot be edited: {self.reason}")
            return False
        pred = self.prediction()
        if pred is None:
            self.message.emit("No prediction for this image yet")
            return False
        edit = self.mask.accept_prediction(pred, None, preserve_labels=preserve)
        if edit is None:
            self.message.emit("The mask already holds the prediction there")
        return edit is not None

    # ------------------------------------------------------------------------------------------
    # saving
    def _save(self, name: str, mask: Any) -> Any:
        running = self._saving.get(name)
        if running is not None and not running.is_finished:
            self.autosave.start()  # the running save may miss the newest edits: look again later
            return running
        task = self.saver.submit("save mask", save_mask_job, self.project, name, mask)
        self._saving[name] = task
        task.succeeded.connect(lambda result: self._saved(result[0]))
        task.failed.connect(lambda exc: self._save_failed(name, exc))
        task.done.connect(lambda: self._saving.pop(name, None) if self._saving.get(name) is task else None)
        return task

    def save_dirty(self) -> list[Any]:
        """Start a save of every mask with unsaved changes (the autosave)."""
        if self.project is None:
            return []
        return [self._save(n, m) for n, m in list(self.masks.items()) if m.dirty]

    def _saved(self, name: str) -> None:
        self._mark_entry(name, "mask")
        self.saved.emit(name)
        if name == self.name:
            self.historyChanged.emit()
        self._emit_dirty()

    def _save_failed(self, name: str, exc: BaseException) -> None:
        self.error.emit(f"Could not save the mask of {name} (the edits stay in its journal): {exc}")
        self._emit_dirty()

    def save_all_now(self) -> dict[str, str]:
        """Save every unsaved mask on this thread (closing); returns {name: error} for failures."""
        failures: dict[str, str] = {}
        if self.project is None:
            return failures
        self.saver.wait(60000)
        for name, mask in list(self.masks.items()):
            if not mask.dirty:
                continue
            try:
                self.project.save_mask(name, mask)
            except (core.StudioError, OSError) as exc:
                failures[name] = str(exc)
            else:
                self._saved(name)
        self._emit_dirty()
        return failures

    def discard_unsaved(self) -> list[str]:
        """Give up the unsaved edits (closing without saving): their journals are set aside."""
        names = self.dirty_names()
        self.autosave.stop()
        for name in names:
            self.project.close_mask(name)
            self.project.discard_journal(name)
            self.masks.pop(name, None)
        self._emit_dirty()
        return names

    def _mark_entry(self, name: str, state: str) -> None:
        folder = self.controller.folder
        if folder is None or self.project is None or getattr(folder, "project", None) is not self.project:
            return
        for i, e in enumerate(folder.entries):
            if e.path.stem == name and e.path.parent.resolve() == self.project.images_dir.resolve():
                if e.mask_state != state:
                    e.mask_state = state
                    e.mask_path = self.project.mask_path(name) if state == "mask" else None
                    self.controller.entryChanged.emit(i)
                return

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Stop autosaving; let queued saves finish (they are the user's work), then stop the thread."""
        self.autosave.stop()
        self.saver.wait(timeout_ms)
        return self.saver.shutdown(timeout_ms)
