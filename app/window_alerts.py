"""What the window shows of problems that last, in its banners (app/widgets/message_banner.py).

The status line says what is happening now and the next message replaces it; a problem the
user must know about stays in a banner above the view until it is over or the user closes it:

======================  =======  ===========================================  =========================
key                     level    shown when                                   goes away
======================  =======  ===========================================  =========================
``read-only``           warning  the project open is read-only (another       another folder opens (not
                                 program writes it, the folder cannot be      closable); "Reopen for
                                 written, ...), with the reason               Writing" tries again
``journal``             warning  crash journals the disk refuses: crash       they work again (the
                                 protection is off for those images (the      journal retries)
                                 reason names the file)
``save``                error    masks whose last save failed: which file,    they are saved; "Save
                                 why, and where the edits are now             Again"
``image damaged``       warning  the shown image decoded with corrupt-data    another image is shown
                                 warnings: part of it may be missing
``skipped``             info     files of the folder that are not images      another folder opens
                                 (not listed)
``open folder:ROOT``    error    the folder or project ROOT failed to open    ROOT opens
                                 (``Choose Class Table...`` when its class
                                 table is lost: app/project_ui.py's chooser)
``open image``          error    an image failed to open                      an image is shown
``open project``        error    an image opened without its project          a folder opens
``model``               error    a model failed to load or to be put in use   a model is in use
``predict``             error    a prediction failed                          a prediction arrives
``folder``              info     a folder opened as plain images (not a       another folder opens
                                 project), or became a project (app/
                                 project_ui.py, which also shows ``classes``,
                                 ``demo-model``, ``adapted``)
``no model``            info     started with images but no model             a model is in use
(others)                error    ``window.show_error``, editor problems       closed by the user
======================  =======  ===========================================  =========================

A read-only project also shows in the window title and in the tools: the editing tools, Accept
Everywhere, Save and Retrain are disabled, their tooltips saying why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import SIGNAL, QObject

import core
from app.controllers.controller import ShownImage
from app.image_folder import ImageFolder
from app.widgets.message_banner import ERROR, INFO, WARNING, BannerAction

if TYPE_CHECKING:  # pragma: no cover
    from app.main_window import MainWindow

# a success of the kind dismisses the banner of that kind (the user has moved on, or it was fixed)
_DISMISSED_ON = {"folder": ("open project", "skipped", "folder"),
                 "image": ("open image", "image damaged"), "model": ("model", "no model"), "outcome": ("predict",)}
MAX_NAMED = 4  # images named in one banner; the rest are counted


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


class WindowAlerts(QObject):
    """Connects the controllers' problems to the window's banners, title and tools."""

    def __init__(self, window: "MainWindow"):
        super().__init__(window)
        self.w = window
        self.banners = window.banners
        c, ed = window.controller, window.editor
        self._tips: dict[object, str] = {}  # action -> its tooltip while it is not disabled by a read-only project
        self.read_only = ""  # the reason shown now ("" when the project is writable)
        c.problem.connect(self._problem)
        ed.problem.connect(lambda key, text: self.banners.show_message(key, text, ERROR))
        c.folderChanged.connect(self._folder_changed)
        c.imageChanged.connect(self._image_changed)
        c.modelChanged.connect(lambda _: self._dismiss("model"))
        c.outcomeReady.connect(lambda _: self._dismiss("outcome"))
        ed.journals.problemsChanged.connect(self._journals)
        ed.saveFailuresChanged.connect(self._save_failures)
        ed.historyChanged.connect(self._apply_read_only)
        window.retrainer.failed.connect(lambda _: self._apply_read_only())  # the window re-enables Retrain

    def _dismiss(self, kind: str) -> None:
        for key in _DISMISSED_ON[kind]:
            self.banners.dismiss(key)

    # ---- failures -------------------------------------------------------------------------------
    def _problem(self, key: str, text: str, exc: object) -> None:
        actions: list[BannerAction] = []
        if isinstance(exc, core.ClassTableError):
            root = Path(key.split(":", 1)[1]) if key.startswith("open folder:") else self._project_root(exc)
            if root is not None:
                actions = self._class_table_action(root)
        self.banners.show_message(key, text, ERROR, actions)

    def _class_table_action(self, root: Path) -> list[BannerAction]:
        """The class-table chooser's button, when one is connected (p11app's: classTableRequested)."""
        access = self.w.controller.access
        if access.receivers(SIGNAL("classTableRequested(PyObject)")) <= 0:
            return []
        return [BannerAction("Choose Class Table...", lambda: access.classTableRequested.emit(root),
                             "Choose the class table that makes this folder a project (its masks are kept)")]

    def no_model(self) -> None:
        self.banners.show_message("no model", "No model yet: open one with Model > Open Model (Ctrl+M), or the demo "
                                              "(Ctrl+D), to see the segmentation.", INFO,
                                  [BannerAction("Open Model...", self.w.open_model_dialog)])

    @staticmethod
    def _project_root(exc: "core.ProjectFileError") -> Path | None:
        """The project folder a damaged project file belongs to."""
        path = getattr(exc, "path", None)
        for parent in Path(path).parents if path is not None else ():
            if (parent / "project.json").is_file() or (parent / "images").is_dir():
                return parent
        return None

    # ---- the folder -----------------------------------------------------------------------------
    def _folder_changed(self, folder: ImageFolder) -> None:
        self._dismiss("folder")
        self.banners.dismiss(f"open folder:{folder.root}")  # it opens now (a class table was chosen, ...)
        if folder.skipped:
            names = [p.name for p, _why in folder.skipped]
            first = folder.skipped[0][1]
            self.banners.show_message(
                "skipped", f"{len(names)} file(s) of {folder.root.name} are not images and are not listed: "
                           f"{_names(names)} ({first})", INFO)
        self._apply_read_only()

    def _reopen(self) -> None:
        folder = self.w.controller.folder
        if folder is not None:
            self.w.controller.open_folder(folder.root)

    def _apply_read_only(self) -> None:
        """The read-only state of the project shown: banner, title, tools."""
        reason = self.w.editor.read_only_reason
        folder = self.w.controller.folder
        if reason and folder is not None:
            self.banners.show_message(
                "read-only", f"Read-only: the project {folder.root.name} cannot be changed here because {reason}. "
                             "You can look at its images, masks and models; corrections and retraining are off.",
                WARNING, [BannerAction("Reopen for Writing", self._reopen,
                                       "Open the project again for writing (once the other program has closed it)")],
                closable=False)
        else:
            self.banners.dismiss("read-only")
        if reason != self.read_only:
            self.read_only = reason
            self._tools(reason)
        self._title()

    def _tools(self, reason: str) -> None:
        act, tools = self.w.act, self.w.canvas_tools
        actions = [act.tools[n] for n, tool in tools.tools.items() if tool.edits]
        actions += [act.accept_all, act.save_masks, act.retrain]
        for a in actions:
            if reason:
                self._tips.setdefault(a, a.toolTip())
                a.setEnabled(False)
                a.setToolTip(f"{a.text().replace('&', '')}: off, the project is read-only ({reason})")
            else:
                a.setEnabled(True)
                if a in self._tips:
                    a.setToolTip(self._tips.pop(a))
        if reason and tools.tool.edits:
            tools.set_tool("pan")
        act.accept_all.setEnabled(not reason and self.w.editor.mask is not None)
        act.retrain.setEnabled(not reason and not self.w.retrainer.running)

    def _title(self) -> None:
        image = self.w.controller.image
        folder = self.w.controller.folder
        parts = [f"{image.path.name}[*]"] if image is not None else []
        if self.read_only and folder is not None:
            parts.append(f"{folder.root.name} (read-only)")
        self.w.setWindowTitle(" - ".join(parts + ["PSPNet Studio"]))

    # ---- the image shown ------------------------------------------------------------------------
    def _image_changed(self, shown: ShownImage) -> None:
        self._dismiss("image")
        warnings = shown.data.warnings
        if warnings:
            prefix = f"{shown.path}: "  # the banner names the file once
            said = "; ".join(w[len(prefix):] if w.startswith(prefix) else w for w in warnings)
            self.banners.show_message(
                "image damaged", f"{shown.path.name} is damaged: part of the image may be missing (grey, smeared or "
                                 f"shifted), and the prediction there with it. {said[:1].upper()}{said[1:]}.", WARNING)
        self._title()

    # ---- writing --------------------------------------------------------------------------------
    def _journals(self, problems: dict[str, core.JournalStatus]) -> None:
        if not problems:
            if self.banners.dismiss("journal"):
                self.w.show_message("Crash protection works again: every edit is in its journal on disk")
            return
        names = sorted(problems)
        reason = problems[names[0]].reason
        self.banners.show_message(
            "journal", f"Crash protection is off for {_names(names)}: {reason}. Edits made since the last save are in "
                       "memory only until the disk takes them (retried); free some space, then save.", WARNING)

    def _save_failures(self, failures: dict[str, str]) -> None:
        if not failures:
            self.banners.dismiss("save")
            return
        names = sorted(failures)
        text = failures[names[0]] if len(names) == 1 else (
            f"Could not save the masks of {_names(names)}. " + " | ".join(failures[n] for n in names[:MAX_NAMED]))
        self.banners.show_message("save", text, ERROR, [BannerAction("Save Again", self.w.editor.save_dirty,
                                                                     "Save the unsaved masks now")])
