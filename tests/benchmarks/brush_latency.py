"""Brush latency on a 4000x3000 mask: one brush segment (paint + change event), as the GUI
issues them on every mouse move. Run on demand: ``python tests/benchmarks/brush_latency.py``.

Target: <= 8 ms from mouse event to screen; the core share (this) should be well under 1 ms.
Also prints what a view would add to re-colour the changed region through a lookup table,
the end-of-stroke cost (building the undo step), undo/redo, and a whole-image fill.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from core.journal import StrokeJournal
from core.labels import LabelMask, Region


def _pct(samples: list[float]) -> str:
    a = np.asarray(samples) * 1e3
    return f"p50 {np.percentile(a, 50):.3f} ms  p90 {np.percentile(a, 90):.3f} ms  max {a.max():.3f} ms  (n={a.size})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--radius", type=float, default=15)
    ap.add_argument("--segments", type=int, default=2000)
    ap.add_argument("--step", type=float, default=6.0, help="mouse travel per event, pixels")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    mask = LabelMask.empty((args.height, args.width), 150)
    lut = rng.integers(0, 255, (256, 4), dtype=np.uint8)
    rgba = np.zeros((args.height, args.width, 4), np.uint8)  # what a view would hold

    regions: list[Region] = []
    mask.on_change.connect(regions.append)

    def recolour(r: Region) -> None:  # a view's share: colour only the changed region
        rgba[r.slices] = lut[mask.data[r.slices]]

    core_times: list[float] = []
    view_times: list[float] = []
    end_times: list[float] = []
    for shape in ("round", "square"):
        strokes, per_stroke = 0, 200
        pos = np.array([args.height / 2, args.width / 2])
        mask.begin_stroke()
        for i in range(args.segments):
            if i % per_stroke == per_stroke - 1:
                t0 = time.perf_counter()
                mask.end_stroke()
                end_times.append(time.perf_counter() - t0)
                mask.begin_stroke()
                strokes += 1
            angle = rng.uniform(0, 2 * np.pi)
            nxt = np.clip(pos + args.step * np.array([np.sin(angle), np.cos(angle)]), 0,
                          [args.height - 1, args.width - 1])
            label = int(rng.integers(0, 150))
            t0 = time.perf_counter()
            mask.paint([tuple(pos), tuple(nxt)], label, radius=args.radius, shape=shape)
            t1 = time.perf_counter()
            if regions:
                recolour(regions[-1])
            t2 = time.perf_counter()
            core_times.append(t1 - t0)
            view_times.append(t2 - t0)
            regions.clear()
            pos = nxt
        mask.end_stroke()
        print(f"{shape:6s} brush r={args.radius:g} segment of {args.step:g} px on {args.width}x{args.height}:")
        print(f"   core (paint + change event)   {_pct(core_times)}")
        print(f"   + view recolour of the region {_pct(view_times)}")
        print(f"   end_stroke (undo step of {per_stroke} segments) {_pct(end_times)}")
        core_times.clear(), view_times.clear(), end_times.clear()

    undo_times, redo_times = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        mask.undo()
        undo_times.append(time.perf_counter() - t0)
    for _ in range(10):
        t0 = time.perf_counter()
        mask.redo()
        redo_times.append(time.perf_counter() - t0)
    print(f"undo of a stroke {_pct(undo_times)}")
    print(f"redo of a stroke {_pct(redo_times)}")

    t0 = time.perf_counter()
    mask.fill(0, 0, 3, contiguous=True)
    t1 = time.perf_counter()
    mask.undo()
    t2 = time.perf_counter()
    print(f"flood fill of the background {1e3 * (t1 - t0):.1f} ms, its undo {1e3 * (t2 - t1):.1f} ms")
    t0 = time.perf_counter()
    mask.snapshot()
    print(f"snapshot for autosave {1e3 * (time.perf_counter() - t0):.1f} ms")

    with tempfile.TemporaryDirectory() as tmp:  # the crash journal: one fsynced record per stroke
        journal = StrokeJournal(Path(tmp) / ".m.journal")
        journal.attach(mask)
        times = []
        for _ in range(30):
            a = rng.uniform(100, [args.height - 100, args.width - 100])
            mask.begin_stroke()
            for _k in range(20):
                b = a + rng.normal(0, args.step, 2)
                mask.paint([tuple(a), tuple(b)], int(rng.integers(0, 150)), radius=args.radius)
                a = b
            t0 = time.perf_counter()
            mask.end_stroke()
            times.append(time.perf_counter() - t0)
        print(f"end_stroke + journal append with fsync (20-segment stroke) {_pct(times)}")
        journal.detach(mask)


if __name__ == "__main__":
    main()
