"""A phone photo with a ResNet-50 PSPNet (150 classes) at the model's test protocol: memory and
the first overlay (issue 10). Run on demand, not in CI:

    python tests/benchmarks/photo_predict.py                 # 4000x3000, semseg's ADE20K protocol
    python tests/benchmarks/photo_predict.py --native        # also --base-size native (a ResNet-18: the
                                                             # maps and results, not the backbone, are the point)

Measures, on the CPU, with random weights in semseg's layout (timing and memory do not depend
on the values):

1. ``predict`` on the command line (a subprocess: read the JPEG, predict, write the mask):
   peak resident memory (target <= 2 GB) and wall time;
2. what one Prediction holds (``Prediction.memory_bytes()``; target <= 300 MB), with the
   inspector's internals and the level switch's parts (the photo-sized confidence and entropy
   are made when read, not kept);
3. the first overlay, core side: read the photo and predict until the preview after the
   unmirrored windows, against single 473x473 forwards of the same network timed in the same
   run, before and after (target: preview <= 2.5 forwards + 3 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import core  # noqa: E402


def make_photo(path: Path, h: int, w: int) -> None:
    import cv2

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-12, 13, img.shape, dtype=np.int16)
    img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 92])


def checkpoint(path: Path, depth: int, width: int, classes: int, protocol) -> None:
    import torch

    torch.manual_seed(0)
    model = core.build_model(core.ModelConfig(depth=depth, base_width=width, num_classes=classes)).eval()
    table = core.ClassTable.builtin("ade20k") if classes == 150 else core.ClassTable.default(classes)
    core.save_checkpoint(path, model, table, {"source": "benchmark: random weights"}, protocol=protocol)


# `python main.py predict ...` in a child that reports its own peak resident memory when done
CHILD = ("import resource, sys; sys.path.insert(0, sys.argv.pop(1)); import main; rc = main.main(sys.argv[1:]); "
         "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def cli_predict(ckpt: Path, photo: Path, out: Path, *extra: str) -> tuple[float, float, int]:
    """(wall seconds, peak resident memory of the predict process in MB, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), "predict", "--model", str(ckpt), str(photo),
                           "--out", str(out), "-q", *extra], capture_output=True, text=True, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    if proc.returncode:
        lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("PEAK_RSS_KB")]
        print(lines[-1] if lines else "(no message)")
    return wall, (peak[0] / 1024 if peak else float("nan")), proc.returncode


def forward_once(model, x) -> float:
    import torch

    t = time.perf_counter()
    with torch.inference_mode():
        stages = model.backbone(x)
        model.forward_heads(stages.layer3, stages.layer4, x.shape[-2:])
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4000x3000", help="WxH of the photo")
    ap.add_argument("--classes", type=int, default=150)
    ap.add_argument("--native", action="store_true", help="also predict at --base-size native (ResNet-18 width 16)")
    ap.add_argument("--skip-cli", action="store_true")
    args = ap.parse_args()

    import torch

    from core.inference import Preview, TestProtocol

    w, h = (int(v) for v in args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="pspnet-photo-"))
    photo = tmp / f"photo_{w}x{h}.jpg"
    make_photo(photo, h, w)
    protocol = TestProtocol.semseg("ade20k")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {w}x{h} photo, ResNet-50, "
          f"{args.classes} classes, {protocol.describe()}")

    ckpt = tmp / "r50.safetensors"
    checkpoint(ckpt, 50, 64, args.classes, protocol)
    if not args.skip_cli:
        wall, rss, rc = cli_predict(ckpt, photo, tmp / "out")
        print(f"1. predict (CLI, {w}x{h}): {wall:.1f} s, peak resident memory {rss:.0f} MB (target <= 2048), "
              f"exit {rc}   [python main.py predict --model R50 PHOTO --out DIR]")

    loaded = core.load_model(ckpt)
    pred = core.Predictors.on(loaded.model, "cpu", loaded.classes).predictor  # as the app runs it: the inference copy
    x = torch.randn(1, 3, 473, 473)
    forward_once(pred.module, x)  # warm-up
    before = [forward_once(pred.module, x) for _ in range(2)]

    t0 = time.perf_counter()
    image = core.read_image(photo)
    t_read = time.perf_counter() - t0
    t_preview = None
    gen = pred.predict_steps(image, preview=True, internals=True)
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        if isinstance(item, Preview) and t_preview is None:
            t_preview = time.perf_counter() - t0
            first = item.prediction
    t_total = time.perf_counter() - t0
    after = [forward_once(pred.module, x) for _ in range(2)]
    fwd = statistics.median(before + after)
    windows = pred.plan((h, w)).forwards
    print(f"3. first overlay (core): read {t_read:.2f} s, preview after {t_preview:.1f} s, all {windows} windows "
          f"{t_total:.1f} s; one 473x473 forward {fwd:.2f} s (median of {before + after}); preview = "
          f"{t_preview / fwd:.2f} forwards = {(t_preview - 3) / fwd:.2f} forwards + 3 s (target <= 2.5)")
    base = result.memory_bytes()
    _ = result.confidence, result.entropy  # made when read, not kept
    full = result.memory_bytes()
    print(f"2. one Prediction holds {base / 1e6:.0f} MB with internals and what a level switch needs "
          f"({(base - result.switch_source.nbytes) / 1e6:.0f} MB without the switch's input and head parts), "
          f"{full / 1e6:.0f} MB after reading the photo-sized confidence and entropy (target <= 300); "
          f"preview {first.memory_bytes() / 1e6:.0f} MB   [{result!r}]")

    if args.native:
        small = tmp / "r18.safetensors"
        checkpoint(small, 18, 16, args.classes, protocol)
        wall, rss, rc = cli_predict(small, photo, tmp / "out-native", "--base-size", "native", "--no-flip")
        print(f"native: predict --base-size native --no-flip (ResNet-18 width 16, {args.classes} classes, 473 windows): "
              f"{wall:.0f} s, peak resident memory {rss:.0f} MB, exit {rc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
