"""The image list of a folder or project: which images there are, and which have a mask.

A project folder (``project.json``, or a data set in our layout: ``images/``, ``masks/``,
``classes.json``) is opened with ``core.Project``; any other folder is read as a flat list of
images. Listing only: no pixels are read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import core

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp);;All files (*)"  # file dialogs


@dataclass
class ImageEntry:
    path: Path
    mask_path: Path | None = None  # a usable mask
    predicted: bool = False
    mask_state: str = ""  # "mask", "no mask" or "unreadable mask" ("" -> from mask_path)
    score: float | None = None  # uncertainty (core.uncertainty.image_score), once predicted

    def __post_init__(self) -> None:
        if not self.mask_state:
            self.mask_state = "mask" if self.mask_path is not None else "no mask"

    @property
    def state(self) -> str:
        """"predicted", "mask", "unreadable mask" or "no mask" (what the image list shows)."""
        return "predicted" if self.predicted else self.mask_state


@dataclass
class ImageFolder:
    root: Path
    entries: list[ImageEntry] = field(default_factory=list)
    classes: "core.ClassTable | None" = None  # from the project's classes.json
    project: "core.Project | None" = None

    @property
    def is_project(self) -> bool:
        return self.project is not None

    def index_of(self, path: str | Path) -> int:
        p = Path(path).resolve()
        for i, e in enumerate(self.entries):
            if e.path.resolve() == p:
                return i
        return -1


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def scan_folder(root: str | Path) -> ImageFolder:
    """List the images of a project (or data set in our layout) or of a plain folder, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise core.DatasetError(f"{root}: not a folder")
    if (root / "images").is_dir() or (root / "project.json").is_file():
        project = core.Project.open(root)
        entries = [ImageEntry(e.image_path, e.mask_path if e.state == "mask" else None, mask_state=e.state)
                   for e in sorted(project.images(), key=lambda e: e.name.lower())]
        return ImageFolder(root, entries, project.classes, project)
    entries = [ImageEntry(p) for p in sorted(root.iterdir(), key=lambda q: q.name.lower())
               if p.is_file() and is_image(p)]
    return ImageFolder(root, entries)


def folder_of_image(path: str | Path) -> ImageFolder:
    """The list an opened image belongs to: its project when it sits in one's images/, else its folder."""
    path = Path(path)
    parent = path.parent
    if parent.name == "images" and (parent.parent / "masks").is_dir():
        return scan_folder(parent.parent)
    return scan_folder(parent)
