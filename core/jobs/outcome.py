"""A prediction with everything the views derive from it (an :class:`Outcome`), and the jobs that
make one: the full prediction, and the head-only re-run with pyramid levels switched off.

Everything that costs more than a few milliseconds on a full-size image is done here, off the
GUI thread: inference, the re-run, the aux labels, the disagreement and changed-pixel maps, the
metrics against the image's mask and the class shares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Literal, Sequence

import numpy as np

from core.generators import Cancel, Progress, check_cancel, relay
from core.infer import Prediction, Predictor
from core.inspect import ChangeMap, LevelSwitch, change_map, class_shares
from core.metrics import ConfusionMatrix, SegMetrics
from core.model import PSPNet


@dataclass
class Outcome:
    """A prediction with everything the views derive from it."""

    path: Path | None
    prediction: Prediction
    base: Prediction  # the all-levels prediction it is compared with (itself when no level is off)
    aux_labels: np.ndarray | None
    disagreement: ChangeMap | None  # main vs aux head
    change: ChangeMap | None  # vs base, when levels are off
    shares: np.ndarray  # each class's share of the image
    metrics: dict[str, SegMetrics] = field(default_factory=dict)  # "main" / "aux" (with a mask)
    seconds: float = 0.0  # time the model took (forward or head re-run)
    mode: Literal["full", "heads"] = "full"  # backbone and heads, or the head-only re-run

    @property
    def disabled_levels(self) -> tuple[int, ...]:
        return tuple(self.prediction.disabled_levels)


def derive_outcome(path: Path | None, pred: Prediction, base: Prediction, mask: np.ndarray | None, seconds: float,
                   mode: Literal["full", "heads"], aux_labels: np.ndarray | None = None) -> Outcome:
    """``aux_labels``: the auxiliary head's labels when known (a level switch does not change them)."""
    aux = aux_labels if aux_labels is not None else pred.aux_labels
    k = pred.num_classes
    disagreement = change_map(pred.labels, aux) if aux is not None else None
    change = change_map(base.labels, pred.labels) if base is not pred else None
    metrics: dict[str, SegMetrics] = {}
    if mask is not None and mask.shape == pred.labels.shape:
        for name, labels in (("main", pred.labels), ("aux", aux)):
            if labels is not None:
                cm = ConfusionMatrix(k)
                cm.update(labels, mask)
                metrics[name] = cm.compute()
    return Outcome(path, pred, base, aux, disagreement, change, class_shares(pred.labels, k), metrics, seconds, mode)


def predict_outcome(predictor: Predictor, image: np.ndarray, path: Path | None, mask: np.ndarray | None,
                    internals: bool, *, cancel: Cancel = None) -> Generator[Progress, None, Outcome]:
    """Predict with every pyramid level on (the reference the level switches are compared with)."""
    t0 = time.perf_counter()
    base = yield from relay(predictor.predict_steps(image, internals=internals, cancel=cancel))
    seconds = time.perf_counter() - t0
    check_cancel(cancel, "prediction cancelled")
    return derive_outcome(path, base, base, mask, seconds, "full")


def level_switch(model: PSPNet, base: Prediction, device: Any) -> LevelSwitch:
    """The head-only re-runner for ``base`` (cheap to make; :func:`prepare_level_switch` does the work)."""
    return LevelSwitch(model, base, device=device)


def prepare_level_switch(switch: LevelSwitch, *, cancel: Cancel = None) -> Generator[Progress, None, LevelSwitch]:
    """Compute a LevelSwitch's cached per-level head convolutions ahead of the first switch."""
    yield Progress(fraction=0.0, message="preparing the level switches")
    switch.prepare()
    return switch


def rerun_outcome(switch: LevelSwitch, base: Outcome, mask: np.ndarray | None, disabled_levels: Sequence[int], *,
                  cancel: Cancel = None) -> Generator[Progress, None, Outcome]:
    """The head-only re-run from the cached features of ``base`` (no backbone, no aux head)."""
    yield Progress(fraction=0.0, message="re-running the heads")
    t0 = time.perf_counter()
    pred = switch.rerun(disabled_levels) if disabled_levels else base.prediction
    seconds = time.perf_counter() - t0
    check_cancel(cancel, "re-run cancelled")
    return derive_outcome(base.path, pred, base.prediction, mask, seconds, "heads", aux_labels=base.aux_labels)
