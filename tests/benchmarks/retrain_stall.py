"""The GUI thread during a retrain with autosave (run on demand): ``python tests/benchmarks/retrain_stall.py``.

In the window (offscreen), on a copy of the demo project with the demo model: a stroke is
painted with the mouse every ``--stroke-ms`` (each one journalled, and autosaved ``--autosave-ms``
after it), while Retrain runs from the press of the button to the end of the before/after
comparison: the save of every unsaved mask, the copy of the model, the fine-tuning, the swap,
the new prediction and the comparison. A 5 ms QTimer heartbeat on the GUI thread measures the
longest stall (goal: at most 50 ms), with the median and 99th percentile of the gaps, and the
garbage collector's longest pause (it holds the GIL). The stalls measured around the strokes
themselves are listed apart, since painting is GUI work by design.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from core.threads import prefer_passive_waiting  # noqa: E402

prefer_passive_waiting()  # as main.py does for the app, before torch loads
import core  # noqa: E402
from gui_latency import GCPauses, Heartbeat  # noqa: E402
from retrain_latency import demo_model, demo_project  # noqa: E402


class WorkingHeartbeat(Heartbeat):
    """The heartbeat, also recording the GUI thread's own CPU time in each gap: a long gap with
    little CPU time is the thread waiting (for the GIL, or for a core on a busy machine), not work."""

    def __init__(self, interval_ms: int = 5):
        super().__init__(interval_ms)
        self.cpu: list[float] = []
        self._cpu = time.thread_time()

    def start(self) -> None:
        self.cpu.clear()
        self._cpu = time.thread_time()
        super().start()

    def _tick(self) -> None:
        now = time.thread_time()
        self.cpu.append(now - self._cpu)
        self._cpu = now
        super()._tick()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="retrain steps (default: the panel's)")
    ap.add_argument("--stroke-ms", type=int, default=400, help="a mouse stroke every N ms during the retrain")
    ap.add_argument("--autosave-ms", type=int, default=200, help="autosave delay after an edit")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--baseline", type=float, default=10.0,
                    help="seconds of heartbeat with nothing running first: the machine's own noise floor")
    args = ap.parse_args()

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["retrain-stall"])  # noqa: F841
    import torch

    torch.set_num_threads(core.recommended_threads(interactive=True))  # as the app sets it (core/cli.py)
    from app.controllers.retrainer import RetrainOptions
    from app.main_window import MainWindow
    from app.screenshots import drag

    ckpt = demo_model()
    tmp = Path(tempfile.mkdtemp(prefix="retrain-stall-"))
    root = tmp / "demo-project"
    shutil.copytree(demo_project(), root)
    w = MainWindow(restore=False)
    w.resize(1600, 1000)
    w.show()
    c, ed, rt = w.controller, w.editor, w.retrainer
    c.set_device(args.device)
    ed.autosave.setInterval(args.autosave_ms)

    def spin_until(cond, timeout=900.0) -> None:
        end = time.perf_counter() + timeout
        while not cond():
            if time.perf_counter() > end:
                raise TimeoutError("no answer")
            loop = QEventLoop()
            QTimer.singleShot(5, loop.quit)
            loop.exec()

    w.open_model(ckpt)
    spin_until(lambda: c.loaded is not None)
    c.open_folder(root)
    spin_until(lambda: c.outcome is not None and ed.mask is not None and not c.busy)
    w.act.tools["brush"].trigger()
    w.tool_settings.radius = 4
    core.run_to_end(core.warm_up_training())  # as app.launch.run_gui does, in the background, at start
    gc.collect()
    gc.freeze()  # as app.launch.run_gui does
    if os.environ.get("BENCH_NO_GC"):
        gc.disable()
    saves: list[float] = []
    ed.saved.connect(lambda _: saves.append(time.perf_counter()))
    strokes: list[tuple[float, float]] = []
    k = [0]

    def stroke() -> None:
        t = time.perf_counter()
        y = 8 + (k[0] * 9) % 110
        drag(w, [(6, y), (60, y + 3), (120, y)])
        k[0] += 1
        strokes.append((t, time.perf_counter()))

    painter = QTimer()
    painter.setInterval(args.stroke_ms)
    painter.timeout.connect(stroke)
    done: dict[str, float] = {}
    phases: list[tuple[float, str]] = []
    rt.status.connect(lambda text: phases.append((time.perf_counter(), text)))
    rt.progress.connect(lambda rec: rec.step == 1 and phases.append((time.perf_counter(), "first step")))
    rt.finished.connect(lambda _: phases.append((time.perf_counter(), "new model in use")))
    rt.comparisonReady.connect(lambda _: phases.append((time.perf_counter(), "comparison done")))
    rt.finished.connect(lambda _: done.setdefault("trained", time.perf_counter()))
    rt.comparisonReady.connect(lambda _: done.setdefault("compared", time.perf_counter()))
    rt.failed.connect(lambda text: done.setdefault("failed", time.perf_counter()) and print("failed:", text))
    if args.steps:
        w.retrain_panel.set_options(RetrainOptions(steps=args.steps))
    opts = w.retrain_panel.options()
    beat, gcp = WorkingHeartbeat(), GCPauses()
    if args.baseline:
        beat.start()
        spin_until(lambda: time.perf_counter() - beat.last > 1e9 or len(beat.gaps) * 0.005 >= args.baseline)
        idle = list(beat.gaps)
        beat.stop()
        print(f"  idle window first ({len(idle)} ticks, nothing running): longest gap {1000 * max(idle):.1f} ms, "
              f"p99 {1000 * sorted(idle)[int(0.99 * (len(idle) - 1))]:.1f} ms (the machine's load)")
    stroke()  # an unsaved edit: the retrain saves it first
    beat.start()
    painter.start()
    t0 = time.perf_counter()
    w.act.retrain.trigger()
    spin_until(lambda: "compared" in done or "failed" in done)
    painter.stop()
    beat.stop()
    t_end = time.perf_counter()
    ticks, gaps = [], []
    last = t0
    for g in beat.gaps:  # rebuild tick times to tell stalls around strokes from the others
        last += g
        ticks.append(last)
        gaps.append(g)
    near = [g for t, g in zip(ticks, gaps) if any(s - 0.002 <= t - g <= e + 0.002 or s <= t <= e + 0.002
                                                  for s, e in strokes)]
    other = [g for t, g in zip(ticks, gaps) if g not in near]
    print(f"retrain with autosave on a copy of the demo project ({len(core.Project.open(root).names())} images), "
          f"device {c.device}: {opts.steps} steps, batch {opts.batch}, frozen backbone {opts.freeze_backbone}, "
          f"cached features {opts.cache_features}; a stroke every {args.stroke_ms} ms, autosave after "
          f"{args.autosave_ms} ms")
    print(f"  Retrain -> trained and in use {done.get('trained', float('nan')) - t0:.1f} s, "
          f"-> comparison done {t_end - t0:.1f} s; {len(strokes)} strokes, {len(saves)} autosaves meanwhile")
    print(f"  GUI-thread gaps (5 ms heartbeat, {len(gaps)} ticks): median {1000 * statistics.median(gaps):.1f} ms, "
          f"p99 {1000 * sorted(gaps)[int(0.99 * (len(gaps) - 1))]:.1f} ms, "
          f"longest {1000 * max(gaps):.1f} ms (goal <= 50)")
    print(f"  longest away from the strokes {1000 * max(other, default=0):.1f} ms; around the strokes "
          f"{1000 * max(near, default=0):.1f} ms; longest GC pause {1000 * gcp.longest:.1f} ms")
    print("  phases: " + "; ".join(f"{t - t0:.1f} s {text}" for t, text in phases))
    worst = sorted(zip(gaps, ticks, beat.cpu), reverse=True)[:5]
    print("  the 5 longest: " + ", ".join(f"{1000 * g:.0f} ms at {t - t0:.1f} s (GUI thread busy {1000 * u:.0f} ms)"
                                          for g, t, u in worst))
    print(f"  the GUI thread's own work in one gap: at most {1000 * max(beat.cpu):.1f} ms, p99 "
          f"{1000 * sorted(beat.cpu)[int(0.99 * (len(beat.cpu) - 1))]:.1f} ms (the rest of a long gap is waiting)")
    gc.unfreeze()
    ed.autosave.stop()
    w.ask = lambda *a: None
    saving = ed.save_all()
    if saving is not None:
        spin_until(lambda: saving.is_finished)
    w.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
