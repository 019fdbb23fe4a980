"""Switching a pyramid level off on a 512-pixel working image, ResNet-50, 150 classes, CPU
(issue 10: at most 0.3 s). Run on demand, not in CI:

    python tests/benchmarks/level_switch.py                 # a 512x512 photo, semseg's ADE20K protocol
    python tests/benchmarks/level_switch.py --size 683x512  # a 4:3 photo: two windows and their mirrors

The photo is predicted with internals by the app's predictor (the inference copy, which keeps
each working window's share of the head); ``LevelSwitch.prepare`` turns those into the
per-level parts of the head's first convolution once (timed apart: the app does it in the
background when the pyramid view is shown); then each switch is timed: the labels
of the photo with the level(s) off (``LevelSwitch.rerun``'s fast path; their maps are left
for first use). With ``--exact`` the exact switch is timed too and the two compared. Random
weights in semseg's layout: the time of the fast path does not depend on their values (the
exact one does: random weights put the mirrored windows at odds nearly everywhere).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import core  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="512x512", help="WxH of the photo")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--exact", action="store_true", help="also time the exact switch and compare")
    args = ap.parse_args()

    import cv2
    import torch

    w, h = (int(v) for v in args.size.lower().split("x"))
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    torch.manual_seed(0)
    model = core.build_model(core.ModelConfig(depth=50, num_classes=150)).eval()
    model.test_protocol = core.TestProtocol.semseg("ade20k")
    predictors = core.Predictors.on(model, "cpu")  # as the app runs it: the inference copy
    pred = predictors.predictor
    plan = pred.plan((h, w))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {w}x{h} photo, ResNet-50, 150 classes; "
          f"working {plan.working_size[1]}x{plan.working_size[0]}, {plan.forwards} windows")
    t = time.perf_counter()
    base = pred.predict(img, internals=True)
    print(f"prediction with internals: {time.perf_counter() - t:.1f} s")
    switch = core.level_switch(model, base, "cpu", module=predictors.module)
    t = time.perf_counter()
    switch.prepare()
    print(f"prepare (once; the head parts from what the prediction kept): {time.perf_counter() - t:.2f} s, "
          f"{switch.nbytes / 1e6:.0f} MB")
    times: dict[tuple[int, ...], list[float]] = {}
    for _ in range(args.repeats):
        for off in ((6,), (1,), (2,), (3,), (1, 2, 3), (1, 2, 3, 6)):
            t = time.perf_counter()
            out = switch.rerun(off)
            times.setdefault(off, []).append(time.perf_counter() - t)
    every = [v for vs in times.values() for v in vs]
    for off, vs in times.items():
        changed = (switch.rerun(off).labels != base.labels).mean()
        print(f"levels {off} off: median {1000 * statistics.median(vs):.0f} ms ({100 * changed:.1f} % of pixels change)")
    print(f"all switches: median {1000 * statistics.median(every):.0f} ms, max {1000 * max(every):.0f} ms "
          f"(target <= 300)")
    if args.exact:
        for off in ((6,), (1, 2, 3)):
            t = time.perf_counter()
            exact = switch.rerun(off, exact=True)
            took = time.perf_counter() - t
            fast = switch.rerun(off)
            print(f"exact switch {off}: {took:.1f} s; the fast one agrees on {100 * (exact.labels == fast.labels).mean():.1f} "
                  f"% of pixels")
    t = time.perf_counter()
    out.materialize()
    print(f"its probability maps on first use: {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
