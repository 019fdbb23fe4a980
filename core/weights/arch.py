"""Reading the architecture off a state dict (under our names) and loading it into a model.

The tensors tell the depth (blocks per layer), the block type, the stem, the widths and the
class count; what they cannot tell comes from the format's defaults. Before anything is
loaded, every name and shape is compared with the model that config builds, so a refusal
names the first keys that did not fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from core.config import ModelConfig
from core.errors import CheckpointError
from core.model import PSPNet
from core.model.backbone import LAYERS
from core.weights.formats import first

CLASSIFIERS = ("head.classifier.weight", "head.classifier.bias", "aux_head.classifier.weight",
               "aux_head.classifier.bias")


def build_model(cfg: ModelConfig) -> PSPNet:
    """A freshly initialised PSPNet for ``cfg`` (training mode, on the CPU)."""
    return PSPNet(cfg)


def _depth_of(kind: str, counts: tuple[int, ...]) -> int | None:
    for depth, layout in LAYERS.items():
        if layout == counts and (kind == "basic") == (depth in (18, 34)):
            return depth
    return None


def _indices(t: Mapping[str, Tensor], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in t if (m := pattern.match(k))})


def infer_config(t: Mapping[str, Tensor], defaults: Mapping[str, Any], *, where: str, fmt: str,
                 name_of: Callable[[str], str] = str, backbone_only: bool = False,
                 depths: Iterable[int] = LAYERS) -> ModelConfig:
    """The :class:`ModelConfig` a state dict under our names was made with."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in t:
            raise CheckpointError(f"{where}: this {fmt} checkpoint lacks {name_of(key)}")
        return tuple(t[key].shape)

    fields: dict[str, Any] = dict(defaults)
    deep = "backbone.conv2.weight" in t
    fields["stem"] = "deep" if deep else "plain"
    base = shape("backbone.layer1.0.conv1.weight")[0]
    fields["base_width"] = base
    if deep:
        sw = shape("backbone.conv3.weight")[0]
        fields["stem_width"] = None if sw == 2 * base else sw
    kind = "bottleneck" if "backbone.layer1.0.conv3.weight" in t else "basic"
    counts = tuple(len(_indices(t, f"backbone.layer{i}.")) for i in range(1, 5))
    depth = _depth_of(kind, counts)
    if depth is None or depth not in tuple(depths):
        allowed = ", ".join(str(d) for d in depths)
        raise CheckpointError(f"{where}: the backbone has {kind} blocks {counts} per layer, which is no ResNet depth "
                              f"a {fmt} checkpoint has ({allowed})")
    fields["depth"] = depth
    c3, c4 = (base * m * (1 if kind == "basic" else 4) for m in (4, 8))
    if not backbone_only:
        fields["num_classes"] = shape("head.classifier.weight")[0]
        fields["head_channels"] = shape("head.conv.weight")[0]
        fields["aux"] = "aux_head.conv.weight" in t
        if fields["aux"]:
            fields["aux_channels"] = shape("aux_head.conv.weight")[0]
            n_aux = shape("aux_head.classifier.weight")[0]
            if n_aux != fields["num_classes"]:
                raise CheckpointError(f"{where}: the main classifier has {fields['num_classes']} classes but the "
                                      f"auxiliary one {n_aux} ({name_of('aux_head.classifier.weight')})")
        fields.update(_pyramid(t, fields, c4, shape, where, fmt))
    return _make_config(fields, where)


def _pyramid(t: Mapping[str, Tensor], fields: dict[str, Any], c4: int, shape, where: str, fmt: str) -> dict:
    bins = tuple(fields.get("bins", ModelConfig.bins))
    branches = _indices(t, "ppm.branches.")
    if branches:
        if len(branches) != len(bins):
            raise CheckpointError(f"{where}: the pyramid has {len(branches)} branches, but {fmt} checkpoints do not "
                                  f"store their bin sizes and this format's default is {bins}")
        width = shape("ppm.branches.0.conv.weight")[0]
        return {"use_ppm": True, "reduction": True,
                "reduction_channels": None if width == c4 // len(bins) else width}
    # no branch parameters: either no pyramid at all, or one without the 1x1 reductions
    head_in = shape("head.conv.weight")[1]
    if head_in == c4 * (1 + len(bins)):
        return {"use_ppm": True, "reduction": False}
    return {"use_ppm": False}


def _make_config(fields: dict[str, Any], where: str) -> ModelConfig:
    try:
        return ModelConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: the weights describe no valid model: {exc}") from None


@dataclass
class Assembly:
    model: PSPNet
    loaded: list[str]
    reinitialised: list[str]
    missing_counters: list[str] = field(default_factory=list)  # num_batches_tracked absent from old files


def assemble(cfg: ModelConfig, tensors: Mapping[str, Tensor], *, where: str, fmt: str,
             name_of: Callable[[str], str] = str, fresh: Callable[[str], bool] = lambda k: False) -> Assembly:
    """Build the model for ``cfg`` and fill it from ``tensors``; names for which ``fresh`` is
    true keep their new initialisation. Refuses (before loading anything) on any key or shape
    that does not fit."""
    model = build_model(cfg)
    expected = model.state_dict()
    problems = fit_problems(expected, tensors, name_of=name_of, fresh=fresh)
    if problems:
        raise CheckpointError(f"{where}: the {fmt} weights do not fit the model they describe "
                              f"({describe(cfg)}): " + "; ".join(problems))
    state = {k: v for k, v in tensors.items() if not fresh(k)}
    with torch.no_grad():
        model.load_state_dict(state, strict=False)  # every key and shape was checked above
    reinit = [k for k in expected if fresh(k)]
    counters = [k for k in expected if k not in tensors and k.endswith("num_batches_tracked") and not fresh(k)]
    return Assembly(model, list(state), reinit, counters)


def fit_problems(expected: Mapping[str, Tensor], tensors: Mapping[str, Tensor], *,
                 name_of: Callable[[str], str] = str, fresh: Callable[[str], bool] = lambda k: False) -> list[str]:
    """What keeps ``tensors`` from loading into a module whose state dict is ``expected`` (in words)."""
    unexpected = [k for k in tensors if k not in expected]
    missing = [k for k in expected if k not in tensors and not fresh(k) and not k.endswith("num_batches_tracked")]
    wrong = [k for k, v in tensors.items()
             if k in expected and not fresh(k) and tuple(v.shape) != tuple(expected[k].shape)]
    problems = []
    if wrong:
        problems.append("shapes differ: " + first([f"{name_of(k)} {tuple(tensors[k].shape)} where the model has "
                                                    f"{tuple(expected[k].shape)}" for k in wrong], 3))
    if missing:
        problems.append("missing: " + first([name_of(k) for k in missing]))
    if unexpected:
        problems.append("not in the model: " + first([name_of(k) for k in unexpected]))
    return problems


def describe(cfg: ModelConfig) -> str:
    stem = f"{cfg.stem} stem" + (f" {cfg.deep_stem_width}" if cfg.stem == "deep" else "")
    return (f"ResNet-{cfg.depth}, {stem}, base width {cfg.base_width}, {cfg.num_classes} classes, "
            f"head {cfg.head_channels}" + (f", aux {cfg.aux_channels}" if cfg.aux else ", no aux head"))


__all__ = ["build_model", "infer_config", "assemble", "fit_problems", "Assembly", "describe", "CLASSIFIERS"]
