"""The paper's Table 1 in miniature: does the pyramid help where context decides the class?

Trains tiny PSPNet variants with the same budget on the synthetic context scenes
(``core.data.synthetic``) and evaluates them on held-out scenes:

* Baseline -- no pyramid at all (the dilated FCN, ``use_ppm=False``)
* B1 AVE -- global average pooling only (``bins=(1,)``, no reduction)
* B1236 MAX DR -- the pyramid with max pooling (and the 1x1 dimension reduction)
* B1236 AVE -- the pyramid without the dimension reduction
* B1236 AVE DR -- the paper's PSPNet (the default config)

These are five of the paper's seven Table 1 rows, in its order (37.23, 40.07, 40.87, 41.07 and
41.68 mIoU on ADE20K); each of the last three is one change away from PSPNet. ``--variants``
also offers the other two rows, B1 MAX and B1236 MAX (both without the reduction).

Prints a Markdown table of mIoU, the mean IoU over the context-dependent classes and the
per-class IoU (percent), then checks the paper's comparisons (with how many training seeds
agree) and that the full pyramid beats the baseline on the context classes by at least
``--min-gain`` IoU points. ``--json PATH`` (``-`` for stdout) writes everything as JSON. Run on
demand, not in CI:

    python tests/benchmarks/context_ablation.py               # one seed, ~15 min on 2 free CPU cores
    python tests/benchmarks/context_ablation.py --quick       # a smoke run, ~2 min
    python tests/benchmarks/context_ablation.py --seeds 0 1 2 --json results.json

Scale matters. A dilated ResNet-18 at output stride 8 has a theoretical receptive field of
about +-190 pixels, and what it effectively uses is far less. On 128x128 scenes every pixel sees
the whole image and, given 600 steps, the baseline learns the context as well as the pyramid
does; on 192x192 scenes the baseline still finds most vehicles (88-91 IoU) and the pyramid gains
about 4 context IoU points. The defaults therefore use 256x256 scenes, where the deciding ground
lies beyond what the baseline uses (as on the paper's 473-pixel crops), and a backbone with
mmseg's dilation habit (first block of a dilated stage at half the dilation, BasicBlock's
second conv undilated; ``--backbone semseg`` for the full dilation). Both cost the same for
every variant.

As in the paper, every variant starts from the same pre-trained backbone: a dilated FCN trained
once (``--pretrain`` steps) on the training scenes with each look-alike pair merged into one
class, so that it knows what things look like but not the context that tells them apart. From
scratch (``--pretrain 0``) the tiny runs are unstable: one run in five collapsed by 15 mIoU.

Every (variant, seed) run is one single-threaded process (``--jobs``, default 2): on a small
shared CPU, torch intra-op threads that wait for each other are many times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core import ConfusionMatrix, ModelConfig, PSPNet, Predictor, TrainConfig, train
from core.data.synthetic import (BOAT, BUILDING, BUOY, CAR, CONE, CONTEXT_CLASSES, SKYSCRAPER, SYNTHETIC_CLASSES,
                                 generate_scene, scene_seed)
from core.generators import run_to_end

# name -> ModelConfig overrides: the paper's Table 1 rows. The default five are the issue's
# (ResNet50-Baseline, +B1+AVE, +B1236+MAX+DR, +B1236+AVE, +B1236+AVE+DR); the other two can be
# asked for with --variants.
VARIANTS: dict[str, dict[str, Any]] = {
    "Baseline (no pyramid)": {"use_ppm": False},
    "B1 AVE": {"bins": (1,), "reduction": False},
    "B1236 MAX DR": {"pooling": "max"},
    "B1236 AVE": {"reduction": False},
    "B1236 AVE DR (PSPNet)": {},
    "B1236 MAX": {"pooling": "max", "reduction": False},
    "B1 MAX": {"bins": (1,), "pooling": "max", "reduction": False},
}
DEFAULT_VARIANTS = list(VARIANTS)[:5]
PAPER_MIOU = {  # ResNet50 on ADE20K val, Table 1 of Zhao et al. 2017 (single scale)
    "Baseline (no pyramid)": 37.23, "B1 AVE": 40.07, "B1236 MAX": 40.18, "B1236 AVE": 41.07,
    "B1236 AVE DR (PSPNet)": 41.68, "B1 MAX": 39.94, "B1236 MAX DR": 40.87,
}


# the backbone's "ImageNet": each look-alike pair as one class, so that pre-training teaches what
# things look like and nothing of the context that tells the two apart
APPEARANCE_ONLY = {CAR: BOAT, SKYSCRAPER: BUILDING, CONE: BUOY}


class Scenes:
    """An in-memory data set of synthetic scenes: the same scenes ``write_demo_project`` writes
    (with ``appearance_only``, the look-alike pairs merged)."""

    def __init__(self, seed: int, indices: range, size: tuple[int, int], appearance_only: bool = False):
        self.items = [generate_scene(scene_seed(seed, i), size) for i in indices]
        if appearance_only:
            lut = np.arange(256, dtype=np.uint8)
            for a, b in APPEARANCE_ONLY.items():
                lut[a] = b
            self.items = [(image, lut[mask]) for image, mask in self.items]
        self.classes = SYNTHETIC_CLASSES

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.items[i]


@dataclass
class Run:
    variant: str
    seed: int
    per_class_iou: list[float | None]
    miou: float
    pixel_acc: float
    train_s: float
    final_loss: float

    @property
    def context_miou(self) -> float:
        """Mean IoU over the context classes (a class absent from prediction and labels counts 0)."""
        return float(np.mean([self.per_class_iou[c] or 0.0 for c in CONTEXT_CLASSES]))


@dataclass
class Row:
    variant: str
    runs: list[Run] = field(default_factory=list)

    def mean(self, attr: str) -> float:
        return float(np.mean([getattr(r, attr) for r in self.runs]))

    def class_iou(self, c: int) -> float | None:
        vals = [r.per_class_iou[c] for r in self.runs if r.per_class_iou[c] is not None]
        return float(np.mean(vals)) if vals else None

    @property
    def context_miou(self) -> float:
        return float(np.mean([r.context_miou for r in self.runs]))

    @property
    def miou_std(self) -> float:
        return float(np.std([r.miou for r in self.runs]))


BACKBONES = {"mmseg": {"dilation": "halved_first", "basic_dilate_conv2": False},
             "semseg": {"dilation": "all", "basic_dilate_conv2": True}}


def model_config(args: argparse.Namespace, overrides: dict[str, Any]) -> ModelConfig:
    return ModelConfig(depth=18, base_width=args.width, stem="deep", num_classes=len(SYNTHETIC_CLASSES),
                       head_channels=64, aux_channels=32, **BACKBONES[args.backbone], **overrides)


_DATA: dict[tuple, tuple[Scenes, Scenes]] = {}


def data(args: argparse.Namespace) -> tuple[Scenes, Scenes]:
    """The training and held-out scenes (made once per process)."""
    key = (args.data_seed, args.train, args.val, args.size)
    if key not in _DATA:
        size = (args.size, args.size)
        _DATA[key] = (Scenes(args.data_seed, range(args.train), size),
                      Scenes(args.data_seed, range(args.train, args.train + args.val), size))
    return _DATA[key]


PRETRAIN_SEED = 1000


def pretrain_backbone(args: argparse.Namespace, path: str) -> float:
    """Train the backbone once, as a dilated FCN on the appearance-only labels (the paper starts
    every variant from the same ImageNet ResNet); save its state to ``path``; return the seconds."""
    t0 = time.perf_counter()
    scenes = Scenes(args.data_seed, range(args.train), (args.size, args.size), appearance_only=True)
    torch.manual_seed(PRETRAIN_SEED)
    model = PSPNet(model_config(args, {"use_ppm": False}))
    cfg = TrainConfig(steps=args.pretrain, batch=args.batch, crop=args.size, lr=args.lr, scale=(0.75, 1.25),
                      rotate=0.0, blur=0.0, flip=True, seed=PRETRAIN_SEED, device=args.device)
    result = run_to_end(train(model, scenes, None, cfg))
    torch.save({k: v.cpu() for k, v in result.model.backbone.state_dict().items()}, path)
    return time.perf_counter() - t0


def job(name: str, seed: int, args: argparse.Namespace) -> Run:
    torch.set_num_threads(args.threads)
    train_set, val_set = data(args)
    return run_one(name, VARIANTS[name], seed, train_set, val_set, args)


def run_one(name: str, overrides: dict[str, Any], seed: int, train_set: Scenes, val_set: Scenes,
            args: argparse.Namespace) -> Run:
    torch.manual_seed(seed)
    model = PSPNet(model_config(args, overrides))
    if args.backbone_state:
        model.backbone.load_state_dict(torch.load(args.backbone_state, weights_only=True))
    cfg = TrainConfig(steps=args.steps, batch=args.batch, crop=args.size, lr=args.lr, scale=(0.75, 1.25), rotate=0.0,
                      blur=0.0, flip=True, seed=seed, device=args.device)
    t0 = time.perf_counter()
    losses: list[float] = []

    def on_record(rec: Any) -> None:
        losses.append(rec.loss)
        if args.verbose and rec.step % 100 == 0:
            print(f"  {name} seed {seed}: step {rec.step}/{rec.steps} loss {rec.loss:.3f}", file=sys.stderr)

    result = run_to_end(train(model, train_set, None, cfg), on_record)
    loss = float(np.mean(losses[-20:])) if losses else float("nan")
    train_s = time.perf_counter() - t0
    predictor = Predictor(result.model)
    cm = ConfusionMatrix(len(SYNTHETIC_CLASSES))
    for image, mask in val_set:
        cm.update(predictor.predict(image).labels, mask)
    m = cm.compute()
    return Run(name, seed, m.per_class_iou, m.miou, m.pixel_acc, train_s, loss)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def markdown(rows: list[Row], args: argparse.Namespace) -> str:
    names = SYNTHETIC_CLASSES.names
    context = set(CONTEXT_CLASSES)
    head = ["variant", "mIoU", "context mIoU", "pixel acc"] + [f"{n}{'*' if i in context else ''}"
                                                             for i, n in enumerate(names)] + ["train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 1 + "---:|" * (len(head) - 1)]
    for row in rows:
        miou = pct(row.mean("miou")) + (f" ± {100 * row.miou_std:.1f}" if len(row.runs) > 1 else "")
        cells = [row.variant, miou, pct(row.context_miou), pct(row.mean("pixel_acc"))]
        cells += [pct(row.class_iou(c)) for c in range(len(names))]
        cells.append(f"{row.mean('train_s'):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"IoU in percent on {args.val} held-out {args.size}x{args.size} scenes; mean over training "
                 f"seed(s) {', '.join(map(str, args.seeds))}; * = context classes (identity decided by the "
                 f"surroundings); {args.steps} steps x batch {args.batch}, ResNet-18 (base width {args.width}, "
                 f"{args.backbone} dilation), output stride 8.")
    return "\n".join(lines)


def checks(rows: list[Row], min_gain: float) -> list[tuple[str, bool]]:
    """The paper's controlled comparisons (one change each), then the context gain."""
    by = {r.variant: r for r in rows}
    miou = {name: r.mean("miou") for name, r in by.items()}
    base, b1, mx, avg, full = DEFAULT_VARIANTS  # mx: B1236 MAX DR, one change from the full PSPNet
    out = []

    def compare(worse: str, better: str, why: str) -> None:
        if worse in miou and better in miou:
            wins = sum(b.miou > w.miou for b, w in zip(by[better].runs, by[worse].runs))
            out.append((f"{why}: {better} {pct(miou[better])} > {worse} {pct(miou[worse])} mIoU "
                        f"(on {wins} of {len(by[better].runs)} seeds)", miou[better] > miou[worse]))

    compare(base, b1, "global context helps")
    compare(b1, avg, "four levels beat global pooling alone")
    compare(mx, full, "average pooling beats max pooling")
    compare(avg, full, "dimension reduction helps")
    compare(base, full, "the pyramid beats the dilated FCN")
    if base in by and full in by:
        gain = 100 * (by[full].context_miou - by[base].context_miou)
        per_seed = [100 * (f.context_miou - b.context_miou) for f, b in zip(by[full].runs, by[base].runs)]
        out.append((f"PSPNet beats the baseline on the context classes by {gain:+.1f} IoU points "
                    f"(per seed {', '.join(f'{g:+.1f}' for g in per_seed)}; needs >= {min_gain:g})", gain >= min_gain))
    return out


