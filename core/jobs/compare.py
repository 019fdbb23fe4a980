"""Before / after: per corrected image, the share of its labelled pixels each of two models gets right.

Both models are the caller's own copies (this runs beside the model in use, on another thread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generator

import torch

from core.constants import IGNORE
from core.data.datasets import open_dataset
from core.errors import StudioError
from core.generators import Cancel, Progress, check_cancel
from core.jobs.models import Predictors
from core.model import PSPNet
from core.project import Project

COMPARE_LIMIT = 200  # images in the comparison, at most


@dataclass(frozen=True)
class Agreement:
    """How well each model's prediction matches an image's corrections (labelled pixels only)."""

    name: str
    labelled: int  # labelled pixels
    before: float  # share of them the old model got right
    after: float  # ... and the new one

    @property
    def gain(self) -> float:
        return self.after - self.before


def compare_models(before: PSPNet, after: PSPNet, project: Project, device: str | torch.device | None = None,
                   limit: int = COMPARE_LIMIT, *, cancel: Cancel = None) -> Generator[Progress, None, list[Agreement]]:
    """The agreement of ``before`` and ``after`` with every corrected image of ``project`` (at most
    ``limit``), each predicted as the app predicts it (under the model's test protocol)."""
    yield Progress(fraction=0.0, message="comparing the models")
    dataset = open_dataset(project.root, "all", layout="ours")
    items = [i for i in range(len(dataset)) if dataset.mask_path(i) is not None][:limit]
    dev = device if device is not None else next(before.parameters()).device
    old, new = Predictors.on(before, dev, optimize=False), Predictors.on(after, dev, optimize=False)
    out: list[Agreement] = []
    for k, i in enumerate(items):
        check_cancel(cancel, "comparison cancelled")
        try:
            image, mask = dataset[i]
        except StudioError:
            continue
        sel = mask != IGNORE
        n = int(sel.sum())
        if n:
            a = old.for_image(mask.shape).predict(image).labels
            b = new.for_image(mask.shape).predict(image).labels
            out.append(Agreement(dataset.name(i), n, float((a[sel] == mask[sel]).mean()),
                                 float((b[sel] == mask[sel]).mean())))
        yield Progress(fraction=(k + 1) / max(1, len(items)))
    return out


def agreement_summary(rows: list[Agreement]) -> tuple[float, float, int]:
    """(before, after, images): the agreement over every labelled pixel of the compared images."""
    total = sum(r.labelled for r in rows)
    if not total:
        return math.nan, math.nan, 0
    before = sum(r.before * r.labelled for r in rows) / total
    after = sum(r.after * r.labelled for r in rows) / total
    return before, after, len(rows)


def agreement_text(rows: list[Agreement]) -> str:
    before, after, n = agreement_summary(rows)
    if not n:
        return "No corrected images to compare"
    return (f"Agreement with the corrections: {100 * before:.1f} % -> {100 * after:.1f} % "
            f"({100 * (after - before):+.1f} points) over {n} corrected image(s)")
