"""Lookup tables for the views: class palettes with per-class visibility, and heat maps.

Every map the views draw is a uint8 index image through a (256, 4) RGBA table, which
pyqtgraph turns into an indexed QImage without touching the pixels (its fast path).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pyqtgraph as pg

import core

HEATMAP = "viridis"
CHANGE_COLOR = (255, 40, 200)  # magenta: apart from every demo class colour


def class_lut(classes: "core.ClassTable", hidden: Iterable[int] = ()) -> np.ndarray:
    """(256, 4) uint8: class colours, opaque; hidden classes, unused ids and 255 (ignore) transparent."""
    lut = np.zeros((256, 4), np.uint8)
    lut[:, :3] = classes.palette()
    lut[: len(classes), 3] = 255
    for c in hidden:
        if 0 <= c < 256:
            lut[c, 3] = 0
    return lut


def heat_lut(name: str = HEATMAP) -> np.ndarray:
    """(256, 4) uint8 opaque colour map for 0..255 scaled values."""
    cmap = pg.colormap.get(name)
    lut = cmap.getLookupTable(0.0, 1.0, 256, alpha=True)
    return np.ascontiguousarray(lut, dtype=np.uint8)


def mask_lut(color: tuple[int, int, int] = CHANGE_COLOR) -> np.ndarray:
    """(256, 4) uint8 for a 0/1 map: 0 transparent, 1 the given colour."""
    lut = np.zeros((256, 4), np.uint8)
    lut[1, :3] = color
    lut[1, 3] = 255
    return lut


def apply_lut(index: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """What the view shows for an index map: lut[index] (H, W, 4)."""
    return lut[np.asarray(index, np.uint8)]
