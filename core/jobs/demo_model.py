"""The built-in demo: its project of synthetic context scenes, and its small model trained on them.

The app shows the demo on first start: the project is written with
``core.write_demo_project`` unless it exists; the model is the one shipped in
``resources/demo/`` or, without it, one :func:`train_demo_model` trains (yielding snapshots to
show while it learns).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Generator

from core.classes import ClassTable
from core.config import ModelConfig
from core.data.datasets import open_dataset
from core.data.synthetic import demo_project_steps
from core.generators import Cancel, Progress, check_cancel
from core.jobs.models import as_loaded, copy_model
from core.training import TrainConfig, TrainProgress, train
from core.weights import LoadedModel, build_model, save_checkpoint

DEMO_PROJECT_PARAMS = {"n_train": 48, "n_val": 16, "size": (128, 128), "seed": 0}
SNAPSHOTS = 4  # intermediate models shown while the demo model trains


def demo_model_config(num_classes: int) -> ModelConfig:
    """A tiny ResNet-18-style PSPNet: trains in a minute or two on two CPU cores."""
    return ModelConfig(depth=18, base_width=16, num_classes=num_classes, head_channels=64, aux_channels=32,
                       stem="deep")


def demo_train_config(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch=8, crop=DEMO_PROJECT_PARAMS["size"][0], scale=(0.75, 1.5), rotate=5.0,
                       val_limit=16)  # on the GPU when there is one


def ensure_demo_project(root: Path, *, cancel: Cancel = None) -> Generator[Progress, None, Path]:
    """Write the demo project into ``root`` unless it is there already (then nothing is yielded):
    one Progress per scene written. Cancelled half-way, it is written again next time."""
    root = Path(root)
    if (root / "classes.json").is_file() and (root / "images").is_dir():
        return root
    n = DEMO_PROJECT_PARAMS["n_train"] + DEMO_PROJECT_PARAMS["n_val"]
    yield Progress(fraction=0.0, message=f"writing the demo project: {n} scenes with their labels")
    steps = demo_project_steps(root, **DEMO_PROJECT_PARAMS)
    while True:
        check_cancel(cancel, "writing the demo project cancelled")
        try:
            done = next(steps)
        except StopIteration:
            return root
        yield Progress(fraction=done / n, message=f"writing demo scene {done} of {n}")


@dataclass(kw_only=True)
class DemoProgress(Progress):
    """A step of the demo training (``train``), or an intermediate model to show (``snapshot``)."""

    train: TrainProgress | None = None
    snapshot: LoadedModel | None = None  # a copy of the model after ``step`` steps
    step: int = 0


def train_demo_model(project: Path, out: Path, steps: int, snapshots: int = SNAPSHOTS, *,
                     cancel: Cancel = None) -> Generator[DemoProgress, None, Path]:
    """Train the demo model on the demo project; save it to ``out`` and return that path."""
    train_set = open_dataset(project, "train")
    val_set = open_dataset(project, "val")
    classes: ClassTable = train_set.classes
    model = build_model(demo_model_config(len(classes)))
    cfg = demo_train_config(steps)
    every = max(1, steps // max(1, snapshots)) if snapshots else 0
    t0 = time.perf_counter()
    gen = train(model, train_set, val_set, cfg, cancel=cancel, classes=classes)
    while True:  # a cancel raises core.Cancelled out of the training generator
        try:
            rec = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        yield DemoProgress(train=rec, step=rec.step, fraction=rec.fraction, message=rec.message)
        if every and rec.val is None and rec.step % every == 0 and rec.step < steps:
            snap = copy_model(model)  # the trainer updates ``model`` in place
            yield DemoProgress(snapshot=as_loaded(snap, classes, {"source": "demo training", "step": rec.step},
                                                  note="trained in this session on the demo project"),
                               step=rec.step, fraction=rec.fraction)
    provenance = {"source": "demo training in PSPNet Studio", "project": "synthetic context scenes",
                  "project_params": {**DEMO_PROJECT_PARAMS, "size": list(DEMO_PROJECT_PARAMS["size"])},
                  "train_config": cfg.to_dict(), "seconds": round(time.perf_counter() - t0, 1),
                  "val_miou": None if result.metrics is None else result.metrics.miou}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, result.model.cpu(), classes, provenance)
    return out
