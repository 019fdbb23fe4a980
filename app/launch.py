"""Start the window: ``python main.py`` (the demo) or ``python main.py gui [--model ...] [--image ...]
[--project ...] [--view overlay|pyramid|heads] [--screenshot OUT.png [--size WxH|screen]]``.

With ``--screenshot`` the window opens offscreen (unless a display platform is set), waits until
the prediction is shown (and, for the pyramid view, its summaries), saves the window as a PNG
and exits; it exits non-zero with a message when that fails or takes longer than
``PSPNET_SCREENSHOT_TIMEOUT`` seconds (default 600). ``--size`` sets the window's size (default
1600x1000, the same on every machine); ``--size screen`` opens it as a first start does on the
screen (maximised on a small one): with ``QT_QPA_PLATFORM=xcb`` under Xvfb, the real window at
that screen's size.

Start-up failures (an image that cannot be read or is damaged, a project that cannot be opened, a
model that fails to load, a ``--project`` folder that is not a project) stay in the window's
banners (app/window_alerts.py), not in the status line that the next message replaces; they are
also logged.

``PSPNET_STUDIO_HOME`` moves the app's own files (settings, demo project, trained demo model)
into one folder; ``python -m app.screenshots`` makes the README's screenshots.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Qt is imported only when the window is wanted
    from PySide6.QtWidgets import QApplication

SCREENSHOT_TIMEOUT_S = float(os.environ.get("PSPNET_SCREENSHOT_TIMEOUT", "600"))
SETTLE_MS = 300  # let pyqtgraph lay out and paint before grabbing
SCREENSHOT_SIZE = (1600, 1000)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``WxH`` -> (W, H); None or "screen" -> None (the screen's size)."""
    if text is None:
        return SCREENSHOT_SIZE
    if text.strip().lower() == "screen":
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r}: give WIDTHxHEIGHT (e.g. 1280x720) or 'screen'") from None
    if not (200 <= w <= 16384 and 200 <= h <= 16384):
        raise ValueError(f"--size {text!r}: width and height must be 200 ... 16384 pixels")
    return w, h


