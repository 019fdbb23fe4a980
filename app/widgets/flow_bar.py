"""A row of controls that wraps onto a second line when its view is narrow.

A view's control row (Show, opacity, mask, ...) laid out in one QHBoxLayout asks for the sum of
its controls' widths, and so forces the whole window wider on a small screen. Here the controls
come in groups (a label and its slider stay together) placed by superqt's ``QFlowLayout``: the
row asks only for its widest group and wraps the rest onto more lines.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QSizePolicy, QWidget
from superqt import QFlowLayout


def _line_height() -> int:
    """The height of one line of controls (a combo box, the tallest of them), so that groups of
    check boxes and sliders centre on the same line as groups with a combo box."""
    return QComboBox().sizeHint().height()


class FlowBar(QWidget):
    def __init__(self, parent: QWidget | None = None, margins: tuple[int, int, int, int] = (6, 4, 6, 4),
                 spacing: int = 12):
        super().__init__(parent)
        self.flow = QFlowLayout(self)
        self.flow.setContentsMargins(*margins)
        self.flow.setHorizontalSpacing(spacing)
        self.flow.setVerticalSpacing(2)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._height = _line_height()
        self.groups: list[QWidget] = []

    def add_group(self, *widgets: QWidget, spacing: int = 4) -> QWidget:
        """Widgets that stay side by side on one line."""
        group = QWidget(self)
        lay = QHBoxLayout(group)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(spacing)
        for w in widgets:
            lay.addWidget(w)
        group.setMinimumHeight(self._height)
        self.flow.addWidget(group)
        self.groups.append(group)
        return group


__all__ = ["FlowBar"]
