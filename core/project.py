"""A project folder on disk: images, their label masks, the class table and the model history.

Layout (the engine's data set reader reads it as it is)::

    project.json      name, classes file, created, settings, current model, model history
    classes.json      the class table
    images/           the photos (any format core.read_image reads)
    masks/            <image stem>.png, indexed PNGs; .<stem>.journal = unsaved edits (crash journal)
    checkpoints/      model-0001.safetensors ... (each with metrics, time, parent in project.json)
    train.txt val.txt optional splits (one image stem a line)

A bare data set folder in this layout (no project.json, e.g. ``core.write_demo_project``'s) opens
too; project.json is written on the first save.

Safety rules: every write is atomic (core.atomic); a mask file that cannot be parsed is never
overwritten (its image opens read-only, :class:`UnreadableMaskError` says why); edits are
journalled per stroke, so after a crash :meth:`Project.recoverable` lists the images with unsaved
edits and :meth:`Project.recover` brings them back.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.atomic import atomic_write, atomic_write_text
from core.classes import ClassTable
from core.data.io import IMAGE_EXTENSIONS, image_size, read_image, read_mask, write_mask
from core.errors import CheckpointError, DatasetError, ImageReadError, MaskError, StudioError
from core.journal import StrokeJournal, journal_path
from core.labels import LabelMask, Region

log = logging.getLogger(__name__)

PROJECT_FILE = "project.json"
CLASSES_FILE = "classes.json"
FORMAT = "pspnet-studio-project"
FORMAT_VERSION = 1
from core.constants import MASK, NO_MASK, UNREADABLE  # noqa: E402 (the mask states, single-sourced)
_STALE_TEMP_S = 60.0  # atomic-write temp files older than this are leftovers of a crash


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """Metrics as plain JSON (numpy / torch scalars and arrays become numbers and lists)."""
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)

    return json.loads(json.dumps(value, default=default))


class UnreadableMaskError(MaskError):
    """A mask file exists but cannot be used; it is left untouched and its image opens read-only."""

    def __init__(self, name: str, path: Path, reason: str) -> None:
        self.name, self.path, self.reason = name, path, reason
        super().__init__(f"{reason} -- the image {name!r} opens read-only and the mask file is left as it is "
                         f"(repair or remove it to edit this image)")


@dataclass(frozen=True)
class ImageEntry:
    name: str  # the image's stem: the key in train.txt / val.txt and the mask's file name
    image_path: Path
    mask_path: Path
    state: str  # "no mask" | "mask" | "unreadable mask"


@dataclass(frozen=True)
class CheckpointEntry:
    id: str
    file: str  # relative to checkpoints/
    path: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    time: str = ""
    parent: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.file, "metrics": self.metrics, "time": self.time,
                "parent": self.parent, "note": self.note}


@dataclass(frozen=True)
class RecoveryResult:
    mask: LabelMask  # the saved mask with the journalled edits applied (one undo step, dirty)
    records: int  # journal records replayed
    note: str  # what was ignored (a torn last record ...), "" when the journal was intact


class Project:
    """A project folder. Open with :meth:`open` or make one with :meth:`create`."""

    def __init__(self, root: Path, meta: dict[str, Any], classes: ClassTable, has_file: bool) -> None:
        self.root = root
        self._meta = meta
        self.classes = classes
        self._has_file = has_file
        self._lock = threading.RLock()
        self._open_masks: dict[str, tuple[LabelMask, StrokeJournal]] = {}
        self._unreadable: dict[str, tuple[str, int]] = {}  # name -> (reason, mask mtime_ns)
        self._save_locks: dict[str, threading.Lock] = {}
        self._index: tuple[int, dict[str, Path]] | None = None

    # ---- creating and opening -----------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, classes: ClassTable, name: str | None = None,
               settings: dict[str, Any] | None = None) -> "Project":
        """A new project in ``root`` (which may exist but must not hold a project or files)."""
        root = Path(root)
        if (root / PROJECT_FILE).exists():
            raise DatasetError(f"{root}: already a project (it has a {PROJECT_FILE}); open it instead")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise DatasetError(f"{root}: not an empty folder; a new project needs an empty or new folder")
        for sub in ("images", "masks", "checkpoints"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        classes.save(root / CLASSES_FILE)
        meta = cls._new_meta(name or root.name, settings)
        project = cls(root, meta, classes, has_file=False)
        project.save()
        return project

    @classmethod
    def open(cls, root: str | Path) -> "Project":
        """Open a project folder, or a bare data set folder in the same layout."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such folder")
        pfile = root / PROJECT_FILE
        if pfile.exists():
            try:
                meta = json.loads(pfile.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DatasetError(f"{pfile}: not a readable project file: {exc}") from exc
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise DatasetError(f"{pfile}: not a PSPNet Studio project file (no \"format\": \"{FORMAT}\")")
            if int(meta.get("version", 0)) > FORMAT_VERSION:
                raise DatasetError(f"{pfile}: project format version {meta.get('version')} is newer than this "
                                   f"program reads ({FORMAT_VERSION})")
            base = cls._new_meta(root.name, None)
            base.update(meta)
            meta, has_file = base, True
        else:
            if not (root / "images").is_dir():
                raise DatasetError(f"{root}: neither a project ({PROJECT_FILE}) nor a data set folder "
                                   f"(images/, masks/, {CLASSES_FILE})")
            meta, has_file = cls._new_meta(root.name, None), False
        cfile = root / str(meta.get("classes") or CLASSES_FILE)
        if not cfile.is_file():
            raise DatasetError(f"{cfile}: the project's class table is missing")
        try:
            classes = ClassTable.load(cfile)
        except ValueError as exc:
            raise DatasetError(str(exc)) from exc
        project = cls(root, meta, classes, has_file)
        project._remove_stale_temp_files()
        return project

    @staticmethod
    def _new_meta(name: str, settings: dict[str, Any] | None) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "name": name, "classes": CLASSES_FILE,
                "created": _now(), "settings": dict(settings or {}), "current_model": None, "history": []}

    def _remove_stale_temp_files(self) -> None:
        """Temp files of atomic writes that a crash left behind (older than a minute)."""
        cutoff = time.time() - _STALE_TEMP_S
        for folder in (self.root, self.masks_dir, self.checkpoints_dir):
            if not folder.is_dir():
                continue
            for p in folder.glob(".*.tmp"):
                try:
                    if p.is_file() and p.stat().st_mtime < cutoff:
                        p.unlink()
                except OSError:
                    pass

    # ---- metadata -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self._meta["name"])

    @property
    def created(self) -> str:
        return str(self._meta["created"])

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self._meta.get("settings") or {})

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def masks_dir(self) -> Path:
        return self.root / "masks"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def has_project_file(self) -> bool:
        return self._has_file

    def update_settings(self, **values: Any) -> None:
        with self._lock:
            self._meta.setdefault("settings", {}).update(_jsonable(values))
            self.save()

    def save(self) -> None:
        """Write project.json atomically."""
        with self._lock:
            atomic_write_text(self.root / PROJECT_FILE, json.dumps(self._meta, indent=1) + "\n")
            self._has_file = True

    # ---- images -------------------------------------------------------------------------------
    def _image_index(self) -> dict[str, Path]:
        try:
            stamp = self.images_dir.stat().st_mtime_ns
        except OSError:
            return {}
        with self._lock:
            if self._index is not None and self._index[0] == stamp:
                return self._index[1]
            index: dict[str, Path] = {}
            for p in sorted(self.images_dir.iterdir()):
                if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
                    continue
                if p.stem in index:
                    log.warning("%s: ignored: %s has the same name", p, index[p.stem].name)
                    continue
                index[p.stem] = p
            self._index = (stamp, index)
            return index

    def names(self) -> list[str]:
        return list(self._image_index())

    def image_path(self, name: str) -> Path:
        path = self._image_index().get(name)
        if path is None:
            raise DatasetError(f"{self.images_dir}: no image named {name!r}")
        return path

    def mask_path(self, name: str) -> Path:
        return self.masks_dir / f"{name}.png"

    def journal_path(self, name: str) -> Path:
        return journal_path(self.mask_path(name))

    def read_image(self, name: str) -> np.ndarray:
        return read_image(self.image_path(name))

    def images(self) -> list[ImageEntry]:
        """Every image with the state of its mask (read from file headers only: cheap)."""
        return [ImageEntry(n, p, self.mask_path(n), self.mask_state(n)) for n, p in self._image_index().items()]

    def mask_state(self, name: str) -> str:
        """"no mask", "mask" or "unreadable mask" (a header check; a full failed load also counts)."""
        mpath = self.mask_path(name)
        try:
            mtime = mpath.stat().st_mtime_ns
        except FileNotFoundError:
            return NO_MASK
        except OSError:
            return UNREADABLE
        known = self._unreadable.get(name)
        if known is not None and known[1] == mtime:
            return UNREADABLE
        try:
            size = image_size(mpath)
        except ImageReadError:
            return UNREADABLE
        try:
            expected = image_size(self.image_path(name))
        except StudioError:
            return MASK  # the image is the problem, not the mask
        return MASK if size == expected else UNREADABLE

    def blocked_reason(self, name: str) -> str | None:
        """Why this image's mask must not be edited (None when it may be)."""
        known = self._unreadable.get(name)
        return known[0] if known else None

    def add_images(self, paths: Iterable[str | Path]) -> list[ImageEntry]:
        """Copy images into images/ (renaming on a name clash). Every file is checked first: an
        unreadable one raises ImageReadError and nothing is copied."""
        sources = [Path(p) for p in paths]
        for src in sources:
            if src.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ImageReadError(f"{src}: not an image file type this program reads "
                                     f"({', '.join(IMAGE_EXTENSIONS)})")
            read_image(src)  # raises with the reason
        self.images_dir.mkdir(parents=True, exist_ok=True)
        taken = set(self._image_index())
        plan: list[tuple[Path, Path]] = []
        for src in sources:
            if src.resolve().parent == self.images_dir.resolve():
                continue  # already in the project
            stem, n = src.stem, 1
            while stem in taken or stem.startswith("."):
                n += 1
                stem = f"{src.stem.lstrip('.')}_{n}"
            taken.add(stem)
            plan.append((src, self.images_dir / f"{stem}{src.suffix.lower()}"))
        done: list[Path] = []
        try:
            for src, dst in plan:
                with open(src, "rb") as fin:
                    atomic_write(dst, lambda f, fin=fin: shutil.copyfileobj(fin, f, 1 << 20))
                done.append(dst)
        except OSError as exc:
            for p in done:  # all or nothing
                p.unlink(missing_ok=True)
            raise ImageReadError(f"{src}: could not copy into {self.images_dir}: {exc.strerror or exc}; "
                                 f"no image was added") from exc
        names = {dst.stem for _, dst in plan} | {s.stem for s in sources if s.resolve().parent == self.images_dir.resolve()}
        return [e for e in self.images() if e.name in names]

    def write_split(self, split: str, names: Sequence[str]) -> Path:
        """Write ``<split>.txt`` (e.g. train / val) with one image name a line."""
        unknown = [n for n in names if n not in self._image_index()]
        if unknown:
            raise DatasetError(f"{self.root}: {split} split names unknown images: {unknown[:5]}")
        path = self.root / f"{split}.txt"
        atomic_write_text(path, "".join(f"{n}\n" for n in names))
        return path

    # ---- masks --------------------------------------------------------------------------------
    def _read_mask_file(self, name: str) -> LabelMask:
        """The mask as on disk (all 255 when there is none); UnreadableMaskError when unusable."""
        shape = image_size(self.image_path(name))
        mpath = self.mask_path(name)
        try:
            mtime = mpath.stat().st_mtime_ns
        except FileNotFoundError:
            self._unreadable.pop(name, None)
            return LabelMask.empty(shape, len(self.classes))
        except OSError as exc:
            raise UnreadableMaskError(name, mpath, f"{mpath}: cannot read: {exc.strerror or exc}") from exc
        try:
            data = read_mask(mpath, self.classes, shape=shape)
        except MaskError as exc:
            self._unreadable[name] = (str(exc), mtime)
            raise UnreadableMaskError(name, mpath, str(exc)) from exc
        self._unreadable.pop(name, None)
        return LabelMask(data, len(self.classes), copy=False)

    def load_mask(self, name: str, *, recover: bool = False) -> LabelMask:
        """The editable mask of an image, journalled against crashes.

        One mask per image: while it is open (until :meth:`close_mask`) the same object, with
        its undo history, is returned. Raises :class:`UnreadableMaskError` when the mask file
        exists but cannot be used (that file is then never overwritten). A journal of unsaved
        edits from an earlier session is moved aside (``.<stem>.journal.discarded``) unless
        ``recover`` (see :meth:`recover`)."""
        with self._lock:
            if name in self._open_masks:
                return self._open_masks[name][0]
        if recover:
            return self.recover(name).mask
        mask = self._read_mask_file(name)
        journal = StrokeJournal(self.journal_path(name))
        if journal.path.exists():
            self._set_aside(journal.path)
        self._attach(name, mask, journal)
        return mask

    def _attach(self, name: str, mask: LabelMask, journal: StrokeJournal) -> None:
        with self._lock:
            old = self._open_masks.pop(name, None)
            if old is not None:
                old[1].detach(old[0])
            journal.attach(mask)
            self._open_masks[name] = (mask, journal)

    def close_mask(self, name: str) -> None:
        """Forget an open mask (the GUI dropped it; save it first). Unsaved edits stay in its
        journal, so :meth:`recoverable` lists the image until it is recovered or reloaded."""
        with self._lock:
            old = self._open_masks.pop(name, None)
        if old is not None:
            old[1].detach(old[0])

    @staticmethod
    def _set_aside(path: Path) -> None:
        try:
            os.replace(path, path.with_name(path.name + ".discarded"))
        except FileNotFoundError:
            pass

    def save_mask(self, name: str, label_mask: LabelMask) -> None:
        """Write the mask atomically, then clear its journal. Safe to call from a worker thread
        while the GUI keeps painting: the content saved is a consistent snapshot, and edits made
        during the save stay dirty and journalled."""
        mpath = self.mask_path(name)
        with self._lock:
            lock = self._save_locks.setdefault(name, threading.Lock())
            attached = self._open_masks.get(name)
        with lock:
            reason = self.blocked_reason(name)
            if reason is None and (attached is None or attached[0] is not label_mask) and mpath.exists():
                try:  # a mask not loaded through this project: never replace a file we could not read
                    self._read_mask_file(name)
                except UnreadableMaskError as exc:
                    reason = exc.reason
            if reason is not None:
                raise UnreadableMaskError(name, mpath, f"{reason}; not overwritten")
            shape = image_size(self.image_path(name))
            data, revision = label_mask.snapshot()
            if data.shape != shape:
                raise MaskError(f"{mpath}: not saved: the mask is {data.shape[1]}x{data.shape[0]} but the image "
                                f"is {shape[1]}x{shape[0]}")
            self.masks_dir.mkdir(parents=True, exist_ok=True)
            write_mask(mpath, data, self.classes)  # atomic; MaskError (old file kept) on failure
            label_mask.mark_saved(revision)
            if attached is not None and attached[0] is label_mask:
                attached[1].clear(revision)
            else:
                self._set_aside(self.journal_path(name))
        if not self._has_file:
            self.save()

    def recoverable(self) -> list[str]:
        """Images whose journal holds edits their saved mask lacks (crash leftovers).

        A journal newer than its mask is listed at once; an older one (the process died after a
        save wrote the mask but before it cleared the journal, while strokes made during that
        save were journalled) is listed when replaying it would change the mask."""
        out = []
        with self._lock:
            open_names = set(self._open_masks)
        for name in self._image_index():
            if name in open_names:
                continue
            jpath = self.journal_path(name)
            try:
                jtime = jpath.stat().st_mtime_ns
            except OSError:
                continue
            try:
                mtime = self.mask_path(name).stat().st_mtime_ns
            except OSError:
                mtime = -1
            journal = StrokeJournal(jpath)
            if not journal.exists():
                continue
            if jtime >= mtime:
                out.append(name)
                continue
            try:
                saved = self._read_mask_file(name).data
                replayed, n = journal.replay(saved)
            except StudioError as exc:
                log.warning("%s: journal not offered for recovery: %s", jpath, exc)
                continue
            if n and not np.array_equal(replayed, saved):
                out.append(name)
        return out

    def recover(self, name: str) -> RecoveryResult:
        """The saved mask with the journalled edits applied as one undo step (dirty, so autosave
        writes it). The journal stays until that save. An image already open is returned as it is."""
        with self._lock:
            if name in self._open_masks:
                return RecoveryResult(self._open_masks[name][0], 0, "")
        mask = self._read_mask_file(name)
        journal = StrokeJournal(self.journal_path(name))
        recovered, n = journal.replay(mask.data)
        note = journal.note
        self._attach(name, mask, journal)
        diff = recovered != mask.data
        if diff.any():
            rows = np.flatnonzero(diff.any(axis=1))
            cols = np.flatnonzero(diff.any(axis=0))
            box = Region(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
            mask.assign(box, recovered[box.slices].copy(), kind="recover")
        return RecoveryResult(mask, n, note)

    def discard_journal(self, name: str) -> None:
        """Give up the unsaved edits of a crashed session (moved aside, not deleted)."""
        self._set_aside(self.journal_path(name))

    # ---- model history ------------------------------------------------------------------------
    def _entry(self, d: dict[str, Any]) -> CheckpointEntry:
        return CheckpointEntry(str(d["id"]), str(d["file"]), self.checkpoints_dir / str(d["file"]),
                               dict(d.get("metrics") or {}), str(d.get("time", "")), d.get("parent"),
                               str(d.get("note", "")))

    def checkpoints(self) -> list[CheckpointEntry]:
        """The model history, oldest first."""
        with self._lock:
            return [self._entry(d) for d in self._meta.get("history", [])]

    @property
    def current_checkpoint(self) -> CheckpointEntry | None:
        with self._lock:
            current = self._meta.get("current_model")
            return next((e for e in self.checkpoints() if e.id == current), None)

    def add_checkpoint(self, source: str | Path | tuple[Any, ClassTable], metrics: dict[str, Any] | None = None,
                       note: str = "", *, make_current: bool = True) -> CheckpointEntry:
        """Add a model to the history: a checkpoint file (copied into checkpoints/) or a
        ``(model, classes)`` pair (saved with core.save_checkpoint). Its parent is the current model."""
        with self._lock:
            history = self._meta.setdefault("history", [])
            number = 1 + max((int(d["id"]) for d in history if str(d.get("id", "")).isdigit()), default=0)
            ckpt_id = f"{number:04d}"
            self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            if isinstance(source, (str, Path)):
                src = Path(source)
                if not src.is_file():
                    raise CheckpointError(f"{src}: no such checkpoint file")
                fname = f"model-{ckpt_id}{''.join(src.suffixes[-1:]) or '.pth'}"
                dst = self.checkpoints_dir / fname
                with open(src, "rb") as fin:
                    atomic_write(dst, lambda f: shutil.copyfileobj(fin, f, 1 << 20))
            else:
                import core

                model, classes = source
                fname = f"model-{ckpt_id}.safetensors"
                dst = self.checkpoints_dir / fname
                core.save_checkpoint(dst, model, classes, {"project": self.name, "note": note, "id": ckpt_id})
            entry = CheckpointEntry(ckpt_id, fname, dst, _jsonable(metrics or {}), _now(),
                                    self._meta.get("current_model"), note)
            history.append(entry.to_dict())
            previous = self._meta.get("current_model")
            if make_current:
                self._meta["current_model"] = ckpt_id
            try:
                self.save()
            except BaseException:
                history.pop()
                self._meta["current_model"] = previous
                dst.unlink(missing_ok=True)
                raise
            return entry

    def restore(self, entry: CheckpointEntry | str) -> CheckpointEntry:
        """Make an earlier model the current one (the caller loads ``entry.path``)."""
        ckpt_id = entry.id if isinstance(entry, CheckpointEntry) else str(entry)
        with self._lock:
            found = next((e for e in self.checkpoints() if e.id == ckpt_id), None)
            if found is None:
                raise CheckpointError(f"{self.root / PROJECT_FILE}: no model {ckpt_id!r} in the history")
            if not found.path.is_file():
                raise CheckpointError(f"{found.path}: the checkpoint file of model {ckpt_id} is missing")
            previous = self._meta.get("current_model")
            self._meta["current_model"] = ckpt_id
            try:
                self.save()
            except BaseException:
                self._meta["current_model"] = previous
                raise
            return found