def table1_order(rows: list[Row]) -> str:
    """Our variants sorted by mIoU next to the paper's order (which is the order of VARIANTS)."""
    ours = [r.variant for r in sorted(rows, key=lambda r: r.mean("miou"))]
    paper = sorted(ours, key=PAPER_MIOU.__getitem__)
    same = "the same as" if ours == paper else "differs from"
    return f"order by mIoU, worst to best: {' < '.join(ours)} ({same} the paper's Table 1)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--train", type=int, default=96, help="training scenes")
    p.add_argument("--val", type=int, default=128, help="held-out scenes")
    p.add_argument("--size", type=int, default=256, help="scene size (square)")
    p.add_argument("--backbone", choices=list(BACKBONES), default="mmseg", help="dilation habit (see above)")
    p.add_argument("--width", type=int, default=8, help="ResNet-18 base width")
    p.add_argument("--pretrain", type=int, default=400, metavar="STEPS",
                   help="pre-train the backbone once on appearance-only labels, then start every variant from it "
                        "(0: every variant from scratch)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (results are averaged)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS, metavar="NAME")
    p.add_argument("--quick", action="store_true", help="a smoke run: 150 steps on 128x128 scenes, 32 train / 16 val")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs in parallel (processes)")
    p.add_argument("--min-gain", type=float, default=5.0, help="context IoU points PSPNet must gain")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON ('-' for stdout)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a check fails")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.train, args.val, args.size = 150, 32, 16, 128

    t0 = time.perf_counter()
    args.backbone_state = None
    tmp = tempfile.TemporaryDirectory(prefix="context-ablation-")
    if args.pretrain:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        args.backbone_state = os.path.join(tmp.name, "backbone.pt")
        secs = pretrain_backbone(args, args.backbone_state)
        print(f"backbone pre-trained on appearance-only labels: {args.pretrain} steps, {secs:.0f} s",
              file=sys.stderr, flush=True)
    rows = {v: Row(v) for v in args.variants}
    tasks = [(v, seed) for seed in args.seeds for v in args.variants]

    def done(run: Run) -> None:
        rows[run.variant].runs.append(run)
        print(f"{run.variant:24s} seed {run.seed}: mIoU {pct(run.miou)}, loss {run.final_loss:.3f}, "
              f"{run.train_s:.0f} s", file=sys.stderr, flush=True)

    if args.jobs > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(job, v, seed, args) for v, seed in tasks]
            for f in futures:
                done(f.result())
    else:
        for v, seed in tasks:
            done(job(v, seed, args))
    rows = [rows[v] for v in args.variants]

    table = markdown(rows, args)
    results = checks(rows, args.min_gain)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(table, file=out)
    print("", file=out)
    for text, ok in results:
        print(f"- [{'x' if ok else ' '}] {text}", file=out)
    print(f"\n{table1_order(rows)}", file=out)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s", file=out)

    if args.json:
        data = {
            "config": {k: v for k, v in vars(args).items() if k not in ("json",)},
            "classes": list(SYNTHETIC_CLASSES.names),
            "context_classes": [SYNTHETIC_CLASSES.names[c] for c in CONTEXT_CLASSES],
            "variants": [{
                "name": r.variant,
                "model_config": model_config(args, VARIANTS[r.variant]).to_dict(),
                "paper_miou_ade20k": PAPER_MIOU.get(r.variant),
                "miou": r.mean("miou"), "miou_std": r.miou_std, "context_miou": r.context_miou,
                "pixel_acc": r.mean("pixel_acc"),
                "per_class_iou": {n: r.class_iou(c) for c, n in enumerate(SYNTHETIC_CLASSES.names)},
                "runs": [{"seed": run.seed, "miou": run.miou, "train_s": run.train_s, "final_loss": run.final_loss,
                          "per_class_iou": run.per_class_iou} for run in r.runs],
            } for r in rows],
            "checks": [{"check": t, "ok": ok} for t, ok in results],
            "order": table1_order(rows),
        }
        text = json.dumps(data, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    return 1 if args.strict and not all(ok for _, ok in results) else 0


if __name__ == "__main__":
    sys.exit(main())
