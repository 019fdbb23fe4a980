"""The graphics items of mask editing: the editable mask layer, the brush outline, the path preview.

The mask layer is a pyqtgraph ImageItem whose QImage is an indexed (Format_Indexed8) view of
the ``LabelMask``'s own buffer: no copy is made, so after an edit the only work left is to ask
Qt to repaint the changed box (``update_region``), and the repaint touches only the screen
pixels inside it. That is what keeps a brush segment on a 4000x3000 mask far below 8 ms.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsPathItem, QGraphicsRectItem

Z_MASK, Z_TOOLS = 2, 10


class MaskLayer(pg.ImageItem):
    """Shows a (H, W) uint8 label mask through a (256, 4) lookup table, without copying it."""

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self.setZValue(Z_MASK)
        self.data: np.ndarray | None = None

    def set_mask(self, data: np.ndarray | None, lut: np.ndarray | None = None) -> None:
        """``data`` must stay the same buffer for as long as it is shown (LabelMask edits in place)."""
        self.data = data
        if data is None:
            self.clear()
            return
        if data.dtype != np.uint8 or not data.flags.c_contiguous:
            raise ValueError("the mask layer needs a C-contiguous uint8 array (the LabelMask's own buffer)")
        self.setImage(data, autoLevels=False, levels=None, lut=lut)

    def update_region(self, region) -> None:
        """Repaint only the box ``(y0, y1, x0, x1)`` (a core.Region) that changed."""
        y0, y1, x0, x1 = (int(v) for v in region)
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))


def _pen(color: str, width: float, dashed: bool = False) -> QPen:
    pen = QPen(QColor(color))
    pen.setWidthF(width)
    pen.setCosmetic(True)  # the same width at every zoom
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


class BrushOutline:
    """The brush's footprint under the cursor: a light line over a dark one (visible on any photo)."""

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self.round = [QGraphicsEllipseItem(), QGraphicsEllipseItem()]
        self.square = [QGraphicsRectItem(), QGraphicsRectItem()]
        for items in (self.round, self.square):
            items[0].setPen(_pen("#202124", 3))
            items[1].setPen(_pen("#ffffff", 1.2))
            for i, item in enumerate(items):
                item.setZValue(Z_TOOLS + i)
                item.setVisible(False)
                viewbox.addItem(item, ignoreBounds=True)
        self.centre: tuple[float, float] | None = None

    def show(self, y: float, x: float, radius: float, shape: str) -> None:
        """Centre on mask point (y, x) (pixel centres at integers); covers what the brush paints."""
        self.centre = (y, x)
        if shape == "square":
            half = round(radius) + 0.5
            items, other = self.square, self.round
        else:
            half = radius + 0.5
            items, other = self.round, self.square
        if shape == "square":
            y, x = round(y), round(x)
        rect = QRectF(x + 0.5 - half, y + 0.5 - half, 2 * half, 2 * half)
        for item in items:
            item.setRect(rect)
            item.setVisible(True)
        for item in other:
            item.setVisible(False)

    def hide(self) -> None:
        self.centre = None
        for item in self.round + self.square:
            item.setVisible(False)

    @property
    def visible(self) -> bool:
        return any(item.isVisible() for item in self.round + self.square)

    def rect(self) -> QRectF:
        for item in self.round + self.square:
            if item.isVisible():
                return item.rect()
        return QRectF()


class PathPreview:
    """A lasso or polygon being drawn."""

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self.items = [QGraphicsPathItem(), QGraphicsPathItem()]
        self.items[0].setPen(_pen("#202124", 3))
        self.items[1].setPen(_pen("#fbbc04", 1.5, dashed=True))
        for i, item in enumerate(self.items):
            item.setZValue(Z_TOOLS + 2 + i)
            viewbox.addItem(item, ignoreBounds=True)
        self.points: list[tuple[float, float]] = []

    def set_points(self, points: list[tuple[float, float]] | None, closed: bool = False) -> None:
        self.points = list(points or [])
        path = QPainterPath()
        if self.points:
            y, x = self.points[0]
            path.moveTo(QPointF(x + 0.5, y + 0.5))
            for y, x in self.points[1:]:
                path.lineTo(QPointF(x + 0.5, y + 0.5))
            if closed:
                path.closeSubpath()
        for item in self.items:
            item.setPath(path)
