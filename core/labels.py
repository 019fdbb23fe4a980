"""The editable label mask: brush, eraser, fill, polygon/lasso, "accept the prediction", undo/redo.

No Qt. The GUI turns mouse events into calls here and listens to two events:

* ``on_change(region)`` after every change of pixels (each brush segment, fill, undo, redo ...),
  so a view re-uploads only ``region`` (a :class:`Region`, half-open ``y0:y1, x0:x1``);
* ``on_commit(edit)`` once per completed undo step (a stroke, a fill, an undo, a redo ...), which
  the crash journal (:mod:`core.journal`) appends to disk.

Undo works like napari's labels layer: a stroke (``begin_stroke`` .. ``end_stroke``) is ONE undo
step, and a step stores only the bounding box of what changed (its old and new content), never a
copy of the whole mask. Each brush segment touches only its own bounding box, so painting costs
the same on a 12-megapixel mask as on a small one. Large steps are kept zlib-compressed.

Mutations happen on one thread (the GUI's); :meth:`LabelMask.snapshot` may be called from any
thread (an autosave worker) and returns a consistent copy with its revision.
"""

from __future__ import annotations

import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import cv2
import numpy as np

from core.constants import IGNORE  # the ignore / unlabelled value
from core.errors import MaskError
_COMPRESS_PIXELS = 1 << 18  # undo patches larger than this are kept zlib-compressed


