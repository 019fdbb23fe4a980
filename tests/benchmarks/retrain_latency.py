"""Retrain latency (run on demand): ``python tests/benchmarks/retrain_latency.py [--device cuda]``.

1. In the window (offscreen), on a copy of the demo project with the demo model: the time from
   pressing Retrain to the first updated prediction on screen, with the timeline (first step,
   training done and checkpoint saved, new prediction shown, before/after comparison done), the
   validation mIoU on the fixed split before and after, and the agreement with the masks of the
   shown image and of every labelled image. Target: a visible improvement within 30 s on the CPU.
2. Fine-tune step time with the backbone frozen (with and without cached features) versus the
   full network, on the demo model; ``--big`` adds a PSPNet-ResNet50 (random weights) at 321 px.

The demo model is ``resources/demo/model.safetensors`` or the one the app trained (in
``PSPNET_STUDIO_HOME``); without either, one is trained first (about half a minute).
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.threads import prefer_passive_waiting  # noqa: E402

prefer_passive_waiting()  # as main.py does for the app, before torch loads
import core  # noqa: E402


def demo_model() -> Path:
    from app import demo

    ckpt = demo.find_demo_checkpoint()
    if ckpt is not None:
        return ckpt
    print("no demo model: training one on the demo project ...", flush=True)
    t0 = time.perf_counter()
    root = demo_project()
    path = core.run_to_end(core.train_demo_model(root, demo.trained_checkpoint(), demo.DEMO_STEPS, 0))
    print(f"  trained in {time.perf_counter() - t0:.0f} s: {path}")
    return path


def demo_project() -> Path:
    from app import demo

    return core.run_to_end(core.ensure_demo_project(demo.demo_project_dir()))


def val_miou(model, project_root: Path, device) -> float:
    """mIoU on finetune's fixed validation split (the labelled images among it)."""
    from core.training import fixed_val_split

    ds = core.open_dataset(project_root, "all", layout="ours")
    names = [ds.name(i) for i in range(len(ds))]
    _, val = fixed_val_split(names, 0.2)
    cm = core.ConfusionMatrix(model.cfg.num_classes)
    pred = core.Predictor(model, device=device)
    for i, n in enumerate(names):
        if n in val and ds.mask_path(i) is not None:
            image, mask = ds[i]
            cm.update(pred.predict(image).labels, mask)
    return float(cm.compute().miou)


