"""What every editing tool shares: the event it receives, the settings it reads, its context.

A tool turns mouse events into calls on a ``core.LabelMask``; it never touches widgets. Like
napari's label tools, a drag is a generator: :meth:`Tool.press` returns one (or None for a
click tool); the canvas sends it every move event and finally the release event, after which
it returns. The edit logic itself (brush footprints, fills, polygons, undo) lives in core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal

import core

IGNORE = core.IGNORE  # the eraser paints it; training skips it
MIN_RADIUS, MAX_RADIUS = 0, 300

Drag = Generator[None, "ToolEvent", None]


@dataclass(frozen=True)
class ToolEvent:
    """A mouse event in mask coordinates: ``y, x`` with pixel centres at integers (float)."""

    kind: str  # "press", "move", "release", "double"
    y: float
    x: float
    alt: bool = False
    shift: bool = False

    @property
    def point(self) -> tuple[float, float]:
        return (self.y, self.x)

    def pixel(self) -> tuple[int, int]:
        return int(round(self.y)), int(round(self.x))


class ToolSettings(QObject):
    """The options the tools read (the tool panel edits them)."""

    changed = Signal()
    labelChanged = Signal(int)
    radiusChanged = Signal(float)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._label = 0
        self._radius = 8.0
        self.shape = "round"  # brush shape: "round" or "square"
        self.preserve = False  # only unlabelled pixels change
        self.fill_all = False  # fill: every pixel of the clicked label, not just the contiguous region
        self.accept_shape = "brush"  # accept the prediction under a "brush" or inside a "lasso"
        self.num_classes = 1

    @property
    def label(self) -> int:
        return self._label

    @label.setter
    def label(self, value: int) -> None:
        value = int(value)
        if value != IGNORE and not 0 <= value < self.num_classes:
            raise ValueError(f"label {value} is outside the class table (0..{self.num_classes - 1})")
        if value != self._label:
            self._label = value
            self.labelChanged.emit(value)
            self.changed.emit()

    @property
    def radius(self) -> float:
        return self._radius

    @radius.setter
    def radius(self, value: float) -> None:
        value = float(min(MAX_RADIUS, max(MIN_RADIUS, value)))
        if value != self._radius:
            self._radius = value
            self.radiusChanged.emit(value)
            self.changed.emit()

    def set_option(self, name: str, value: Any) -> None:
        if name not in ("shape", "preserve", "fill_all", "accept_shape"):
            raise ValueError(f"unknown tool option {name!r}")
        if name == "shape" and value not in ("round", "square"):
            raise ValueError(f"brush shape must be 'round' or 'square', not {value!r}")
        if name == "accept_shape" and value not in ("brush", "lasso"):
            raise ValueError(f"accept shape must be 'brush' or 'lasso', not {value!r}")
        if getattr(self, name) != value:
            setattr(self, name, value)
            self.changed.emit()

    def set_num_classes(self, n: int) -> None:
        self.num_classes = max(1, int(n))
        if self._label != IGNORE and self._label >= self.num_classes:
            self.label = 0

    def grow(self, factor: float) -> None:
        """[ and ]: the brush one step smaller or larger (at least one pixel of radius)."""
        r = self._radius
        self.radius = max(r + 1, round(r * factor)) if factor > 1 else min(r - 1, round(r * factor))


class Context(Protocol):
    """What a tool works on (the canvas's tool host provides it)."""

    settings: ToolSettings

    @property
    def mask(self) -> core.LabelMask | None: ...  # None when the image is read-only / not loaded

    @property
    def prediction(self) -> np.ndarray | None: ...  # (H, W) uint8 labels of the shown prediction

    def preview(self, points: list[tuple[float, float]] | None, closed: bool = False) -> None: ...

    def picked(self, label: int) -> None: ...

    def notify(self, text: str) -> None: ...


def lasso_drag(ctx: Context, ev: ToolEvent, done) -> Drag:
    """Collect a freehand outline (shown as a preview) and call ``done(points)`` on release."""
    points = [ev.point]
    ctx.preview(points)
    try:
        while True:
            ev = yield
            if ev.kind != "move":
                break
            last = points[-1]
            if abs(ev.y - last[0]) + abs(ev.x - last[1]) >= 1.0:
                points.append(ev.point)
                ctx.preview(points)
    finally:
        ctx.preview(None)
    if len(points) >= 3:
        done(points)


class Tool:
    """A tool: ``press`` starts a drag (a generator) or acts at once (returns None)."""

    name = ""
    title = ""  # the menu's text
    short = ""  # the tool button's text
    shortcut = ""
    tip = ""
    brush = False  # shows the brush outline
    edits = True  # needs an editable mask
    wants_double_click = False  # else a double-click is a second press (a second dab of the brush)

    def press(self, ctx: Context, ev: ToolEvent) -> Drag | None:
        return None

    def double_click(self, ctx: Context, ev: ToolEvent) -> None:
        pass

    def key(self, ctx: Context, key: str) -> bool:
        """"enter", "escape" or "backspace" while this tool is active; True when used."""
        return False

    def shows_brush(self, settings: ToolSettings) -> bool:
        """Whether the brush outline follows the cursor."""
        return self.brush

    @property
    def busy(self) -> bool:
        """True while the tool holds unfinished input (a polygon being drawn)."""
        return False

    def cancel(self, ctx: Context) -> None:
        """Drop unfinished input (switching tools, image changed)."""


class PanTool(Tool):
    """Navigate: the canvas pans and zooms as usual."""

    name = "pan"
    title = "Pan && Zoom"
    short = "Pan"
    shortcut = "H"
    tip = "Pan and zoom: drag to move, wheel to zoom"
    edits = False
