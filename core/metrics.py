"""Segmentation metrics: a confusion matrix and the mIoU / accuracies computed from it.

Both conventions of the public implementations are here (``mean_over``), computed from the
confusion matrix summed over the whole data set (per-class intersection and union over all
images, as all of them do):

- ``"present"`` (ours, mmsegmentation's ``IoUMetric`` with its ``nanmean``): mIoU is the mean
  over the classes present in the labels *or* the prediction; a class absent from both has no
  IoU (``None``) and is left out of the mean. Mean accuracy is the mean over classes present
  in the labels.
- ``"all"`` (semseg's ``test.py``: ``intersection / (union + 1e-10)``, ``np.mean`` over every
  class; CSAIL's ``eval.py`` the same): every class counts, one absent from labels and
  prediction with IoU 0, one absent from the labels with accuracy 0.

Either way the absent classes are listed in ``absent`` so that a report can say so. Pixel
accuracy is the share of labelled pixels predicted right (CSAIL's "Accuracy", semseg's allAcc).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.atomic import atomic_write_bytes, atomic_write_text
from core.constants import IGNORE
from core.errors import StudioError


@dataclass
class SegMetrics:
    miou: float  # NaN when no class is present at all
    mean_acc: float
    pixel_acc: float
    per_class_iou: list[float | None]  # None: absent from both prediction and labels
    per_class_acc: list[float | None]  # None: absent from the labels
    absent: list[int] = field(default_factory=list)  # the classes absent from labels and prediction
    pixels: int = 0  # labelled pixels counted
    mean_over: str = "present"  # "present" (ours, mmseg) or "all" (semseg, CSAIL): see the module

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-able (NaN becomes None), per class by id and name, with a note on absent classes."""
        k = len(self.per_class_iou)
        names = list(class_names) if class_names is not None else [f"class {i}" for i in range(k)]
        if len(names) != k:
            raise ValueError(f"{len(names)} class names for a {k}-class confusion matrix")
        out: dict[str, Any] = {
            "miou": _json_float(self.miou),
            "mean_acc": _json_float(self.mean_acc),
            "pixel_acc": _json_float(self.pixel_acc),
            "pixels": int(self.pixels),
            "per_class": [{"id": i, "name": names[i], "iou": self.per_class_iou[i], "acc": self.per_class_acc[i]}
                          for i in range(k)],
            "absent": list(self.absent),
        }
        out["mean_over"] = self.mean_over
        if self.absent:
            listed = ", ".join(f"{i} ({names[i]})" for i in self.absent)
            how = ("count as 0 in the mean IoU (the source's convention: the mean over all classes)"
                   if self.mean_over == "all" else "are left out of the mean IoU")
            out["note"] = f"{len(self.absent)} of {k} classes are absent from both labels and prediction and {how}: " \
                          f"{listed}"
        else:
            out["note"] = f"all {k} classes are present in the labels or the prediction"
        return out

    def to_markdown(self, class_names: Sequence[str] | None = None) -> str:
        """A small per-class table (IoU and accuracy in percent), '-' where undefined."""
        d = self.to_dict(class_names)
        lines = ["| class | IoU | acc |", "|---|---:|---:|"]
        for row in d["per_class"]:
            lines.append(f"| {row['name']} | {_pct(row['iou'])} | {_pct(row['acc'])} |")
        lines.append(f"| **mean** | {_pct(d['miou'])} | {_pct(d['mean_acc'])} |")
        lines.append(f"\npixel accuracy {_pct(d['pixel_acc'])}; {d['note']}")
        return "\n".join(lines)


