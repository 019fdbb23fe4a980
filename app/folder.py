"""The image list of a folder or project: which images there are, and which have a mask.

A project folder has our layout (``images/``, ``masks/``, ``classes.json``); any other folder
is read as a flat list of images. Listing only: no pixels are read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import core

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class ImageEntry:
    path: Path
    mask_path: Path | None = None
    predicted: bool = False

    @property
    def state(self) -> str:
        """"predicted", "mask" or "no mask" (what the image list shows)."""
        if self.predicted:
            return "predicted"
        return "mask" if self.mask_path is not None else "no mask"


@dataclass
class ImageFolder:
    root: Path
    entries: list[ImageEntry] = field(default_factory=list)
    classes: "core.ClassTable | None" = None  # from the project's classes.json
    is_project: bool = False

    def index_of(self, path: str | Path) -> int:
        p = Path(path).resolve()
        for i, e in enumerate(self.entries):
            if e.path.resolve() == p:
                return i
        return -1


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def scan_folder(root: str | Path) -> ImageFolder:
    """List the images of a project (images/ + masks/) or of a plain folder, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise core.DatasetError(f"{root}: not a folder")
    images_dir = root / "images"
    is_project = images_dir.is_dir()
    img_dir = images_dir if is_project else root
    masks_dir = root / "masks"
    classes = None
    if (root / "classes.json").is_file():
        try:
            classes = core.ClassTable.load(root / "classes.json")
        except ValueError as exc:
            raise core.DatasetError(str(exc)) from exc
    entries = []
    for p in sorted(img_dir.iterdir(), key=lambda q: q.name.lower()):
        if not (p.is_file() and is_image(p)):
            continue
        mask = masks_dir / f"{p.stem}.png"
        entries.append(ImageEntry(p, mask if mask.is_file() else None))
    return ImageFolder(root, entries, classes, is_project)


def folder_of_image(path: str | Path) -> ImageFolder:
    """The list an opened image belongs to: its project when it sits in one's images/, else its folder."""
    path = Path(path)
    parent = path.parent
    if parent.name == "images" and (parent.parent / "masks").is_dir():
        return scan_folder(parent.parent)
    return scan_folder(parent)
