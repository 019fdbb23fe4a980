"""Run by tests/core/test_ddp.py under ``torchrun --nproc_per_node=2`` (gloo, CPU, a tiny model).

Each rank writes ``rank<R>.pt`` (its final state dict) and ``rank<R>.json`` (what it yielded,
which training images it read, its validation metrics) into the folder given as argv[1]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from core.config import ModelConfig
from core.data.synthetic import SYNTHETIC_CLASSES, generate_scene, scene_seed
from core.model import PSPNet
from core.training import TrainConfig, init_distributed, shutdown_distributed, train


class Scenes:
    def __init__(self, n: int, seed: int, log: list[int] | None = None):
        self.items = [generate_scene(scene_seed(seed, i), (40, 40)) for i in range(n)]
        self.classes, self.log = SYNTHETIC_CLASSES, log

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        if self.log is not None:
            self.log.append(int(i))
        return self.items[i]


def main(out: Path) -> None:
    info = init_distributed()
    torch.manual_seed(100 + info.rank)  # different initial weights: DDP must start all ranks from rank 0's
    model = PSPNet(ModelConfig(depth=18, base_width=4, num_classes=len(SYNTHETIC_CLASSES), head_channels=16,
                               aux_channels=8))
    read: list[int] = []
    cfg = TrainConfig(steps=4, batch=2, crop=32, lr=0.01, val_every=2, checkpoint_every=2,
                      checkpoint_dir=str(out / "run"))
    gen = train(model, Scenes(8, 0, read), Scenes(3, 1), cfg)
    records = []
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    torch.save(result.model.state_dict(), out / f"rank{info.rank}.pt")
    (out / f"rank{info.rank}.json").write_text(json.dumps({
        "world_size": info.world_size,
        "records": [[r.step, r.loss, r.val.miou if r.val is not None else None] for r in records],
        "read": read,
        "miou": result.metrics.miou,
        "steps_done": result.steps_done,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
    }))
    shutdown_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
