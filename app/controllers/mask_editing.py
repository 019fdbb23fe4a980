"""Mask editing: which ``core.LabelMask`` is edited, undo/redo, autosave, crash recovery.

The :class:`MaskEditor` follows the controller. When a project is opened it offers to recover
the edits a crash left in the per-stroke journals. When an image of the project is opened, the
controller asks it for that image's mask (:meth:`MaskEditor.request`): the mask is loaded in a
worker through ``core.Project.load_mask`` (which journals every stroke) while the photo is
read, and both reach the views in one signal; a mask that cannot be parsed leaves the image
read-only, with the reason. In a read-only project (another program writes it, or the folder
cannot be written: app/controllers/project_access.py) no mask is loaded for editing: every image
opens read-only with the project's reason, its saved mask shown (:meth:`MaskEditor.view_labels`),
and nothing is written.

Masks are saved by jobs on the masks runner (``core.save_mask_job``: atomic, a consistent
snapshot, safe while painting goes on) 1.5 s after the last edit, when another image is shown,
when the project changes and before a retrain (:meth:`MaskEditor.save_all`). Nothing here
waits on the GUI thread. The masks touched in this session are kept (with their undo history),
so going back to an image brings its history back; the oldest saved ones are let go beyond
``MAX_OPEN_MASKS``. A project left is closed after its last save (its lock goes with it).

Write failures are told truthfully: a failed save names the file and says where the edits are
now (in the crash journal too, or in memory only when the journal fails as well: core's
``JournalStatus``); :attr:`MaskEditor.journals` (app/controllers/journal_watch.py) reports the
journals that stop working, and working again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

import core
from app.controllers.journal_watch import JournalWatch
from app.image_folder import ImageFolder
from app.workers import Task, TaskRunner

if TYPE_CHECKING:  # pragma: no cover
    from app.controllers.controller import Controller

log = logging.getLogger(__name__)

AUTOSAVE_MS = 1500
MAX_OPEN_MASKS = 16
NOT_A_PROJECT = "not a project: open a project folder (images/, masks/) to correct masks"
READ_ONLY_PROJECT = "read-only project"  # the start of the reason of every image of a read-only project


def where_the_edits_are(status: core.JournalStatus | None) -> str:
    """What a failed save leaves, told truthfully from the mask's crash journal at that moment."""
    if status is None:
        return "the edits are in memory only (this mask has no crash journal)"
    if not status.ok:
        why = status.reason.rsplit(": ", 1)[-1] if status.reason else "refused"  # the path is named here already
        return f"the edits are in memory only: its crash journal {status.path.name} cannot be written either ({why})"
    return f"the edits are kept in memory and in its crash journal {status.path.name}"


