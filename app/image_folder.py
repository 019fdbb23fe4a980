"""The image list of the open folder or project, as a model: its one owner of state.

The rows (:class:`ImageEntry`: which image, its mask state, predicted or not, its uncertainty
score) change only through :class:`ImageFolder`'s methods, and every change is a signal:
``entryChanged(index)`` for one row, ``rowsChanged()`` after many rows changed at once (a new
model clears every "predicted" and score; a ranking finished). The
controller, the mask editor and the ranker call these methods; the image list shows the signals.
Listing the folder (core.list_folder) reads no pixels; files that are not images by their header
are left out of the rows (``skipped`` names them, with why).

A project's folder says whether it is read-only and why (``read_only_reason``, set by
app/controllers/project_access.py, which opens it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

import core


@dataclass
class ImageEntry:
    path: Path
    mask_path: Path | None = None  # a usable mask
    mask_state: core.MaskState = core.NO_MASK
    predicted: bool = False
    score: float | None = None  # uncertainty (core.image_score), once predicted

    @property
    def state(self) -> str:
        """"predicted" or the mask state (what the image list shows)."""
        return "predicted" if self.predicted else self.mask_state


class ImageFolder(QObject):
    entryChanged = Signal(int)  # one row changed (index in ``entries``)
    rowsChanged = Signal()  # many rows changed (the list refills and re-sorts once)

    def __init__(self, listing: core.FolderListing, parent: QObject | None = None):
        super().__init__(parent)
        self.root: Path = listing.root
        self.classes: core.ClassTable | None = listing.classes  # from the project's classes.json
        self.project: core.Project | None = listing.project
        self.skipped: list[tuple[Path, str]] = list(listing.skipped)  # files that are not images, and why
        self.read_only_reason = ""  # why the project is read-only ("" when it is not, or not a project)
        self._entries = [ImageEntry(i.path, i.mask_path, i.mask_state) for i in listing.images]

    @classmethod
    def scan(cls, root: str | Path, parent: QObject | None = None, **options: Any) -> "ImageFolder":
        """``options``: core.list_folder's (read_only, take_over, classes)."""
        return cls(core.list_folder(root, **options), parent)

    @classmethod
    def of_image(cls, path: str | Path, parent: QObject | None = None, **options: Any) -> "ImageFolder":
        return cls(core.listing_of_image(path, **options), parent)

    # ---- reading ---------------------------------------------------------------------------------
    @property
    def entries(self) -> tuple[ImageEntry, ...]:
        """The rows, read-only (change them through the methods below)."""
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, index: int) -> ImageEntry:
        return self._entries[index]

    @property
    def is_project(self) -> bool:
        return self.project is not None

    @property
    def read_only(self) -> bool:
        """A project whose files this program must not change (opened read-only, or closed)."""
        return self.project is not None and self.project.read_only

    def index_of(self, path: str | Path) -> int:
        p = Path(path).resolve()
        for i, e in enumerate(self._entries):
            if e.path.resolve() == p:
                return i
        return -1

    def project_name_of(self, path: str | Path) -> str | None:
        """The project's name for an image path, or None when it is not one of the project's images."""
        if self.project is None:
            return None
        try:
            if Path(path).resolve().parent != self.project.images_dir.resolve():
                return None
        except OSError:
            return None
        return Path(path).stem

    def ranked(self) -> list[int]:
        """Indices, most uncertain first (unscored last)."""
        return core.ranked_indices([e.score for e in self._entries])

    # ---- changing ----------------------------------------------------------------------------------
    def set_predicted(self, index: int, predicted: bool = True) -> None:
        e = self._entries[index]
        if e.predicted != predicted:
            e.predicted = predicted
            self.entryChanged.emit(index)

    def clear_predicted(self) -> None:
        if any(e.predicted for e in self._entries):
            for e in self._entries:
                e.predicted = False
            self.rowsChanged.emit()

    def set_mask_state(self, name: str, state: core.MaskState) -> None:
        """The mask of project image ``name`` was saved, or found unreadable."""
        if self.project is None:
            return
        for i, e in enumerate(self._entries):
            if self.project_name_of(e.path) == name:
                if e.mask_state != state:
                    e.mask_state = state
                    e.mask_path = self.project.mask_path(name) if state == core.MASK else None
                    self.entryChanged.emit(i)
                return

    def set_score(self, index: int, score: float | None) -> None:
        e = self._entries[index]
        value = None if score is None else float(score)
        if e.score != value:
            e.score = value
            self.entryChanged.emit(index)

    def clear_scores(self) -> None:
        if any(e.score is not None for e in self._entries):
            for e in self._entries:
                e.score = None
            self.rowsChanged.emit()

    def scores_done(self) -> None:
        """Many scores were set one by one (a ranking): the list re-sorts once."""
        self.rowsChanged.emit()
