"""Mask editing tools (mouse -> core.LabelMask calls), their previews and the canvas hookup (the
mask layer they edit is app/views/mask_layer.py)."""

from app.tools.base import IGNORE, PanTool, Tool, ToolEvent, ToolSettings
from app.tools.paint import AcceptTool, BrushTool, EraserTool
from app.tools.shapes import FillTool, LassoTool, PickerTool, PolygonTool


def make_tools() -> dict[str, Tool]:
    """One instance of every tool, in toolbar order."""
    tools = [PanTool(), BrushTool(), EraserTool(), FillTool(), PolygonTool(), LassoTool(), PickerTool(), AcceptTool()]
    return {t.name: t for t in tools}


__all__ = ["IGNORE", "Tool", "ToolEvent", "ToolSettings", "PanTool", "BrushTool", "EraserTool", "AcceptTool",
           "FillTool", "LassoTool", "PolygonTool", "PickerTool", "make_tools"]
