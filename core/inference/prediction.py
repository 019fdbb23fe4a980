"""What a prediction holds, sized for the photo: labels at full size, probabilities at the
working resolution.

Held (see :meth:`Prediction.memory_bytes`):

- ``labels`` and ``aux_labels``: (H, W) uint8 at the photo's size, the procedure's exact argmax;
- ``work_confidence`` / ``work_entropy``: (h, w) float32 at the working resolution (highest
  probability; entropy in nats). ``confidence`` and ``entropy`` are those maps resized to the
  photo bilinearly, band by band, on each read and not kept (48 MB each for a 12-megapixel
  photo: a view keeps the 8-bit map it draws instead);
- ``work_probs`` / ``work_aux_probs``: (C, h, w) float16, each head's probabilities at the
  working resolution (the scaled image of the working pass: e.g. 512 x 384 for a 4:3 photo
  under semseg's ADE20K protocol), on a coarser grid if that would exceed 128 MiB per head;
- ``internals``: the backbone features and pyramid levels of one window of the working pass
  (the window nearest the image's centre; ``internals_box`` says where it is on the photo):
  layer4 in float32, layer3 and the levels (pooled, reduced, upsampled) in float16.

The photo-sized probabilities the GUI reads (``probs[c]``, ``probs[:, y, x]``, top-k under the
cursor) are computed from the working-resolution maps on demand (:class:`PhotoProbs`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import numpy as np
import torch

from core.errors import StudioError
from core.inference.protocol import TestProtocol
from core.inference.sampling import Axis, resize_plane, sample_points
from core.model.pspnet import Internals

FULL_PROBS_LIMIT = 2 * 2**30  # np.asarray(prediction.probs) refuses beyond this many bytes


class Preview(float):
    """A progress fraction that carries an early :class:`Prediction` (e.g. after the unmirrored
    windows): code that only wants the fraction can treat it as a float."""

    prediction: "Prediction"

    def __new__(cls, fraction: float, prediction: "Prediction") -> "Preview":
        obj = super().__new__(cls, fraction)
        obj.prediction = prediction
        return obj


class Prediction:
    def __init__(self, labels: np.ndarray, *, work_probs: np.ndarray | None, work_aux_probs: np.ndarray | None,
                 work_confidence: np.ndarray | None, work_entropy: np.ndarray | None, aux_labels: np.ndarray | None,
                 num_classes: int, protocol: TestProtocol, working_size: tuple[int, int],
                 internals: Internals | None = None, internals_box: tuple[int, int, int, int] | None = None,
                 disabled_levels: Sequence[int] = (), notes: Sequence[str] = (),
                 deferred: Callable[["Prediction"], None] | None = None, switch_source: Any = None,
                 preview: bool = False):
        self.labels = labels
        self._work_probs = work_probs
        self.work_aux_probs = work_aux_probs
        self._work_conf = work_confidence
        self._work_ent = work_entropy
        self.aux_labels = aux_labels
        self._num_classes = int(num_classes)
        self.protocol = protocol
        self.working_size = tuple(int(v) for v in working_size)
        self.internals = internals
        self.internals_box = internals_box
        self.disabled_levels = tuple(disabled_levels)
        self.notes = list(notes)
        self._deferred = deferred
        self._lock = threading.RLock()
        self.switch_source = switch_source  # what core.LevelSwitch needs (set with internals=True)
        self.is_preview = preview

    # --- the maps, computed now or on first use ----------------------------------------------

    def materialize(self) -> "Prediction":
        """Compute what is computed on demand (a level switch's probability maps) now. Safe from
        several threads: a second caller waits for the first one's maps."""
        if self._deferred is not None:
            with self._lock:
                if self._deferred is not None:
                    self._deferred(self)
                    self._deferred = None
        return self

    def _set_maps(self, work_probs: np.ndarray, work_confidence: np.ndarray, work_entropy: np.ndarray) -> None:
        self._work_probs, self._work_conf, self._work_ent = work_probs, work_confidence, work_entropy

    @property
    def work_probs(self) -> np.ndarray:
        """(C, h, w) float16: the main head's probabilities at the working resolution."""
        self.materialize()
        return self._work_probs

    @property
    def work_confidence(self) -> np.ndarray:
        """(h, w) float32: the highest probability at the working resolution."""
        self.materialize()
        return self._work_conf

    @property
    def work_entropy(self) -> np.ndarray:
        """(h, w) float32: the entropy (nats) at the working resolution."""
        self.materialize()
        return self._work_ent

    @property
    def confidence(self) -> np.ndarray:
        """(H, W) float32: the highest probability, at the photo's size (made on each read, not kept)."""
        return resize_plane(self.work_confidence, self.size, dtype=np.float32)

    @property
    def entropy(self) -> np.ndarray:
        """(H, W) float32: the entropy of the probabilities in nats, at the photo's size (made on
        each read, not kept)."""
        return resize_plane(self.work_entropy, self.size, dtype=np.float32)

    @property
    def probs(self) -> "PhotoProbs":
        """The main head's probabilities at the photo's size, computed on demand per read."""
        return PhotoProbs(self, "main")

    @property
    def aux_probs(self) -> "PhotoProbs | None":
        return PhotoProbs(self, "aux") if self.work_aux_probs is not None else None

    # --- shape and bookkeeping -----------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def scales(self) -> tuple[float, ...]:
        return self.protocol.scales

    @property
    def flip(self) -> bool:
        return self.protocol.flip

    def memory_bytes(self) -> int:
        """Bytes of the arrays and tensors this prediction holds (what a cache should count)."""
        arrays = [self.labels, self.aux_labels, self._work_probs, self.work_aux_probs, self._work_conf,
                  self._work_ent]
        total = sum(a.nbytes for a in arrays if a is not None)
        total += _internals_bytes(self.internals)
        src = self.switch_source
        if src is not None:
            total += int(getattr(src, "nbytes", 0))
        return int(total)

    def __repr__(self) -> str:
        h, w = self.size
        return (f"Prediction({w}x{h}, {self.num_classes} classes, working {self.working_size[1]}x"
                f"{self.working_size[0]}, {self.memory_bytes() / 2**20:.1f} MiB"
                f"{', levels off ' + str(self.disabled_levels) if self.disabled_levels else ''})")

    # --- reading probabilities -----------------------------------------------------------------

    def _work(self, head: str) -> np.ndarray:
        if head == "main":
            return self.work_probs
        if head == "aux":
            if self.work_aux_probs is None:
                raise ValueError("this prediction has no auxiliary head")
            return self.work_aux_probs
        raise ValueError(f"head must be 'main' or 'aux', not {head!r}")

    def probs_at(self, y: int, x: int, head: str = "main") -> np.ndarray:
        """(C,) float32 probabilities at photo pixel (y, x), read from the working-resolution map."""
        return self.probs_at_points(np.array([y]), np.array([x]), head)[:, 0]

    def probs_at_points(self, ys: np.ndarray, xs: np.ndarray, head: str = "main") -> np.ndarray:
        work = self._work(head)
        H, W = self.size
        ys, xs = np.asarray(ys).ravel(), np.asarray(xs).ravel()
        if ys.size and (ys.min() < 0 or ys.max() >= H or xs.min() < 0 or xs.max() >= W):
            raise IndexError(f"pixel outside the {W}x{H} photo")
        h, w = work.shape[1:]
        ty = Axis.resize(h, H).taps(ys)
        tx = Axis.resize(w, W).taps(xs)
        return sample_points(torch.from_numpy(work), ty.i0, ty.i1, ty.w, tx.i0, tx.i1, tx.w).float().numpy()

    def top_k(self, y: int, x: int, k: int = 3, head: str = "main") -> list[tuple[int, float]]:
        """The ``k`` most probable classes at photo pixel (y, x), as (class, probability)."""
        p = self.probs_at(y, x, head).astype(np.float64)
        order = np.argsort(-p, kind="stable")[: max(0, k)]
        return [(int(c), float(p[c])) for c in order]

    def class_probability(self, c: int, head: str = "main", *, full: bool = True) -> np.ndarray:
        """One class's probability: (H, W) float32 at the photo's size (``full``), or the
        working-resolution (h, w) map."""
        work = self._work(head)
        if not 0 <= c < work.shape[0]:
            raise IndexError(f"class {c} out of range: the model has {work.shape[0]} classes")
        plane = work[c].astype(np.float32)
        return resize_plane(plane, self.size, dtype=np.float32) if full else plane


class PhotoProbs:
    """A head's probabilities as a (C, H, W) array at the photo's size, computed on read from
    the working-resolution map: ``probs[c]``, ``probs[:, y, x]``, ``probs[c, y, x]`` and slices
    are cheap; ``np.asarray(probs)`` builds the whole array (refused beyond 2 GiB)."""

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, prediction: Prediction, head: str):
        self._p = prediction
        self._head = head

    @property
    def shape(self) -> tuple[int, int, int]:
        H, W = self._p.size
        return self._p.num_classes, H, W

    def __len__(self) -> int:
        return self._p.num_classes

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3:
            raise IndexError(f"too many indices for a (C, H, W) array: {key}")
        kc, ky, kx = key
        C, H, W = self.shape
        cs, ys, xs = (_index(k, n) for k, n in zip((kc, ky, kx), (C, H, W)))
        if isinstance(kc, (int, np.integer)) and isinstance(ky, slice) and isinstance(kx, slice) \
                and ys.size == H and xs.size == W and ky == slice(None) and kx == slice(None):
            out = self._p.class_probability(int(cs[0]), self._head)[None]
        else:
            gy, gx = np.meshgrid(ys, xs, indexing="ij")
            vals = self._p.probs_at_points(gy.ravel(), gx.ravel(), self._head)
            out = vals[cs].reshape(len(cs), len(ys), len(xs))
        squeeze = tuple(i for i, k in enumerate((kc, ky, kx)) if isinstance(k, (int, np.integer)))
        return out.squeeze(squeeze) if squeeze else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        C, H, W = self.shape
        need = C * H * W * 4
        if need > FULL_PROBS_LIMIT:
            raise StudioError(f"the photo-sized probabilities of this {W}x{H} prediction with {C} classes would take "
                              f"{need / 2**30:.1f} GiB; read them per class (prediction.class_probability(c)), per "
                              "pixel (prediction.top_k(y, x)) or at the working resolution (prediction.work_probs)")
        out = np.empty((C, H, W), np.float32)
        for c in range(C):
            out[c] = self._p.class_probability(c, self._head)
        return out if dtype is None else out.astype(dtype)

    def __getattr__(self, name: str) -> Any:
        # argmax, sum, astype, ... on the photo-sized array (small photos; big ones are refused)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)


def _index(k: Any, n: int) -> np.ndarray:
    if isinstance(k, slice):
        return np.arange(n)[k]
    if isinstance(k, (int, np.integer)):
        i = int(k) + (n if k < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"index {k} out of range for size {n}")
        return np.array([i])
    return np.arange(n)[np.asarray(k)]


def _internals_bytes(inner: Internals | None) -> int:
    if inner is None:
        return 0
    ts = [inner.layer3, inner.layer4]
    for lv in inner.levels:
        ts += [lv.pooled, lv.reduced, lv.upsampled]
    return sum(t.numel() * t.element_size() for t in ts if t is not None)


__all__ = ["Prediction", "PhotoProbs", "Preview", "FULL_PROBS_LIMIT"]