def window_run(ckpt: Path, steps: int | None, device: str) -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["retrain-latency"])
    import torch

    torch.set_num_threads(core.recommended_threads(interactive=True))  # as the app sets it (core/cli.py)
    from app.main_window import MainWindow
    from app.controllers.retrainer import RetrainOptions

    tmp = Path(tempfile.mkdtemp(prefix="retrain-bench-"))
    root = tmp / "demo-project"
    shutil.copytree(demo_project(), root)
    w = MainWindow(restore=False)
    w.resize(1600, 1000)
    w.show()
    c = w.controller
    c.set_device(device)

    def spin_until(cond, timeout=600.0) -> None:
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
    spin_until(lambda: c.outcome is not None and w.editor.mask is not None and not c.busy)
    shown = c.image.path.stem
    mask = w.editor.mask.data.copy()
    sel = mask != 255

    def agreement(outcome) -> float:
        return float((outcome.prediction.labels[sel] == mask[sel]).mean())

    before_shown = agreement(c.outcome)
    before_val = val_miou(c.loaded.model, root, c.device)
    marks: dict[str, float] = {}
    rt = w.retrainer
    old_model = c.loaded.model
    rt.progress.connect(lambda rec: marks.setdefault("first step", time.perf_counter()))
    rt.finished.connect(lambda _: marks.setdefault("trained + saved", time.perf_counter()))
    c.outcomeReady.connect(lambda o: c.loaded.model is not old_model and marks.setdefault(
        "new prediction shown", time.perf_counter()))
    rt.comparisonReady.connect(lambda _: marks.setdefault("before/after done", time.perf_counter()))
    if steps:
        w.retrain_panel.set_options(RetrainOptions(steps=steps))
    opts = w.retrain_panel.options()
    t0 = time.perf_counter()
    w.act.retrain.trigger()
    spin_until(lambda: "new prediction shown" in marks or (rt.task is not None and rt.task.is_finished
                                                          and "trained + saved" not in marks))
    if "new prediction shown" not in marks:
        print("retrain failed:", w.retrain_panel.status.text())
        return
    after_shown = agreement(c.outcome)
    spin_until(lambda: "before/after done" in marks)
    before, after, n = core.agreement_summary(rt.comparison)
    entry = rt.last.entry
    print(f"retrain in the window on a copy of the demo project ({len(core.Project.open(root).names())} images), "
          f"device {c.device}: {opts.steps} steps, batch {opts.batch}, lr {opts.lr}, "
          f"frozen backbone {opts.freeze_backbone}, cached features {opts.cache_features}")
    for k, t in sorted(marks.items(), key=lambda kv: kv[1]):
        print(f"  {k:22s} {t - t0:6.2f} s after Retrain")
    print(f"  validation mIoU (fixed split): {before_val:.3f} -> {entry.metrics.get('val_miou')}")
    print(f"  agreement with the mask of the shown image {shown}: {100 * before_shown:.1f} % -> "
          f"{100 * after_shown:.1f} %")
    print(f"  agreement over the {n} labelled images: {100 * before:.1f} % -> {100 * after:.1f} %")
    w.editor.autosave.stop()
    w.ask = lambda *a: None
    saving = w.editor.save_all()
    if saving is not None:
        spin_until(lambda: saving.is_finished)
    w.close()
    c.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


def step_times(model, dataset, device: str, crop: int, batch: int, steps: int) -> None:
    """Median seconds per fine-tune step: full network, frozen backbone, frozen + cached features."""
    for label, frozen, cached in (("full network", False, False), ("frozen backbone", True, False),
                                  ("frozen + cached features", True, True)):
        m = copy.deepcopy(model)
        cfg = core.TrainConfig(steps=steps, batch=batch, crop=crop, freeze_backbone=frozen, cache_features=cached,
                               device=device, val_fraction=0.0)
        times, last = [], None
        t_start = time.perf_counter()
        gen = core.finetune(m, dataset, cfg)
        try:
            while True:
                rec = next(gen)
                now = time.perf_counter()
                if rec.val is None:
                    if last is not None:
                        times.append(now - last)
                    last = now
        except StopIteration:
            pass
        first = "" if not times else f"; first step incl. set-up {last - t_start - sum(times):.2f} s"
        print(f"  {label:26s} {1000 * np.median(times):8.1f} ms/step (median of {len(times)}){first}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: the demo model)")
    ap.add_argument("--steps", type=int, default=None, help="retrain steps in the window (default: the panel's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--step-steps", type=int, default=12, help="steps per configuration in the step-time part")
    ap.add_argument("--big", action="store_true", help="also time a PSPNet-ResNet50 (random weights)")
    ap.add_argument("--skip-window", action="store_true")
    args = ap.parse_args()
    ckpt = Path(args.model) if args.model else demo_model()
    if not args.skip_window:
        window_run(ckpt, args.steps, args.device)
    loaded = core.load_model(ckpt, device=args.device)
    dataset = core.open_dataset(demo_project(), "all", layout="ours")
    h, w = dataset[0][1].shape
    print(f"fine-tune step time, demo model ({args.device}, batch 8, crop {max(h, w)}):")
    step_times(loaded.model, dataset, args.device, max(h, w), 8, args.step_steps)
    if args.big:
        big = core.build_model(core.ModelConfig(depth=50, num_classes=len(dataset.classes)))
        print(f"fine-tune step time, PSPNet-ResNet50 ({args.device}, batch 2, crop 321):")
        step_times(big, dataset, args.device, 321, 2, max(4, args.step_steps // 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
