"""Images for viewing: one read with its mask file; a folder or a project listed (no pixels read:
each file's header is checked, so that files that are not images are left out, and said so)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

import numpy as np

from core.classes import ClassTable
from core.constants import IMAGE_EXTENSIONS, MASK, NO_MASK, MaskState
from core.data.io import image_info, read_image_checked, read_mask
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
    warnings: tuple[str, ...] = ()  # the decoder's reports of damaged data (part of the image may be missing)


def read_image_and_mask(path: Path, mask_path: Path | None, classes: ClassTable | None, *,
                        cancel: Cancel = None) -> Generator[Progress, None, ImageData]:
    """Read ``path``; with ``mask_path`` and ``classes`` also its mask (a bad mask never blocks the image).
    What the decoder said about damaged data it decoded anyway is in ``warnings``."""
    yield Progress(fraction=0.0, message=f"reading {Path(path).name}")
    decoded = read_image_checked(path)
    image = decoded.image
    data = ImageData(Path(path), image, warnings=tuple(decoded.warnings))
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
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # files left out: not images (why)


def is_image(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_project_folder(root: Path) -> bool:
    """A project (project.json) or a data set in our layout (images/)."""
    return (Path(root) / "images").is_dir() or (Path(root) / "project.json").is_file()


def _readable(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The paths whose header is an image's (read from the header only), and the others with why."""
    ok: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for p in paths:
        try:
            image_info(p)
        except StudioError as exc:
            skipped.append((p, str(exc)))
        else:
            ok.append(p)
    return ok, skipped


def list_folder(root: str | Path, *, read_only: bool = False, take_over: bool = False,
                classes: ClassTable | None = None) -> FolderListing:
    """The images of a project (or a data set in our layout) or of a plain folder, sorted by name.

    A project is opened with ``Project.open(root, read_only=..., take_over=..., classes=...)``
    (its errors pass through: ProjectLockedError, ReadOnlyProjectError, ProjectFileError ...).
    Files with an image's name whose header is not an image's are left out (``skipped``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if is_project_folder(root):
        project = Project.open(root, read_only=read_only, take_over=take_over, classes=classes)
        entries = sorted(project.images(), key=lambda e: e.name.lower())
        ok, skipped = _readable([e.image_path for e in entries])
        usable = set(ok)
        images = [ListedImage(e.image_path, e.mask_path if e.state == MASK else None, e.state)
                  for e in entries if e.image_path in usable]
        return FolderListing(root, images, project.classes, project, skipped)
    ok, skipped = _readable([p for p in sorted(root.iterdir(), key=lambda q: q.name.lower())
                             if p.is_file() and is_image(p)])
    return FolderListing(root, [ListedImage(p) for p in ok], skipped=skipped)


def listing_of_image(path: str | Path, **options: Any) -> FolderListing:
    """The list an opened image belongs to: its project when it sits in one's images/, else its
    folder (``options``: :func:`list_folder`'s, for the project)."""
    parent = Path(path).parent
    if parent.name == "images" and (parent.parent / "masks").is_dir():
        return list_folder(parent.parent, **options)
    return list_folder(parent)


def image_file_filter() -> str:
    """A file dialog's filter for the images core reads."""
    return f"Images ({' '.join('*' + e for e in IMAGE_EXTENSIONS)});;All files (*)"
