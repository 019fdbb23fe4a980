"""A project folder on disk: images, their label masks, the class table and the model history.

Layout (the engine's data set reader reads it as it is)::

    project.json      name, classes file, created, settings, current model, model history
    classes.json      the class table
    .project.lock     who has the project open for writing (see core.project_lock)
    images/           the photos (any format core.read_image reads)
    masks/            <image stem>.png, indexed PNGs; .<stem>.journal = unsaved edits (crash journal)
    checkpoints/      model-0001.safetensors ... (each with metrics, time, parent in project.json)
    train.txt val.txt optional splits (one image stem a line)

A bare data set folder in this layout (no project.json, e.g. ``core.write_demo_project``'s) opens
too; project.json is written on the first save.

**One writer per project.** :meth:`Project.open` takes the project's lock (released by
:meth:`Project.close`, by ``with``, when the object is garbage-collected, or when the process
ends in any way); a second program gets :class:`ProjectLockedError` naming the holder, and may
open it read-only (``read_only=True``): every write of a read-only project raises
:class:`ReadOnlyProjectError`, and it never touches the writer's journals. Within one program,
opening a project that is already open for writing returns that same object (one set of open
masks and journals per project), counted: each ``open`` wants one ``close``.

**Damaged files explain themselves.** project.json and classes.json are checked against their
schema when the project opens (core.project_schema): damage is one ProjectFileError naming the
file and the field. A lost or damaged class table (:class:`ClassTableError`) is replaced by
choosing one: ``Project.open(root, classes=table)`` (the damaged file is kept as a numbered
copy, the masks are left as they are). Nothing is written by reading.

Safety rules: every write is atomic (core.atomic) and a failed one raises a
:class:`~core.errors.WriteError` naming the file with the project's state in memory unchanged;
a mask file that cannot be parsed (or is not a PNG) is never overwritten (its image opens
read-only, :class:`UnreadableMaskError` says why); a checkpoint is loaded (safely) before it joins
the history or is restored, and history paths stay inside checkpoints/; edits are journalled per
stroke by a writer thread (core.journal), so after a crash :meth:`Project.recoverable` lists the
images with unsaved edits and :meth:`Project.recover` brings them back; a journal is never
deleted unless it was applied or kept as a numbered copy. A journal that cannot be written is
reported (:meth:`Project.journal_problems`, ``on_journal_status``) and retried.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.atomic import atomic_save, write_error
from core.classes import ClassTable
from core.data.io import IMAGE_EXTENSIONS, DecodedImage, image_info, image_size, read_image, read_image_checked, \
    read_mask, write_mask
from core.errors import (CheckpointError, ClassTableError, DatasetError, ImageReadError, MaskError,
                         ProjectFileError, ProjectLockedError, ReadOnlyProjectError, StudioError, WriteError)
from core.journal import JournalStatus, StrokeJournal, journal_path, set_aside
from core.labels import LabelMask, Listeners, Region
from core.project_lock import LOCK_FILE, LockHolder, ProjectLock, lock_holder
from core.project_schema import FORMAT, FORMAT_VERSION, read_classes_file, read_project_file, safe_relative

log = logging.getLogger(__name__)

PROJECT_FILE = "project.json"
CLASSES_FILE = "classes.json"
from core.constants import MASK, NO_MASK, UNREADABLE  # noqa: E402 (the mask states, single-sourced)
_STALE_TEMP_S = 60.0  # atomic-write temp files older than this are leftovers of a crash
_SAVE_FLUSH_S = 2.0  # how long a mask save waits for its journal to catch up (never on a refusing disk)

__all__ = ["Project", "ImageEntry", "CheckpointEntry", "RecoveryResult", "UnreadableMaskError", "ProjectLockedError",
           "ReadOnlyProjectError", "ProjectFileError", "ClassTableError", "LockHolder", "JournalStatus",
           "PROJECT_FILE", "CLASSES_FILE", "LOCK_FILE", "FORMAT", "FORMAT_VERSION", "NO_MASK", "MASK", "UNREADABLE"]


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


def _same_table(a: ClassTable, b: ClassTable) -> bool:
    return tuple(a.names) == tuple(b.names) and tuple(map(tuple, a.colors)) == tuple(map(tuple, b.colors))


class UnreadableMaskError(MaskError):
    """A mask file exists but cannot be used; it is left untouched and its image opens read-only."""

    def __init__(self, name: str, path: Path, reason: str) -> None:
        self.name, self.path, self.reason = name, path, reason
        super().__init__(f"{reason} -- the image {name!r} opens read-only and the mask file is left as it is "
                         f"(repair or remove it to edit this image)")

    def __reduce__(self) -> Any:
        return (type(self), (self.name, self.path, self.reason))


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


# one writer object per project folder in this process: realpath -> the open Project
_WRITERS: dict[str, "weakref.ref[Project]"] = {}
_REGISTRY = threading.Lock()


def _key(root: Path) -> str:
    return os.path.normcase(os.path.realpath(root))


def _release_writer(lock: ProjectLock, open_masks: dict[str, tuple[LabelMask, StrokeJournal]],
                    retired: dict[str, StrokeJournal]) -> None:
    """Close a writer's journals (writing what they hold), then give the lock back."""
    for journal in [j for _m, j in list(open_masks.values())] + list(retired.values()):
        try:
            journal.close(timeout=5.0)
        except Exception:  # noqa: BLE001 - releasing must go on
            log.exception("%s: closing the journal failed", journal.path)
    lock.release()


