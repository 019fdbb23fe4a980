"""Brush latency to the screen on a 4000x3000 image, in the real window (run on demand):
``python tests/benchmarks/edit_latency.py`` (offscreen) or under ``xvfb-run`` (set
``QT_QPA_PLATFORM=xcb``).

Each sample is one mouse-move event of a brush drag, sent to the canvas as Qt delivers it:
event filter -> brush tool -> ``LabelMask.paint`` -> change event -> Qt signal -> the mask
layer asks for a repaint of the changed box -> the event loop paints that part of the viewport
(photo, prediction overlay, mask layer, brush outline) and flushes it. Target: <= 8 ms (p90).

Printed per zoom level (whole image fitted; 1:1; 4x): p50 / p90 / max of the whole path,
the share spent in core (paint + events), the repainted area, and a full viewport repaint
for comparison. Also the end of a stroke (the undo step + the journal's fsync).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def pct(a: list[float]) -> str:
    x = np.asarray(a) * 1e3
    return f"p50 {np.percentile(x, 50):6.2f} ms  p90 {np.percentile(x, 90):6.2f} ms  max {x.max():6.2f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--radius", type=float, default=15)
    ap.add_argument("--events", type=int, default=300, help="mouse moves per zoom level")
    ap.add_argument("--step", type=float, default=6.0, help="mouse travel per event, screen pixels")
    args = ap.parse_args()

    from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["edit-latency"])
    import core
    from app import colormaps
    from app.main_window import MainWindow

    h, w = args.height, args.width
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (h // 50, w // 50, 3), dtype=np.uint8)
    import cv2

    photo = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    labels = np.ascontiguousarray(rng.integers(0, 10, (h // 100, w // 100), dtype=np.uint8).repeat(100, 0)
                                  .repeat(100, 1)[:h, :w])
    classes = core.ClassTable.default(10)

    win = MainWindow(restore=False)
    win.resize(1600, 1000)
    win.show()
    seg = win.seg
    seg.set_classes(classes)
    seg.set_image(photo)
    seg.canvas.set_overlay(labels, colormaps.class_lut(classes))
    seg.set_opacity(0.4)
    with tempfile.TemporaryDirectory() as tmp:
        mask = core.LabelMask.empty((h, w), len(classes))
        journal = core.StrokeJournal(Path(tmp) / ".bench.journal")
        journal.attach(mask)  # what Project.load_mask does: one fsynced record per stroke

        class Relay(QObject):  # the Editor's regionChanged hop
            region = Signal(object)

        relay = Relay()
        relay.region.connect(seg.update_mask_region)
        mask.on_change.connect(relay.region.emit)
        seg.set_mask(mask.data)
        win.canvas_tools.set_mask(mask)
        win.tool_settings.set_num_classes(len(classes))
        win.tool_settings.radius = args.radius
        win.canvas_tools.set_tool("brush")
        app.processEvents()

        vp = seg.canvas.viewport()
        painted: list[int] = []

        class PaintSpy(QObject):
            def eventFilter(self, obj, ev):  # noqa: N802
                if ev.type() == QEvent.Type.Paint:
                    r = ev.region().boundingRect()
                    painted.append(r.width() * r.height())
                return False

        spy = PaintSpy()
        vp.installEventFilter(spy)
        core_times: list[float] = []
        mask.on_change.connect(lambda r: core_times.append(time.perf_counter()))

        def send(kind: str, pos: QPointF) -> None:
            t = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
                 "release": QEvent.Type.MouseButtonRelease}[kind]
            left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
            ev = QMouseEvent(t, pos, QPointF(vp.mapToGlobal(pos.toPoint())), none if kind == "move" else left,
                             none if kind == "release" else left, Qt.KeyboardModifier.NoModifier)
            QApplication.sendEvent(vp, ev)

        print(f"brush r={args.radius:g} on a {w}x{h} mask, viewport {vp.width()}x{vp.height()}, "
              f"platform {QApplication.platformName()}, {args.events} moves of {args.step:g} screen px per level")
        for label, zoom in (("fit", None), ("1:1", 1.0), ("4x", 4.0)):
            seg.canvas.fit()
            app.processEvents()
            if zoom is not None:
                (x0, x1), _ = seg.canvas.vb.viewRange()
                seg.canvas.zoom(zoom * (x1 - x0) / vp.width())
            app.processEvents()
            total, core_part, ends = [], [], []
            painted.clear()
            centre = QPointF(vp.width() / 2, vp.height() / 2)
            pos = QPointF(centre)
            send("press", pos)
            app.processEvents()
            for i in range(args.events):
                if i and i % 100 == 0:  # a new stroke every 100 moves
                    t0 = time.perf_counter()
                    send("release", pos)
                    ends.append(time.perf_counter() - t0)
                    send("press", pos)
                    app.processEvents()
                angle = rng.uniform(0, 2 * np.pi)
                nxt = pos + QPointF(args.step * np.cos(angle), args.step * np.sin(angle))
                if abs(nxt.x() - centre.x()) > vp.width() / 3 or abs(nxt.y() - centre.y()) > vp.height() / 3:
                    nxt = QPointF(centre)
                pos = nxt
                core_times.clear()
                t0 = time.perf_counter()
                send("move", pos)
                t_core = core_times[-1] if core_times else time.perf_counter()
                app.processEvents()  # the repaint of the changed box, flushed
                t1 = time.perf_counter()
                total.append(t1 - t0)
                core_part.append(t_core - t0)
            t0 = time.perf_counter()
            send("release", pos)
            ends.append(time.perf_counter() - t0)
            app.processEvents()
            full = []
            for _ in range(20):
                t0 = time.perf_counter()
                vp.repaint()
                full.append(time.perf_counter() - t0)
            area = np.median(painted) if painted else 0
            print(f"  {label:4s} to the screen {pct(total)}")
            print(f"       core share   {pct(core_part)}; repainted {len(painted)} times, median "
                  f"{area:.0f} px ({100 * area / (vp.width() * vp.height()):.2f} % of the viewport)")
            print(f"       full viewport repaint {pct(full)}; end of stroke (undo step + journal fsync) {pct(ends)}")
        vp.removeEventFilter(spy)
        win.editor.autosave.stop()
        win.close()
        win.controller.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
