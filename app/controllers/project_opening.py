"""Opening a folder as a project: its class table and the model its history has in use.

:meth:`ProjectOpening.open` is what File > Open Folder, the recent folders, ``gui --project``
and the demo do:

- a project (or a data set folder in our layout) opens, and the model its history marks as in
  use is loaded (``use_model``), unless it is in use already; when that file is missing or does
  not load, ``inUseProblem`` carries what to offer instead (the other models of the history, and
  e.g. the bundled demo model for the demo);
- a project whose classes.json is missing or damaged, or a folder of images/ without one, waits
  for a class table: ``classesNeeded`` (the window asks), then :meth:`open_with_classes` (the
  folder becomes a project with that table, masks kept as they are) or :meth:`open_as_images`;
- a plain folder of images opens as plain images, and ``opened`` says so.

``opened(kind, text)`` says what happened in words for a note that stays ("project", "made",
"images"). :meth:`adapt_model` rebuilds the model in use for the project's classes
(core.adapt_model_job, recorded in the project's history); :meth:`update_classes` changes the
project's table (classes appended, every mask stays valid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from PySide6.QtCore import QObject, Signal

import core
from app.image_folder import ImageFolder
from app.workers import Chain, Task

if TYPE_CHECKING:  # pragma: no cover
    from app.controllers.controller import Controller


@dataclass
class ClassesNeeded:
    """A folder that opens once a class table is chosen."""

    root: Path
    error: core.ClassTableError
    is_project: bool  # it has a project.json (an existing project whose table is lost or damaged)
    use_model: bool = True
    alternatives: list[Path] = field(default_factory=list)
    damaged: bool = False  # the file is there but unreadable (else it is missing)

    def __post_init__(self) -> None:
        self.damaged = self.error.path.exists()


@dataclass
class InUseProblem:
    """The model a project's history has in use cannot be loaded."""

    project: core.Project
    entry: core.CheckpointEntry
    reason: str
    others: list[core.CheckpointEntry]  # the history's other models (newest first)
    alternatives: list[Path]  # models outside the history to offer (the bundled demo model)

    @property
    def text(self) -> str:
        note = f" ({self.entry.note})" if self.entry.note else ""
        return (f"The model this project had in use, model {self.entry.id}{note}, cannot be loaded: {self.reason}. "
                "Choose another one to use.")


@dataclass
class OpenResult:
    state: str  # "project", "images", "classes" (waiting for a table), "failed"
    folder: ImageFolder | None = None
    model: bool = False  # the history's model is in use, being loaded, or its problem is being shown


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


