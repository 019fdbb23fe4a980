"""The reference README's weight recipe (shared/reference/README.md), as a test helper.

The reference vectors were produced by the official semseg and CSAIL implementations with
weights made by this recipe; rebuilding the same weights here lets the tests write them in
each implementation's own checkpoint format and compare our outputs with theirs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

# the repo's sibling folder: <parent of the repo>/shared/reference
REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference"

KeyList = list[tuple[str, tuple[int, ...], str]]  # (name, shape, dtype) in the original order


def reference_dir() -> Path | None:
    return REFERENCE_DIR if (REFERENCE_DIR / "keys.json").is_file() else None


def model_keys(name: str) -> KeyList:
    """One model's state-dict keys from keys.json, in their original order."""
    data = json.loads((REFERENCE_DIR / "keys.json").read_text())
    return [(k, tuple(shape), dtype) for k, shape, dtype in data[name]]


def tsv_keys(file_name: str) -> KeyList:
    """Keys of a ``keys_*.tsv`` file (name, shape like ``(64, 3, 7, 7)``, dtype; ``#`` comments)."""
    out = []
    for line in (REFERENCE_DIR / file_name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, shape, dtype = line.split("\t")
        out.append((name, tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), dtype))
    return out


def recipe_state_dict(keys: KeyList, seed: int) -> dict[str, torch.Tensor]:
    """Fill every tensor in key order from one generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, shape, dtype in keys:
        if dtype.startswith("int"):
            out[name] = torch.zeros(shape, dtype=torch.int64)
        elif name.endswith("running_mean"):
            out[name] = torch.randn(shape, generator=g) * 0.1
        elif name.endswith("running_var"):
            out[name] = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif len(shape) == 4:
            out[name] = torch.randn(shape, generator=g) * math.sqrt(2 / (shape[1] * shape[2] * shape[3]))
        elif name.endswith("weight"):
            out[name] = 1 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("bias"):
            out[name] = 0.1 * torch.randn(shape, generator=g)
        else:
            raise ValueError(f"the recipe does not cover {name} {shape}")
    return out


def recipe_input(seed: int, height: int, width: int) -> torch.Tensor:
    """The recipe's input for a model of seed ``seed``: generator seed ``seed + 1``, fed as is."""
    return torch.randn((1, 3, height, width), generator=torch.Generator().manual_seed(seed + 1))
