"""Which class table the masks are painted in, and what the model in use knows.

:class:`ClassGuard` watches the model in use and the open project: when the model predicts
another class table than the project's, its class ids mean other classes in the project's
masks, so painting is refused (the window hides the editable mask from the tools and says why
in a note that stays) and nothing copies the model's output into a mask (the editor's
``class_conflict`` blocks "accept the prediction" and "accept everywhere") until the user picks
a model with the project's classes or adapts one to them (:class:`ProjectOpening.adapt_model`).

:func:`demo_model_note` says when the demo model is used on a photo it was not made for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

import core

if TYPE_CHECKING:  # pragma: no cover
    from app.controllers.controller import Controller
    from app.controllers.mask_editing import MaskEditor

DEMO_TABLE = "synthetic-context"  # core.SYNTHETIC_CLASSES.name: the demo model's table


def _names(table: core.ClassTable, n: int = 6) -> str:
    shown = ", ".join(table.names[:n])
    return shown + (", ..." if len(table) > n else "")


def _table(table: core.ClassTable) -> str:
    return f"{len(table)} classes" + (f" ({table.name})" if table.name else "")


def conflict_text(model: core.ClassTable, project: core.ClassTable) -> str:
    """Why painting is off, in words (what the user sees above the image)."""
    grown = len(model) < len(project) and tuple(project.names[: len(model)]) == tuple(model.names)
    what = (f"{core.describe_difference(model, project)}" if grown
            else "the same ids mean other classes")
    return (f"Painting is off: the model in use predicts {_table(model)} ({_names(model, 4)}), this project's masks "
            f"use its own {_table(project)} ({_names(project, 4)}): {what}. Use a model of "
            "the project's classes, or adapt this one (its classifier is rebuilt; the classes it knows by name keep "
            "their training) and retrain it on your corrections.")


class ClassGuard(QObject):
    changed = Signal(str)  # the conflict, "" when the model's classes are the project's (or either is missing)

    def __init__(self, controller: "Controller", editor: "MaskEditor", parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.editor = editor
        self.conflict = ""
        controller.modelChanged.connect(lambda _: self.refresh())
        controller.folderChanged.connect(lambda _: self.refresh())

    @property
    def project_classes(self) -> core.ClassTable | None:
        folder = self.controller.folder
        return folder.project.classes if folder is not None and folder.project is not None else None

    def refresh(self) -> str:
        """Compare again (after a model was put in use, a folder opened, the project's table changed)."""
        loaded, table = self.controller.loaded, self.project_classes
        text = ""
        if loaded is not None and table is not None and core.classes_differ(loaded.classes, table):
            text = conflict_text(loaded.classes, table)
        self.editor.class_conflict = text
        if text != self.conflict:
            self.conflict = text
            self.changed.emit(text)
        return text


def is_demo_model(loaded: core.LoadedModel | None) -> bool:
    return loaded is not None and loaded.classes.name == DEMO_TABLE


def demo_model_note(controller: "Controller") -> str:
    """The note to show when the demo model is used on a photo that is not one of the demo's
    synthetic scenes ("" otherwise)."""
    loaded, shown, folder = controller.loaded, controller.image, controller.folder
    if not is_demo_model(loaded) or shown is None:
        return ""
    if folder is not None and ((folder.root / "synthetic.json").is_file()
                               or (folder.classes is not None and folder.classes.name == DEMO_TABLE)):
        return ""
    return (f"The demo model only knows the demo's synthetic scenes ({len(loaded.classes)} classes: "
            f"{', '.join(loaded.classes.names)}): on a photo like {shown.path.name} its labels mean little. For photos, "
            "get a model trained on real ones: ADE20K (150 classes of indoor and outdoor scenes), Cityscapes "
            "(streets), PASCAL VOC (20 kinds of object).")