class Region(NamedTuple):
    """A half-open box ``[y0, y1) x [x0, x1)`` of the mask."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def area(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)

    def union(self, other: "Region") -> "Region":
        return Region(min(self.y0, other.y0), max(self.y1, other.y1), min(self.x0, other.x0), max(self.x1, other.x1))

    def relative_to(self, outer: "Region") -> tuple[slice, slice]:
        """Slices of this region inside an array that holds ``outer``."""
        return (slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0))


class Listeners:
    """A minimal callback list (the GUI's controller turns these into Qt signals)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for cb in list(self._callbacks):
            cb(*args)

    def __len__(self) -> int:
        return len(self._callbacks)


class _Patch:
    """The content of a box. Large ones are zlib-compressed (masks compress 20-100x) on a
    background thread (zlib releases the GIL), so a whole-image fill does not wait for it."""

    __slots__ = ("shape", "_array", "_packed", "_future")

    def __init__(self, array: np.ndarray) -> None:
        array.flags.writeable = False  # we own this copy; listeners must not change history
        self.shape = array.shape
        self._array: np.ndarray | None = array
        self._packed: bytes | None = None
        self._future: Future[bytes] | None = None
        if array.size > _COMPRESS_PIXELS:
            self._future = _compressor().submit(self._compress)

    def _compress(self) -> bytes:
        assert self._array is not None
        packed = zlib.compress(memoryview(np.ascontiguousarray(self._array)), 1)
        self._packed = packed  # set before dropping the array: readers see one or the other
        self._array = None
        return packed

    @property
    def nbytes(self) -> int:
        a = self._array
        return a.nbytes if a is not None else len(self._packed)  # type: ignore[arg-type]

    def array(self) -> np.ndarray:
        a = self._array
        if a is not None:
            return a
        out = np.frombuffer(zlib.decompress(self._packed), np.uint8).reshape(self.shape)  # type: ignore[arg-type]
        return out

    def packed(self) -> bytes:
        """zlib level-1 stream of the content (what the journal stores)."""
        if self._future is not None:
            return self._future.result()
        a = self._array
        return zlib.compress(memoryview(np.ascontiguousarray(a)), 1) if a is not None else self._packed  # type: ignore[return-value]


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _compressor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labels-compress")
        return _executor


@dataclass(frozen=True, eq=False)
class Edit:
    """One undo step: the box that changed and its content before and after.

    ``kind`` is "stroke", "fill", "polygon", "accept", "assign", "undo" or "redo"; ``label`` the
    label painted (-1 where mixed); ``revision`` the mask's revision right after the step;
    ``shape`` the whole mask's shape (the journal checks it on replay).
    """

    region: Region
    _before: _Patch = field(repr=False)
    _after: _Patch = field(repr=False)
    kind: str
    label: int
    revision: int
    shape: tuple[int, int]

    @property
    def before(self) -> np.ndarray:
        return self._before.array()

    @property
    def after(self) -> np.ndarray:
        return self._after.array()

    @property
    def nbytes(self) -> int:
        return self._before.nbytes + self._after.nbytes

    def after_packed(self) -> bytes:
        """The new content as a zlib stream (shared with the undo history: compressed once)."""
        return self._after.packed()


def _changed_box(changed: np.ndarray) -> tuple[slice, slice] | None:
    """Tight slices around the True pixels of a 2-D bool array, or None when there are none."""
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(changed.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


class LabelMask:
    """An HxW uint8 label mask (0..N-1 classes, 255 = ignore) with undo/redo and change events."""

    def __init__(self, data: np.ndarray, num_classes: int, *, history: int = 100,
                 history_bytes: int = 512 << 20, copy: bool = True) -> None:
        """``history``: undo steps kept; ``history_bytes``: their memory budget (oldest dropped)."""
        data = np.asarray(data)
        if data.ndim != 2 or data.dtype != np.uint8:
            raise MaskError(f"a label mask must be a 2-D uint8 array, not {data.dtype} {data.shape}")
        if not 1 <= num_classes <= 255:
            raise MaskError(f"a label mask needs 1..255 classes, not {num_classes}")
        owned = not copy and data.flags.c_contiguous and data.flags.writeable
        self._data = data if owned else np.array(data, np.uint8, order="C", copy=True)
        self.num_classes = int(num_classes)
        self._check_values(self._data, "mask")
        self.history_limit = int(history)
        self.history_bytes = int(history_bytes)
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._staged: list[tuple[Region, np.ndarray]] | None = None  # (box, old content) per segment
        self._staged_union: Region | None = None
        self._staged_label = -2
        self._staged_kind = "stroke"
        self._lock = threading.RLock()
        self.revision = 0
        self.saved_revision = 0
        self.on_change = Listeners()  # callback(region: Region)
        self.on_commit = Listeners()  # callback(edit: Edit)

    @classmethod
    def empty(cls, shape: tuple[int, int], num_classes: int, **kwargs: Any) -> "LabelMask":
        """An unlabelled mask (all 255)."""
        return cls(np.full(tuple(shape), IGNORE, np.uint8), num_classes, copy=False, **kwargs)

    # ---- state --------------------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The mask itself, read-only (edit through the methods so undo and events stay right)."""
        view = self._data.view()
        view.flags.writeable = False
        return view

    @property
    def shape(self) -> tuple[int, int]:
        return self._data.shape  # type: ignore[return-value]

    @property
    def dirty(self) -> bool:
        """True when the mask changed since :meth:`mark_saved`."""
        return self.revision != self.saved_revision

    def mark_saved(self, revision: int | None = None) -> None:
        """Record that the content at ``revision`` (default: now) is on disk."""
        with self._lock:
            self.saved_revision = self.revision if revision is None else int(revision)

    def snapshot(self) -> tuple[np.ndarray, int]:
        """A copy of the mask and its revision, consistent even while another thread paints."""
        with self._lock:
            return self._data.copy(), self.revision

    def pick(self, y: int, x: int) -> int:
        """The label under (y, x) (the eyedropper)."""
        h, w = self.shape
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"pixel ({y}, {x}) is outside the {h}x{w} mask")
        return int(self._data[int(y), int(x)])

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) or bool(self._staged)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_count(self) -> int:
        return len(self._undo)

    @property
    def redo_count(self) -> int:
        return len(self._redo)

    def clear_history(self) -> None:
        with self._lock:
            self.end_stroke()
            self._undo.clear()
            self._redo.clear()
    
    # ---- strokes ------------------------------------------------------------------------------
    @property
    def in_stroke(self) -> bool:
        return self._staged is not None

    def begin_stroke(self, kind: str = "stroke") -> None:
        """Start collecting edits into one undo step (a previous open stroke is committed first)."""
        with self._lock:
            if self._staged is not None:
                self.end_stroke()
            self._staged, self._staged_union, self._staged_label, self._staged_kind = [], None, -2, kind

    def end_stroke(self) -> Edit | None:
        """Close the stroke: push one undo step (only the box that changed) and emit ``on_commit``."""
        with self._lock:
            staged, union = self._staged, self._staged_union
            self._staged = self._staged_union = None
            if not staged or union is None:
                return None
            if len(staged) == 1:  # one segment (a fill, a click): its box is already tight
                region, before = staged[0]
                after = self._data[region.slices].copy()
            else:
                after = self._data[union.slices].copy()
                before = after.copy()
                for box, old in reversed(staged):  # undo the segments in reverse order
                    before[box.relative_to(union)] = old
                tight = _changed_box(before != after)
                if tight is None:  # e.g. painted and erased the same pixels
                    return None
                ys, xs = tight
                region = Region(union.y0 + ys.start, union.y0 + ys.stop, union.x0 + xs.start, union.x0 + xs.stop)
                before, after = before[tight].copy(), after[tight].copy()
            label = self._staged_label if self._staged_label >= 0 else -1
            edit = Edit(region, _Patch(before), _Patch(after), self._staged_kind, label, self.revision, self.shape)
            self._push_undo(edit)
            self._redo.clear()
        self.on_commit.emit(edit)
        return edit

    def paint(self, points: Sequence[float] | Sequence[Sequence[float]], label: int, radius: float = 5,
              shape: str = "round", preserve_labels: bool = False) -> Region | None:
        """Paint a brush along a point ``(y, x)`` or a polyline ``[(y0, x0), (y1, x1), ...]``.

        A round brush covers the pixels whose centre lies within ``radius + 0.5`` of the path; a
        square one the path swept by a ``2*radius+1`` square. The eraser is ``label=255``. With
        ``preserve_labels`` only unlabelled (255) pixels change. Outside a stroke this is its own
        undo step. Returns the region that changed (None when nothing did).
        """
        label = self._check_label(label)
        footprint = self.brush_footprint(points, radius, shape)
        if footprint is None:
            return None
        box, sel = footprint
        return self._edit("stroke", box, sel, label, preserve_labels)

    def brush_footprint(self, points: Sequence[float] | Sequence[Sequence[float]], radius: float = 5,
                        shape: str = "round") -> tuple[Region, np.ndarray] | None:
        """The pixels a brush along ``points`` covers (see :meth:`paint`), clipped to the mask:
        ``(box, bool array of the box's shape)``, or None when it misses the mask. Changes nothing."""
        if shape not in ("round", "square"):
            raise ValueError(f"brush shape must be 'round' or 'square', not {shape!r}")
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        if pts.shape[0] == 0 or not np.isfinite(pts).all():
            raise ValueError("paint needs at least one finite (y, x) point")
        radius = max(0.0, float(radius))
        pad = int(np.ceil(radius)) + 1
        box = self._clip(int(np.floor(pts[:, 0].min())) - pad, int(np.ceil(pts[:, 0].max())) + pad + 1,
                         int(np.floor(pts[:, 1].min())) - pad, int(np.ceil(pts[:, 1].max())) + pad + 1)
        if box is None:
            return None
        if shape == "round":
            return box, self._round_brush(box, pts, radius)
        return box, self._square_brush(box, pts, int(round(radius)))

    def polygon_footprint(self, points: Sequence[Sequence[float]]) -> tuple[Region, np.ndarray] | None:
        """The pixels of a polygon ``[(y, x), ...]`` (edges included), clipped to the mask:
        ``(box, bool array)``, or None when it misses the mask. Changes nothing."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        if pts.shape[0] < 3 or not np.isfinite(pts).all():
            raise ValueError("a polygon needs at least 3 finite (y, x) points")
        pts = np.rint(pts).astype(np.int64)
        box = self._clip(int(pts[:, 0].min()), int(pts[:, 0].max()) + 1, int(pts[:, 1].min()), int(pts[:, 1].max()) + 1)
        if box is None:
            return None
        canvas = np.zeros(box.shape, np.uint8)
        xy = np.stack([pts[:, 1] - box.x0, pts[:, 0] - box.y0], axis=1).astype(np.int32)
        cv2.fillPoly(canvas, [xy], 1)
        return box, canvas.astype(bool)

    def paint_stroke(self, points: Sequence[Sequence[float]], label: int, radius: float = 5, shape: str = "round",
                     preserve_labels: bool = False) -> Edit | None:
        """A whole stroke along ``points`` as one undo step."""
        self.begin_stroke()
        try:
            self.paint(points, label, radius, shape, preserve_labels)
        finally:
            edit = self.end_stroke()
        return edit

    # ---- one-shot edits (each one undo step) ---------------------------------------------------
    def fill(self, y: int, x: int, label: int, contiguous: bool = True, preserve_labels: bool = False) -> Edit | None:
        """Flood fill: the 4-connected region of (y, x)'s value, or every pixel of that value."""
        label = self._check_label(label)
        seed = self.pick(y, x)
        if contiguous:
            h, w = self.shape
            grid = np.zeros((h + 2, w + 2), np.uint8)
            _, _, _, (bx, by, bw, bh) = cv2.floodFill(
                self._data, grid, (int(x), int(y)), 0, 0, 0, 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
            box = Region(by, by + bh, bx, bx + bw)
            sel = grid[1 + by:1 + by + bh, 1 + bx:1 + bx + bw].view(bool)  # holds 0 / 1
        else:
            everywhere = self._data == seed
            slices = _changed_box(everywhere)
            assert slices is not None  # the seed itself matches
            box = Region(slices[0].start, slices[0].stop, slices[1].start, slices[1].stop)
            sel = everywhere[box.slices]
        return self._one_shot("fill", box, sel, label, preserve_labels)

    def polygon(self, points: Sequence[Sequence[float]], label: int, preserve_labels: bool = False) -> Edit | None:
        """Fill a polygon given as ``[(y, x), ...]`` (a lasso is a polygon with many points)."""
        label = self._check_label(label)
        footprint = self.polygon_footprint(points)
        if footprint is None:
            return None
        return self._one_shot("polygon", *footprint, label, preserve_labels)

    def accept_prediction(self, prediction: np.ndarray,
                          region: np.ndarray | Sequence[int] | tuple[Region, np.ndarray] | None = None,
                          preserve_labels: bool = False) -> Edit | None:
        """Copy the model's labels into ``region``: a bool HxW mask (painted or lassoed), a
        footprint ``(Region, bool array of its shape)`` (from :meth:`brush_footprint` or
        :meth:`polygon_footprint`), a box ``(y0, y1, x0, x1)``, or None for the whole image.
        Inside an open stroke it becomes part of that stroke (an "accept brush")."""
        prediction = np.asarray(prediction)
        if prediction.shape != self.shape:
            raise MaskError(f"prediction is {prediction.shape}, the mask is {self.shape}")
        if region is None:
            box: Region | None = Region(0, self.shape[0], 0, self.shape[1])
            sel = None
        elif isinstance(region, tuple) and len(region) == 2 and isinstance(region[1], np.ndarray):
            box = Region(*(int(v) for v in region[0]))
            sel = np.asarray(region[1], bool)
            h, w = self.shape
            if not (0 <= box.y0 <= box.y1 <= h and 0 <= box.x0 <= box.x1 <= w) or sel.shape != box.shape:
                raise MaskError(f"accept footprint {tuple(box)} {sel.shape} does not fit the {h}x{w} mask")
            if box.area == 0:
                return None
        elif isinstance(region, np.ndarray) and region.ndim == 2:
            if region.shape != self.shape:
                raise MaskError(f"accept region is {region.shape}, the mask is {self.shape}")
            slices = _changed_box(region.astype(bool, copy=False))
            if slices is None:
                return None
            box = Region(slices[0].start, slices[0].stop, slices[1].start, slices[1].stop)
            sel = region[box.slices].astype(bool)
        else:
            y0, y1, x0, x1 = (int(v) for v in region)  # type: ignore[union-attr]
            box = self._clip(y0, y1, x0, x1)
            sel = None
        if box is None:
            return None
        new = prediction[box.slices]
        if new.dtype != np.uint8:
            if new.size and (new.min() < 0 or new.max() > 255):
                raise MaskError(f"prediction holds ids outside 0..255 ({new.min()}..{new.max()})")
            new = new.astype(np.uint8)
        self._check_values(new, "prediction")
        if sel is None:
            sel = np.ones(box.shape, bool)
        return self._one_shot("accept", box, sel, new, preserve_labels)

    def assign(self, region: Sequence[int], content: np.ndarray, kind: str = "assign") -> Edit | None:
        """Set a box to given content as one undo step (used by crash recovery)."""
        box = Region(*(int(v) for v in region))
        h, w = self.shape
        if not (0 <= box.y0 <= box.y1 <= h and 0 <= box.x0 <= box.x1 <= w):
            raise MaskError(f"region {tuple(box)} is outside the {h}x{w} mask")
        content = np.asarray(content)
        if content.shape != box.shape or content.dtype != np.uint8:
            raise MaskError(f"content {content.dtype} {content.shape} does not fit region {tuple(box)}")
        self._check_values(content, "content")
        if box.area == 0:
            return None
        return self._one_shot(kind, box, np.ones(box.shape, bool), content, False)

    # ---- undo / redo --------------------------------------------------------------------------
    def undo(self) -> Region | None:
        """Undo the last step (closing an open stroke first); returns the region that changed."""
        return self._step(self._undo, self._redo, "undo")

    def redo(self) -> Region | None:
        return self._step(self._redo, self._undo, "redo")

    def _step(self, source: list[Edit], target: list[Edit], kind: str) -> Region | None:
        with self._lock:
            if self._staged is not None:
                self.end_stroke()
            if not source:
                return None
            edit = source.pop()
            content = edit.before if kind == "undo" else edit.after
            self._data[edit.region.slices] = content
            self.revision += 1
            if kind == "undo":
                target.append(edit)  # the redo stack holds the edit as it was
            else:
                self._push_undo(edit)
            done = Edit(edit.region, edit._after if kind == "undo" else edit._before,
                        edit._before if kind == "undo" else edit._after, kind, edit.label, self.revision, self.shape)
        self.on_change.emit(edit.region)
        self.on_commit.emit(done)
        return edit.region

    def _push_undo(self, edit: Edit) -> None:
        if self.history_limit <= 0:
            return
        self._undo.append(edit)
        del self._undo[:-self.history_limit]
        # sizes shrink once the background compression is done, so they are summed afresh
        while len(self._undo) > 1 and sum(e.nbytes for e in self._undo) > self.history_bytes:
            self._undo.pop(0)

    # ---- internals ----------------------------------------------------------------------------
    def _check_label(self, label: int) -> int:
        label = int(label)
        if not (0 <= label < self.num_classes or label == IGNORE):
            raise MaskError(f"label {label} is outside the class table (0..{self.num_classes - 1}, or 255 = ignore)")
        return label

    def _check_values(self, values: np.ndarray, what: str) -> None:
        if values.size == 0 or self.num_classes >= 255:
            return
        # a 256-bin histogram is the quickest exact test on uint8 data
        counts = np.bincount(values.ravel(), minlength=256)
        bad = np.flatnonzero(counts[self.num_classes:IGNORE])
        if bad.size:
            raise MaskError(f"{what} holds ids outside the class table (0..{self.num_classes - 1}, or 255): "
                            f"{[int(b) + self.num_classes for b in bad[:5]]}")

    def _clip(self, y0: int, y1: int, x0: int, x1: int) -> Region | None:
        h, w = self.shape
        y0, y1, x0, x1 = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
        return Region(y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None

    @staticmethod
    def _round_brush(box: Region, pts: np.ndarray, radius: float) -> np.ndarray:
        yy = np.arange(box.y0, box.y1, dtype=np.float32)[:, None]
        xx = np.arange(box.x0, box.x1, dtype=np.float32)[None, :]
        limit = np.float32((radius + 0.5) ** 2)
        sel = np.zeros(box.shape, bool)
        starts = pts if pts.shape[0] == 1 else pts[:-1]
        ends = pts if pts.shape[0] == 1 else pts[1:]
        for (ay, ax), (by, bx) in zip(starts, ends):
            dy, dx = np.float32(by - ay), np.float32(bx - ax)
            py, px = yy - np.float32(ay), xx - np.float32(ax)
            length2 = dy * dy + dx * dx
            if length2 > 0:  # distance to the segment: project, clamp to [0, 1]
                t = np.clip((py * dy + px * dx) / length2, 0, 1)
                py, px = py - t * dy, px - t * dx
            sel |= (py * py + px * px) <= limit
        return sel

    @staticmethod
    def _square_brush(box: Region, pts: np.ndarray, r: int) -> np.ndarray:
        canvas = np.zeros(box.shape, np.uint8)
        ipts = np.rint(pts).astype(np.int64) - (box.y0, box.x0)
        corners = np.array([(-r, -r), (-r, r), (r, -r), (r, r)])
        starts = ipts if ipts.shape[0] == 1 else ipts[:-1]
        ends = ipts if ipts.shape[0] == 1 else ipts[1:]
        for a, b in zip(starts, ends):  # a square swept along a segment = hull of both squares
            yx = np.concatenate([a + corners, b + corners])
            hull = cv2.convexHull(yx[:, ::-1].astype(np.int32))
            cv2.fillConvexPoly(canvas, hull, 1)
        return canvas.astype(bool)

    def _one_shot(self, kind: str, box: Region, sel: np.ndarray, value: int | np.ndarray,
                  preserve: bool) -> Edit | None:
        if self._staged is not None:  # inside an open stroke: becomes part of it
            self._edit(kind, box, sel, value, preserve)
            return None
        self.begin_stroke(kind)
        try:
            self._edit(kind, box, sel, value, preserve)
        finally:
            edit = self.end_stroke()
        return edit

    def _edit(self, kind: str, box: Region, sel: np.ndarray, value: int | np.ndarray,
              preserve: bool) -> Region | None:
        """Write ``value`` where ``sel`` inside ``box``; record the old content for undo; emit."""
        with self._lock:
            view = self._data[box.slices]
            changed = sel & (view != value)
            if preserve:
                changed &= view == IGNORE
            tight = _changed_box(changed)
            if tight is None:
                return None
            ys, xs = tight
            region = Region(box.y0 + ys.start, box.y0 + ys.stop, box.x0 + xs.start, box.x0 + xs.stop)
            sub = view[tight]
            old = sub.copy()
            np.copyto(sub, value[tight] if isinstance(value, np.ndarray) else np.uint8(value), where=changed[tight])
            auto = self._staged is None
            if auto:
                self.begin_stroke(kind)
            assert self._staged is not None
            self._staged.append((region, old))
            self._staged_union = region if self._staged_union is None else self._staged_union.union(region)
            lab = int(value) if not isinstance(value, np.ndarray) else -1
            self._staged_label = lab if self._staged_label in (-2, lab) else -1
            self.revision += 1
        self.on_change.emit(region)
        if auto:
            self.end_stroke()
        return region


def regions_union(regions: Iterable[Region]) -> Region | None:
    """The box around several regions (for a view that batches its updates)."""
    out: Region | None = None
    for r in regions:
        out = r if out is None else out.union(r)
    return out
