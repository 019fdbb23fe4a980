"""The crash journal off the editing thread: what a stroke costs the thread that paints, and how
soon it is on disk. Run on demand: ``python tests/benchmarks/journal_latency.py [--dir DIR]``.

For each stroke on a 4000x3000 mask (20 brush segments, radius 15), alternately:

- ``writer thread``: end_stroke with the journal attached (what Project.load_mask does now): the
  caller only queues the record; then the time until the writer thread has it fsynced;
- ``on the caller``: end_stroke, then the same record appended and fsynced on the calling thread
  (what the journal did before: the GUI thread waited for the disk).

Goal (issue 13): the GUI thread never waits for the disk; a stroke on disk within about one fsync.
Run it on the disk the projects live on (``--dir``); timings vary with the disk and the load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from core.journal import StrokeJournal
from core.labels import LabelMask


def _pct(samples: list[float]) -> str:
    a = np.asarray(samples) * 1e3
    return f"p50 {np.percentile(a, 50):.3f} ms  p90 {np.percentile(a, 90):.3f} ms  max {a.max():.3f} ms  (n={a.size})"


def _stroke(mask: LabelMask, rng: np.random.Generator, h: int, w: int) -> None:
    mask.begin_stroke()
    p = rng.uniform((0, 0), (h, w))
    for _ in range(20):
        q = p + rng.normal(0, 6, 2)
        mask.paint([tuple(p), tuple(q)], int(rng.integers(0, 150)), radius=15)
        p = q
    mask.end_stroke()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--strokes", type=int, default=200)
    ap.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure (default: a temp folder)")
    args = ap.parse_args()
    h, w = args.height, args.width
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        threaded = LabelMask.empty((h, w), 150)
        journal = StrokeJournal(Path(tmp) / ".threaded.journal")
        journal.attach(threaded)
        inline = LabelMask.empty((h, w), 150)
        old = StrokeJournal(Path(tmp) / ".inline.journal")
        inline.on_commit.connect(lambda e: old.append(e.revision, e.shape, tuple(e.region), None, e.label, e.kind,
                                                      packed=e.after_packed()))  # the journal as it was
        caller_new, durable_new, caller_old = [], [], []
        for _i in range(args.strokes):
            t0 = time.perf_counter()
            _stroke(threaded, rng, h, w)
            t1 = time.perf_counter()
            journal.flush()
            t2 = time.perf_counter()
            caller_new.append(t1 - t0)
            durable_new.append(t2 - t1)

            t0 = time.perf_counter()
            _stroke(inline, rng, h, w)
            caller_old.append(time.perf_counter() - t0)
        journal.close()
    print(f"stroke on the painting thread, journal on its writer thread: {_pct(caller_new)}")
    print(f"  then on disk (fsynced) after:                               {_pct(durable_new)}")
    print(f"stroke + journal append and fsync on the painting thread:     {_pct(caller_old)}")
    ratio = np.median(caller_old) / max(np.median(caller_new), 1e-9)
    print(f"median painting-thread cost, before / now: {ratio:.1f}x")


if __name__ == "__main__":
    main()
