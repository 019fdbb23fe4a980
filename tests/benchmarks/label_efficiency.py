"""Does "what to correct next" save work? A simulated annotator on the synthetic context scenes.

A weak model (a backbone pre-trained once on appearance-only labels, then the whole network
trained briefly on a few labelled scenes) starts a project of unlabelled scenes. Each round the
annotator corrects a fixed budget of pixels: it takes regions in the order a strategy gives
(grid cells of the size **N** proposes, ``core.uncertainty.default_tile``), paints each with its
true labels through ``LabelMask.assign`` (the API the brush uses) and saves the masks into a real
project; then the model is fine-tuned with ``core.finetune_project`` (the app's Retrain, its
defaults) starting from the model of the round before, and scored on held-out scenes (mIoU).

Strategies, same annotator, budget, scenes and seeds:

* ``ranking`` -- the app's: ``core.assess`` (one pass; entropy + main/aux disagreement) and
  ``core.rank_regions`` (the queue N walks), with ``core.DEFAULT_RULE``;
* ``random`` -- grid cells in random order;
* ``scan`` -- image after image, cells in reading order (what a person without a ranking does);
* ``entropy`` / ``disagreement`` -- the app's ranking with only one of its two signals;
* ``bald`` -- MC-dropout BALD (``--bald-passes`` full forward passes with dropout on, mutual
  information per pixel, cells by mean score, ordered as the app's ranking orders its cells):
  the anchors' method, the expensive reference.

Prints, per strategy, mIoU against corrected pixels (mean +- std over ``--seeds``), the pixels
each needs to reach a fixed mIoU (the random strategy's final mean mIoU), the share of corrected
pixels the model had wrong, and the ranking's own cost per image; then checks the goals (the
ranking reaches random's final mIoU with at most half its pixels, and needs at most 1/0.9 of
BALD's pixels). ``--plot PNG`` draws the curves (matplotlib, or OpenCV without it), ``--json``
writes everything. Run on demand, not in CI:

    python tests/benchmarks/label_efficiency.py                  # ~30 min on 2 idle CPU cores
    python tests/benchmarks/label_efficiency.py --quick          # the smoke case (tests/core/test_label_efficiency.py)
    python tests/benchmarks/label_efficiency.py --rule mix=0.7 --strategies ranking random

``--rule`` changes the app's ranking for this run only (fields of ``core.RankingRule``), to
compare rules without editing core.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import core  # noqa: E402
from core import ConfusionMatrix, ModelConfig, PSPNet, TrainConfig, train  # noqa: E402
from core.data.synthetic import BOAT, BUILDING, BUOY, CAR, CONE, SKYSCRAPER, SYNTHETIC_CLASSES, generate_scene, \
    scene_seed  # noqa: E402
from core.generators import run_to_end  # noqa: E402
from core.uncertainty import default_tile, uncertain_regions  # noqa: E402

STRATEGIES = ("ranking", "random", "scan", "entropy", "disagreement", "bald")
LABELS = {"ranking": "the app's ranking (N)", "random": "random regions", "scan": "sequential scan",
          "entropy": "entropy only", "disagreement": "main/aux disagreement only",
          "bald": "MC-dropout BALD"}
COLORS = {"ranking": (31, 119, 180), "random": (127, 127, 127), "scan": (140, 86, 75), "entropy": (44, 160, 44),
          "disagreement": (255, 127, 14), "bald": (214, 39, 40)}
APPEARANCE_ONLY = {CAR: BOAT, SKYSCRAPER: BUILDING, CONE: BUOY}  # the backbone's "ImageNet" (as context_ablation)
POOL_SEED, VAL_SEED, PRETRAIN_SEED, WEAK_SEED = 5000, 7000, 8000, 9000


# ------------------------------------------------------------------------------------------ data and models
def scenes(seed: int, n: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [generate_scene(scene_seed(seed, i), (size, size)) for i in range(n)]


class Scenes:
    """An in-memory data set for core.train (optionally with the look-alike pairs merged)."""

    def __init__(self, items: list[tuple[np.ndarray, np.ndarray]], appearance_only: bool = False):
        if appearance_only:
            lut = np.arange(256, dtype=np.uint8)
            for a, b in APPEARANCE_ONLY.items():
                lut[a] = b
            items = [(im, lut[m]) for im, m in items]
        self.items, self.classes = items, SYNTHETIC_CLASSES

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.items[i]


def model_config(args: argparse.Namespace, **overrides: Any) -> ModelConfig:
    return ModelConfig(depth=18, base_width=args.width, stem="deep", num_classes=len(SYNTHETIC_CLASSES),
                       head_channels=64, aux_channels=32, dilation="halved_first", basic_dilate_conv2=False,
                       **overrides)


def weak_model(args: argparse.Namespace, path: str) -> dict[str, float]:
    """Pre-train the backbone on appearance-only labels, then train the whole network briefly on
    the ``--labelled`` scenes the project starts with: the starting model. Saves its state to ``path``."""
    t0 = time.perf_counter()
    size = args.size
    pre = Scenes(scenes(PRETRAIN_SEED, args.pretrain_scenes, size), appearance_only=True)
    torch.manual_seed(PRETRAIN_SEED)
    fcn = PSPNet(model_config(args, use_ppm=False))
    cfg = TrainConfig(steps=args.pretrain, batch=8, crop=size, lr=0.01, scale=(0.75, 1.25), rotate=0.0, blur=0.0,
                      seed=PRETRAIN_SEED, device=args.device)
    backbone = run_to_end(train(fcn, pre, None, cfg)).model.backbone.state_dict()
    t1 = time.perf_counter()
    torch.manual_seed(WEAK_SEED)
    model = PSPNet(model_config(args))
    model.backbone.load_state_dict(backbone)
    few = Scenes(scenes(WEAK_SEED, args.labelled, size))
    cfg = dataclasses.replace(cfg, steps=args.weak_steps, seed=WEAK_SEED)
    model = run_to_end(train(model, few, None, cfg)).model.eval()
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, path)
    return {"pretrain_s": t1 - t0, "weak_s": time.perf_counter() - t1}


def load_weak(args: argparse.Namespace) -> core.LoadedModel:
    model = PSPNet(model_config(args))
    model.load_state_dict(torch.load(args.weak_state, weights_only=True))
    return core.as_loaded(model.eval(), SYNTHETIC_CLASSES, {"source": "label_efficiency weak model"})


def evaluate(model: PSPNet, val: list[tuple[np.ndarray, np.ndarray]], device: str) -> float:
    predictor = core.Predictors.on(model, device).predictor
    cm = ConfusionMatrix(len(SYNTHETIC_CLASSES))
    for image, mask in val:
        cm.update(predictor.predict(image).labels, mask)
    return float(cm.compute().miou)


# ------------------------------------------------------------------------------------------ strategies
Regions = list[tuple[int, tuple[int, int, int, int]]]  # (pool image, box), in the order to correct


def cells(mask: np.ndarray, tile: int) -> list[core.RegionScore]:
    """Every grid cell of the size N proposes that is still mostly unlabelled, in reading order."""
    regions = uncertain_regions(np.zeros(mask.shape, np.float32), mask, tile=tile, k=None)
    return sorted(regions, key=lambda r: r.region)


def mc_dropout_bald(model: PSPNet, image: np.ndarray, passes: int, seed: int) -> np.ndarray:
    """Per-pixel BALD (mutual information between the label and the weights under MC dropout):
    H[mean_t p_t] - mean_t H[p_t], from ``passes`` full forward passes with dropout on."""
    device = next(model.parameters()).device
    x = model.normalize(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device))
    drops = [m for m in model.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d))]
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for m in drops:
            m.train()
        mean = torch.zeros(0)
        ent_sum = 0.0
        with torch.no_grad():
            for t in range(passes):
                p = torch.softmax(model(x).main[0].float(), 0)
                mean = p if t == 0 else mean + p
                ent_sum = ent_sum + (-(p * torch.log(p.clamp_min(1e-12))).sum(0))
        mean = mean / passes
        bald = -(mean * torch.log(mean.clamp_min(1e-12))).sum(0) - ent_sum / passes
    finally:
        for m in drops:
            m.eval()
        torch.random.set_rng_state(gen_state)
    return bald.clamp_min(0).cpu().numpy().astype(np.float32)


@dataclass
class Pick:
    order: Regions
    seconds_per_image: float  # what choosing cost per pool image (predictions included)
    scoring_per_image: float = 0.0  # of that, the time outside the model's forward passes


def pick(strategy: str, state: "RunState", args: argparse.Namespace) -> Pick:
    masks, images, model = state.masks(), state.images, state.loaded.model
    tile = state.tile
    t0 = time.perf_counter()
    if strategy in ("random", "scan"):
        per = {i: cells(m, tile) for i, m in enumerate(masks)}
        if strategy == "scan":  # image after image, reading order: where a person without a ranking goes
            order = [(i, r.region) for i in sorted(per) for r in per[i]]
        else:
            flat = [(i, r.region) for i in sorted(per) for r in per[i]]
            rng = np.random.default_rng([state.seed, state.round])
            order = [flat[j] for j in rng.permutation(len(flat))]
        return Pick(order, (time.perf_counter() - t0) / len(images))
    predictors = core.Predictors.on(model, args.device)
    per: dict[int, list[core.RegionScore]] = {}
    scoring = 0.0
    if strategy == "bald":
        for i, (image, mask) in enumerate(zip(images, masks)):
            score = mc_dropout_bald(model, image, args.bald_passes, seed=1000 * state.round + i)
            t1 = time.perf_counter()
            per[i] = uncertain_regions(score, mask, tile=tile, k=None)
            scoring += time.perf_counter() - t1
        t1 = time.perf_counter()
        # the same cells and the same spread across images as the app's ranking: only the signal differs
        order = [(i, r.region) for i, r in core.rank_regions(per, state.rule)]
        scoring += time.perf_counter() - t1
        return Pick(order, (time.perf_counter() - t0) / len(images), scoring / len(images))
    rule = state.rule
    if strategy == "entropy":  # the app's ranking with one of its two signals (same regions, same spread)
        rule = dataclasses.replace(rule, mix=0.0, gated=False)
    elif strategy == "disagreement":
        rule = dataclasses.replace(rule, mix=1.0, gated=False)
    for i, (image, mask) in enumerate(zip(images, masks)):
        pred = predictors.predictor.predict(image)
        t1 = time.perf_counter()
        per[i] = core.assess(pred, mask, k=None, rule=rule).regions
        scoring += time.perf_counter() - t1
    t1 = time.perf_counter()
    order = [(i, r.region) for i, r in core.rank_regions(per, rule)]
    scoring += time.perf_counter() - t1
    return Pick(order, (time.perf_counter() - t0) / len(images), scoring / len(images))


# ------------------------------------------------------------------------------------------ one run
@dataclass
class Round:
    pixels: int  # corrected so far (cumulative)
    miou: float
    wrong: int = 0  # of the pixels corrected this round, how many the model had wrong
    new: int = 0  # pixels corrected this round
    regions: int = 0
    images: int = 0  # images those regions were in
    pick_s: float = 0.0  # choosing, per pool image
    scoring_s: float = 0.0  # of that, outside the forward passes
    train_s: float = 0.0


@dataclass
class Run:
    strategy: str
    seed: int
    rounds: list[Round] = field(default_factory=list)


class RunState:
    def __init__(self, strategy: str, seed: int, args: argparse.Namespace, root: Path):
        self.strategy, self.seed, self.round = strategy, seed, 0
        self.rule = rule_of(args)
        self.pool = scenes(POOL_SEED + seed, args.pool, args.size)
        self.images = [im for im, _ in self.pool]
        self.truth = [m for _, m in self.pool]
        self.tile = default_tile((args.size, args.size), self.rule.tile_fraction)
        self.project = core.Project.create(root / "project", SYNTHETIC_CLASSES)
        # the scenes the starting model was trained on are in the project, labelled; the pool is not
        labelled = scenes(WEAK_SEED, args.labelled, args.size)
        for prefix, items in (("labelled", labelled), ("scene", self.pool)):
            for i, (image, _) in enumerate(items):
                cv2.imwrite(str(root / f"{prefix}_{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.project.add_images(sorted(root.glob("*.png")))
        for i, (_, mask) in enumerate(labelled):
            lm = self.project.load_mask(f"labelled_{i:03d}")
            lm.assign((0, args.size, 0, args.size), mask)
            self.project.save_mask(f"labelled_{i:03d}", lm)
        self.names = [f"scene_{i:03d}" for i in range(len(self.pool))]
        self.label_masks = [self.project.load_mask(n) for n in self.names]
        self.loaded = load_weak(args)
        self.device = args.device

    def masks(self) -> list[np.ndarray]:
        return [m.snapshot()[0] for m in self.label_masks]

    def correct(self, order: Regions, budget: int) -> Round:
        """Paint regions in ``order`` with their true labels until ``budget`` pixels are new."""
        predictors = core.Predictors.on(self.loaded.model, self.device)
        new = wrong = n = 0
        touched: set[int] = set()
        preds: dict[int, np.ndarray] = {}
        for i, (y0, y1, x0, x1) in order:
            if new >= budget:
                break
            lm = self.label_masks[i]
            before = lm.data[y0:y1, x0:x1] == core.IGNORE
            if before.mean() < 0.5:
                continue
            truth = self.truth[i][y0:y1, x0:x1]
            if i not in preds:
                preds[i] = predictors.predictor.predict(self.images[i]).labels
            wrong += int(((preds[i][y0:y1, x0:x1] != truth) & before).sum())
            lm.assign((y0, y1, x0, x1), np.where(before, truth, lm.data[y0:y1, x0:x1]))
            new += int(before.sum())
            n += 1
            touched.add(i)
        for i in sorted(touched):
            self.project.save_mask(self.names[i], self.label_masks[i])
        return Round(pixels=0, miou=math.nan, wrong=wrong, new=new, regions=n, images=len(touched))

    def close(self) -> None:
        self.project.close()


def rule_of(args: argparse.Namespace) -> core.RankingRule:
    fields: dict[str, Any] = {}
    kinds = {f.name: f.type for f in dataclasses.fields(core.RankingRule)}
    for item in args.rule or []:
        key, _, value = item.partition("=")
        if key not in kinds:
            raise SystemExit(f"--rule: {key!r} is not a field of core.RankingRule ({', '.join(kinds)})")
        fields[key] = value.lower() in ("1", "true", "yes", "on") if kinds[key] in (bool, "bool") else float(value)
    return dataclasses.replace(core.DEFAULT_RULE, **fields)


def run_one(strategy: str, seed: int, args: argparse.Namespace) -> Run:
    torch.set_num_threads(args.threads)
    val = scenes(VAL_SEED, args.val, args.size)
    with tempfile.TemporaryDirectory(prefix="label-efficiency-") as tmp:
        state = RunState(strategy, seed, args, Path(tmp))
        try:
            run = Run(strategy, seed, [Round(0, evaluate(state.loaded.model, val, args.device))])
            total = 0
            for r in range(1, args.rounds + 1):
                state.round = r
                chosen = pick(strategy, state, args)
                done = state.correct(chosen.order, args.budget)
                total += done.new
                t0 = time.perf_counter()
                out = run_to_end(core.finetune_project(state.loaded, state.project, args.finetune or None,
                                                       device=args.device, record=False))
                state.loaded = out.loaded
                done.train_s = time.perf_counter() - t0
                done.pixels, done.pick_s, done.scoring_s = total, chosen.seconds_per_image, chosen.scoring_per_image
                done.miou = evaluate(state.loaded.model, val, args.device)
                run.rounds.append(done)
                if args.verbose:
                    print(f"  {strategy:12s} seed {seed} round {r}: {total} px, mIoU {100 * done.miou:.1f}, "
                          f"{done.wrong}/{done.new} were wrong, train {done.train_s:.0f} s", file=sys.stderr,
                          flush=True)
        finally:
            state.close()
    return run


# ------------------------------------------------------------------------------------------ summaries
@dataclass
class Curve:
    strategy: str
    pixels: np.ndarray  # (rounds + 1,) mean over seeds
    miou: np.ndarray  # (seeds, rounds + 1)
    wrong_share: float  # of all corrected pixels, the share the model had wrong
    pick_s: float  # choosing, per pool image, mean
    scoring_s: float = 0.0  # of that, outside the forward passes

    @property
    def mean(self) -> np.ndarray:
        return self.miou.mean(0)

    @property
    def std(self) -> np.ndarray:
        return self.miou.std(0)


def curves(runs: list[Run]) -> dict[str, Curve]:
    out = {}
    for s in dict.fromkeys(r.strategy for r in runs):
        mine = sorted((r for r in runs if r.strategy == s), key=lambda r: r.seed)
        pixels = np.mean([[x.pixels for x in r.rounds] for r in mine], axis=0)
        miou = np.array([[x.miou for x in r.rounds] for r in mine])
        new = sum(x.new for r in mine for x in r.rounds)
        wrong = sum(x.wrong for r in mine for x in r.rounds)
        pick_s = float(np.mean([x.pick_s for r in mine for x in r.rounds[1:]]))
        scoring_s = float(np.mean([x.scoring_s for r in mine for x in r.rounds[1:]]))
        out[s] = Curve(s, pixels, miou, wrong / max(1, new), pick_s, scoring_s)
    return out


def pixels_to_reach(pixels: np.ndarray, miou: np.ndarray, target: float) -> float:
    """Corrected pixels at which the curve first reaches ``target`` (linear between rounds); NaN if never."""
    for j in range(len(miou)):
        if miou[j] >= target:
            if j == 0:
                return 0.0
            a, b = miou[j - 1], miou[j]
            return float(pixels[j - 1] + (pixels[j] - pixels[j - 1]) * (target - a) / max(b - a, 1e-12))
    return math.nan


def summary(cs: dict[str, Curve], quick: bool = False) -> dict[str, Any]:
    """Per strategy: final mIoU, pixels to reach random's final mean mIoU (on the mean curve and
    per seed), share of corrected pixels that were wrong; and the checks: the issue's goals, or
    (``quick``, the smoke case) that the ranking finds errors well beyond chance and ends ahead."""
    target = float(cs["random"].mean[-1]) if "random" in cs else float(max(c.mean[-1] for c in cs.values()))
    rows = {}
    for s, c in cs.items():
        per_seed = [pixels_to_reach(c.pixels, m, target) for m in c.miou]
        rows[s] = {"final_miou": float(c.mean[-1]), "final_std": float(c.std[-1]),
                   "pixels_to_target": pixels_to_reach(c.pixels, c.mean, target),
                   "pixels_to_target_per_seed": per_seed, "wrong_share": c.wrong_share, "pick_s": c.pick_s,
                   "scoring_s": c.scoring_s,
                   "gain_auc": float(np.trapezoid(c.mean - c.mean[0], c.pixels) / max(c.pixels[-1], 1))}
    checks = []
    if quick and "ranking" in rows and "random" in rows:
        a, b = rows["ranking"], rows["random"]
        checks.append((f"the ranking's regions hold {100 * a['wrong_share']:.0f} % pixels the model had wrong, at least "
                       f"{QUICK_WRONG_RATIO:g} x random's {100 * b['wrong_share']:.0f} %",
                       a["wrong_share"] >= QUICK_WRONG_RATIO * b["wrong_share"]))
        checks.append((f"the ranking ends ahead of random: mIoU {100 * a['final_miou']:.1f} against "
                       f"{100 * b['final_miou']:.1f}", a["final_miou"] > b["final_miou"]))
        return {"target": target, "rows": rows, "checks": checks}
    if "ranking" in rows and "random" in rows:
        need, full = rows["ranking"]["pixels_to_target"], float(cs["random"].pixels[-1])
        checks.append((f"the ranking reaches random's final mIoU ({100 * target:.1f}) with {fmt_px(need)} corrected "
                       f"pixels, at most half of random's {fmt_px(full)}", bool(need <= 0.5 * full)))
    if "ranking" in rows and "bald" in rows:
        a, b = rows["ranking"]["pixels_to_target"], rows["bald"]["pixels_to_target"]
        ok = bool(math.isfinite(a) and (not math.isfinite(b) or a <= b / 0.9))
        ratio = b / a if math.isfinite(a) and math.isfinite(b) and a > 0 else math.nan
        cost = rows["bald"]["pick_s"] / max(rows["ranking"]["pick_s"], 1e-9)
        checks.append((f"the ranking is within 10 % of BALD's efficiency: {fmt_px(a)} against BALD's {fmt_px(b)} "
                       f"pixels to that mIoU (efficiency ratio {ratio:.2f}), at 1/{cost:.1f} of its cost per image",
                       ok))
    return {"target": target, "rows": rows, "checks": checks}


def fmt_px(v: float) -> str:
    return "never" if not math.isfinite(v) else f"{v:,.0f}"


def markdown(cs: dict[str, Curve], summ: dict[str, Any], args: argparse.Namespace) -> str:
    any_curve = next(iter(cs.values()))
    pool_px = args.pool * args.size * args.size
    head = ["strategy"] + [f"{p:,.0f} px ({100 * p / pool_px:.1f} %)" for p in any_curve.pixels] + \
        [f"px to {100 * summ['target']:.1f} mIoU", "wrong share", "ms / image (scoring)"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for s, c in cs.items():
        row = summ["rows"][s]
        per = [v for v in row["pixels_to_target_per_seed"]]
        reached = [v for v in per if math.isfinite(v)]
        spread = ("" if len(per) < 2 else f" ({len(reached)}/{len(per)} seeds)" if not reached else
                  f" ({fmt_px(min(reached))}-{fmt_px(max(reached))}, {len(reached)}/{len(per)} seeds)")
        cells_ = [LABELS.get(s, s)] + [f"{100 * m:.1f} ± {100 * d:.1f}" for m, d in zip(c.mean, c.std)]
        cells_ += [fmt_px(row["pixels_to_target"]) + spread, f"{100 * row['wrong_share']:.0f} %",
                   f"{1000 * row['pick_s']:.0f} ({1000 * row['scoring_s']:.1f})"]
        lines.append("| " + " | ".join(cells_) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the plot
def plot(cs: dict[str, Curve], path: str, title: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return plot_cv(cs, path, title)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    for s, c in cs.items():
        color = tuple(v / 255 for v in COLORS.get(s, (0, 0, 0)))
        ax.plot(c.pixels, 100 * c.mean, "-o", ms=3.5, color=color, label=LABELS.get(s, s),
                lw=2.4 if s == "ranking" else 1.4)
        ax.fill_between(c.pixels, 100 * (c.mean - c.std), 100 * (c.mean + c.std), color=color, alpha=0.12, lw=0)
    ax.set_xlabel("corrected pixels")
    ax.set_ylabel("mIoU on held-out scenes (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return "matplotlib"


def plot_cv(cs: dict[str, Curve], path: str, title: str) -> str:
    """The same plot with OpenCV (no matplotlib here): lines, markers, axes, a legend."""
    w, h, left, right, top, bottom = 900, 560, 70, 20, 40, 60
    img = np.full((h, w, 3), 255, np.uint8)
    xs = np.concatenate([c.pixels for c in cs.values()])
    ys = 100 * np.concatenate([np.concatenate([c.mean - c.std, c.mean + c.std]) for c in cs.values()])
    x_max, y_min, y_max = float(xs.max()) or 1.0, math.floor(ys.min() / 5) * 5, math.ceil(ys.max() / 5) * 5

    def at(px: float, miou: float) -> tuple[int, int]:
        return (int(left + (w - left - right) * px / x_max),
                int(h - bottom - (h - top - bottom) * (miou - y_min) / max(y_max - y_min, 1e-9)))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for y in range(int(y_min), int(y_max) + 1, 5):
        cv2.line(img, at(0, y), at(x_max, y), (230, 230, 230), 1)
        cv2.putText(img, f"{y}", (left - 35, at(0, y)[1] + 5), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    for x in np.linspace(0, x_max, 6):
        cv2.putText(img, f"{x:,.0f}", (at(x, y_min)[0] - 20, h - bottom + 20), font, 0.45, (60, 60, 60), 1,
                    cv2.LINE_AA)
    cv2.rectangle(img, at(0, y_max), at(x_max, y_min), (0, 0, 0), 1)
    for k, (s, c) in enumerate(cs.items()):
        bgr = tuple(reversed(COLORS.get(s, (0, 0, 0))))
        pts = [at(p, 100 * m) for p, m in zip(c.pixels, c.mean)]
        cv2.polylines(img, [np.array(pts, np.int32)], False, bgr, 3 if s == "ranking" else 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, bgr, -1, cv2.LINE_AA)
        ly = h - bottom - 20 - 20 * (len(cs) - 1 - k)
        cv2.line(img, (w - 300, ly - 4), (w - 270, ly - 4), bgr, 3)
        cv2.putText(img, LABELS.get(s, s), (w - 262, ly), font, 0.45, (30, 30, 30), 1, cv2.LINE_AA)
    cv2.putText(img, "corrected pixels", (w // 2 - 60, h - 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "mIoU (%)", (8, top - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title[:110], (left, 22), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(path, img)
    return "opencv"


# ------------------------------------------------------------------------------------------ main
# the smoke case: small and quick, and built to favour a ranking that works (a budget small against
# the pool, so that where the regions go matters); tests/core/test_label_efficiency.py runs it
QUICK = {"size": 64, "pool": 12, "val": 16, "rounds": 2, "budget": 2048, "pretrain": 200, "pretrain_scenes": 32,
         "labelled": 4, "weak_steps": 100, "seeds": [0], "strategies": ["ranking", "random"],
         "finetune": {"val_fraction": 0.0, "steps": 30}}
QUICK_WRONG_RATIO = 1.5


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128, help="scene size (square)")
    p.add_argument("--pool", type=int, default=32, help="unlabelled scenes in the project")
    p.add_argument("--val", type=int, default=48, help="held-out scenes (mIoU)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--budget", type=int, default=0, help="pixels corrected per round (0: 2 %% of the pool's pixels)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="pools (and random orders) to average")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    p.add_argument("--bald-passes", type=int, default=8, help="MC-dropout passes for BALD")
    p.add_argument("--rule", nargs="*", metavar="FIELD=VALUE",
                   help="the app's ranking with other core.RankingRule fields, e.g. mix=0.7 image_decay=0.8")
    p.add_argument("--width", type=int, default=8, help="ResNet-18 base width")
    p.add_argument("--pretrain", type=int, default=300, help="backbone pre-training steps (appearance-only labels)")
    p.add_argument("--pretrain-scenes", type=int, default=64)
    p.add_argument("--labelled", type=int, default=2,
                   help="labelled scenes in the project at the start (the starting model was trained on them)")
    p.add_argument("--weak-steps", type=int, default=150)
    p.add_argument("--quick", action="store_true", help="the smoke case: 12 scenes of 64 px, 2 rounds, ranking vs random")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs in parallel (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--plot", metavar="PNG")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    p.add_argument("--time-assess", metavar="K,H,W",
                   help="only time core.assess (the ranking's scoring of one image) on K-class HxW probabilities")
    p.add_argument("--cache", metavar="DIR", help="keep the starting model here and reuse it in later runs")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="report the runs saved by earlier --json runs (same settings) instead of running")
    p.add_argument("--verbose", action="store_true")
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # its sizes, unless given
        p.set_defaults(**{k: v for k, v in QUICK.items() if k != "finetune"})
    args = p.parse_args(argv)
    # the app's fine-tune (core.FINETUNE_DEFAULTS) without its validation split: the held-out
    # scenes measure here, and in the app one image in five is kept out of training for the curve
    args.finetune = {"val_fraction": 0.0}
    if args.quick:
        args.finetune = dict(QUICK["finetune"])
    if not args.budget:
        args.budget = int(0.02 * args.pool * args.size * args.size)
    return args


def run_all(args: argparse.Namespace, on_run: Callable[[Run], None] | None = None) -> list[Run]:
    tasks = [(s, seed) for seed in args.seeds for s in args.strategies]
    runs: list[Run] = []
    if args.jobs > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            for f in [pool.submit(run_one, s, seed, args) for s, seed in tasks]:
                runs.append(f.result())
                on_run and on_run(runs[-1])
    else:
        for s, seed in tasks:
            runs.append(run_one(s, seed, args))
            on_run and on_run(runs[-1])
    return runs


WEAK_KEYS = ("size", "width", "pretrain", "pretrain_scenes", "labelled", "weak_steps", "device")


def prepare(args: argparse.Namespace, folder: str) -> float:
    """Train the starting model into ``folder`` (``args.weak_state``), or take it from ``--cache``
    (it depends only on WEAK_KEYS, and training is deterministic); returns its held-out mIoU."""
    args.weak_state = os.path.join(folder, "weak.pt")
    torch.set_num_threads(args.threads)
    cached = None
    if args.cache:
        key = "-".join(f"{getattr(args, k)}" for k in WEAK_KEYS)
        cached = Path(args.cache) / f"weak-{key}.pt"
        if cached.is_file():
            args.weak_state = str(cached)
            weak = evaluate(load_weak(args).model, scenes(VAL_SEED, args.val, args.size), args.device)
            print(f"starting model from {cached}: mIoU {100 * weak:.1f}", file=sys.stderr, flush=True)
            return weak
    prep = weak_model(args, args.weak_state)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.load(args.weak_state, weights_only=True), cached)
    weak = evaluate(load_weak(args).model, scenes(VAL_SEED, args.val, args.size), args.device)
    print(f"starting model: backbone pre-trained {args.pretrain} steps ({prep['pretrain_s']:.0f} s), then "
          f"{args.weak_steps} steps on {args.labelled} scenes ({prep['weak_s']:.0f} s): mIoU {100 * weak:.1f}",
          file=sys.stderr, flush=True)
    return weak


def report(runs: list[Run]) -> None:
    run = runs[-1]
    last = run.rounds[-1]
    print(f"{run.strategy:12s} seed {run.seed}: {last.pixels:,} px -> mIoU {100 * last.miou:.1f} "
          f"(from {100 * run.rounds[0].miou:.1f}); train {np.mean([r.train_s for r in run.rounds[1:]]):.0f} s"
          f"/round", file=sys.stderr, flush=True)


def load_runs(paths: list[str], strategies: list[str]) -> tuple[list[Run], float]:
    """The runs of earlier ``--json`` files (later files replace a strategy and seed of earlier ones)."""
    found: dict[tuple[str, int], Run] = {}
    weak = math.nan
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        weak = data.get("weak_miou", weak)
        names = {f.name for f in dataclasses.fields(Round)}
        for r in data["runs"]:
            rounds = [Round(**{k: v for k, v in x.items() if k in names}) for x in r["rounds"]]
            found[(r["strategy"], r["seed"])] = Run(r["strategy"], r["seed"], rounds)
    order = {s: i for i, s in enumerate(strategies)}
    runs = sorted((r for r in found.values() if r.strategy in order), key=lambda r: (order[r.strategy], r.seed))
    return runs, weak


def time_assess(spec: str, repeats: int = 3) -> list[float]:
    """Seconds per call of core.assess on random K-class HxW main and aux probabilities."""
    k, h, w = (int(v) for v in spec.split(","))
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((k, h, w), dtype=np.float32) * 3
    probs = np.exp(logits - logits.max(0))
    probs /= probs.sum(0)
    del logits
    aux = np.roll(probs, 1, axis=1)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(0)
    pred = core.Prediction(labels=probs.argmax(0).astype(np.uint8), probs=probs, aux_probs=aux,
                           confidence=probs.max(0), entropy=entropy)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        core.assess(pred, None)
        out.append(time.perf_counter() - t)
    print(f"core.assess on a {k}-class {w}x{h} prediction (main + aux): "
          f"{', '.join(f'{1000 * s:.0f}' for s in out)} ms")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.time_assess:
        torch.set_num_threads(args.threads)
        return {"assess_s": time_assess(args.time_assess), "ok": True}
    t0 = time.perf_counter()
    runs: list[Run] = []
    if args.merge:
        runs, weak = load_runs(args.merge, args.strategies)
    else:
        with tempfile.TemporaryDirectory(prefix="label-efficiency-model-") as tmp:
            weak = prepare(args, tmp)
            run_all(args, lambda run: (runs.append(run), report(runs)))
    if args.json and not args.merge:  # the runs first: a report that fails loses nothing
        Path(args.json).write_text(json.dumps({"weak_miou": weak, "runs": [dataclasses.asdict(r) for r in runs]},
                                              default=float) + "\n", encoding="utf-8")
    cs = curves(runs)
    summ = summary(cs, quick=args.quick)
    tile = default_tile((args.size, args.size), rule_of(args).tile_fraction)
    text = markdown(cs, summ, args)
    print(text)
    print(f"\nmIoU in % (mean ± std over seeds {', '.join(map(str, args.seeds))}) on {args.val} held-out "
          f"{args.size}x{args.size} scenes after each round of {args.budget:,} corrected pixels (regions of about "
          f"{tile}x{tile}) on a pool of {args.pool} scenes; 'wrong share': of the corrected pixels, those the model "
          f"had wrong; 'ms / image': choosing the regions, per pool image: the forward passes (1; BALD "
          f"{args.bald_passes}) and, in brackets, the scoring and ordering alone. Rule: {rule_of(args)}.")
    for text_, ok in summ["checks"]:
        print(f"- [{'x' if ok else ' '}] {text_}")
    elapsed = time.perf_counter() - t0
    print(f"\ntotal {elapsed:.0f} s")
    result = {"config": {k: v for k, v in vars(args).items() if k not in ("weak_state",)}, "weak_miou": weak,
              "tile": tile, "rule": dataclasses.asdict(rule_of(args)), "seconds": elapsed,
              "curves": {s: {"pixels": c.pixels.tolist(), "miou": c.miou.tolist(), "wrong_share": c.wrong_share,
                             "pick_s": c.pick_s, "scoring_s": c.scoring_s} for s, c in cs.items()},
              "summary": {"target": summ["target"], "rows": summ["rows"],
                          "checks": [{"check": t, "ok": ok} for t, ok in summ["checks"]]},
              "runs": [dataclasses.asdict(r) for r in runs]}
    if args.plot:
        how = plot(cs, args.plot, f"{args.pool} scenes of {args.size} px, {args.budget:,} px per round, "
                                  f"seeds {', '.join(map(str, args.seeds))}")
        print(f"plot ({how}): {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    result["ok"] = all(ok for _, ok in summ["checks"])
    return result


if __name__ == "__main__":
    out = main()
    sys.exit(1 if "--strict" in sys.argv and not out["ok"] else 0)
