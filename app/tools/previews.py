"""What the editing tools draw over the image while in use: the brush outline and the path
(lasso, polygon) being drawn. The mask itself is app/views/mask_layer.py."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsPathItem, QGraphicsRectItem

Z_TOOLS = 10


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
