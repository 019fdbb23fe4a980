"""What a load returns: the ready model and a report of what came from the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.classes import ClassTable
from core.config import ModelConfig
from core.model import PSPNet

if TYPE_CHECKING:  # pragma: no cover
    from core.inference.protocol import TestProtocol


@dataclass
class LoadReport:
    """How a weight file became a model."""

    format: str  # "pspnet-studio", "semseg", "csail", "mmseg", "torchvision-resnet", "semseg-resnet-init", ...
    loaded: list[str] = field(default_factory=list)  # our state-dict names filled from the file
    reinitialised: list[str] = field(default_factory=list)  # our names freshly initialised
    notes: list[str] = field(default_factory=list)  # assumptions and things left out, in words

    def summary(self) -> str:
        lines = [f"format: {self.format}", f"loaded {len(self.loaded)} tensors from the file"]
        if self.reinitialised:
            groups = sorted({_group(n) for n in self.reinitialised})
            lines.append(f"freshly initialised {len(self.reinitialised)} tensors: {', '.join(groups)}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _group(name: str) -> str:
    """``head.classifier.weight`` -> ``head.classifier``; ``ppm.branches.0.bn.bias`` -> ``ppm``."""
    parts = name.split(".")
    if parts[0] in ("ppm", "backbone"):
        return parts[0]
    return ".".join(parts[:2])


@dataclass
class LoadedModel:
    model: PSPNet  # eval mode, on the requested device
    config: ModelConfig
    classes: ClassTable
    provenance: dict[str, Any]  # where the weights came from, when, which training run
    report: LoadReport
    sources: list[Path]
    protocol: "TestProtocol | None" = None  # how to test it (None: the model's own, else the photo as it is)


__all__ = ["LoadReport", "LoadedModel"]
