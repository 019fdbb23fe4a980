"""The model in use: loaded, placed on a device together with its predictors, copied.

The app runs the model from one thread (its inference runner): these jobs are the only ones
that move a model, and a copy made by :func:`copy_model` is what a job on another thread
(ranking, the before/after comparison, fine-tuning) works on.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Generator, Sequence

import torch

from core.constants import SLIDING_CROP, single_pass
from core.generators import Cancel, Progress
from core.infer import Predictor
from core.model import PSPNet
from core.weights import LoadedModel, load_model


@dataclass
class Predictors:
    """A model's two predictors on one device: a single pass (with internals) and sliding windows."""

    model: PSPNet
    device: torch.device
    single: Predictor
    windows: Predictor

    @classmethod
    def on(cls, model: PSPNet, device: str | torch.device, classes=None) -> "Predictors":
        """Move ``model`` to ``device`` (here, explicitly: a Predictor is not relied on to do it) and
        make its predictors. Call it where the model is not in use by another thread."""
        device = torch.device(device)
        model.to(device).eval()
        return cls(model, device, Predictor(model, device=device, classes=classes),
                   Predictor(model, device=device, crop=SLIDING_CROP, classes=classes))

    def for_image(self, shape: tuple[int, ...], limit: int | None = None) -> Predictor:
        """The single pass for an image up to the single-pass size, else the sliding windows."""
        return self.single if (single_pass(shape) if limit is None else single_pass(shape, limit)) else self.windows


def model_device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def load_model_job(paths: Sequence[str | Path], device: str, *, cancel: Cancel = None
                   ) -> Generator[Progress, None, tuple[LoadedModel, Predictors]]:
    """Load a checkpoint (two files: a CSAIL encoder + decoder) onto ``device``, with its predictors."""
    sources = [str(p) for p in paths]
    yield Progress(fraction=0.0, message=f"loading {' + '.join(Path(s).name for s in sources)}")
    loaded = load_model(sources if len(sources) > 1 else sources[0], device=device)
    return loaded, Predictors.on(loaded.model, device, loaded.classes)


def place_model_job(loaded: LoadedModel, device: str, *, cancel: Cancel = None
                    ) -> Generator[Progress, None, Predictors]:
    """Put an already loaded model (one just trained, another device) on ``device`` with its predictors."""
    yield Progress(fraction=0.0, message=f"placing the model on {device}")
    return Predictors.on(loaded.model, device, loaded.classes)


def copy_model(model: PSPNet) -> PSPNet:
    """An independent copy (same device, eval mode) for a job on another thread."""
    return copy.deepcopy(model).eval()


def copy_loaded_job(loaded: LoadedModel, *, cancel: Cancel = None) -> Generator[Progress, None, LoadedModel]:
    """The same LoadedModel with a copy of its model (run it where the model is not in use)."""
    yield Progress(fraction=0.0, message="copying the model")
    return dataclasses.replace(loaded, model=copy_model(loaded.model), sources=list(loaded.sources or []))


def as_loaded(model: PSPNet, classes, provenance: dict, sources: Sequence[Path] = (), note: str = "") -> LoadedModel:
    """A LoadedModel for a model made in this process (trained, fine-tuned) rather than read from a file."""
    from core.weights import LoadReport

    report = LoadReport(format="pspnet-studio", loaded=list(model.state_dict()), notes=[note] if note else [])
    return LoadedModel(model=model, config=model.cfg, classes=classes, provenance=provenance, report=report,
                       sources=list(sources))
