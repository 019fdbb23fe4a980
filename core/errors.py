"""The project's exception types: each names the file (or thing) and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class StudioError(Exception):
    """Base of every error core raises on purpose (the CLI prints these as one line)."""


class ImageReadError(StudioError):
    """An image could not be read: missing, corrupt, truncated, unsupported or too large."""


class MaskError(StudioError):
    """A label mask is unreadable, of the wrong size, or holds ids outside the class table."""


class DatasetError(StudioError):
    """A data set folder does not have the layout its reader expects."""


class CheckpointError(StudioError):
    """A weight file is of an unknown format, for another architecture, or unsafe to load."""


class TrainingError(StudioError):
    """Training could not go on (NaN loss, out of memory with batch 1, no labelled pixels ...)."""


class Cancelled(StudioError):
    """A long job was cancelled by its caller (the rule: core/generators.py).

    ``partial``: what the job had done when it stopped, when that is worth keeping (training:
    a TrainResult with the weights of the last completed step); None otherwise."""

    def __init__(self, message: str = "cancelled", partial: object = None) -> None:
        super().__init__(message)
        self.partial = partial


class WriteError(StudioError, OSError):
    """A file could not be saved (full disk, no permission, ...). The message names the file;
    the previous file is unchanged. Also an ``OSError`` (``errno`` is the system's), so code that
    catches OSError still catches it."""

    def __init__(self, message: str, path: str | Path | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        if errno is not None:
            self.errno = errno

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> Any:  # picklable across processes (OSError's own reduce loses the fields)
        return (type(self), (str(self), self.path, self.errno))


class MaskWriteError(MaskError, WriteError):
    """A mask file could not be written; the previous file is unchanged and the edits stay unsaved."""


class ProjectFileError(DatasetError):
    """project.json (or the class table) is damaged: ``path`` and ``field`` say where."""

    def __init__(self, message: str, path: str | Path, field: str = "") -> None:
        super().__init__(message)
        self.path, self.field = Path(path), field

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.path, self.field))


class ClassTableError(ProjectFileError):
    """The project's class table is missing or damaged. The project opens again when a class
    table is chosen: ``Project.open(root, classes=table)`` (the masks are kept as they are)."""


class ProjectLockedError(StudioError):
    """The project is open for writing in another program (``holder`` says which: pid, host,
    since when). It can still be opened read-only: ``Project.open(root, read_only=True)``."""

    def __init__(self, message: str, root: str | Path, holder: Any = None, lock_path: str | Path | None = None,
                 live: bool | None = True) -> None:
        super().__init__(message)
        self.root = Path(root)
        self.holder = holder  # a core.project_lock.LockHolder (or None when the lock file says nothing)
        self.lock_path = Path(lock_path) if lock_path is not None else None
        self.live = live  # True: that program runs; None: it cannot be told from here (another computer)

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.root, self.holder, self.lock_path, self.live))


class ReadOnlyProjectError(StudioError):
    """A write to a project that is open read-only (by choice, because another program holds it,
    because the folder cannot be written, or because it was closed); ``reason`` says which."""

    def __init__(self, message: str, root: str | Path, reason: str = "") -> None:
        super().__init__(message)
        self.root, self.reason = Path(root), reason

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.root, self.reason))
