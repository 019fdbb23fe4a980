"""Whether the crash journals of the open project work, for the window to show.

Each edited mask has a crash journal (core.journal) written by a writer thread. When the disk
refuses it, that thread calls ``Project.on_journal_status`` with the journal's
``core.JournalStatus`` (and again when it works again: it retries on its own). The callback
only emits a queued Qt signal (it runs on the writer thread and must not call back into the
journal); on the GUI thread :class:`JournalWatch` then reads ``Project.journal_problems()`` and
emits ``problemsChanged`` with every mask whose edits since its last save are in memory only.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal

import core


class JournalWatch(QObject):
    problemsChanged = Signal(object)  # {image name: core.JournalStatus} of the journals that fail now
    _status = Signal(str, object)  # from the writer thread (queued to this object's thread)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.project: core.Project | None = None
        self.problems: dict[str, core.JournalStatus] = {}
        self._status.connect(self._refresh, Qt.ConnectionType.QueuedConnection)
        self._relay = lambda name, status: self._status.emit(name, status)  # noqa: E731 (runs on the writer thread)

    def follow(self, project: core.Project | None) -> None:
        """Watch ``project``'s journals (None: none)."""
        if project is self.project:
            return
        self.stop()
        self.project = project
        if project is not None:
            project.on_journal_status.connect(self._relay)
        self._refresh()

    def stop(self) -> None:
        if self.project is not None:
            try:
                self.project.on_journal_status.disconnect(self._relay)
            except ValueError:
                pass
        self.project = None

    def status_of(self, name: str) -> core.JournalStatus | None:
        """The journal of the open mask ``name`` now (None when it has none)."""
        return self.project.journal_status(name) if self.project is not None else None

    def _refresh(self, *_: object) -> None:
        problems = self.project.journal_problems() if self.project is not None else {}
        if problems.keys() != self.problems.keys() or any(problems[n].reason != self.problems[n].reason
                                                           for n in problems):
            self.problems = problems
            self.problemsChanged.emit(problems)
        else:
            self.problems = problems