class ConfusionMatrix:
    """Counts of (truth, prediction) pairs; rows are the truth, columns the prediction."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, not {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._m = np.zeros((self.num_classes, self.num_classes), np.int64)

    @property
    def matrix(self) -> np.ndarray:
        return self._m

    @property
    def total(self) -> int:
        return int(self._m.sum())

    def reset(self) -> None:
        self._m[...] = 0

    def update(self, pred: Any, target: Any) -> None:
        """Count one prediction against its labels (same shape, any shape); ignore pixels are skipped."""
        p, t = _as_int_array(pred), _as_int_array(target)
        if p.shape != t.shape:
            raise ValueError(f"prediction shape {p.shape} differs from label shape {t.shape}")
        keep = t != self.ignore_index
        p, t = p[keep].ravel(), t[keep].ravel()
        k = self.num_classes
        if t.size and (t.min() < 0 or t.max() >= k):
            bad = np.unique(t[(t < 0) | (t >= k)])[:10].tolist()
            raise ValueError(f"label ids {bad} are outside 0..{k - 1} (and not the ignore index {self.ignore_index})")
        if p.size and (p.min() < 0 or p.max() >= k):
            bad = np.unique(p[(p < 0) | (p >= k)])[:10].tolist()
            raise ValueError(f"predicted ids {bad} are outside 0..{k - 1}")
        self._m += np.bincount(t * k + p, minlength=k * k).reshape(k, k)

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge a {other.num_classes}-class confusion matrix into a "
                             f"{self.num_classes}-class one")
        self._m += other._m
        return self

    def compute(self, mean_over: str = "present") -> SegMetrics:
        """The metrics under a convention: ``"present"`` (ours, mmseg) or ``"all"`` (semseg, CSAIL)."""
        if mean_over not in ("present", "all"):
            raise ValueError(f"mean_over must be 'present' or 'all', not {mean_over!r}")
        m = self._m.astype(np.float64)
        tp = np.diag(m)
        truth = m.sum(1)
        predicted = m.sum(0)
        union = truth + predicted - tp
        present = union > 0
        labelled = truth > 0
        iou = np.divide(tp, union, out=np.zeros_like(tp), where=present)
        acc = np.divide(tp, truth, out=np.zeros_like(tp), where=labelled)
        total = m.sum()
        if mean_over == "all":
            return SegMetrics(
                miou=float(iou.mean()), mean_acc=float(acc.mean()),
                pixel_acc=float(tp.sum() / total) if total else math.nan,
                per_class_iou=[float(v) for v in iou], per_class_acc=[float(v) for v in acc],
                absent=[int(i) for i in np.flatnonzero(~present)], pixels=int(total), mean_over="all")
        return SegMetrics(
            miou=float(iou[present].mean()) if present.any() else math.nan,
            mean_acc=float(acc[labelled].mean()) if labelled.any() else math.nan,
            pixel_acc=float(tp.sum() / total) if total else math.nan,
            per_class_iou=[float(v) if ok else None for v, ok in zip(iou, present)],
            per_class_acc=[float(v) if ok else None for v, ok in zip(acc, labelled)],
            absent=[int(i) for i in np.flatnonzero(~present)],
            pixels=int(total),
        )

    def save(self, path: str | Path) -> None:
        """Write the matrix as ``.npy`` or ``.csv`` (by extension), atomically."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            buf = io.BytesIO()
            np.save(buf, self._m, allow_pickle=False)
            atomic_write_bytes(path, buf.getvalue())
        elif suffix == ".csv":
            buf = io.StringIO()
            np.savetxt(buf, self._m, fmt="%d", delimiter=",",
                       header=f"confusion matrix: rows = truth, columns = prediction; ignore_index={self.ignore_index}")
            atomic_write_text(path, buf.getvalue())
        else:
            raise ValueError(f"{path}: a confusion matrix is saved as .npy or .csv, not {suffix or 'no extension'!r}")

    @classmethod
    def load(cls, path: str | Path, ignore_index: int | None = None) -> "ConfusionMatrix":
        """Read a matrix written by :meth:`save` (the CSV header carries the ignore index)."""
        path = Path(path)
        suffix = path.suffix.lower()
        found_ignore = 255
        try:
            if suffix == ".npy":
                m = np.load(path, allow_pickle=False)
            elif suffix == ".csv":
                text = path.read_text(encoding="utf-8")
                for line in text.splitlines():
                    if line.startswith("#") and "ignore_index=" in line:
                        found_ignore = int(line.rsplit("ignore_index=", 1)[1].strip())
                m = np.loadtxt(io.StringIO(text), delimiter=",", comments="#", dtype=np.float64, ndmin=2)
            else:
                raise StudioError(f"{path}: a confusion matrix is read from .npy or .csv, not "
                                  f"{suffix or 'no extension'!r}")
        except (OSError, ValueError) as exc:
            raise StudioError(f"{path}: cannot read the confusion matrix: {exc}") from exc
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
            raise StudioError(f"{path}: a confusion matrix must be square, this one has shape {m.shape}")
        if not np.all(np.isfinite(m)) or np.any(m < 0) or np.any(m != np.round(m)):
            raise StudioError(f"{path}: a confusion matrix holds non-negative integer counts only")
        cm = cls(m.shape[0], found_ignore if ignore_index is None else ignore_index)
        cm._m[...] = m.astype(np.int64)
        return cm

    def reduce_(self) -> None:
        """Sum the matrix over all processes when torch.distributed is initialised (DDP evaluation)."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        t = torch.from_numpy(self._m).to(device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        self._m[...] = t.cpu().numpy()

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={self.total})"


def _as_int_array(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor, on any device
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype.kind not in "iub":
        raise ValueError(f"labels and predictions must be integer arrays, not {a.dtype}")
    return a.astype(np.int64, copy=False)


def _json_float(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


__all__ = ["ConfusionMatrix", "SegMetrics"]
