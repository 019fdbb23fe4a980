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
from torch import nn

from core.generators import Cancel, Progress
from core.infer import Predictor
from core.inference.protocol import TestProtocol
from core.model.inference import optimize_for_inference
from core.model import PSPNet
from core.weights import LoadedModel, load_model


@dataclass
class Predictors:
    """A model's predictor on one device, under a test protocol: the model's own
    (``default``) unless the user chose another (:meth:`with_protocol`).

    ``module`` is what runs: an inference copy of ``model`` (:func:`core.optimize_for_inference`:
    BatchNorm folded, the main head split by input group, fused CPU convolutions), made once
    here and shared by every protocol and by the level switch. ``model`` is the model in use
    itself (fine-tuning, copies and the inspector's weights read it)."""

    model: PSPNet
    device: torch.device
    predictor: Predictor
    module: nn.Module
    default: TestProtocol  # the model's own protocol (what the checkpoint records)

    @classmethod
    def on(cls, model: PSPNet, device: str | torch.device, classes=None, protocol: TestProtocol | None = None,
           *, optimize: bool = True) -> "Predictors":
        """Move ``model`` to ``device`` (here, explicitly: a Predictor is not relied on to do it) and
        make its predictor (``protocol``: instead of the model's own). Call it where the model is
        not in use by another thread."""
        device = torch.device(device)
        model.to(device).eval()
        default = model_protocol(model)
        module = optimize_for_inference(model) if optimize else model
        predictor = Predictor(model, device=device, classes=classes, protocol=protocol or default, module=module)
        return cls(model, device, predictor, module, default)

    @property
    def protocol(self) -> TestProtocol:
        return self.predictor.protocol

    def with_protocol(self, protocol: TestProtocol | None) -> "Predictors":
        """The same model and inference copy under ``protocol`` (None: the model's own)."""
        predictor = Predictor(self.model, device=self.device, classes=self.predictor.classes,
                              protocol=protocol or self.default, module=self.module)
        return dataclasses.replace(self, predictor=predictor)

    def for_image(self, shape: tuple[int, ...] | None = None) -> Predictor:
        """The predictor for a photo (one for every size: the protocol scales the photo; kept for
        callers that pass the image's shape)."""
        return self.predictor


def model_protocol(model: nn.Module) -> TestProtocol:
    """The test protocol a model carries (``model.test_protocol``, set by :func:`core.load_model`
    and kept by copies), else the photo at its own size (what a bare Predictor and a checkpoint
    saved without one use)."""
    found = getattr(model, "test_protocol", None)
    return found if isinstance(found, TestProtocol) else TestProtocol.native()


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
                       sources=list(sources), protocol=getattr(model, "test_protocol", None))
