"""Make the README screenshots: ``python -m app.screenshots [--model CKPT] [--out DIR]``.

Opens the demo project offscreen with the demo model (or ``--model``), and saves
``overlay.png`` (the segmentation), ``pyramid.png`` (the pyramid inspector with levels switched
off) and ``heads.png`` (main versus auxiliary head). ``main.py gui --screenshot`` makes single
shots; this one also switches levels off, which the command line does not.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SHOTS = {"overlay": ("scene_0010.png", 0), "pyramid": ("scene_0000.png", 1), "heads": ("scene_0007.png", 2)}


def _wait(signal, timeout_s: float = 600) -> tuple:
    from PySide6.QtCore import QEventLoop, QTimer

    got: list = []
    loop = QEventLoop()

    def done(*args):
        got.append(args)
        loop.quit()

    signal.connect(done)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(done)
    if not got:
        raise TimeoutError(f"no answer in {timeout_s} s")
    return got[0]


def _settle(controller, timeout_s: float = 120, ms: int = 300) -> None:
    """Run the event loop until no job is running (and ``ms`` more, for painting)."""
    import time

    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout_s
    while True:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()
        if not controller.busy or time.monotonic() > deadline:
            return


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="make the README screenshots")
    ap.add_argument("--model", help="checkpoint (default: the demo model)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "resources" / "screenshots"))
    ap.add_argument("--levels-off", default="1,2,3", help="pyramid levels switched off in pyramid.png (comma list)")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["pspnet-studio"])
    from app.demo import DemoLauncher, find_demo_checkpoint
    from app.main_window import MainWindow

    model = args.model or find_demo_checkpoint()
    if model is None:
        print("error: no demo model yet: run `python main.py` once (it trains one) or give --model", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w = MainWindow(restore=False)
    w.resize(1600, 1000)
    w.show()
    c = w.controller
    launcher = DemoLauncher(c, bundled=Path(model))
    w.demo = launcher
    launcher.start(with_model=False)
    _wait(c.folderChanged)
    w.open_model(model)
    _wait(c.modelChanged)
    root = launcher.project_dir / "images"
    off = tuple(int(b) for b in args.levels_off.split(",") if b.strip())
    for name, (image, tab) in SHOTS.items():
        c.set_disabled_levels(())
        w.tabs.setCurrentIndex(tab)
        if c.image is None or c.image.path.name != image:
            c.open_image(root / image)
            _wait(c.outcomeReady)
        if name == "pyramid":
            if c.pyramid is None:
                _wait(c.pyramidReady)
            if off:
                c.set_disabled_levels(off)
                _wait(c.outcomeReady)
        _settle(c)
        path = out / f"{name}.png"
        if not w.save_screenshot(path):
            print(f"error: could not write {path}", file=sys.stderr)
            return 1
        print(f"saved {path}")
    w.close()
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
