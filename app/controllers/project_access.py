"""Opening folders and projects: one writer per project, read-only with the reason otherwise.

``core.Project.open`` takes the project's lock. When another program holds it
(``core.ProjectLockedError``), :class:`ProjectAccess` asks (``ask_locked``, set by the window to
the dialog in app/widgets/project_locked_dialog.py) whether to open it read-only or not at all,
or, for a lock left on another computer, whose program cannot be checked from here, whether to
take it over. A folder that cannot be written (``core.ReadOnlyProjectError``) opens read-only,
with that reason. The reason travels with the folder (``ImageFolder.read_only_reason``): the
editor refuses edits with it and the window shows it (title, banner, disabled tools).

The app holds each project it shows open once (a project opened again is the same object:
the extra open is closed at once); the mask editor closes a project it leaves, after its last
save, so that its lock goes with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Signal

import core
from app.image_folder import ImageFolder

if TYPE_CHECKING:  # pragma: no cover
    from app.controllers.controller import Controller

READ_ONLY, TAKE_OVER, CANCEL = "read-only", "take-over", "cancel"  # what ask_locked answers


def locked_reason(exc: core.ProjectLockedError) -> str:
    """Why a project locked by another program is read-only here (one line)."""
    who = exc.holder.describe() if exc.holder is not None else "a program whose lock file does not name it"
    if exc.live is None:
        return (f"it is locked by {who}, and whether that program still runs cannot be told from here")
    return f"it is open for writing in another program ({who})"


class ProjectAccess(QObject):
    """Opens folders and projects for the controller (``controller.access``)."""

    message = Signal(str)
    # p11app's hook: a folder is not a project yet, or its class table is lost (classes.json missing
    # or damaged); the banner's "Choose Class Table..." button emits the folder, and whoever connects
    # reopens it with ``controller.open_folder(root, classes=table)`` (core.Project.open(root, classes=))
    classTableRequested = Signal(object)  # Path

    def __init__(self, controller: "Controller", parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        # (the lock error) -> READ_ONLY | TAKE_OVER | CANCEL; None (no window): not opened
        self.ask_locked: Callable[[core.ProjectLockedError], str] | None = None

    # ------------------------------------------------------------------------------------------
    def scan(self, root: str | Path, **options: Any) -> ImageFolder | None:
        """The folder or project ``root`` as an :class:`ImageFolder` (None: the user chose not to
        open it). Other failures raise (core.StudioError: the controller reports them)."""
        return self._open(lambda **o: ImageFolder.scan(root, self.controller, **o), Path(root), options)

    def of_image(self, path: str | Path) -> ImageFolder | None:
        """The folder (or project) an opened image belongs to, opened as :meth:`scan` does."""
        return self._open(lambda **o: ImageFolder.of_image(path, self.controller, **o), Path(path).parent, {})

    def _open(self, make: Callable[..., ImageFolder], where: Path, options: dict[str, Any]) -> ImageFolder | None:
        try:
            folder = self._make(make, options)
        except core.ProjectLockedError as exc:
            folder = self._locked(make, exc, options)
        except core.ReadOnlyProjectError as exc:  # the folder cannot be written
            folder = make(**dict(options, read_only=True))
            folder.read_only_reason = exc.reason or "the folder cannot be written"
            self.message.emit(f"{folder.root.name}: opened read-only: {folder.read_only_reason}")
        if folder is not None:
            self._balance(folder)
            if folder.project is not None and folder.project.read_only and not folder.read_only_reason:
                folder.read_only_reason = folder.project.read_only_reason or "it was opened read-only"
        return folder

    def _make(self, make: Callable[..., ImageFolder], options: dict[str, Any]) -> ImageFolder:
        try:
            return make(**options)
        except core.ProjectLockedError as exc:
            holder = exc.holder
            if holder is not None and holder.pid == os.getpid() and holder.this_computer:
                # this program's own lock: the project was just left, and its close (queued after its last
                # save on the masks runner) has not given the lock back yet; nothing waits for it here
                raise core.StudioError(f"{exc.root}: this project is still being closed here (its last masks are "
                                       "being saved); open it again in a moment") from exc
            raise

    def _locked(self, make: Callable[..., ImageFolder], exc: core.ProjectLockedError,
                options: dict[str, Any]) -> ImageFolder | None:
        choice = self.ask_locked(exc) if self.ask_locked is not None else CANCEL
        if choice == READ_ONLY:
            folder = make(**dict(options, read_only=True))
            folder.read_only_reason = locked_reason(exc)
            self.message.emit(f"{folder.root.name}: opened read-only: {folder.read_only_reason}")
            return folder
        if choice == TAKE_OVER:
            if exc.live is not None:  # a live lock is never taken: the dialog does not offer it
                raise exc
            folder = make(**dict(options, take_over=True))
            who = exc.holder.describe() if exc.holder is not None else "a program it does not name"
            self.message.emit(f"{folder.root.name}: took over the lock of {who}")
            return folder
        self.message.emit(f"{exc.root.name} not opened: {locked_reason(exc)}")
        return None

    def _balance(self, folder: ImageFolder) -> None:
        """Opening the project shown already returns the same object, counted: give that extra open back."""
        current = self.controller.folder
        if (folder.project is not None and current is not None and folder.project is current.project
                and not folder.project.read_only):
            folder.project.close()
