"""Segmentation data sets on disk: our own layout, PASCAL VOC 2012, ADE20K and Cityscapes.

``open_dataset`` detects the layout (or takes it by name) and returns a
:class:`SegmentationDataset` whose items are ``(image HxWx3 uint8 RGB, mask HxW uint8)`` with
255 = ignore, already translated from the data set's own id scheme (and remapped, if asked).

Our layout (what a project folder holds)::

    root/images/<stem>.<jpg|png|...>   every image, labelled or not
    root/masks/<stem>.png              palette or greyscale ids (or RGB in the class colours)
    root/classes.json                  the class table
    root/train.txt, root/val.txt       optional, one stem per line ('#' comments allowed)

Splits of our layout: ``"all"`` is every image. With a list file, ``"train"`` / ``"val"`` are
the stems it lists, in its order. Without ``train.txt``, ``"train"`` is every image that has a
mask and is not in ``val.txt``; without ``val.txt``, ``"val"`` is empty (nothing is held out
behind the user's back).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from core.classes import ClassTable
from core.data.io import IGNORE, IMAGE_EXTENSIONS, read_image, read_label_ids, read_mask
from core.data.remap import ClassRemap
from core.errors import DatasetError, MaskError

__all__ = ["SegmentationDataset", "open_dataset", "LAYOUTS", "SPLITS", "CITYSCAPES_TRAIN_IDS"]

SPLITS = ("train", "val", "all")

# Cityscapes labelId -> trainId for the 19 evaluated classes (everything else is ignored)
CITYSCAPES_TRAIN_IDS: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


@dataclass(frozen=True)
class _Item:
    name: str
    image: Path
    mask: Path | None


class SegmentationDataset:
    """A list of (image, mask) pairs with a class table; one subclass-free type for every layout.

    ``lut`` translates the stored ids into class ids (255 = ignore); ``valid`` marks the stored
    values that may occur (anything else is a MaskError naming the file and ids). ``colour_masks``
    allows RGB masks in the class colours (our layout only)."""

    def __init__(self, root: str | Path, items: Sequence[_Item], classes: ClassTable, *, layout: str = "",
                 split: str = "all", lut: np.ndarray | None = None, valid: np.ndarray | None = None,
                 colour_masks: bool = False, remap: ClassRemap | None = None) -> None:
        self.root = Path(root)
        self.layout = layout
        self.split = split
        self._items = list(items)
        self.source_classes = classes
        if lut is None:
            lut = np.full(256, IGNORE, np.uint8)
            lut[: len(classes)] = np.arange(len(classes), dtype=np.uint8)
        if valid is None:
            valid = np.zeros(256, bool)
            valid[: len(classes)] = True
            valid[IGNORE] = True
        self._colour_masks = colour_masks
        self._valid = np.asarray(valid, bool)
        self.remap = remap
        if remap is not None:
            _check_remap(remap, classes, self.root)
            lut = remap.lut[lut]
        self._lut = np.asarray(lut, np.uint8)
        self.classes: ClassTable = remap.target if remap is not None else classes

    def __len__(self) -> int:
        return len(self._items)

    def _item(self, i: int) -> _Item:
        n = len(self._items)
        if not -n <= i < n:
            raise IndexError(f"data set index {i} out of range (it has {n} items)")
        return self._items[i]

    def name(self, i: int) -> str:
        """A stable id of item ``i`` (the file stem; ``city/stem`` for Cityscapes)."""
        return self._item(i).name

    def image_path(self, i: int) -> Path:
        return self._item(i).image

    def mask_path(self, i: int) -> Path | None:
        """None for an unlabelled image (its mask is all 255)."""
        return self._item(i).mask

    def read_mask(self, i: int, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Item ``i``'s mask as class ids (all 255 when unlabelled; then ``shape`` is required)."""
        path = self._item(i).mask
        if path is None:
            if shape is None:
                raise MaskError(f"{self._item(i).image}: unlabelled image; give a shape for its empty mask")
            return np.full(shape, IGNORE, np.uint8)
        if self._colour_masks:
            raw = read_mask(path, self.source_classes, shape=shape)
        else:
            raw = read_label_ids(path, shape=shape)
            present = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
            bad = present[~self._valid[present]]
            if bad.size:
                ok = np.flatnonzero(self._valid)
                raise MaskError(f"{path}: label ids {', '.join(map(str, bad[:10].tolist()))} are not valid in a "
                                f"{self.layout or 'this'} mask (expected {_ranges(ok)})")
        return self._lut[raw]

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image = read_image(self._item(i).image)
        return image, self.read_mask(i, shape=image.shape[:2])

    def __repr__(self) -> str:
        return (f"SegmentationDataset({self.layout or 'custom'}, split={self.split!r}, {len(self)} items, "
                f"{len(self.classes)} classes, root={str(self.root)!r})")


