"""The poly learning-rate schedule and the fixed validation split of fine-tuning."""

from __future__ import annotations

import hashlib
from typing import Sequence


def poly_lr(base_lr: float, step: int, steps: int, power: float = 0.9) -> float:
    """``base_lr * (1 - step / steps) ** power`` for the 0-based ``step`` about to be taken."""
    if steps <= 0:
        return base_lr
    frac = min(max(step / steps, 0.0), 1.0)
    return base_lr * (1.0 - frac) ** power


def name_hash(name: str) -> float:
    """A stable number in [0, 1) for a name (the same on every machine and every run)."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def fixed_val_split(names: Sequence[str], fraction: float = 0.2, min_val: int = 1) -> tuple[list[str], list[str]]:
    """Split names into (train, val) by a hash of each name, so the split stays put as images are added.

    A name whose hash falls below ``fraction`` is always a validation name, whatever else is in
    the set. Small sets are topped up to ``min_val`` validation names with the lowest hashes
    (those may move back to training once enough names pass the threshold); at least one name
    always stays for training, and a single name is never held out. Order follows ``names``."""
    names = list(dict.fromkeys(names))
    if len(names) < 2 or (fraction <= 0 and min_val <= 0):
        return names, []
    ranked = sorted(names, key=name_hash)
    val = {n for n in names if name_hash(n) < fraction}
    for n in ranked:
        if len(val) >= min(min_val, len(names) - 1):
            break
        val.add(n)
    while len(val) > len(names) - 1:  # keep one name to train on
        val.discard(max(val, key=name_hash))
    return [n for n in names if n not in val], [n for n in names if n in val]