def application() -> "QApplication":
    """The QApplication, made once with the app's names (they place its settings and app-data
    folder) and style sheet."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "pspnet-studio"])
        app.setApplicationName("PSPNet Studio")
        app.setOrganizationName("PSPNet Studio")
        app.setApplicationDisplayName("PSPNet Studio")
        style = Path(__file__).resolve().parent.parent / "resources" / "style.qss"
        if style.is_file():
            app.setStyleSheet(style.read_text(encoding="utf-8"))
    return app


class Screenshot:
    """Waits for the shown prediction, saves the window, ends the event loop with an exit code."""

    def __init__(self, window, out: Path, view: str, timeout_s: float = SCREENSHOT_TIMEOUT_S):
        from PySide6.QtCore import QTimer

        self.window = window
        self.out = out
        self.view = view
        self.code: int | None = None
        self.message = ""
        c = window.controller
        c.outcomeReady.connect(self._maybe_done)
        c.pyramidReady.connect(lambda _: self._maybe_done())
        c.error.connect(self._error)
        if window.demo is not None:
            window.demo.failed.connect(self._error)
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._timeout)
        self.timer.start(int(timeout_s * 1000))
        if window.last_error:  # reported while the window was being built (a folder that did not open ...)
            QTimer.singleShot(0, lambda: self._error(window.last_error))

    def _ready(self) -> bool:
        c = self.window.controller
        if c.outcome is None or c.outcome.prediction.is_preview:
            return False  # not yet, or only a first look of the prediction
        if self.window.demo is not None and self.window.demo.showing_snapshot():
            return False  # an intermediate model of the demo training: wait for the trained one
        if self.view == "pyramid" and c.outcome.base.internals is not None and c.pyramid is None:
            return False
        return True

    def _maybe_done(self, *_: object) -> None:
        from PySide6.QtCore import QTimer

        if self.code is None and self._ready():
            QTimer.singleShot(SETTLE_MS, self._save)

    def _save(self) -> None:
        if self.code is not None or not self._ready():
            return
        need = self.window.minimumSizeHint()
        if need.width() > self.window.width() or need.height() > self.window.height():
            print(f"warning: the window needs at least {need.width()}x{need.height()} pixels", file=sys.stderr)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.window.save_screenshot(self.out):
            self._finish(0, f"saved {self.out}")
        else:
            self._finish(1, f"error: could not write the screenshot {self.out}")

    def _error(self, text: str) -> None:
        self._finish(1, f"error: {text}")

    def _timeout(self) -> None:
        c = self.window.controller
        what = "no model is loaded" if c.loaded is None else ("no image is open" if c.image is None
                                                              else "the prediction did not arrive")
        self._finish(1, f"error: no screenshot after {self.timer.interval() / 1000:.0f} s: {what}")

    def _finish(self, code: int, message: str) -> None:
        if self.code is not None:
            return
        self.code = code
        self.message = message
        self.timer.stop()
        from PySide6.QtWidgets import QApplication

        # the window is closed after the event loop has returned: closing the last window inside
        # it would post a Quit event that outlives this loop (and ends the next one at once)
        QApplication.instance().exit(code)


def build_window(args: argparse.Namespace):
    """The window with what the arguments ask for opened (the demo when nothing is given)."""
    from app.main_window import VIEWS, MainWindow

    window = MainWindow(restore=not getattr(args, "screenshot", None))
    window.interactive = not getattr(args, "screenshot", None)  # a screenshot asks nothing: problems are errors
    models = getattr(args, "model", None)
    image = getattr(args, "image", None)
    project = getattr(args, "project", None)
    if getattr(args, "screenshot", None):
        size = parse_size(getattr(args, "size", None))
        if size is None:
            from app.window_geometry import place_first

            place_first(window)  # as a first start opens it on this screen
        else:
            window.resize(*size)
    view = getattr(args, "view", None)
    if view in VIEWS:
        window.tabs.setCurrentIndex(VIEWS.index(view))
    if models:
        window.open_model(models)
    opened = None
    if project:
        opened = window.open_folder(project, use_model=not models)  # --model wins over the project's history
    if image:
        window.open_image(image)
    if not project and not image:
        window.open_demo(with_model=not models)
    elif not models:
        _demo_model_only(window, opened)
    return window


def _demo_model_only(window, opened=None) -> None:
    """An image or project without --model: the model the project's history has in use, else the demo model."""
    from app.demo import find_demo_checkpoint

    ckpt = find_demo_checkpoint()
    if opened is not None and (opened.model or opened.state in ("classes", "failed")):
        return  # the history's model (or the question about it, or the class table, or an error) comes first
    folder = window.controller.folder
    if opened is None and folder is not None and folder.project is not None \
            and window.controller.opening.auto_root == folder.root:
        return  # an image of a project: that project's model (taken up as the image opened)
    if ckpt is not None:
        window.controller.open_model(ckpt)
    else:
        window.alerts.no_model()


def warm_up(window) -> None:
    """Import the training code in the background now (the first Retrain would otherwise pay for it,
    and the garbage collector's passes over its objects stall the GUI thread), then keep those
    objects out of later passes too."""
    task = window.controller.background.submit("prepare training", __import__("core").warm_up_training)
    task.done.connect(gc.freeze)


def run_gui(args: argparse.Namespace) -> int:
    screenshot = getattr(args, "screenshot", None)
    try:
        parse_size(getattr(args, "size", None))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if screenshot and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = application()
    window = build_window(args)
    window.show()
    # the objects made so far live as long as the window: keep them out of the collector's
    # passes, which hold the GIL and would otherwise show as stalls of the GUI thread
    gc.collect()
    gc.freeze()
    if not screenshot:
        warm_up(window)
    shot = Screenshot(window, Path(screenshot), getattr(args, "view", "overlay") or "overlay") if screenshot else None
    code = app.exec()
    gc.unfreeze()
    if window.isVisible():
        window.close()  # saves the layout and stops the workers
    if shot is not None:
        print(shot.message or "error: the window closed before the screenshot", file=sys.stderr if shot.code else sys.stdout)
        return shot.code if shot.code is not None else 1
    return int(code)
