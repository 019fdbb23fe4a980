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

from core.generators import Cancel, Progress, as_progress, check_cancel, relay
from core.infer import Prediction, Predictor
from core.inference.prediction import Preview
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

    def memory_bytes(self) -> int:
        """Bytes this outcome holds (its prediction, the base's when it is another, the maps
        derived from them): what a cache of outcomes counts."""
        total = self.prediction.memory_bytes()
        if self.base is not self.prediction:
            total += self.base.memory_bytes()
        if self.aux_labels is not None and self.aux_labels is not self.prediction.aux_labels:
            total += self.aux_labels.nbytes
        for m in (self.disagreement, self.change):
            if m is not None:
                total += m.mask.nbytes
        return int(total + self.shares.nbytes)


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


@dataclass(kw_only=True)
class PreviewReady(Progress):
    """An early look at a prediction on its way (:func:`predict_outcome` with ``preview``): the
    main head's labels of the working pass's first windows, as an :class:`Outcome` to show until
    the whole prediction replaces it (no auxiliary head, no pyramid internals)."""

    outcome: Outcome


def predict_outcome(predictor: Predictor, image: np.ndarray, path: Path | None, mask: np.ndarray | None,
                    internals: bool, *, preview: bool = False, cancel: Cancel = None
                    ) -> Generator[Progress, None, Outcome]:
    """Predict with every pyramid level on (the reference the level switches are compared with).

    ``preview``: also yield one :class:`PreviewReady` when the predictor has an early prediction
    (a protocol with more passes than one: the mirror image, several scales, many windows). Its
    maps are made here, on the worker, so that nothing the views read is computed on the GUI
    thread; so are the final prediction's."""
    t0 = time.perf_counter()
    steps = predictor.predict_steps(image, internals=internals, cancel=cancel, preview=preview)

    def convert(item: Any) -> Progress:
        if isinstance(item, Preview):
            early = item.prediction
            early.materialize()
            _ = early.work_probs, early.work_confidence, early.work_entropy
            check_cancel(cancel, "prediction cancelled")
            out = derive_outcome(path, early, early, mask, time.perf_counter() - t0, "full")
            return PreviewReady(fraction=float(item), message="a first look; refining", outcome=out)
        return as_progress(item)

    base = yield from relay(steps, convert)
    base.materialize()
    seconds = time.perf_counter() - t0
    check_cancel(cancel, "prediction cancelled")
    return derive_outcome(path, base, base, mask, seconds, "full")


def level_switch(model: PSPNet, base: Prediction, device: Any, module: Any = None) -> LevelSwitch:
    """The head-only re-runner for ``base`` (cheap to make; :func:`prepare_level_switch` does the
    work). ``module``: what the predictor ran (an inference copy), so the switch computes as it did."""
    return LevelSwitch(model, base, device=device, module=module)


def prepare_level_switch(switch: LevelSwitch, *, cancel: Cancel = None) -> Generator[Progress, None, LevelSwitch]:
    """Compute a LevelSwitch's cached per-level head convolutions ahead of the first switch."""
    yield Progress(fraction=0.0, message="preparing the level switches")
    switch.prepare()
    return switch


@dataclass(kw_only=True)
class SwitchReady(Progress):
    """The labels of a level switch, ready before its probability maps (which
    :func:`rerun_outcome` makes next, on the worker)."""

    outcome: Outcome


def rerun_outcome(switch: LevelSwitch, base: Outcome, mask: np.ndarray | None, disabled_levels: Sequence[int], *,
                  cancel: Cancel = None) -> Generator[Progress, None, Outcome]:
    """The head-only re-run from the cached features of ``base`` (no backbone, no aux head).

    Yields a :class:`SwitchReady` with the new labels as soon as they are known and returns the
    same outcome; its probability maps (hover, heat maps) are left to :func:`materialize_job`,
    so that the next switch does not wait for them."""
    yield Progress(fraction=0.0, message="re-running the heads")
    t0 = time.perf_counter()
    pred = switch.rerun(disabled_levels) if disabled_levels else base.prediction
    seconds = time.perf_counter() - t0  # the switch itself: the labels
    check_cancel(cancel, "re-run cancelled")
    outcome = derive_outcome(base.path, pred, base.prediction, mask, seconds, "heads", aux_labels=base.aux_labels)
    yield SwitchReady(fraction=1.0, message="labels ready", outcome=outcome)
    return outcome


def materialize_job(prediction: Prediction, *, cancel: Cancel = None) -> Generator[Progress, None, Prediction]:
    """Make what a prediction computes on first use (a level switch's probability maps) now, on a
    worker, so that no view computes it on the GUI thread (a reader meanwhile waits for it)."""
    yield Progress(fraction=0.0, message="making the probability maps")
    check_cancel(cancel, "not needed any more")
    return prediction.materialize()


OVERLAY_MODES = ("confidence", "entropy", "class")


def overlay_map(prediction: Prediction, mode: str, class_id: int = 0) -> np.ndarray:
    """The (H, W) uint8 heat map a view shows for ``mode``: the confidence (0..1), the entropy
    (0..ln K nats) or class ``class_id``'s probability (0..1), at the photo's size."""
    import math

    from core.inspect import to_uint8

    if mode == "confidence":
        return to_uint8(prediction.confidence, 0.0, 1.0)
    if mode == "entropy":
        return to_uint8(prediction.entropy, 0.0, math.log(max(2, prediction.num_classes)))
    if mode == "class":
        c = min(max(0, int(class_id)), prediction.num_classes - 1)
        return to_uint8(prediction.class_probability(c), 0.0, 1.0)
    raise ValueError(f"no heat map for mode {mode!r}; modes are {', '.join(OVERLAY_MODES)}")


def overlay_map_job(prediction: Prediction, mode: str, class_id: int = 0, *,
                    cancel: Cancel = None) -> Generator[Progress, None, np.ndarray]:
    """:func:`overlay_map` as a job (a 12-megapixel photo's map takes a second or more)."""
    yield Progress(fraction=0.0, message=f"making the {mode} map")
    return overlay_map(prediction, mode, class_id)
