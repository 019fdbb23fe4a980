"""A progress bar whose text always fits: it shows the longest of its texts that fits the bar.

A narrow dock (a small screen) leaves a QProgressBar too little room for "step 12/40  ETA 0:05":
Qt then draws the text over the bar's edges. This one is given texts from the longest to the
shortest (``set_texts``) and shows the first that fits; the longest is its tool tip.
"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QProgressBar, QSizePolicy, QWidget

TEXT_MARGIN = 8  # pixels kept free beside the text


class FitProgressBar(QProgressBar):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._texts: list[str] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.valueChanged.connect(lambda _: self.setToolTip(self.full_text()))

    def set_texts(self, *texts: str) -> None:
        """Formats (``%v``, ``%m``, ``%p`` as in QProgressBar.setFormat), longest first."""
        self._texts = list(texts)
        self.setFormat(texts[0] if texts else "")
        self.update()

    def setFormat(self, fmt: str) -> None:  # noqa: N802 (Qt name)
        if not self._texts or fmt != self._texts[0]:
            self._texts = [fmt]
        super().setFormat(fmt)
        self.setToolTip(self._render(fmt))

    def _render(self, fmt: str) -> str:
        lo, hi, v = self.minimum(), self.maximum(), self.value()
        pct = int(round(100 * (v - lo) / (hi - lo))) if hi > lo else 0
        return fmt.replace("%p", str(pct)).replace("%v", str(v)).replace("%m", str(hi)).replace("%%", "%")

    def room(self) -> int:
        """The pixels the text may take."""
        return max(0, self.contentsRect().width() - TEXT_MARGIN)

    def text(self) -> str:
        """What the bar shows (Qt paints this): the longest of the texts that fits."""
        if not self._texts or (self.maximum() == 0 and self.minimum() == 0):
            return super().text()
        fm, room = self.fontMetrics(), self.room()
        shown = [self._render(f) for f in self._texts]
        return next((t for t in shown if fm.horizontalAdvance(t) <= room), shown[-1])

    def full_text(self) -> str:
        return self._render(self._texts[0]) if self._texts else ""

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), 60), hint.height())


__all__ = ["FitProgressBar"]
