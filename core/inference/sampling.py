"""Resizing, the way each implementation resizes: the photo in, and maps back out, tile by tile.

Images: semseg resizes the float image with OpenCV (bilinear, half-pixel centres), mmseg the
uint8 image with OpenCV, CSAIL the uint8 image with PIL (bilinear with antialiasing when it
shrinks); :func:`resize_image` does exactly that.

Maps: a probability or logit map on a small grid is read at the photo's pixels through an
:class:`Axis` per dimension, a linear map from photo coordinates to grid coordinates with the
clamping of bilinear interpolation (PyTorch's ``F.interpolate`` and OpenCV's ``INTER_LINEAR``:
half-pixel centres, or ``align_corners``). Sampling any rows and columns of that map gives
the same values as resizing the whole map and cutting them out, so the photo-sized result is
produced tile by tile and never held at the photo's size with every class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def resize_image(image: np.ndarray, size: tuple[int, int], procedure: str) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image resized to ``size`` (h, w) as ``procedure`` resizes it;
    float32 on the 0..255 scale (semseg's is not rounded; mmseg's and CSAIL's are uint8 values)."""
    h, w = size
    if procedure == "semseg":
        import cv2

        img = image.astype(np.float32)
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        return img
    if image.shape[:2] == (h, w):
        return image.astype(np.float32)
    if procedure == "mmseg":
        import cv2

        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if procedure == "csail":
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR), dtype=np.float32)
    raise ValueError(f"unknown procedure {procedure!r}")


@dataclass(frozen=True)
class Axis:
    """Grid coordinate ``clip(a * y + b, lo, hi)`` of photo coordinate ``y`` along one dimension
    of a grid of ``n`` points (``lo``/``hi``: where bilinear interpolation clamps)."""

    a: float
    b: float
    lo: float
    hi: float
    n: int

    @classmethod
    def resize(cls, n_src: int, n_dst: int, *, align_corners: bool = False, offset: float = 0.0,
               step: float = 1.0, n_grid: int | None = None) -> "Axis":
        """The axis of a map of ``n_src`` pixels resized to ``n_dst`` (``F.interpolate``'s
        arithmetic). The source may sit at ``offset`` inside a larger grid whose point ``i``
        is at source position ``(i + 0.5) * step - 0.5`` (a coarser accumulator grid)."""
        if align_corners:
            a = (n_src - 1) / (n_dst - 1) if n_dst > 1 else 0.0
            b = 0.0
        else:
            a = n_src / n_dst
            b = 0.5 * a - 0.5
        # source position s -> grid coordinate g = (s + offset + 0.5) / step - 0.5
        ga, gb = a / step, (b + offset + 0.5) / step - 0.5
        lo = (offset + 0.5) / step - 0.5
        hi = (offset + n_src - 1 + 0.5) / step - 0.5
        n = n_grid if n_grid is not None else n_src
        return cls(ga, gb, max(0.0, lo), min(float(n - 1), hi), n)

    def coords(self, y: np.ndarray) -> np.ndarray:
        return np.clip(self.a * np.asarray(y, np.float64) + self.b, self.lo, self.hi)

    def taps(self, y: np.ndarray, device: torch.device | str = "cpu") -> "Taps":
        """The two grid points and the weight of the second, for photo coordinates ``y``."""
        g = self.coords(y)
        snap = np.rint(g)
        g = np.where(np.abs(g - snap) < 1e-9, snap, g)  # on a grid point up to rounding: on it
        i0 = np.floor(g).astype(np.int64)
        i0 = np.clip(i0, 0, self.n - 1)
        w = g - i0
        i1 = np.where(w > 0, np.minimum(i0 + 1, self.n - 1), i0)
        return Taps(torch.from_numpy(i0).to(device), torch.from_numpy(i1).to(device),
                    torch.from_numpy(w.astype(np.float32)).to(device))


@dataclass(frozen=True)
class Taps:
    i0: Tensor  # (n,) int64
    i1: Tensor
    w: Tensor  # (n,) float32: weight of i1

    def __len__(self) -> int:
        return int(self.i0.shape[0])