# --------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _ranges(values: np.ndarray) -> str:
    parts, start = [], None
    vals = values.tolist()
    for k, v in enumerate(vals):
        if start is None:
            start = v
        if k + 1 == len(vals) or vals[k + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}..{v}")
            start = None
    return ", ".join(parts)


def _read_list(path: Path) -> list[tuple[int, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the list file: {exc}") from exc
    out = []
    for no, line in enumerate(lines, 1):
        stem = line.split("#", 1)[0].strip()
        if stem:
            if Path(stem).suffix.lower() in IMAGE_EXTENSIONS:
                stem = Path(stem).stem
            out.append((no, stem))
    return out


def _dedup(stems: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(stems))


def _require_files(items: list[_Item], root: Path, what: str) -> None:
    missing = [str(p) for it in items for p in (it.image, it.mask) if p is not None and not p.is_file()]
    if missing:
        more = f" ... ({len(missing)} in all)" if len(missing) > 5 else ""
        raise DatasetError(f"{root}: {what}: missing files: {', '.join(missing[:5])}{more}")


# ---- ours ------------------------------------------------------------------------------------

def _detect_ours(root: Path) -> Path | None:
    if (root / "images").is_dir() and ((root / "classes.json").is_file() or (root / "masks").is_dir()):
        return root
    return None


def _open_ours(base: Path, split: str, remap: ClassRemap | None) -> SegmentationDataset:
    table_path = base / "classes.json"
    if not table_path.is_file():
        raise DatasetError(f"{base}: no classes.json (our layout needs images/, masks/ and classes.json)")
    try:
        classes = ClassTable.load(table_path)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    images: dict[str, Path] = {}
    for p in sorted((base / "images").iterdir()):
        if _is_image(p):
            if p.stem in images:
                raise DatasetError(f"{base / 'images'}: two images share the name {p.stem!r}: "
                                   f"{images[p.stem].name} and {p.name}")
            images[p.stem] = p
    mask_dir = base / "masks"

    def item(stem: str) -> _Item:
        m = mask_dir / f"{stem}.png"
        return _Item(stem, images[stem], m if m.is_file() else None)

    def listed(name: str) -> list[str] | None:
        path = base / name
        if not path.is_file():
            return None
        stems = []
        for no, stem in _read_list(path):
            if stem not in images:
                raise DatasetError(f"{path}, line {no}: no image {stem!r} in {base / 'images'}")
            stems.append(stem)
        return _dedup(stems)

    if split == "all":
        stems = list(images)
    elif split == "val":
        stems = listed("val.txt") or []
    else:
        train = listed("train.txt")
        if train is None:
            held_out = set(listed("val.txt") or [])
            train = [s for s in images if s not in held_out and (mask_dir / f"{s}.png").is_file()]
        stems = train
    return SegmentationDataset(base, [item(s) for s in stems], classes, layout="ours", split=split,
                               colour_masks=True, remap=remap)


# ---- PASCAL VOC 2012 ------------------------------------------------------------------------

def _detect_voc(root: Path) -> Path | None:
    for base in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (base / "JPEGImages").is_dir() and (base / "SegmentationClass").is_dir():
            return base
    return None


def _open_voc(base: Path, split: str, remap: ClassRemap | None) -> SegmentationDataset:
    lists = base / "ImageSets" / "Segmentation"
    names = ["trainval.txt"] if split == "all" and (lists / "trainval.txt").is_file() else \
        (["train.txt", "val.txt"] if split == "all" else [f"{split}.txt"])
    stems: list[str] = []
    for n in names:
        if not (lists / n).is_file():
            raise DatasetError(f"{base}: no split list {lists / n} (PASCAL VOC layout)")
        stems += [s for _, s in _read_list(lists / n)]
    items = [_Item(s, base / "JPEGImages" / f"{s}.jpg", base / "SegmentationClass" / f"{s}.png") for s in _dedup(stems)]
    _require_files(items, base, f"PASCAL VOC split {split!r}")
    return SegmentationDataset(base, items, ClassTable.builtin("voc"), layout="voc", split=split, remap=remap)


# ---- ADE20K ---------------------------------------------------------------------------------

_ADE_SUBDIRS = {"train": ("training",), "val": ("validation",), "all": ("training", "validation")}


def _detect_ade(root: Path) -> Path | None:
    for base in (root, root / "ADEChallengeData2016"):
        if (base / "images").is_dir() and (base / "annotations").is_dir() and \
                any((base / "images" / s).is_dir() for s in ("training", "validation")):
            return base
    return None


def _open_ade(base: Path, split: str, remap: ClassRemap | None) -> SegmentationDataset:
    items: list[_Item] = []
    for sub in _ADE_SUBDIRS[split]:
        folder = base / "images" / sub
        if not folder.is_dir():
            raise DatasetError(f"{base}: no {folder} for the ADE20K {split!r} split")
        for p in sorted(folder.iterdir()):
            if _is_image(p):
                items.append(_Item(p.stem, p, base / "annotations" / sub / f"{p.stem}.png"))
    _require_files(items, base, f"ADE20K split {split!r}")
    lut = np.full(256, IGNORE, np.uint8)
    lut[1:151] = np.arange(150, dtype=np.uint8)  # 0 "other" -> ignore, 1..150 -> 0..149
    valid = np.zeros(256, bool)
    valid[:151] = True
    return SegmentationDataset(base, items, ClassTable.builtin("ade20k"), layout="ade20k", split=split,
                               lut=lut, valid=valid, remap=remap)


# ---- Cityscapes -----------------------------------------------------------------------------

def _detect_cityscapes(root: Path) -> Path | None:
    for base in (root, root / "cityscapes"):
        if (base / "leftImg8bit").is_dir() and (base / "gtFine").is_dir():
            return base
    return None


def _open_cityscapes(base: Path, split: str, remap: ClassRemap | None) -> SegmentationDataset:
    items: list[_Item] = []
    for sub in (("train", "val") if split == "all" else (split,)):
        folder = base / "leftImg8bit" / sub
        if not folder.is_dir():
            raise DatasetError(f"{base}: no {folder} for the Cityscapes {split!r} split")
        for p in sorted(folder.glob("*/*_leftImg8bit.png")):
            prefix = p.name[: -len("_leftImg8bit.png")]
            city = p.parent.name
            items.append(_Item(f"{city}/{prefix}", p, base / "gtFine" / sub / city / f"{prefix}_gtFine_labelIds.png"))
    _require_files(items, base, f"Cityscapes split {split!r}")
    lut = np.full(256, IGNORE, np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        lut[label_id] = train_id
    valid = np.zeros(256, bool)
    valid[:34] = True  # labelIds 0..33
    valid[IGNORE] = True  # license plate (-1) as a byte
    return SegmentationDataset(base, items, ClassTable.builtin("cityscapes"), layout="cityscapes", split=split,
                               lut=lut, valid=valid, remap=remap)


@dataclass(frozen=True)
class _Layout:
    detect: Callable[[Path], Path | None]
    open: Callable[[Path, str, ClassRemap | None], SegmentationDataset]
    description: str


LAYOUTS: dict[str, _Layout] = {
    "ours": _Layout(_detect_ours, _open_ours, "ours (images/, masks/, classes.json)"),
    "voc": _Layout(_detect_voc, _open_voc,
                   "PASCAL VOC 2012 (JPEGImages/ + SegmentationClass/ in the root, VOC2012/ or VOCdevkit/VOC2012/)"),
    "ade20k": _Layout(_detect_ade, _open_ade,
                      "ADE20K (images/{training,validation}/ + annotations/ in the root or ADEChallengeData2016/)"),
    "cityscapes": _Layout(_detect_cityscapes, _open_cityscapes,
                          "Cityscapes (leftImg8bit/ + gtFine/ in the root or cityscapes/)"),
}


def _check_remap(remap: ClassRemap, classes: ClassTable, root: Path) -> None:
    src = remap.source
    if src is not None:
        if src.names != classes.names:
            raise DatasetError(f"{root}: remap {remap.name or ''!r} is for the {len(src)}-class table "
                               f"{src.name or '(custom)'!r}, but the data set has the {len(classes)}-class table "
                               f"{classes.name or '(custom)'!r}")
    elif remap.n_source > len(classes):
        raise DatasetError(f"{root}: remap {remap.name!r} maps {remap.n_source} source classes; the data set has {len(classes)}")


def open_dataset(root: str | Path, split: str = "train", *, layout: str = "auto",
                 remap: ClassRemap | str | Path | None = None) -> SegmentationDataset:
    """Open a data set folder; ``layout`` is ``"auto"`` or one of :data:`LAYOUTS`.

    ``split`` is ``"train"``, ``"val"`` or ``"all"``. ``remap`` (a :class:`ClassRemap`, a remap
    file, or a built-in remap's name such as ``"ade20k_to_25"``) is applied to every mask on
    load, and the data set's ``classes`` become the remap's target table."""
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r} (use one of {', '.join(SPLITS)})")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if isinstance(remap, (str, Path)):
        remap = ClassRemap.load(remap) if Path(remap).suffix == ".json" or Path(remap).is_file() \
            else ClassRemap.builtin(str(remap))
    if layout == "auto":
        for lay in LAYOUTS.values():
            base = lay.detect(root)
            if base is not None:
                return lay.open(base, split, remap)
        looked = "; ".join(lay.description for lay in LAYOUTS.values())
        raise DatasetError(f"{root}: not a data set folder of any known layout. Looked for: {looked}")
    lay = LAYOUTS.get(layout)
    if lay is None:
        raise DatasetError(f"unknown data set layout {layout!r} (known: auto, {', '.join(LAYOUTS)})")
    base = lay.detect(root)
    if base is None:
        raise DatasetError(f"{root}: not a {lay.description} folder")
    return lay.open(base, split, remap)