class _StatusRelay:
    """Forwards one journal's status to its project's ``on_journal_status`` (holds the project
    weakly: a journal must not keep a dropped project, and its lock, alive)."""

    def __init__(self, project: "Project", name: str) -> None:
        self._project, self._name = weakref.ref(project), name

    def __call__(self, status: JournalStatus) -> None:
        project = self._project()
        if project is not None:
            project.on_journal_status.emit(self._name, status)


class Project:
    """A project folder. Open with :meth:`open` or make one with :meth:`create`."""

    def __init__(self, root: Path, meta: dict[str, Any], classes: ClassTable, has_file: bool,
                 lock: ProjectLock | None = None) -> None:
        self.root = root
        self._meta = meta
        self.classes = classes
        self._has_file = has_file
        self._lock = threading.RLock()
        self._open_masks: dict[str, tuple[LabelMask, StrokeJournal]] = {}
        self._unreadable: dict[str, tuple[str, int]] = {}  # name -> (reason, mask mtime_ns)
        self._save_locks: dict[str, threading.Lock] = {}
        self._index: tuple[int, dict[str, Path]] | None = None
        self._retired: dict[str, StrokeJournal] = {}  # journals of closed masks, maybe still writing
        self._project_lock = lock
        self._closed = False
        self._opens = 1
        self.on_journal_status = Listeners()  # (name, JournalStatus) when a journal fails or works again
        self._finalizer = (weakref.finalize(self, _release_writer, lock, self._open_masks, self._retired)
                           if lock is not None else None)

    # ---- creating, opening, closing -----------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, classes: ClassTable, name: str | None = None,
               settings: dict[str, Any] | None = None) -> "Project":
        """A new project in ``root`` (which may exist but must not hold a project or files),
        open for writing."""
        root = Path(root)
        if (root / PROJECT_FILE).exists():
            raise DatasetError(f"{root}: already a project (it has a {PROJECT_FILE}); open it instead")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise DatasetError(f"{root}: not an empty folder; a new project needs an empty or new folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(root, exc, "the new project folder") from exc
        with _REGISTRY:
            lock = ProjectLock.acquire(root)
            made: list[Path] = []
            try:
                if any(p.name != LOCK_FILE for p in root.iterdir()):
                    raise DatasetError(f"{root}: another program is making a project in this folder")
                for sub in ("images", "masks", "checkpoints"):
                    (root / sub).mkdir()
                    made.append(root / sub)
                try:
                    classes.save(root / CLASSES_FILE)
                except ValueError as exc:
                    raise DatasetError(f"{root / CLASSES_FILE}: {exc}") from exc
                made.append(root / CLASSES_FILE)
                project = cls(root, cls._new_meta(name or root.name, _jsonable(settings or {})), classes,
                              has_file=False, lock=lock)
                project.save()
            except BaseException as exc:
                for p in reversed(made):  # leave the folder as it was found
                    try:
                        p.rmdir() if p.is_dir() else p.unlink()
                    except OSError:
                        pass
                lock.release()
                if isinstance(exc, OSError) and not isinstance(exc, StudioError):
                    raise write_error(root, exc, "the new project") from exc
                raise
            _WRITERS[_key(root)] = weakref.ref(project)
        return project

    @classmethod
    def open(cls, root: str | Path, *, read_only: bool = False, classes: ClassTable | None = None,
             take_over: bool = False) -> "Project":
        """Open a project folder, or a bare data set folder in the same layout.

        - default: for writing; raises :class:`ProjectLockedError` when another program has it
          open (``take_over=True`` takes over a lock left on another computer, whose program
          cannot be checked from here; a lock that is provably live is never taken), or
          :class:`ReadOnlyProjectError` when the folder cannot be written;
        - ``read_only=True``: no lock, nothing is ever written;
        - ``classes``: the class table to use when the project's own is missing or damaged
          (:class:`ClassTableError`); a writer saves it as the project's table.
        Damaged project files raise :class:`ProjectFileError` naming the file and the field."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such folder")
        if read_only:
            return cls._load(root, classes, None)
        with _REGISTRY:
            ref = _WRITERS.get(_key(root))
            live = ref() if ref is not None else None
            if live is not None and not live._closed:
                if classes is not None and not _same_table(classes, live.classes):
                    raise DatasetError(f"{root}: the project is open in this program with its own class table "
                                       f"({len(live.classes)} classes)")
                live._opens += 1
                return live
            lock = ProjectLock.acquire(root, take_over=take_over)
            try:
                project = cls._load(root, classes, lock)
            except BaseException:
                lock.release()
                raise
            _WRITERS[_key(root)] = weakref.ref(project)
        return project

    @classmethod
    def _load(cls, root: Path, classes: ClassTable | None, lock: ProjectLock | None) -> "Project":
        pfile = root / PROJECT_FILE
        if pfile.exists():
            meta, has_file = read_project_file(pfile, root.name), True
        else:
            if not (root / "images").is_dir():
                raise DatasetError(f"{root}: neither a project ({PROJECT_FILE}) nor a data set folder "
                                   f"(images/, masks/, {CLASSES_FILE})")
            meta, has_file = cls._new_meta(root.name, None), False
        cfile = root / meta["classes"]
        repair: ClassTableError | None = None
        try:
            table = read_classes_file(cfile)
        except ClassTableError as exc:
            if classes is None:
                raise
            table, repair = classes, exc
        else:
            if classes is not None and not _same_table(classes, table):
                raise DatasetError(f"{cfile}: the project has its own class table ({len(table)} classes), which "
                                   f"differs from the one given; open it without a class table")
        project = cls(root, meta, table, has_file, lock)
        if lock is not None:
            if repair is not None:
                project._replace_class_table(cfile)
            project._remove_stale_temp_files()
        return project

    def _replace_class_table(self, cfile: Path) -> None:
        """Save the chosen class table over a lost or damaged one (kept as a numbered copy)."""
        if cfile.exists():
            kept = set_aside(cfile, "damaged", copy=True)
            log.warning("%s: damaged; kept as %s and replaced by the class table chosen", cfile, kept)
        self.classes.save(cfile)

    @property
    def classes_path(self) -> Path:
        return self.root / str(self._meta["classes"])

    def update_classes(self, table: ClassTable) -> ClassTable:
        """Change the class table without invalidating any mask: every class keeps its id (its
        name and colour may change), new classes are appended after the existing ones. Written
        atomically; the open masks accept the new ids at once. A table with fewer classes raises
        :class:`ClassTableError` (their ids are in the masks) and changes nothing; a full disk
        raises WriteError with the old table kept, on disk and here."""
        self._writable("change the class table")
        path = self.classes_path
        old = self.classes
        if not isinstance(table, ClassTable):
            raise TypeError(f"a ClassTable is needed, not {type(table).__name__}")
        if len(table) < len(old):
            raise ClassTableError(f"{path}: the new class table has {len(table)} classes and the project "
                                  f"{len(old)}: classes cannot be removed, their ids are in the masks (rename them "
                                  "instead); nothing was changed", path, "classes")
        with self._lock:
            table.save(path)  # atomic: a failure leaves the old file
            self.classes = table
            for mask, _journal in self._open_masks.values():
                mask.num_classes = len(table)
            self._unreadable.clear()  # masks refused for ids outside the old table are read again
        return table

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

    def close(self) -> None:
        """Done with the project: its journals are written out and the lock is given back (the
        last of several ``open`` calls in this program does it). A closed project refuses writes.
        Unsaved edits stay in their journals (the next session offers them)."""
        with _REGISTRY:
            if self._closed:
                return
            self._opens -= 1
            if self._opens > 0:
                return
            self._closed = True
            key = _key(self.root)
            ref = _WRITERS.get(key)
            if ref is not None and ref() is self:
                del _WRITERS[key]
        with self._lock:
            for mask, journal in self._open_masks.values():
                journal.detach(mask)
        if self._finalizer is not None:
            self._finalizer()  # closes the journals, releases the lock

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def read_only(self) -> bool:
        """Whether writes are refused (opened read-only, or closed)."""
        return self._project_lock is None or self._closed

    @property
    def read_only_reason(self) -> str:
        """Why writes are refused ("" when they are not)."""
        if self._closed:
            return "the project was closed"
        if self._project_lock is not None:
            return ""
        holder, live = lock_holder(self.root)
        if holder is not None and live is not False:
            return f"it is open for writing in another program ({holder.describe()})"
        return "it was opened read-only"

    @staticmethod
    def lock_holder(root: str | Path) -> LockHolder | None:
        """Who has the project open for writing now (None when nobody does); takes nothing."""
        holder, live = lock_holder(root)
        return holder if live is not False else None

    def _writable(self, what: str) -> None:
        if self.read_only:
            reason = self.read_only_reason
            raise ReadOnlyProjectError(f"{self.root}: cannot {what}: {reason}", self.root, reason)

    # ---- metadata -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self._meta["name"])

    @property
    def created(self) -> str:
        return str(self._meta["created"])

    @property
    def settings(self) -> dict[str, Any]:
        return copy.deepcopy(self._meta.get("settings") or {})

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

    def _commit(self, meta: dict[str, Any]) -> None:
        """Write ``meta`` as project.json; only once it is on disk does it become the state in
        memory (a failed write changes neither)."""
        atomic_save(self.root / PROJECT_FILE, json.dumps(meta, indent=1) + "\n", what="the project file")
        self._meta = meta
        self._has_file = True

    def update_settings(self, **values: Any) -> None:
        """Merge ``values`` into the settings and save; WriteError (settings unchanged) when the
        disk refuses."""
        self._writable("save the settings")
        with self._lock:
            meta = copy.deepcopy(self._meta)
            meta.setdefault("settings", {}).update(_jsonable(values))
            self._commit(meta)

    def save(self) -> None:
        """Write project.json atomically."""
        self._writable("save the project file")
        with self._lock:
            self._commit(self._meta)

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

    def read_image_checked(self, name: str) -> DecodedImage:
        """The image and the decoder's warnings about damaged data (see core.read_image_checked)."""
        return read_image_checked(self.image_path(name))

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
            info = image_info(mpath)
        except ImageReadError:
            return UNREADABLE
        if info.format != "PNG":
            return UNREADABLE
        try:
            expected = image_size(self.image_path(name))
        except StudioError:
            return MASK  # the image is the problem, not the mask
        return MASK if (info.height, info.width) == expected else UNREADABLE

    def blocked_reason(self, name: str) -> str | None:
        """Why this image's mask must not be edited (None when it may be)."""
        known = self._unreadable.get(name)
        return known[0] if known else None

    def add_images(self, paths: Iterable[str | Path]) -> list[ImageEntry]:
        """Copy images into images/ (renaming on a name clash). Every file is checked first: an
        unreadable one raises ImageReadError and nothing is copied; a full disk raises WriteError
        and nothing is added."""
        self._writable("add images")
        sources = [Path(p) for p in paths]
        for src in sources:
            if src.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ImageReadError(f"{src}: not an image file type this program reads "
                                     f"({', '.join(IMAGE_EXTENSIONS)})")
            read_image(src)  # raises with the reason
        try:
            self.images_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(self.images_dir, exc, "the images folder") from exc
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
                    atomic_save(dst, lambda f, fin=fin: shutil.copyfileobj(fin, f, 1 << 20), what=f"a copy of {src}")
                done.append(dst)
        except OSError as exc:
            for p in done:  # all or nothing
                p.unlink(missing_ok=True)
            raise WriteError(f"{exc}; no image was added", getattr(exc, "path", None), exc.errno) from exc
        names = {dst.stem for _, dst in plan} | {s.stem for s in sources if s.resolve().parent == self.images_dir.resolve()}
        return [e for e in self.images() if e.name in names]

    def write_split(self, split: str, names: Sequence[str]) -> Path:
        """Write ``<split>.txt`` (e.g. train / val) with one image name a line."""
        self._writable(f"write the {split} split")
        unknown = [n for n in names if n not in self._image_index()]
        if unknown:
            raise DatasetError(f"{self.root}: {split} split names unknown images: {unknown[:5]}")
        if not safe_relative(f"{split}.txt") or "/" in split or "\\" in split:
            raise DatasetError(f"{split!r}: not a split name (a plain name such as train or val)")
        path = self.root / f"{split}.txt"
        atomic_save(path, "".join(f"{n}\n" for n in names), what=f"the {split} split")
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
            info = image_info(mpath)
            if info.format != "PNG":
                raise MaskError(f"{mpath}: a {info.format} file, not a PNG: a mask must be a PNG (lossy formats "
                                f"change the label ids)")
            data = read_mask(mpath, self.classes, shape=shape)
        except (MaskError, ImageReadError) as exc:
            self._unreadable[name] = (str(exc), mtime)
            raise UnreadableMaskError(name, mpath, str(exc)) from exc
        self._unreadable.pop(name, None)
        return LabelMask(data, len(self.classes), copy=False)

    def saved_mask(self, name: str) -> np.ndarray:
        """The mask as saved on disk (all 255 when there is none), for any project, read-only
        included; UnreadableMaskError when the file cannot be used."""
        return self._read_mask_file(name).data

    def load_mask(self, name: str, *, recover: bool = False) -> LabelMask:
        """The editable mask of an image, journalled against crashes.

        One mask per image: while it is open (until :meth:`close_mask`) the same object, with
        its undo history, is returned. Raises :class:`UnreadableMaskError` when the mask file
        exists but cannot be used (that file is then never overwritten), ReadOnlyProjectError
        in a read-only project (:meth:`saved_mask` reads it there). A journal of unsaved edits
        from an earlier session is set aside (``.<stem>.journal.discarded``, numbered) unless
        ``recover`` (see :meth:`recover`)."""
        with self._lock:
            if name in self._open_masks:
                return self._open_masks[name][0]
        self._writable(f"edit the mask of {name!r}")
        if recover:
            return self.recover(name).mask
        self._settle(name)
        mask = self._read_mask_file(name)
        journal = StrokeJournal(self.journal_path(name))
        if journal.path.exists():
            set_aside(journal.path)
        self._attach(name, mask, journal)
        return mask

    def _attach(self, name: str, mask: LabelMask, journal: StrokeJournal) -> None:
        with self._lock:
            old = self._open_masks.pop(name, None)
            if old is not None:
                old[1].detach(old[0])
                old[1].close()
            journal.attach(mask)
            journal.on_status.connect(_StatusRelay(self, name))
            self._open_masks[name] = (mask, journal)

    def _settle(self, name: str) -> None:
        """Let the journal of a closed mask finish writing before its file is read or moved."""
        with self._lock:
            journal = self._retired.pop(name, None)
        if journal is not None:
            journal.close(timeout=10.0)

    def close_mask(self, name: str) -> None:
        """Forget an open mask (the GUI dropped it; save it first). Unsaved edits stay in its
        journal, so :meth:`recoverable` lists the image until it is recovered or reloaded.
        Returns at once: the journal's writer thread finishes what it holds on its own."""
        with self._lock:
            old = self._open_masks.pop(name, None)
            if old is not None:
                old[1].detach(old[0])
                self._retired[name] = old[1]

    def journal_status(self, name: str) -> JournalStatus | None:
        """The crash journal of an open mask: on disk, pending, or failing (None when not open)."""
        with self._lock:
            found = self._open_masks.get(name)
        return found[1].status if found is not None else None

    def journal_problems(self) -> dict[str, JournalStatus]:
        """The open masks whose journal the disk refuses now: their edits since the last save are
        in memory only (what the GUI shows as a persistent warning, until it works again)."""
        with self._lock:
            items = list(self._open_masks.items())
        out = {}
        for name, (_mask, journal) in items:
            status = journal.status
            if not status.ok:
                out[name] = status
        return out

    def flush_journals(self, timeout: float | None = None) -> bool:
        """Wait until every journalled edit is on disk (False: the disk refused, or timeout)."""
        with self._lock:
            journals = [j for _m, j in self._open_masks.values()] + list(self._retired.values())
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for j in journals:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = j.flush(left) and ok
        return ok

    def discard_journal(self, name: str) -> None:
        """Give up the unsaved edits of a crashed session (moved aside, numbered, not deleted)."""
        self._writable(f"set aside the unsaved edits of {name!r}")
        self._settle(name)
        set_aside(self.journal_path(name))

    def save_mask(self, name: str, label_mask: LabelMask) -> None:
        """Write the mask atomically, then clear its journal. Safe to call from a worker thread
        while the GUI keeps painting: the content saved is a consistent snapshot, and edits made
        during the save stay dirty and journalled. A full disk raises MaskWriteError (a
        WriteError naming the file): the old file stays, the mask stays dirty."""
        self._writable(f"save the mask of {name!r}")
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
            if attached is not None and attached[0] is label_mask:
                attached[1].flush(_SAVE_FLUSH_S)  # the journal holds what was painted before the save
            try:
                self.masks_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise write_error(self.masks_dir, exc, "the masks folder") from exc
            write_mask(mpath, data, self.classes)  # atomic; MaskWriteError (old file kept) on failure
            label_mask.mark_saved(revision)
            if attached is not None and attached[0] is label_mask:
                attached[1].clear(revision)
            else:
                self._settle(name)
                set_aside(self.journal_path(name))
        if not self._has_file:
            try:
                self.save()
            except WriteError as exc:  # the mask is saved; project.json is written at the next save
                log.warning("%s", exc)

    def recoverable(self) -> list[str]:
        """Images whose journal holds edits their saved mask lacks (crash leftovers).

        A journal newer than its mask is listed at once; an older one (the process died after a
        save wrote the mask but before it cleared the journal, while strokes made during that
        save were journalled) is listed when replaying it would change the mask. A read-only
        project lists nothing while another program has it open (those journals are that
        program's live ones, not leftovers)."""
        if self._project_lock is None:
            holder, live = lock_holder(self.root)
            if live is not False:
                return []
        out = []
        with self._lock:
            open_names = set(self._open_masks)
        for name in self._image_index():
            if name in open_names:
                continue
            self._settle(name)
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
        writes it). The journal stays until that save; one with damaged records is also kept as
        a numbered copy (``.<stem>.journal.damaged``), since the save drops what could not be
        read. An image already open is returned as it is."""
        with self._lock:
            if name in self._open_masks:
                return RecoveryResult(self._open_masks[name][0], 0, "")
        self._writable(f"recover the edits of {name!r}")
        self._settle(name)
        mask = self._read_mask_file(name)
        journal = StrokeJournal(self.journal_path(name))
        recovered, n = journal.replay(mask.data)
        note = journal.note
        if note:
            kept = set_aside(journal.path, "damaged", copy=True)
            note = f"{note} (the journal as it was is kept as {kept.name if kept else 'nothing'})"
        self._attach(name, mask, journal)
        diff = recovered != mask.data
        if diff.any():
            rows = np.flatnonzero(diff.any(axis=1))
            cols = np.flatnonzero(diff.any(axis=0))
            box = Region(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
            mask.assign(box, recovered[box.slices].copy(), kind="recover")
        return RecoveryResult(mask, n, note)

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

    def _check_model(self, path: Path, what: str) -> Any:
        """Load a checkpoint safely (core.load_model: no pickle code runs) and check it predicts
        the project's classes; CheckpointError naming ``path`` otherwise."""
        import core

        try:
            loaded = core.load_model(path)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc} -- {what}") from exc
        except Exception as exc:  # noqa: BLE001 - any failure to load is a bad checkpoint here
            raise CheckpointError(f"{path}: cannot be loaded ({type(exc).__name__}: {exc}) -- {what}") from exc
        if len(loaded.classes) != len(self.classes):
            raise CheckpointError(f"{path}: the model predicts {len(loaded.classes)} classes but the project has "
                                  f"{len(self.classes)} -- {what}")
        return loaded

    def _history_path(self, entry: CheckpointEntry) -> Path:
        if not safe_relative(entry.file):  # project.json is checked on open; this is for entries made in code
            raise CheckpointError(f"{self.root / PROJECT_FILE}: model {entry.id}: {entry.file!r} is outside the "
                                  f"project's checkpoints/ folder; not loaded")
        return self.checkpoints_dir / entry.file

    def load_checkpoint(self, entry: CheckpointEntry | str, device: Any = None) -> Any:
        """A model of the history, loaded safely (a ``core.LoadedModel``), after checking that its
        file is inside the project and that it predicts the project's classes."""
        found = self._find(entry)
        path = self._history_path(found)
        if not path.is_file():
            raise CheckpointError(f"{path}: the checkpoint file of model {found.id} is missing")
        loaded = self._check_model(path, f"model {found.id} of the history cannot be used")
        if device is not None:
            loaded.model.to(device)
        return loaded

    def _find(self, entry: CheckpointEntry | str) -> CheckpointEntry:
        ckpt_id = entry.id if isinstance(entry, CheckpointEntry) else str(entry)
        found = next((e for e in self.checkpoints() if e.id == ckpt_id), None)
        if found is None:
            raise CheckpointError(f"{self.root / PROJECT_FILE}: no model {ckpt_id!r} in the history")
        return found

    def add_checkpoint(self, source: str | Path | tuple[Any, ClassTable], metrics: dict[str, Any] | None = None,
                       note: str = "", *, make_current: bool = True) -> CheckpointEntry:
        """Add a model to the history: a checkpoint file (loaded safely first, then copied into
        checkpoints/) or a ``(model, classes)`` pair (saved with core.save_checkpoint, then
        loaded back). Its parent is the current model. A file that does not load, or a model
        for another number of classes, raises CheckpointError; a full disk WriteError; either
        way nothing joins the history and nothing is left in checkpoints/."""
        self._writable("add a model to the history")
        with self._lock:
            history = self._meta.get("history", [])
            number = 1 + max((int(d["id"]) for d in history if str(d.get("id", "")).isdigit()), default=0)
            ckpt_id = f"{number:04d}"
            if isinstance(source, (str, Path)):
                src = Path(source)
                if not src.is_file():
                    raise CheckpointError(f"{src}: no such checkpoint file")
                self._check_model(src, "not added to the project")
                fname = f"model-{ckpt_id}{''.join(src.suffixes[-1:]) or '.pth'}"
            else:
                model, classes = source
                if len(classes) != len(self.classes):
                    raise CheckpointError(f"not added to the project: the model predicts {len(classes)} classes "
                                          f"but the project has {len(self.classes)}")
                fname = f"model-{ckpt_id}.safetensors"
            dst = self.checkpoints_dir / fname
            try:
                self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise write_error(self.checkpoints_dir, exc, "the checkpoints folder") from exc
            try:
                if isinstance(source, (str, Path)):
                    with open(src, "rb") as fin:
                        atomic_save(dst, lambda f: shutil.copyfileobj(fin, f, 1 << 20),
                                    what=f"a copy of the checkpoint {src}")
                else:
                    import core

                    core.save_checkpoint(dst, model, classes, {"project": self.name, "note": note, "id": ckpt_id})
                    self._check_model(dst, "the checkpoint just written does not load back; not added")
                entry = CheckpointEntry(ckpt_id, fname, dst, _jsonable(metrics or {}), _now(),
                                        self._meta.get("current_model"), note)
                meta = copy.deepcopy(self._meta)
                meta.setdefault("history", []).append(entry.to_dict())
                if make_current:
                    meta["current_model"] = ckpt_id
                self._commit(meta)
            except BaseException:
                dst.unlink(missing_ok=True)
                raise
            return entry

    def restore(self, entry: CheckpointEntry | str) -> CheckpointEntry:
        """Make an earlier model the current one, after loading it (safely) to check it is
        usable; the caller then loads ``entry.path``, or use :meth:`restore_model` to load once.
        Loads the model: call it from a worker for large models."""
        return self._restore(entry)[0]

    def restore_model(self, entry: CheckpointEntry | str, device: Any = None) -> tuple[CheckpointEntry, Any]:
        """:meth:`restore`, returning the loaded model too (``(entry, core.LoadedModel)``)."""
        return self._restore(entry, device)

    def _restore(self, entry: CheckpointEntry | str, device: Any = None) -> tuple[CheckpointEntry, Any]:
        self._writable("change the current model")
        with self._lock:
            found = self._find(entry)
            loaded = self.load_checkpoint(found, device)
            meta = copy.deepcopy(self._meta)
            meta["current_model"] = found.id
            self._commit(meta)
            return found, loaded
