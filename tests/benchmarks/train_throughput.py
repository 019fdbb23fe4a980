"""Training throughput (images/s) of PSPNet-50 through core.train, data pipeline included.

    python tests/benchmarks/train_throughput.py                      # CPU part; CUDA part when a GPU is there
    python tests/benchmarks/train_throughput.py --only cpu --steps 3
    python tests/benchmarks/train_throughput.py --only cuda --steps 40 --batch 16 --workers 8

CPU: 473x473 crops, batch 2, fp32 (a few steps: it is slow). CUDA: 512x512 crops, bf16 autocast
and channels_last (target: >= 100 images/s on one H100). Images are synthetic scenes held in
memory and augmented with TrainAugment (scale, rotation, blur, flip, crop) as in real training;
the first steps are warm-up and are not counted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from core.classes import ClassTable
from core.config import ModelConfig
from core.data.synthetic import generate_scene, scene_seed
from core.model import PSPNet
from core.training import TrainConfig, train


class Scenes:
    def __init__(self, n: int, size: int):
        self.items = [generate_scene(scene_seed(0, i), (size, size)) for i in range(n)]
        # the scenes' ids (0..9) under an ADE20K-sized table: the model has 150 classes, as in real use
        self.classes = ClassTable.default(150)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def measure(device: str, crop: int, batch: int, steps: int, warmup: int, workers: int, amp: str,
            channels_last: bool, depth: int) -> dict:
    torch.manual_seed(0)
    model = PSPNet(ModelConfig(depth=depth, num_classes=150))
    data = Scenes(max(2 * batch, 8), int(crop * 1.25))
    cfg = TrainConfig(steps=steps, batch=batch, crop=crop, device=device, amp=amp, channels_last=channels_last,
                      workers=workers)
    rates, t0 = [], time.perf_counter()
    for rec in train(model, data, cfg=cfg):
        if rec.step > warmup:
            rates.append(rec.images_per_s)
        print(f"  step {rec.step}/{steps}: loss {rec.loss:.3f}, {rec.images_per_s:.2f} images/s", flush=True)
    total = time.perf_counter() - t0
    timed = steps - warmup
    # the harmonic mean of per-step rates = images / time over the timed steps
    rate = timed / sum(1 / r for r in rates) if rates else float("nan")
    return {"device": device, "crop": crop, "batch": batch, "amp": amp, "channels_last": channels_last,
            "steps": steps, "warmup": warmup, "images_per_s": rate,
            "median_step_s": statistics.median(batch / r for r in rates) if rates else float("nan"),
            "wall_s": total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["cpu", "cuda"], help="run one part only")
    p.add_argument("--steps", type=int, help="steps per part (default: 3 on the CPU, 40 on CUDA)")
    p.add_argument("--warmup", type=int, help="uncounted first steps (default: 1 on the CPU, 10 on CUDA)")
    p.add_argument("--batch", type=int, help="default: 2 on the CPU, 16 on CUDA")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers on CUDA (CPU: 0)")
    p.add_argument("--depth", type=int, default=50)
    args = p.parse_args()
    parts = []
    if args.only in (None, "cpu"):
        parts.append(dict(device="cpu", crop=473, batch=args.batch or 2, steps=args.steps or 3,
                          warmup=1 if args.warmup is None else args.warmup, workers=0, amp="off",
                          channels_last=False))
    if args.only == "cuda" or (args.only is None and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("CUDA is not available on this machine")
        parts.append(dict(device="cuda", crop=512, batch=args.batch or 16, steps=args.steps or 40,
                          warmup=10 if args.warmup is None else args.warmup, workers=args.workers, amp="bf16",
                          channels_last=True))
    for part in parts:
        name = torch.cuda.get_device_name() if part["device"] == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        print(f"PSPNet-{args.depth} training on {name}: {part}", flush=True)
        r = measure(depth=args.depth, **part)
        print(f"RESULT {r['device']}: {r['images_per_s']:.2f} images/s (crop {r['crop']}, batch {r['batch']}, "
              f"amp {r['amp']}, channels_last {r['channels_last']}, median step {r['median_step_s']:.3f} s, "
              f"{r['steps'] - r['warmup']} timed steps, wall {r['wall_s']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
