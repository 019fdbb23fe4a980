"""A zoomable, pannable image canvas (pyqtgraph) with a photo and an indexed overlay.

The overlay is a (H, W) uint8 index map drawn through a (256, 4) RGBA lookup table: pyqtgraph
turns that into an indexed QImage without a per-pixel pass (its fast path), so switching the
overlay, its colours or the shown classes costs almost nothing.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtWidgets import QSizePolicy


class ImageCanvas(pg.GraphicsView):
    """Photo + overlay in one ViewBox. ``hovered`` carries the pixel (x, y) under the cursor or None."""

    hovered = Signal(object)

    def __init__(self, parent=None, background: str = "#202124"):
        super().__init__(parent, background=background)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setMouseEnabled(True, True)
        self.setCentralItem(self.vb)
        self.photo = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(1)
        self.vb.addItem(self.photo)
        self.vb.addItem(self.overlay)
        self.setMouseTracking(True)
        self._shape: tuple[int, int] | None = None
        self._last_hover: tuple[int, int] | None = None

    # --- content ---
    def set_photo(self, rgb: np.ndarray | None, fit: bool = True) -> None:
        if rgb is None:
            self.photo.clear()
            self._shape = None
            return
        self.photo.setImage(np.ascontiguousarray(rgb), autoLevels=False, levels=None)
        new_shape = rgb.shape[:2]
        if fit or new_shape != self._shape:
            self._shape = new_shape
            self.fit()

    def set_overlay(self, index: np.ndarray | None, lut: np.ndarray | None = None) -> None:
        """Show a (H, W) uint8 index map through ``lut`` (256, 4); None clears the overlay."""
        if index is None:
            self.overlay.clear()
            return
        if index.dtype != np.uint8 or not index.flags.c_contiguous:
            index = np.ascontiguousarray(index, dtype=np.uint8)
        self.overlay.setImage(index, autoLevels=False, levels=None, lut=lut)
        if self._shape is None:
            self._shape = index.shape[:2]
            self.fit()

    def set_lut(self, lut: np.ndarray) -> None:
        self.overlay.setLookupTable(lut)

    def set_photo_opacity(self, opacity: float) -> None:
        """Dim the photo (maps of changed pixels stand out on a dimmed photo)."""
        self.photo.setOpacity(float(opacity))

    def set_overlay_opacity(self, opacity: float) -> None:
        self.overlay.setOpacity(float(opacity))

    def set_overlay_visible(self, visible: bool) -> None:
        self.overlay.setVisible(bool(visible))

    def fit(self) -> None:
        if self._shape is not None:
            h, w = self._shape
            self.vb.setRange(xRange=(0, w), yRange=(0, h), padding=0.02)

    def zoom(self, factor: float) -> None:
        """Zoom about the centre of the view (factor > 1 zooms in)."""
        self.vb.scaleBy((1.0 / factor, 1.0 / factor))

    def link_to(self, other: "ImageCanvas") -> None:
        """Share zoom and pan with another canvas."""
        self.vb.setXLink(other.vb)
        self.vb.setYLink(other.vb)

    # --- mouse ---
    def pixel_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self._shape is None or not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.vb.mapSceneToView(scene_pos)
        x, y = int(np.floor(p.x())), int(np.floor(p.y()))
        h, w = self._shape
        if 0 <= x < w and 0 <= y < h:
            return x, y
        return None

    def widget_pos_of_pixel(self, x: float, y: float) -> QPoint:
        """Where the centre of image pixel (x, y) is, in this widget's coordinates (for tests/tools)."""
        scene = self.vb.mapViewToScene(QPointF(x + 0.5, y + 0.5))
        return self.mapFromScene(scene)

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802
        # every move, not pyqtgraph's rate-limited sigMouseMoved (which can drop the last position)
        px = self.pixel_at(self.mapToScene(ev.position().toPoint()))
        if px != self._last_hover:
            self._last_hover = px
            self.hovered.emit(px)
        super().mouseMoveEvent(ev)

    def leaveEvent(self, ev) -> None:  # noqa: N802 (Qt name)
        if self._last_hover is not None:
            self._last_hover = None
            self.hovered.emit(None)
        super().leaveEvent(ev)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        if ev.key() in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom(1.25)
        elif ev.key() == Qt.Key.Key_Minus:
            self.zoom(0.8)
        else:
            super().keyPressEvent(ev)
