"""The window's side of models and projects' classes: the notes above the views (the window's
banners, app/widgets/message_banner.py), the model zoo
dialog, the class-table chooser (New Project, a project without a usable classes.json, a folder
of images/ without one), Project Classes, and the choice of another model when the one a
project's history has in use cannot be loaded.

The state and the jobs are the controllers' (:class:`~app.controllers.project_opening.ProjectOpening`,
:class:`~app.controllers.class_guard.ClassGuard`,
:class:`~app.controllers.model_fetch.ModelFetcher`); this module only asks and shows. The
questions are methods (``choose_classes``, ``choose_instead``) that tests replace, as they do
``window.ask``; with ``window.interactive`` False (the screenshot mode) nothing is asked and the
problem is reported as an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

import core
from app.controllers.class_guard import demo_model_note, is_demo_model
from app.controllers.model_fetch import ModelFetcher
from app.controllers.project_opening import ClassesNeeded, InUseProblem
from app.dialogs.class_table import Choice, ClassTableDialog, EditClassesDialog
from app.dialogs.model_in_use import ModelInUseDialog
from app.dialogs.model_zoo import ModelZooDialog
from app.widgets.message_banner import INFO, WARNING, BannerAction

if TYPE_CHECKING:  # pragma: no cover
    from app.main_window import MainWindow

#: the notes' keys
DEMO, CLASSES, FOLDER, ADAPTED = "demo-model", "classes", "folder", "adapted"


class ProjectUi(QObject):
    def __init__(self, window: "MainWindow"):
        super().__init__(window)
        self.w = window
        c = window.controller
        self.controller = c
        self.opening = c.opening
        self.guard = c.class_guard
        self.notices = window.banners  # the notes are banners (keys DEMO, CLASSES, FOLDER, ADAPTED)
        self.fetcher: ModelFetcher | None = None
        self.zoo_dialog: ModelZooDialog | None = None
        self._demo_dismissed: object = None  # the model for which the demo note was closed
        self.notices.closedByUser.connect(self._note_closed)
        self.opening.classesNeeded.connect(self._classes_needed)
        # a class table lost while a folder opened another way (a recent folder, an image of it): the chooser too
        c.access.classTableRequested.connect(lambda root: self.opening.open(root))
        self.opening.inUseProblem.connect(self._in_use_problem)
        self.opening.opened.connect(self._opened)
        self.opening.adapted.connect(self._adapted)
        self.opening.message.connect(window.show_message)
        self.opening.error.connect(window.show_error)
        self.guard.changed.connect(self._conflict)
        c.imageChanged.connect(self._image_shown)  # after the window's own handler: it runs first
        c.modelChanged.connect(lambda _: self._update_demo_note())

    # ------------------------------------------------------------------------------------------
    # notes
    def _note_closed(self, key: str) -> None:
        if key == DEMO:
            self._demo_dismissed = self.controller.loaded

    def _update_demo_note(self) -> None:
        text = demo_model_note(self.controller)
        if not text or self._demo_dismissed is self.controller.loaded or self.guard.conflict:  # one note at a time
            self.notices.dismiss(DEMO)
            return
        current = self.notices.banner(DEMO)
        if current is None or current.text != text:
            self.notices.show_message(DEMO, text, INFO, [BannerAction("Get a pretrained model...", self.get_model_dialog)])

    def _image_shown(self, shown: object) -> None:
        self._update_demo_note()
        if self.guard.conflict:  # the tools get no mask to paint in
            self.w.canvas_tools.set_mask(None, "the model's classes are not the project's (see the note above)")

    def _conflict(self, text: str) -> None:
        if not text:
            self.notices.dismiss(CLASSES)
            ed = self.w.editor
            self.w.canvas_tools.set_mask(ed.mask, ed.reason)
            self._update_demo_note()
            return
        self.notices.dismiss(ADAPTED)
        self.notices.dismiss(DEMO)  # this note offers the zoo too
        self.notices.show_message(CLASSES, text, WARNING,
                                  [BannerAction("Adapt this model to the project's classes", self.adapt_model),
                                   BannerAction("Get a pretrained model...", self.get_model_dialog),
                                   BannerAction("Open model...", self.w.open_model_dialog)], closable=False)
        self.w.canvas_tools.set_mask(None, "the model's classes are not the project's (see the note above)")

    def _opened(self, kind: str, text: str) -> None:
        actions = [BannerAction("Make a project of them...", self.new_project_dialog)] \
            if kind in ("plain", "images") else []
        if kind == "images":
            actions = [BannerAction("Choose a class table...", self._reopen_with_classes)]
        self.notices.show_message(FOLDER, text, INFO, actions)
        self.w.show_message(text)

    def _adapted(self, out: core.AdaptedModel) -> None:
        project = self.w.editor.project
        labelled = sum(e.state == core.MASK for e in project.images()) if project is not None else 0
        kept, n = len(out.kept), len(out.loaded.classes)
        text = (f"The model now predicts the project's {n} classes: {kept} kept their training, {n - kept} start "
                "untrained. Paint corrections (the new classes too) and Retrain to teach it.")
        actions = [BannerAction("Retrain now", self.w.retrain)] if labelled else []
        self.notices.show_message(ADAPTED, text, INFO, actions)

    # ------------------------------------------------------------------------------------------
    # the model zoo
    def get_model_dialog(self) -> ModelZooDialog | None:
        """Model > Get a Pretrained Model... (modeless; one at a time)."""
        if self.fetcher is None:
            self.fetcher = ModelFetcher(self)
        if self.zoo_dialog is not None and self.zoo_dialog.isVisible():
            self.zoo_dialog.raise_()
            self.zoo_dialog.activateWindow()
            return self.zoo_dialog
        folder = self.controller.folder
        project_classes = folder.project.classes if folder is not None and folder.project is not None else None
        try:
            dlg = ModelZooDialog(self.w.open_model, self.fetcher, self.w, project_classes=project_classes,
                                 start_dir=str(Path.home()))
        except core.StudioError as exc:  # the zoo table itself is unreadable
            self.w.show_error(str(exc))
            return None
        dlg.modelInUse.connect(lambda paths: self.w.show_message(
            f"{' + '.join(Path(p).name for p in paths)} is the model in use (from the model zoo)"))
        self.zoo_dialog = dlg
        dlg.show()
        return dlg

    def shutdown(self) -> None:
        if self.fetcher is not None:
            self.fetcher.shutdown()

    # ------------------------------------------------------------------------------------------
    # class tables
    def choose_classes(self, request: ClassesNeeded) -> tuple[Choice | None, bool]:
        """Ask which class table a folder's masks use: (choice, open as plain images)."""
        root = request.root
        if request.is_project:
            what = "damaged" if request.damaged else "missing"
            intro = (f"The class table of the project {root} (classes.json) is {what}:\n{request.error}\n\n"
                     "Choose the table its masks were painted with: the masks are kept as they are"
                     + (", and the damaged file is kept beside it (classes.json.damaged)." if request.damaged else "."))
        else:
            intro = (f"{root} holds images/ but no class table (classes.json), so it is not a project yet. Choose "
                     "the classes its masks will use to make it a project (project.json, classes.json and masks/ "
                     "are written there), or open its images as plain images (nothing is written).")
        dlg = ClassTableDialog(self.w, title=f"Classes of {root.name}", intro=intro,
                               model_classes=self.controller.loaded.classes if self.controller.loaded else None,
                               allow_plain=True, mask_ids=self._mask_ids(root), start_dir=str(root))
        dlg.exec()
        return dlg.choice, dlg.plain

    def _mask_ids(self, root: Path):
        """For the chooser: read the ids the masks use in the background, then tell it."""
        if not (root / "masks").is_dir():
            return None

        def start(callback) -> None:
            task = self.controller.io.submit("mask ids", core.highest_mask_id, root)
            task.succeeded.connect(callback)
        return start

    def _classes_needed(self, request: ClassesNeeded) -> None:
        """A folder waits for its class table: a banner that stays says so (and offers the chooser
        again); in the window the chooser is asked at once."""
        root = request.root
        if not getattr(self.w, "interactive", True):
            self.controller.error.emit(f"Could not open {root}: {request.error}")
            return
        what = "project" if request.is_project else "folder"
        self.notices.show_message(
            f"open folder:{root}", f"The {what} {root} is not open: it needs a class table ({request.error}). "
                                   "Choose the table its masks use (they are kept as they are), or open its images "
                                   "as plain images.", WARNING,
            [BannerAction("Choose Class Table...", lambda: self.opening.open(root, use_model=request.use_model,
                                                                              alternatives=request.alternatives))])
        choice, plain = self.choose_classes(request)
        if plain:
            self.opening.open_as_images(request)
        elif choice is not None:
            self.opening.open_with_classes(request, choice.table, choice.title)

    def _reopen_with_classes(self) -> None:
        folder = self.controller.folder
        if folder is None:
            return
        root = folder.root.parent if folder.root.name == "images" else folder.root
        self.opening.open(root)

    def new_project_choice(self) -> Choice | None:
        """New Project's first question: the class table (tests replace this)."""
        loaded = self.controller.loaded
        dlg = ClassTableDialog(self.w, title="New project: its classes",
                               model_classes=loaded.classes if loaded is not None else None,
                               start_dir=self.w._start_dir("folders"),
                               default="ade20k" if is_demo_model(loaded) else None)  # photos: not the demo's classes
        dlg.exec()
        return dlg.choice

    def new_project_dialog(self) -> None:
        """File > New Project...: the class table, the images, an empty folder; then it opens."""
        choice = self.new_project_choice()
        if choice is None:
            return
        w = self.w
        folder = self.controller.folder
        images = [e.path for e in folder.entries] if folder is not None and not folder.is_project else []
        if not images:
            paths, _ = QFileDialog.getOpenFileNames(w, "Images for the new project", w._start_dir("images"),
                                                    core.image_file_filter())
            images = [Path(p) for p in paths]
            if not images:
                return
        root = QFileDialog.getExistingDirectory(w, f"New project of {len(images)} images: an empty folder",
                                                w._start_dir("folders"))
        if root:
            self.notices.dismiss(FOLDER)
            w.editor.create_project(root, choice.table, images)

    def edit_classes_dialog(self) -> None:
        """File > Project Classes...: rename, recolour, add classes."""
        project = self.w.editor.project
        if project is None:
            self.w.show_error("Open a project first: its classes are edited here")
            return
        dlg = EditClassesDialog(project.classes, self.w, project.name)
        if dlg.exec() and dlg.result_table is not None:
            self.opening.update_classes(dlg.result_table)

    def adapt_model(self) -> None:
        self.opening.adapt_model()

    # ------------------------------------------------------------------------------------------
    # the model in use
    def choose_instead(self, problem: InUseProblem) -> tuple[core.CheckpointEntry | Path | None, bool]:
        """Which model instead (tests replace this): (choice, open a file instead)."""
        dlg = ModelInUseDialog(problem, self.w)
        dlg.exec()
        return dlg.chosen, dlg.open_file

    def _in_use_problem(self, problem: InUseProblem) -> None:
        if not getattr(self.w, "interactive", True):
            self.controller.error.emit(problem.text)
            return
        self.w.show_error(problem.text)
        choice, open_file = self.choose_instead(problem)
        if open_file:
            self.w.open_model_dialog()
        elif choice is not None:
            self.opening.use_instead(problem, choice)
