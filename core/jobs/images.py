"""Images for viewing: one read with its mask file; a folder or a project listed (no pixels read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator

import numpy as np

from core.classes import ClassTable
from core.constants import IMAGE_EXTENSIONS, MASK, NO_MASK, MaskState
from core.data.io import read_image, read_mask
from core.errors import DatasetError, StudioError
from core.generators import Cancel, Progress, check_cancel
from core.project import Project


@dataclass
class ImageData:
    """A photo as the views get it, with the mask file's labels when it has a usable one."""

    path: Path
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray | None = None  # (H, W) uint8 when the image has a readable mask
    mask_error: str | None = None  # why a mask file could not be used


def read_image_and_mask(path: Path, mask_path: Path | None, classes: ClassTable | None, *,
                        cancel: Cancel = None) -> Generator[Progress, None, ImageData]:
    """Read ``path``; with ``mask_path`` and ``classes`` also its mask (a bad mask never blocks the image)."""
    yield Progress(fraction=0.0, message=f"reading {Path(path).name}")
    image = read_image(path)
    data = ImageData(Path(path), image)
    if mask_path is not None and classes is not None:
        check_cancel(cancel)
        try:
            data.mask = read_mask(mask_path, classes, shape=image.shape[:2])
        except StudioError as exc:
            data.mask_error = str(exc)
    return data


@dataclass
class ListedImage:
    path: Path
    mask_path: Path | None = None  # a usable mask file
    mask_state: MaskState = NO_MASK


@dataclass
class FolderListing:
    """The images of a folder, or of a project (then with its class table and the Project)."""

    root: Path
    images: list[ListedImage] = field(default_factory=list)
    classes: ClassTable | None = None
    project: Project | None = None


def is_image(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_project_folder(root: Path) -> bool:
    """A project (project.json) or a data set in our layout (images/)."""
    return (Path(root) / "images").is_dir() or (Path(root) / "project.json").is_file()


def list_folder(root: str | Path) -> FolderListing:
    """The images of a project (or a data set in our layout) or of a plain folder, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if is_project_folder(root):
        project = Project.open(root)
        images = [ListedImage(e.image_path, e.mask_path if e.state == MASK else None, e.state)
                  for e in sorted(project.images(), key=lambda e: e.name.lower())]
        return FolderListing(root, images, project.classes, project)
    images = [ListedImage(p) for p in sorted(root.iterdir(), key=lambda q: q.name.lower())
              if p.is_file() and is_image(p)]
    return FolderListing(root, images)


def listing_of_image(path: str | Path) -> FolderListing:
    """The list an opened image belongs to: its project when it sits in one's images/, else its folder."""
    parent = Path(path).parent
    if parent.name == "images" and (parent.parent / "masks").is_dir():
        return list_folder(parent.parent)
    return list_folder(parent)


def image_file_filter() -> str:
    """A file dialog's filter for the images core reads."""
    return f"Images ({' '.join('*' + e for e in IMAGE_EXTENSIONS)});;All files (*)"