class MaskRequest(QObject):
    """The editable mask of one image, on its way: ``ready(self)`` once ``mask`` (or ``reason``) is known."""

    ready = Signal(object)

    def __init__(self, name: str | None, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self.mask: core.LabelMask | None = None
        self.reason = ""
        self._start: Callable[[], None] | None = None
        self.done = False

    def resolve(self, mask: core.LabelMask | None, reason: str = "") -> None:
        self.mask, self.reason, self.done = mask, reason, True
        self.ready.emit(self)

    def start(self) -> None:
        """Begin (connect to ``ready`` first): resolves at once when nothing needs loading."""
        if self._start is not None:
            start, self._start = self._start, None
            start()


class MaskEditor(QObject):
    regionChanged = Signal(object)  # core.Region of the current mask that changed
    committed = Signal()  # an undo step was completed on the current mask
    historyChanged = Signal()  # the current mask, its undo / redo / dirty state, or why it is read-only
    dirtyChanged = Signal(bool)  # whether any mask has unsaved changes
    saved = Signal(str)  # image name
    message = Signal(str)
    error = Signal(str)  # a status line (the window shows lasting problems through the signals below)
    problem = Signal(str, str)  # key, text: an error to show until closed (recovery, making a project)
    saveFailuresChanged = Signal(object)  # {image name: text} of the masks whose last save failed

    def __init__(self, controller: "Controller", parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.saver = TaskRunner("masks", self)  # loads and saves, one at a time
        self.project: core.Project | None = None
        self.name: str | None = None  # the shown image's name in the project
        self.mask: core.LabelMask | None = None  # its LabelMask (None while loading or when read-only)
        self.reason = "no project open: masks are corrected in a project folder"
        self.masks: OrderedDict[str, core.LabelMask] = OrderedDict()  # open masks, most recent last
        self._saving: dict[str, Task] = {}  # name -> its running save
        self._why: dict[str, str] = {}  # name -> why its last save failed
        self._loading: dict[str, Task] = {}  # name -> its running load
        self._was_dirty = False
        self.recovery_handler: Callable[[list[str]], bool] | None = None  # True: recover; default recover
        self.last_recovered: list[str] = []
        self.class_conflict = ""  # set by the ClassGuard: the model's classes are not the project's (no accepting)
        self.save_failures: dict[str, str] = {}  # name -> the last failed save's text (until one succeeds)
        self.journals = JournalWatch(self)  # the open project's crash journals that fail now
        self.journals.problemsChanged.connect(lambda _: self._refresh_save_failures())
        self.autosave = QTimer(self)
        self.autosave.setSingleShot(True)
        self.autosave.setInterval(AUTOSAVE_MS)
        self.autosave.timeout.connect(self.save_dirty)
        controller.folderChanged.connect(self._folder_changed)

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

    @property
    def folder(self) -> ImageFolder | None:
        return self.controller.folder

    @property
    def read_only_reason(self) -> str:
        """Why the open project cannot be changed here ("" when it can, or no project is open)."""
        if self.project is None or not self.project.read_only:
            return ""
        folder = self.folder
        reason = folder.read_only_reason if folder is not None and folder.project is self.project else ""
        return reason or self.project.read_only_reason

    def view_labels(self) -> np.ndarray | None:
        """The saved mask of the shown image of a read-only project (read with the photo), to show
        while it cannot be edited; None otherwise."""
        image = self.controller.image
        if self.mask is not None or image is None or not self.read_only_reason or self.name is None:
            return None
        return image.data.mask

    def name_of(self, path: Path) -> str | None:
        """The project's name for an image path, or None when it is not one of the project's images."""
        folder = self.folder
        return folder.project_name_of(path) if folder is not None and folder.project is self.project else None

    def prediction(self) -> np.ndarray | None:
        """The labels of the prediction shown for the current image (for "accept")."""
        outcome = self.controller.outcome
        if self.class_conflict:
            return None  # the model's ids are another table's: never into this project's masks
        if outcome is None or self.mask is None or outcome.path is None or outcome.path.stem != self.name:
            return None
        labels = outcome.prediction.labels
        return labels if labels.shape == self.mask.shape else None

    def _emit_dirty(self) -> None:
        d = self.dirty
        if d != self._was_dirty:
            self._was_dirty = d
            self.dirtyChanged.emit(d)

    # ------------------------------------------------------------------------------------------
    # projects
    def _folder_changed(self, folder: ImageFolder) -> None:
        project = folder.project
        if project is self.project:
            return
        self._leave_project()
        self.project = project
        self.name = None
        self.mask = None
        self.reason = NOT_A_PROJECT if project is None else ""
        self.journals.follow(project)
        if self.save_failures:
            self.save_failures = {}
            self.saveFailuresChanged.emit({})
        if project is not None and project.read_only:
            self._note_recoverable()
        elif project is not None:
            self._offer_recovery()
        self.historyChanged.emit()

    def _leave_project(self) -> None:
        """Save what is unsaved and let the old project forget its masks, in a job (queued before
        anything of the next project on the same runner)."""
        if self.project is None:
            return
        self.autosave.stop()
        project, masks = self.project, dict(self.masks)
        self.masks.clear()
        self.mask = None
        self.journals.stop()
        if masks:
            task = self.saver.submit("leave project", core.save_masks_job, project, masks, True)
            task.succeeded.connect(lambda out: self._report_failures(out, f"the project {project.name} (now closed)"))
        self.saver.submit("close project", core.close_project_job, project)  # after its last save: the lock goes
        self._emit_dirty()

    def _report_failures(self, out: core.SavedMasks, where: str) -> None:
        for name, why in out.failed.items():
            text = (f"Could not save the mask of {name} in {where}: {why}; "
                    f"{where_the_edits_are(out.journals.get(name))}")
            self.error.emit(text)
            self.problem.emit(f"save:{where}:{name}", text)

    def _note_recoverable(self) -> None:
        """A read-only project recovers nothing (that writes); say so when it has crash leftovers."""
        try:
            names = self.project.recoverable()
        except core.StudioError:
            return
        if names:
            self.message.emit(f"{len(names)} image(s) of this project have unsaved edits of an earlier session "
                              f"({', '.join(names[:5])}): open the project for writing to recover them")

    def _offer_recovery(self) -> None:
        """Edits a crash left in journals: recover them (they become unsaved edits) or set them aside."""
        try:
            names = self.project.recoverable()
        except core.StudioError as exc:
            self._problem("recovery", f"Could not check for unsaved edits: {exc}")
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
                self._problem(f"recovery:{name}", f"Could not recover the edits of {name}: {exc}")
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

    def create_project(self, root: str | Path, classes: core.ClassTable | None, images: list[Path]) -> Task | None:
        """Make a project of ``images`` in the empty or new folder ``root`` (in the background),
        then open it."""
        if classes is None:
            self.error.emit("A new project needs a class table: open a model first")
            return None
        task = self.saver.submit("new project", core.create_project_job, Path(root), classes,
                                 [Path(p) for p in images])
        task.succeeded.connect(lambda path: (self.message.emit(f"New project {path} with {len(images)} images"),
                                             self.controller.open_folder(path)))
        task.failed.connect(lambda exc: self._problem("new project", f"Could not create the project: {exc}"))
        return task

    def _problem(self, key: str, text: str) -> None:
        self.error.emit(text)
        self.problem.emit(key, text)

    # ------------------------------------------------------------------------------------------
    # the shown image's mask
    def request(self, path: Path) -> MaskRequest:
        """The editable mask of image ``path`` for the controller (which shows it with the photo).
        Leaving an image with unsaved edits saves them."""
        if self.name is not None and self.mask is not None and self.mask.dirty and self.name_of(path) != self.name:
            self._save(self.name, self.mask)  # leaving an image saves it
        name = self.name_of(path)
        req = MaskRequest(name, self)
        read_only = self.read_only_reason
        if name is None:
            reason = NOT_A_PROJECT if self.project is None else f"{Path(path).name} is not one of the project's images"
            req._start = lambda: req.resolve(None, reason)
        elif read_only:  # nothing is loaded for editing (that would journal): the saved mask is shown
            req._start = lambda: req.resolve(None, f"{READ_ONLY_PROJECT}: {read_only}")
        elif name in self.masks:
            mask = self.masks[name]
            req._start = lambda: req.resolve(mask)
        else:
            req._start = lambda: self._load(req)
        return req

    def _load(self, req: MaskRequest) -> None:
        name, project = req.name, self.project
        task = self._loading.get(name)
        if task is None or task.is_finished:
            task = self.saver.submit("load mask", core.load_mask_job, project, name)
            self._loading[name] = task
            task.done.connect(lambda: self._loading.pop(name, None) if self._loading.get(name) is task else None)

        def loaded(mask: core.LabelMask) -> None:
            if self.project is project:
                self._keep(name, mask)
            req.resolve(mask if self.project is project else None, "" if self.project is project else "closed")

        def failed(exc: BaseException) -> None:
            reason = getattr(exc, "reason", None) or str(exc)
            self.error.emit(f"{name}: opened read-only: {exc}")
            if isinstance(exc, core.UnreadableMaskError) and self.folder is not None and self.project is project:
                self.folder.set_mask_state(name, core.UNREADABLE)  # only a mask that is unreadable is marked so
            if isinstance(exc, core.ReadOnlyProjectError):
                reason = f"{READ_ONLY_PROJECT}: {exc.reason or reason}"
            else:
                reason = f"read-only: {reason}"
            req.resolve(None, reason)

        task.succeeded.connect(loaded)
        task.failed.connect(failed)

    def set_current(self, req: MaskRequest) -> None:
        """The controller shows this image now (called just before its ``imageChanged``)."""
        self.name, self.mask, self.reason = req.name, req.mask, req.reason
        if req.mask is not None and req.name in self.masks:
            self.masks.move_to_end(req.name)
        self.historyChanged.emit()

    def _keep(self, name: str, mask: core.LabelMask) -> None:
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

    def _changed(self, mask: core.LabelMask, region: core.Region) -> None:
        if mask is self.mask:
            self.regionChanged.emit(region)

    def _committed(self, mask: core.LabelMask) -> None:
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
        if self.class_conflict:
            self.message.emit("Not accepted: the model in use predicts another class table than the project's")
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
    # saving: jobs on the masks runner, never a wait on the GUI thread
    def _save(self, name: str, mask: core.LabelMask) -> Task:
        running = self._saving.get(name)
        if running is not None and not running.is_finished:
            self.autosave.start()  # the running save may miss the newest edits: look again later
            return running
        task = self.saver.submit("save mask", core.save_mask_job, self.project, name, mask)
        self._saving[name] = task
        task.succeeded.connect(lambda result: self._saved(result[0]))
        task.failed.connect(lambda exc: self._save_failed(name, exc))
        task.done.connect(lambda: self._saving.pop(name, None) if self._saving.get(name) is task else None)
        return task

    def save_dirty(self) -> list[Task]:
        """Start a save of every mask with unsaved changes (the autosave)."""
        if self.project is None:
            return []
        return [self._save(n, m) for n, m in list(self.masks.items()) if m.dirty]

    def save_all(self) -> Task | None:
        """One job that saves every unsaved mask, queued after the saves already running (a retrain
        and closing the window chain on it); its result is a ``core.SavedMasks``. None: nothing to save."""
        if self.project is None or not self.dirty:
            return None
        self.autosave.stop()
        dirty = {n: m for n, m in self.masks.items() if m.dirty}
        task = self.saver.submit("save masks", core.save_masks_job, self.project, dirty)

        def done(out: core.SavedMasks) -> None:
            for name in out.saved:
                self._saved(name)
            for name, why in out.failed.items():
                self._failed_save(name, why, out.journals.get(name))
            self._emit_dirty()

        task.succeeded.connect(done)
        return task

    def _saved(self, name: str) -> None:
        if self.folder is not None and self.folder.project is self.project:
            self.folder.set_mask_state(name, core.MASK)
        if self.save_failures.pop(name, None) is not None:
            self.saveFailuresChanged.emit(dict(self.save_failures))
        self.saved.emit(name)
        if name == self.name:
            self.historyChanged.emit()
        self._emit_dirty()

    def _save_failed(self, name: str, exc: BaseException) -> None:
        self._failed_save(name, str(exc), self.journals.status_of(name))
        self._emit_dirty()

    def _failed_save(self, name: str, why: str, journal: core.JournalStatus | None) -> None:
        self._why[name] = why
        text = self._save_failure_text(name, journal)
        self.save_failures[name] = text
        self.error.emit(text)
        self.saveFailuresChanged.emit(dict(self.save_failures))

    def _save_failure_text(self, name: str, journal: core.JournalStatus | None) -> str:
        return f"Could not save the mask of {name}: {self._why.get(name, '?')}; {where_the_edits_are(journal)}"

    def _refresh_save_failures(self) -> None:
        """A journal stopped or started working: what the failed saves say about the edits changes."""
        if not self.save_failures:
            return
        texts = {n: self._save_failure_text(n, self.journals.status_of(n)) for n in self.save_failures}
        if texts != self.save_failures:
            self.save_failures = texts
            self.saveFailuresChanged.emit(dict(texts))

    def discard_unsaved(self) -> list[str]:
        """Give up the unsaved edits (closing without saving): their journals are set aside."""
        names = self.dirty_names()
        self.autosave.stop()
        for name in names:
            self.project.close_mask(name)
            self.project.discard_journal(name)
            self.masks.pop(name, None)
        dropped = [n for n in names if self.save_failures.pop(n, None) is not None]  # their edits are gone
        if dropped:
            self.saveFailuresChanged.emit(dict(self.save_failures))
        self._emit_dirty()
        return names

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Stop autosaving; let queued saves finish (they are the user's work), close the project
        (its lock goes), then stop the thread."""
        self.autosave.stop()
        self.journals.stop()
        if self.project is not None and not self.project.closed:
            self.saver.submit("close project", core.close_project_job, self.project)
        self.saver.wait(timeout_ms)
        return self.saver.shutdown(timeout_ms)
