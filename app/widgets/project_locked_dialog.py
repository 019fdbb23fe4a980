"""The question asked when a project is open for writing in another program.

Open it read-only (the default: everything can be seen, nothing is changed), or not at all; for a
lock left on another computer, whose program cannot be checked from here (a shared network
folder), also take the lock over, with a warning about what that costs if the program still runs.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

import core
from app.controllers.project_access import CANCEL, READ_ONLY, TAKE_OVER


class ProjectLockedDialog(QMessageBox):
    def __init__(self, exc: core.ProjectLockedError, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("projectLockedDialog")
        self.setWindowTitle("Project in use")
        self.setIcon(QMessageBox.Icon.Warning)
        self.exc = exc
        name = exc.root.name
        who = exc.holder.describe() if exc.holder is not None else "a program whose lock file does not name it"
        if exc.live is None:
            self.setText(f"The project \u201c{name}\u201d is locked by {who}.")
            self.setInformativeText(
                "Whether that program still runs cannot be told from here (it is on another computer).\n\n"
                "Open the project read-only to look at it without changing anything. Take the lock over only "
                "if that program no longer runs (its computer was switched off or crashed): if it does still "
                "run, two programs writing one project lose each other's corrections.")
        else:
            self.setText(f"The project \u201c{name}\u201d is open for writing in another program: {who}.")
            self.setInformativeText(
                "Only one program at a time may change a project, so that no correction is lost.\n\n"
                "Open it read-only to see its images, masks and models without changing anything, or close it "
                "in the other program first.")
        details = [f"Project: {exc.root}"]
        if exc.lock_path is not None:
            details.append(f"Lock file: {exc.lock_path}")
        self.setDetailedText("\n".join(details + ["", str(exc)]))
        self.read_only_button = self.addButton("Open Read-Only", QMessageBox.ButtonRole.AcceptRole)
        self.read_only_button.setToolTip("Look at the project; nothing is written to it")
        self.take_over_button = None
        if exc.live is None:
            self.take_over_button = self.addButton("Take Over the Lock", QMessageBox.ButtonRole.DestructiveRole)
            self.take_over_button.setToolTip("Only if that program no longer runs: two programs writing one project "
                                             "lose corrections")
        self.cancel_button = self.addButton("Don't Open", QMessageBox.ButtonRole.RejectRole)
        self.setDefaultButton(self.read_only_button)
        self.setEscapeButton(self.cancel_button)

    def choice(self) -> str:
        """READ_ONLY, TAKE_OVER or CANCEL (closed without a choice: CANCEL)."""
        clicked = self.clickedButton()
        if clicked is self.read_only_button:
            return READ_ONLY
        if clicked is not None and clicked is self.take_over_button:
            return TAKE_OVER
        return CANCEL


def ask_locked(parent: QWidget | None, exc: core.ProjectLockedError) -> str:
    """Ask (modal) what to do with a project another program holds: READ_ONLY, TAKE_OVER or CANCEL."""
    dialog = ProjectLockedDialog(exc, parent)
    dialog.exec()
    choice = dialog.choice()
    dialog.deleteLater()
    return choice