def pixel_centres(n_out: int, n_photo: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Photo coordinates of the centres of an ``n_out``-pixel resize of an ``n_photo``-pixel
    dimension (points ``start:stop``): the grid a half-pixel resize samples the photo at."""
    stop = n_out if stop is None else stop
    i = np.arange(start, stop, dtype=np.float64)
    return (i + 0.5) * (n_photo / n_out) - 0.5


def sample_grid(values: Tensor, ty: Taps, tx: Taps) -> Tensor:
    """Bilinear samples of a (C, gh, gw) map at rows ``ty`` x columns ``tx``: (C, ny, nx).
    Taps that fall on grid points (weight 0) are plain copies."""
    rows = _take(values, 1, ty.i0)
    if bool((ty.w != 0).any()):
        rows = torch.lerp(rows, _take(values, 1, ty.i1), ty.w.view(1, -1, 1).to(values.dtype))
    out = _take(rows, 2, tx.i0)
    if bool((tx.w != 0).any()):
        out = torch.lerp(out, _take(rows, 2, tx.i1), tx.w.view(1, 1, -1).to(values.dtype))
    return out


def _take(t: Tensor, dim: int, idx: Tensor) -> Tensor:
    """``t.index_select(dim, idx)``, as a view when ``idx`` is a run of consecutive indices."""
    n = int(idx.shape[0])
    if n and int(idx[-1]) - int(idx[0]) == n - 1 and bool((idx[1:] - idx[:-1] == 1).all()):
        return t.narrow(dim, int(idx[0]), n)
    return t.index_select(dim, idx)


def sample_points(values: Tensor, y0: Tensor, y1: Tensor, wy: Tensor, x0: Tensor, x1: Tensor, wx: Tensor) -> Tensor:
    """Bilinear samples of a (C, gh, gw) map at n points given by their taps: (C, n)."""
    flat = values.reshape(values.shape[0], -1)
    gw = values.shape[2]
    wx, wy = wx.float(), wy.float()
    top = torch.lerp(flat[:, y0 * gw + x0].float(), flat[:, y0 * gw + x1].float(), wx)
    bottom = torch.lerp(flat[:, y1 * gw + x0].float(), flat[:, y1 * gw + x1].float(), wx)
    return torch.lerp(top, bottom, wy)


def sample_rows(table: Tensor, gw: int, y0: Tensor, y1: Tensor, wy: Tensor, x0: Tensor, x1: Tensor,
                wx: Tensor) -> Tensor:
    """Bilinear samples at n points of a map stored point-major, ``table`` (gh * gw, C): (n, C).
    Each tap is one contiguous row, which is what makes scattered points cheap."""
    wx, wy = wx.float()[:, None], wy.float()[:, None]
    top = torch.lerp(table.index_select(0, y0 * gw + x0), table.index_select(0, y0 * gw + x1), wx)
    bottom = torch.lerp(table.index_select(0, y1 * gw + x0), table.index_select(0, y1 * gw + x1), wx)
    return torch.lerp(top, bottom, wy)


def resize_plane(plane: np.ndarray, size: tuple[int, int], *, rows: int = 256, dtype=np.float16) -> np.ndarray:
    """A (h, w) float map resized bilinearly (half-pixel) to ``size``, computed in row bands."""
    h, w = plane.shape
    H, W = size
    src = torch.from_numpy(np.ascontiguousarray(plane, np.float32))[None]
    ay, ax = Axis.resize(h, H), Axis.resize(w, W)
    tx = ax.taps(np.arange(W))
    out = np.empty((H, W), dtype)
    out_t = torch.from_numpy(out)
    for y in range(0, H, rows):
        ty = ay.taps(np.arange(y, min(H, y + rows)))
        out_t[y:y + len(ty)] = sample_grid(src, ty, tx)[0]
    return out


__all__ = ["resize_image", "Axis", "Taps", "pixel_centres", "sample_grid", "sample_points", "sample_rows",
           "resize_plane"]
