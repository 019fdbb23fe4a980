"""Brush, eraser and the "accept the prediction" brush/lasso: drags that are one undo step each."""

from __future__ import annotations

from app.tools.base import IGNORE, Context, Drag, Tool, ToolEvent, lasso_drag
from app.tools.shapes import PickerTool


def _brush_drag(ctx: Context, ev: ToolEvent, label: int, preserve: bool) -> Drag:
    """Paint from the press to every move; one stroke (one undo step) until the release."""
    mask, s = ctx.mask, ctx.settings
    radius, shape = s.radius, s.shape
    mask.begin_stroke()
    try:
        last = ev.point
        mask.paint([last], label, radius, shape, preserve)
        while True:
            ev = yield
            if ev.kind != "move":
                break
            if ev.point != last:
                mask.paint([last, ev.point], label, radius, shape, preserve)
                last = ev.point
    finally:
        mask.end_stroke()


class BrushTool(Tool):
    name = "brush"
    short = "Brush"
    title = "&Brush"
    shortcut = "B"
    tip = "Paint the chosen class (Alt+click picks a class; [ and ] change the size)"
    brush = True

    def press(self, ctx: Context, ev: ToolEvent) -> Drag | None:
        if ev.alt:  # Alt+click: the eyedropper without switching tools
            PickerTool.pick(ctx, ev)
            return None
        return _brush_drag(ctx, ev, ctx.settings.label, ctx.settings.preserve)


class EraserTool(Tool):
    name = "eraser"
    short = "Eraser"
    title = "&Eraser"
    shortcut = "E"
    tip = "Erase labels: paints 'ignore' (255), which training skips"
    brush = True

    def press(self, ctx: Context, ev: ToolEvent) -> Drag | None:
        return _brush_drag(ctx, ev, IGNORE, False)


class AcceptTool(Tool):
    """Copy the shown prediction into the mask under a brush or inside a lasso."""

    name = "accept"
    short = "Accept"
    title = "&Accept Prediction"
    shortcut = "A"
    tip = "Accept the model's labels where you brush (or lasso: see the tool options)"
    brush = True

    def press(self, ctx: Context, ev: ToolEvent) -> Drag | None:
        pred = ctx.prediction
        if pred is None:
            ctx.notify("No prediction to accept yet (open a model, wait for the prediction)")
            return None
        s = ctx.settings
        if s.accept_shape == "lasso":
            mask = ctx.mask
            return lasso_drag(ctx, ev, lambda pts: _accept_polygon(mask, pred, pts, s.preserve))
        return self._brush(ctx, ev, pred)

    @staticmethod
    def _brush(ctx: Context, ev: ToolEvent, pred) -> Drag:
        mask, s = ctx.mask, ctx.settings
        mask.begin_stroke("accept")
        try:
            last = ev.point
            fp = mask.brush_footprint([last], s.radius, s.shape)
            if fp is not None:
                mask.accept_prediction(pred, fp, s.preserve)
            while True:
                ev = yield
                if ev.kind != "move":
                    break
                if ev.point != last:
                    fp = mask.brush_footprint([last, ev.point], s.radius, s.shape)
                    if fp is not None:
                        mask.accept_prediction(pred, fp, s.preserve)
                    last = ev.point
        finally:
            mask.end_stroke()

    def shows_brush(self, settings) -> bool:
        return settings.accept_shape == "brush"


def _accept_polygon(mask, pred, points, preserve: bool) -> None:
    fp = mask.polygon_footprint(points)
    if fp is not None:
        mask.accept_prediction(pred, fp, preserve)
