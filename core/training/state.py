"""The resume state (``last.pt``): everything needed to continue a run exactly.

Only tensors and plain values, so ``torch.load(weights_only=True)`` reads it back; written
atomically (a crash mid-write leaves the previous state)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_write
from core.errors import CheckpointError

FORMAT = "pspnet-studio-train-state"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, numpy, Python) as tensors and lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(mt), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def save_state(path: str | Path, *, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scaler: Any, train_config: dict[str, Any], model_config: dict[str, Any], world_size: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": rng_state(),
        "train_config": json.dumps(train_config),
        "model_config": json.dumps(model_config),
        "world_size": int(world_size),
    }
    atomic_write(path, lambda f: torch.save(data, f))
    return path


def load_state(path: str | Path, model_config: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Read a resume state and check that it belongs to a model of this architecture."""
    path = Path(path)
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such resume state") from None
    except Exception as exc:  # truncated, not a torch file, or holds something executable
        raise CheckpointError(f"{path}: not a readable training state ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a PSPNet Studio training state (a model checkpoint? "
                              "resume takes the last.pt written by checkpoint_every)")
    if data.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: training state version {data['version']} is newer than this program's {VERSION}")
    saved = json.loads(data["model_config"])
    model_config = json.loads(json.dumps(model_config))  # tuples -> lists, as saved
    if saved != model_config:
        diff = sorted(k for k in set(saved) | set(model_config) if saved.get(k) != model_config.get(k))
        raise CheckpointError(f"{path}: saved for another model architecture (differs in {', '.join(diff)})")
    data["train_config"] = json.loads(data["train_config"])
    return data
