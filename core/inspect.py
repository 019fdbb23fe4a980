"""Numeric helpers for looking inside a prediction: feature summaries, change maps, class shares.

Qt-free and small: the GUI (pyramid inspector, heads comparison, legend, hover readout) and the
tests call these on numpy arrays or CPU tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.constants import IGNORE


def as_chw(features: Any) -> np.ndarray:
    """A feature map as a float32 (C, h, w) array; accepts (C, h, w) or (1, C, h, w), numpy or torch."""
    if hasattr(features, "detach"):
        features = features.detach().float().cpu().numpy()
    a = np.asarray(features, dtype=np.float32)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"expected one feature map, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"expected a (C, h, w) feature map, got shape {a.shape}")
    return a


def to_uint8(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Scale values linearly to 0..255 (``lo``/``hi`` default to the array's min/max; a constant array gives 0)."""
    v = np.asarray(values, dtype=np.float32)
    lo = float(np.min(v)) if lo is None else float(lo)
    hi = float(np.max(v)) if hi is None else float(hi)
    if not hi > lo:
        return np.zeros(v.shape, np.uint8)
    out = (v - lo) * (255.0 / (hi - lo))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def channel_map(features: Any, channel: int) -> np.ndarray:
    """One channel of a feature map, (h, w) float32."""
    a = as_chw(features)
    if not 0 <= channel < a.shape[0]:
        raise ValueError(f"channel {channel} out of range: the map has {a.shape[0]} channels")
    return a[channel]


def mean_abs_activation(features: Any) -> np.ndarray:
    """Mean absolute activation over channels, (h, w) float32."""
    return np.abs(as_chw(features)).mean(axis=0)


def top_channels(features: Any, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` channels with the largest mean absolute activation, as (channel, value), largest first."""
    a = as_chw(features)
    score = np.abs(a).reshape(a.shape[0], -1).mean(axis=1)
    order = np.argsort(-score, kind="stable")[: max(0, k)]
    return [(int(c), float(score[c])) for c in order]


@dataclass(frozen=True)
class PCABasis:
    """Three principal directions of a set of feature vectors, with the range used to map them to RGB."""

    mean: np.ndarray  # (C,)
    components: np.ndarray  # (3, C), rows may be zero where the data had no variation
    lo: np.ndarray  # (3,) per-component value mapped to 0
    hi: np.ndarray  # (3,) per-component value mapped to 255


def fit_pca(features: Any, max_samples: int = 20000, seed: int = 0) -> PCABasis:
    """Fit a 3-component PCA on the pixels (feature vectors) of a (C, h, w) map.

    Ranges are the 1st..99th percentiles of the projections, so a few outliers do not wash
    out the colours. Fewer than two distinct pixels give zero components (a flat grey)."""
    a = as_chw(features)
    c = a.shape[0]
    x = a.reshape(c, -1).T  # (N, C)
    if x.shape[0] > max_samples:
        idx = np.random.default_rng(seed).choice(x.shape[0], max_samples, replace=False)
        x = x[idx]
    mean = x.mean(axis=0)
    xc = x - mean
    comps = np.zeros((3, c), np.float32)
    if x.shape[0] >= 2 and np.any(xc):
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        k = min(3, vt.shape[0])
        for i in range(k):
            if s[i] > 1e-6 * max(s[0], 1e-12):
                v = vt[i]
                # a deterministic sign: the largest-magnitude coordinate is positive
                comps[i] = v if v[np.argmax(np.abs(v))] >= 0 else -v
    proj = xc @ comps.T
    lo = np.percentile(proj, 1, axis=0).astype(np.float32)
    hi = np.percentile(proj, 99, axis=0).astype(np.float32)
    return PCABasis(mean.astype(np.float32), comps, lo, hi)


def pca_rgb(features: Any, basis: PCABasis | None = None) -> np.ndarray:
    """The first three principal components of a (C, h, w) map as an (h, w, 3) uint8 image.

    Pass a ``basis`` fitted on other features of the same channel space (e.g. layer4 for the
    pooled grids) to colour several maps consistently; without one it is fitted on this map."""
    a = as_chw(features)
    basis = basis or fit_pca(a)
    if basis.mean.shape[0] != a.shape[0]:
        raise ValueError(f"PCA basis is for {basis.mean.shape[0]} channels, the map has {a.shape[0]}")
    h, w = a.shape[1:]
    proj = (a.reshape(a.shape[0], -1).T - basis.mean) @ basis.components.T  # (N, 3)
    span = np.where(basis.hi > basis.lo, basis.hi - basis.lo, 1.0)
    flat = np.where(basis.hi > basis.lo, (proj - basis.lo) / span, 0.5)
    rgb = np.clip(flat * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return rgb.reshape(h, w, 3)


@dataclass(frozen=True)
class ChangeMap:
    """Where two label maps differ (pixels ignored in either are not counted)."""

    mask: np.ndarray  # (H, W) bool, True where the labels differ
    changed: int
    total: int

    @property
    def share(self) -> float:
        return self.changed / self.total if self.total else 0.0


def change_map(before: np.ndarray, after: np.ndarray) -> ChangeMap:
    """Pixels whose label differs between two (H, W) label maps; also the heads' disagreement."""
    a, b = np.asarray(before), np.asarray(after)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    valid = (a != IGNORE) & (b != IGNORE)
    mask = (a != b) & valid
    return ChangeMap(mask, int(np.count_nonzero(mask)), int(np.count_nonzero(valid)))


def class_shares(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of the (non-ignored) pixels of each class, float64 (num_classes,), summing to 1 (or all 0)."""
    lab = np.asarray(labels).ravel()
    counts = np.bincount(lab[lab < num_classes].astype(np.int64), minlength=num_classes)[:num_classes]
    total = counts.sum()
    return counts / total if total else np.zeros(num_classes, np.float64)


def top_k_at(probs: Any, y: int, x: int, k: int = 3) -> list[tuple[int, float]]:
    """The ``k`` most probable classes at pixel (y, x) of a (C, H, W) probability map (or of a
    ``core.Prediction``, read from its working-resolution map), as (class, p)."""
    if hasattr(probs, "top_k"):
        return probs.top_k(y, x, k)
    p = np.asarray(probs[:, y, x], dtype=np.float64)
    order = np.argsort(-p, kind="stable")[: max(0, k)]
    return [(int(c), float(p[c])) for c in order]


def __getattr__(name: str) -> Any:
    if name == "LevelSwitch":  # lives with the predictor; imported on first use (it needs torch)
        from core.inference.switch import LevelSwitch

        return LevelSwitch
    raise AttributeError(f"module 'core.inspect' has no attribute {name!r}")


def available_devices() -> list[str]:
    """The devices a model can run on here: "cpu" and each CUDA GPU ("cuda:0", ...)."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return devices


def device_name(device: str) -> str:
    """A readable name for a device string ("CPU", "cuda:0 - NVIDIA H100 ...")."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} - {torch.cuda.get_device_name(torch.device(device))}"
    return "CPU" if device == "cpu" else device


__all__ = ["as_chw", "to_uint8", "channel_map", "mean_abs_activation", "top_channels", "PCABasis", "fit_pca",
           "pca_rgb", "ChangeMap", "change_map", "class_shares", "top_k_at", "LevelSwitch",
           "available_devices", "device_name"]
