"""Make the README screenshots: ``python -m app.screenshots [--model CKPT] [--out DIR] [--size WxH]``.

Opens the demo project offscreen with the demo model (or ``--model``), and saves
``overlay.png`` (the segmentation), ``pyramid.png`` (the pyramid inspector with levels switched
off), ``heads.png`` (main versus auxiliary head), ``correct.png`` (painting corrections in a
project made from demo images, after a retrain: its curves and before/after agreement),
``zoo.png`` (Model > Get a Pretrained Model...) and ``classes.png`` (New Project's class-table
chooser, a list of one's own being edited), all at ``--size`` (default 1600x1000), and
``small.png``: the same window after the retrain on a 1280x720 screen (``SMALL``), as a first
start lays it out there; with ``--photo PHOTO`` also ``demo-note.png`` (the demo model on that
photo, with the note on what it knows).
``main.py gui --screenshot`` makes single shots; this one also switches levels off, paints and
retrains, which the command line does not. Every shot is the same on every machine (offscreen,
fixed sizes, the demo's fixed scenes and model).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SHOTS = {"overlay": ("scene_0010.png", 0), "pyramid": ("scene_0000.png", 1), "heads": ("scene_0007.png", 2)}
SMALL = (1280, 720)  # small.png: a small laptop screen


def wait_for_signal(signal, timeout_s: float = 600) -> tuple:
    """Run a local event loop until ``signal`` fires (its arguments) or ``timeout_s`` passes."""
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
    ap.add_argument("--shots", default="overlay,pyramid,heads,correct,small,zoo,classes", help="which shots (comma list)")
    ap.add_argument("--size", default="1600x1000", help="the window's size, WxH (small.png is always 1280x720)")
    ap.add_argument("--photo", help="a photo (not a demo scene) for demo-note.png: the demo model's note on it")
    args = ap.parse_args(argv)
    from app.launch import parse_size

    try:
        size = parse_size(args.size) or SMALL
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.launch import application

    app = application()  # as the app starts: its names (settings, app-data folder) and style
    from app.demo import DemoLauncher, find_demo_checkpoint
    from app.main_window import MainWindow

    model = args.model or find_demo_checkpoint()
    if model is None:
        print("error: no demo model yet: run `python main.py` once (it trains one) or give --model", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w = MainWindow(restore=False)
    w.resize(*size)
    w.show()
    c = w.controller
    launcher = DemoLauncher(c, bundled=Path(model))
    w.set_demo(launcher)
    launcher.start(with_model=False)
    wait_for_signal(c.folderChanged)
    w.open_model(model)
    wait_for_signal(c.modelChanged)
    root = launcher.project_dir / "images"
    off = tuple(int(b) for b in args.levels_off.split(",") if b.strip())
    wanted = {n.strip() for n in args.shots.split(",") if n.strip()}
    for name, (image, tab) in SHOTS.items():
        if name not in wanted:
            continue
        c.set_disabled_levels(())
        w.tabs.setCurrentIndex(tab)
        if c.image is None or c.image.path.name != image:
            c.open_image(root / image)
            wait_for_signal(c.outcomeReady)
        if name == "pyramid":
            if c.pyramid is None:
                wait_for_signal(c.pyramidReady)
            if off:
                c.set_disabled_levels(off)
                wait_for_signal(c.outcomeReady)
        _settle(c)
        path = out / f"{name}.png"
        if not w.save_screenshot(path):
            print(f"error: could not write {path}", file=sys.stderr)
            return 1
        print(f"saved {path}")
    if wanted & {"correct", "small"}:
        path = out / "correct.png"
        if not correct_shot(w, launcher.project_dir, path if "correct" in wanted else None):
            print(f"error: could not write {path}", file=sys.stderr)
            return 1
        if "correct" in wanted:
            print(f"saved {path}")
    if "small" in wanted:
        path = out / "small.png"
        if not small_shot(w, path):
            print(f"error: could not write {path}", file=sys.stderr)
            return 1
        print(f"saved {path}")
    for name, shoot in (("zoo", zoo_shot), ("classes", classes_shot)):
        if name in wanted:
            path = out / f"{name}.png"
            if not shoot(w, path):
                print(f"error: could not write {path}", file=sys.stderr)
                return 1
            print(f"saved {path}")
    if args.photo:
        path = out / "demo-note.png"
        if not demo_note_shot(w, Path(args.photo), Path(model), path):
            print(f"error: could not write {path}", file=sys.stderr)
            return 1
        print(f"saved {path}")
    saving = w.editor.save_all()
    if saving is not None:
        wait_for_signal(saving.done)
    w.close()
    app.quit()
    return 0


CORRECT_IMAGES = 16  # demo images in the corrections project
CORRECTED = 10  # of which this many come with their (true) masks, as corrections of earlier sessions
CORRECT_SHOWN = "scene_0012"  # the image painted in the shot (no mask yet)


def _mouse(widget, kind: str, pos, buttons: bool = True) -> None:
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    ev = QMouseEvent(types[kind], QPointF(pos), QPointF(widget.mapToGlobal(pos)), none if kind == "move" else left,
                     left if buttons and kind != "release" else none, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(w, pixels) -> None:
    """A mouse drag over image pixels (x, y) of the segmentation view."""
    canvas = w.seg.canvas
    vp = canvas.viewport()
    pts = [canvas.widget_pos_of_pixel(x, y) for x, y in pixels]
    _mouse(vp, "press", pts[0])
    for p in pts[1:]:
        _mouse(vp, "move", p)
    _mouse(vp, "release", pts[-1])


def small_shot(w, path: Path) -> bool:
    """The window as it is, on a 1280x720 screen: resized, its docks shared as on a first start there."""
    from app import window_geometry

    w.resize(*SMALL)
    _settle(w.controller, ms=100)
    window_geometry.default_docks(w)
    _settle(w.controller)
    need = w.minimumSizeHint()
    if need.width() > SMALL[0] or need.height() > SMALL[1]:
        print(f"warning: the window needs {need.width()}x{need.height()} pixels", file=sys.stderr)
    return w.save_screenshot(path)


def correct_shot(w, demo_root: Path, path: Path | None, steps: int = 40) -> bool:
    """Paint corrections in a project made from demo images, retrain, save the window (unless
    ``path`` is None)."""
    import shutil

    import core
    from app.controllers.retrainer import RetrainOptions
    from app.settings import studio_home

    c = w.controller
    root = studio_home() / "correct-demo"
    if root.exists():
        shutil.rmtree(root)
    demo = core.Project.open(demo_root)
    project = core.Project.create(root, demo.classes, name="corrections (demo images)")
    names = demo.names()[:CORRECT_IMAGES]
    project.add_images([demo.image_path(n) for n in names])
    for n in names[:CORRECTED]:
        mask = core.read_mask(demo.mask_path(n), demo.classes)
        core.write_mask(project.mask_path(n), mask, demo.classes)
    c.open_folder(root, open_first=False)
    c.open_image(project.image_path(CORRECT_SHOWN))
    _settle(c)
    while w.editor.mask is None or c.outcome is None:
        _settle(c, ms=200)
    w.tabs.setCurrentIndex(0)
    w.seg.set_opacity(0.35)
    w.tools_dock.raise_()
    names_ = demo.classes.names
    w.act.tools["brush"].trigger()
    w.tool_settings.radius = 5
    for label, stroke in ((names_.index("road"), [(4, 100), (40, 99), (80, 101), (124, 100)]),
                          (names_.index("sky"), [(10, 8), (60, 12), (118, 10)]),
                          (names_.index("water"), [(20, 118), (60, 121), (100, 118)])):
        w.tool_settings.label = label
        drag(w, stroke)
    w.act.tools["polygon"].trigger()
    w.tool_settings.label = names_.index("building")
    for x, y in ((70, 30), (95, 30), (95, 70), (70, 70)):
        drag(w, [(x, y)])
    w.canvas_tools.tools["polygon"].commit(w.canvas_tools)
    w.act.tools["brush"].trigger()
    w.tool_settings.label = names_.index("grass")
    drag(w, [(30, 80), (50, 84)])
    canvas = w.seg.canvas
    _mouse(canvas.viewport(), "move", canvas.widget_pos_of_pixel(58, 86), buttons=False)  # the brush outline
    w.retrain_dock.show()
    w.retrain_dock.raise_()
    w.retrain_panel.set_options(RetrainOptions(steps=steps, lr=0.01, batch=8, freeze_backbone=True,
                                               cache_features=True))
    w.act.retrain.trigger()
    wait_for_signal(w.retrainer.finished)
    wait_for_signal(w.retrainer.comparisonReady)
    _settle(c)
    w.seg.set_opacity(0.35)
    return path is None or w.save_screenshot(path)


def _dialog_shot(dlg, path: Path) -> bool:
    from PySide6.QtCore import QEventLoop, QTimer

    dlg.show()
    loop = QEventLoop()
    QTimer.singleShot(400, loop.quit)
    loop.exec()
    ok = dlg.grab().save(str(path), "PNG")
    dlg.reject()
    return ok


def zoo_shot(w, path: Path, selected: str = "mmseg-pspnet-r50-d8-ade20k") -> bool:
    """Model > Get a Pretrained Model...: the zoo, one entry's details (nothing is downloaded)."""
    dlg = w.project_ui.get_model_dialog()
    dlg.tree.setCurrentItem(dlg.item_of(selected))
    return _dialog_shot(dlg, path)


def classes_shot(w, path: Path) -> bool:
    """New Project's class-table chooser, a list of one's own being edited."""
    from app.dialogs.class_table import ClassTableDialog

    loaded = w.controller.loaded
    dlg = ClassTableDialog(w, title="New project: its classes", model_classes=loaded.classes if loaded else None)
    dlg.select("new")
    names = ["background", "person", "dog", "cat", "bicycle", "kite"]
    dlg.editor.set_table(None)
    for n in names:
        dlg.editor.add_class(n)
    dlg.editor.grid.selectRow(len(names) - 1)
    return _dialog_shot(dlg, path)


def demo_note_shot(w, photo: Path, model: Path, path: Path) -> bool:
    """The demo model on a photo it was not made for: the note above the views, offering the zoo."""
    c = w.controller
    if c.loaded is None or c.loaded.sources != [model]:
        w.open_model(model)
        wait_for_signal(c.modelChanged)
    w.tabs.setCurrentIndex(0)
    w.seg.set_opacity(0.6)
    c.open_image(photo)
    wait_for_signal(c.outcomeReady)
    _settle(c)
    return w.save_screenshot(path)


if __name__ == "__main__":
    sys.exit(main())
