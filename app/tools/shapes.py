"""Fill, polygon, lasso and the class picker."""

from __future__ import annotations

from app.tools.base import IGNORE, Context, Drag, Tool, ToolEvent, lasso_drag


def _inside(ctx: Context, ev: ToolEvent) -> tuple[int, int] | None:
    mask = ctx.mask
    if mask is None:
        return None
    y, x = ev.pixel()
    h, w = mask.shape
    return (y, x) if 0 <= y < h and 0 <= x < w else None


class FillTool(Tool):
    name = "fill"
    short = "Fill"
    title = "&Fill"
    shortcut = "F"
    tip = "Flood fill the clicked region with the chosen class (or every pixel of its label: see the options)"

    def press(self, ctx: Context, ev: ToolEvent) -> Drag | None:
        px = _inside(ctx, ev)
        if px is not None:
            s = ctx.settings
            ctx.mask.fill(px[0], px[1], s.label, contiguous=not s.fill_all, preserve_labels=s.preserve)
        return None


class LassoTool(Tool):
    name = "lasso"
    short = "Lasso"
    title = "&Lasso Fill"
    shortcut = "L"
    tip = "Drag an outline; its inside gets the chosen class"

    def press(self, ctx: Context, ev: ToolEvent) -> Drag | None:
        mask, s = ctx.mask, ctx.settings
        return lasso_drag(ctx, ev, lambda pts: mask.polygon(pts, s.label, s.preserve))


class PolygonTool(Tool):
    """Click the corners; double-click or Enter fills, Backspace takes the last corner back, Esc drops it."""

    name = "polygon"
    short = "Polygon"
    wants_double_click = True
    title = "&Polygon Fill"
    shortcut = "P"
    tip = "Click corners; double-click or Enter fills the polygon with the chosen class; Esc cancels"

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    @property
    def busy(self) -> bool:
        return bool(self.points)

    def press(self, ctx: Context, ev: ToolEvent) -> Drag | None:
        self.points.append(ev.point)
        ctx.preview(self.points)
        return None

    def double_click(self, ctx: Context, ev: ToolEvent) -> None:
        if not self.points or self.points[-1] != ev.point:
            self.points.append(ev.point)
        self.commit(ctx)

    def commit(self, ctx: Context) -> None:
        points, self.points = self.points, []
        ctx.preview(None)
        if len(points) >= 3 and ctx.mask is not None:
            s = ctx.settings
            ctx.mask.polygon(points, s.label, s.preserve)
        elif points:
            ctx.notify("A polygon needs at least three corners")

    def key(self, ctx: Context, key: str) -> bool:
        if not self.points:
            return False
        if key == "enter":
            self.commit(ctx)
        elif key == "escape":
            self.cancel(ctx)
        elif key == "backspace":
            self.points.pop()
            ctx.preview(self.points or None)
        else:
            return False
        return True

    def cancel(self, ctx: Context) -> None:
        self.points = []
        ctx.preview(None)


class PickerTool(Tool):
    """The eyedropper: the label under the cursor (the prediction's where nothing is painted)."""

    name = "picker"
    short = "Picker"
    title = "Class P&icker"
    shortcut = "I"
    tip = "Click to choose the class under the cursor (the prediction's where nothing is painted yet)"
    edits = False

    def press(self, ctx: Context, ev: ToolEvent) -> Drag | None:
        self.pick(ctx, ev)
        return None

    @staticmethod
    def pick(ctx: Context, ev: ToolEvent) -> int | None:
        y, x = ev.pixel()
        label = IGNORE
        mask = ctx.mask
        if mask is not None and 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1]:
            label = mask.pick(y, x)
        pred = ctx.prediction
        if label == IGNORE and pred is not None and 0 <= y < pred.shape[0] and 0 <= x < pred.shape[1]:
            label = int(pred[y, x])
        if label == IGNORE:
            ctx.notify("Nothing to pick here: the pixel has no label and no prediction")
            return None
        ctx.picked(label)
        return label