class ProjectOpening(QObject):
    classesNeeded = Signal(object)  # ClassesNeeded
    inUseProblem = Signal(object)  # InUseProblem
    opened = Signal(str, str)  # kind ("made", "images", "plain"), what happened in words
    adapted = Signal(object)  # core.AdaptedModel (in use)
    message = Signal(str)
    error = Signal(str)

    def __init__(self, controller: "Controller", parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.adapt_task: Chain | None = None
        self.last_problem: InUseProblem | None = None
        self._opening = 0  # inside open(): the folder's model is handled there
        self.auto_root: Path | None = None  # the project whose model was taken up as one of its images opened
        controller.folderChanged.connect(self._folder_changed)

    def _open_folder(self, root: Path) -> ImageFolder | None:
        self._opening += 1
        self.auto_root = None
        try:
            return self.controller.open_folder(root)
        finally:
            self._opening -= 1

    def _folder_changed(self, folder: ImageFolder) -> None:
        """A project opened another way (an image of it opened, dropped, from the recent list):
        its model too."""
        if self._opening or folder.project is None:
            return
        self.auto_root = folder.root if self.load_in_use(folder.project) else None

    # ------------------------------------------------------------------------------------------
    # opening
    def open(self, root: str | Path, *, use_model: bool = True, alternatives: Sequence[str | Path] = ()
             ) -> OpenResult:
        root = Path(root)
        alts = [Path(a) for a in alternatives if a is not None]
        if root.is_dir() and core.is_project_folder(root):
            try:  # a look first (no lock, nothing written): is the class table there?
                core.Project.open(root, read_only=True)
            except core.ClassTableError as exc:
                self.classesNeeded.emit(ClassesNeeded(root, exc, (root / "project.json").is_file(), use_model, alts))
                return OpenResult("classes")
            except core.StudioError:
                pass  # the controller reports it as it opens the folder
        folder = self._open_folder(root)
        if folder is None:
            return OpenResult("failed")
        if folder.project is None:
            if folder.entries:
                self.opened.emit("plain", f"{root} opened as plain images ({len(folder.entries)}): it is not a "
                                          "project, so their masks cannot be corrected here. Make a project of them "
                                          "to paint corrections and retrain.")
            return OpenResult("images", folder)
        model = self.load_in_use(folder.project, alts) if use_model else False
        return OpenResult("project", folder, model)

    def open_with_classes(self, request: ClassesNeeded, table: core.ClassTable, title: str = "") -> OpenResult:
        """Open the folder of ``request`` with ``table`` as its class table (written as its
        classes.json; a damaged one is kept beside it); a data set folder becomes a project."""
        root = request.root
        try:
            project = core.Project.open(root, classes=table)
        except core.StudioError as exc:
            self.error.emit(f"Could not open {root} with the class table chosen: {exc}")
            return OpenResult("failed")
        try:
            made = not project.has_project_file
            if made:
                project.save()  # project.json: from now on it is a project
            folder = self._open_folder(root)  # the same open project (counted)
        except core.StudioError as exc:
            self.error.emit(f"Could not make {root} a project: {exc}")
            return OpenResult("failed")
        finally:
            project.close()
        what = f"{title} ({len(table)} classes)" if title else f"a class table of {len(table)} classes"
        if made:
            text = (f"{root} is a project now, with {what}: corrected masks go to its masks/ folder, models "
                    "to checkpoints/.")
        else:
            kept = " (the damaged file is kept beside it, as classes.json.damaged)" if request.damaged else ""
            text = f"{root} opened with {what} as its classes.json{kept}; the masks are as they were."
        self.opened.emit("made", text)
        model = self.load_in_use(folder.project, request.alternatives) \
            if request.use_model and folder is not None and folder.project is not None else False
        return OpenResult("project" if folder is not None else "failed", folder, model)

    def open_as_images(self, request: ClassesNeeded) -> OpenResult:
        """Open the images of ``request``'s folder as plain images (no project: nothing written)."""
        images = request.root / "images"
        target = images if images.is_dir() else request.root
        folder = self._open_folder(target)
        if folder is None:
            return OpenResult("failed")
        self.opened.emit("images", f"{target} opened as plain images: {request.root} is not opened as a project "
                                   "(it has no class table), so masks cannot be corrected. Open the folder again and "
                                   "choose a class table to make it a project.")
        return OpenResult("images", folder)

    # ------------------------------------------------------------------------------------------
    # the model in use
    def load_in_use(self, project: core.Project, alternatives: Sequence[Path] = ()) -> bool:
        """Load the model the project's history marks as in use (nothing when it is in use
        already). False when the history has none (the caller chooses a model)."""
        entry = project.current_checkpoint
        if entry is None:
            return False
        loaded = self.controller.loaded
        if loaded is not None and len(loaded.sources or []) == 1 and _same_file(loaded.sources[0], entry.path):
            return True
        alts = list(alternatives)
        if not entry.path.is_file():
            self._problem(project, entry, f"its file {entry.path} is missing", alts)
            return True
        task = self.controller.open_model(entry.path)
        task.succeeded.connect(lambda _: self.message.emit(
            f"Model {entry.id} in use, as the project's history says" + (f" ({entry.note})" if entry.note else "")))
        task.failed.connect(lambda exc: self._problem(project, entry, str(exc), alts))
        return True

    def _problem(self, project: core.Project, entry: core.CheckpointEntry, reason: str,
                 alternatives: Sequence[Path]) -> None:
        others = [e for e in reversed(project.checkpoints()) if e.id != entry.id]
        problem = InUseProblem(project, entry, reason, others, [Path(a) for a in alternatives])
        self.last_problem = problem
        self.inUseProblem.emit(problem)

    def use_instead(self, problem: InUseProblem, choice: core.CheckpointEntry | Path) -> Task | None:
        """Answer an :class:`InUseProblem`: a model of the history (it becomes the current one,
        after checking it loads) or another file."""
        if isinstance(choice, core.CheckpointEntry):
            task = self.controller.retrainer.restore(choice.id)
            if task is not None:
                task.failed.connect(lambda exc: self._problem(problem.project, choice, str(exc),
                                                              problem.alternatives))
            return task
        return self.controller.open_model(choice)

    # ------------------------------------------------------------------------------------------
    # class tables
    def adapt_model(self) -> Chain | None:
        """Rebuild the model in use for the open project's classes (in the background: copy on
        the inference runner, core.adapt_model_job, recorded in the project's history as its
        current model), then use it."""
        c = self.controller
        project = c.editor.project
        if project is None or c.loaded is None:
            self.error.emit("Open a project and a model first: the model is adapted to the project's classes")
            return None
        if not core.classes_differ(c.loaded.classes, project.classes):
            self.message.emit(f"The model already predicts the project's {len(project.classes)} classes")
            return None
        if c.retrainer.running:
            self.error.emit("Wait for the retrain to finish (or cancel it) before adapting the model")
            return None
        if self.adapt_task is not None and not self.adapt_task.is_finished:
            return self.adapt_task
        state: dict[str, core.AdaptedModel] = {}
        self.message.emit(f"Adapting the model to the project's {len(project.classes)} classes ...")

        def adapted(out: core.AdaptedModel) -> Task:
            state["out"] = out
            return c.set_model(out.loaded)

        chain = Chain("adapt model", [lambda _: c.models.copy(),
                                      lambda copy: c.background.submit("adapt model", core.adapt_model_job, copy,
                                                                       project),
                                      adapted])
        self.adapt_task = chain

        def done(_: object) -> None:
            out = state.pop("out")
            c.retrainer.historyChanged.emit()
            kept, n = len(out.kept), len(project.classes)
            self.message.emit(f"The model predicts the project's {n} classes now (model {out.entry.id if out.entry else ''}: "
                              f"{kept} kept their training, {n - kept} are new): paint corrections and Retrain")
            self.adapted.emit(out)

        chain.succeeded.connect(done)
        chain.failed.connect(lambda exc: self.error.emit(f"Could not adapt the model to the project's classes: {exc}"))
        chain.start()
        return chain

    def update_classes(self, table: core.ClassTable) -> bool:
        """Give the open project a new class table (its classes kept at their ids, new ones
        appended): written atomically, then shown."""
        c = self.controller
        folder = c.folder
        project = folder.project if folder is not None else None
        if project is None:
            self.error.emit("Open a project first: its class table is edited")
            return False
        try:
            project.update_classes(table)
        except core.StudioError as exc:
            self.error.emit(f"Could not change the class table: {exc}")
            return False
        folder.classes = project.classes
        if c.loaded is None:
            c.use_classes(project.classes)
        c.class_guard.refresh()
        self.message.emit(f"The project has {len(table)} classes now; its masks keep their ids")
        return True
