"""Typed settings for the model, read and written as JSON or TOML.

Every checkpoint carries a :class:`ModelConfig`; the paper's choices are the defaults and the
ablations / other implementations' habits are fields, never code forks.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

Stem = Literal["plain", "deep"]
DilationPattern = Literal["all", "halved_first"]
Pooling = Literal["avg", "max"]

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, on the 0..255 scale
IMAGENET_STD = (58.395, 57.12, 57.375)

T = TypeVar("T")


@dataclass
class ModelConfig:
    """Architecture of one PSPNet. Defaults are the paper's / the authors' code (semseg)."""

    num_classes: int = 150
    # backbone
    depth: int = 50  # 18, 34, 50, 101, 152
    stem: Stem = "deep"  # "plain": 7x7 conv (torchvision); "deep": three 3x3 convs (semseg, CSAIL)
    stem_width: int | None = None  # deep stem output channels (w/2, w/2, w); None -> 2 * base_width
    base_width: int = 64  # channels of layer1's 3x3 convs; 64 is ResNet proper, smaller = tiny models
    output_stride: int = 8  # 8 (paper) or 16
    dilation: DilationPattern = "all"  # "all": semseg; "halved_first": CSAIL / mmseg first block
    basic_dilate_conv2: bool = True  # BasicBlock's 2nd conv dilated (CSAIL) or not (mmseg)
    # pyramid pooling module
    bins: tuple[int, ...] = (1, 2, 3, 6)
    pooling: Pooling = "avg"
    reduction: bool = True  # 1x1 conv + BN + ReLU per branch
    reduction_channels: int | None = None  # None -> in_channels / len(bins)
    use_ppm: bool = True  # False: the dilated-FCN baseline (no pyramid at all)
    align_corners: bool = True  # semseg True; CSAIL / mmseg False
    # heads
    head_channels: int = 512
    dropout: float = 0.1
    aux: bool = True
    aux_channels: int = 256  # CSAIL uses 512 (fc_dim / 4)
    # input normalisation, on the 0..255 scale, RGB order
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.bins = tuple(int(b) for b in self.bins)
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        problems = []
        if self.depth not in (18, 34, 50, 101, 152):
            problems.append(f"depth must be 18, 34, 50, 101 or 152, not {self.depth}")
        if self.stem not in ("plain", "deep"):
            problems.append(f"stem must be 'plain' or 'deep', not {self.stem!r}")
        if self.dilation not in ("all", "halved_first"):
            problems.append(f"dilation must be 'all' or 'halved_first', not {self.dilation!r}")
        if self.output_stride not in (8, 16):
            problems.append(f"output_stride must be 8 or 16, not {self.output_stride}")
        if self.pooling not in ("avg", "max"):
            problems.append(f"pooling must be 'avg' or 'max', not {self.pooling!r}")
        if self.use_ppm and (not self.bins or any(b < 1 for b in self.bins)):
            problems.append(f"bins must be positive integers, not {self.bins}")
        if self.num_classes < 1:
            problems.append(f"num_classes must be >= 1, not {self.num_classes}")
        if self.base_width < 1:
            problems.append(f"base_width must be >= 1, not {self.base_width}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), not {self.dropout}")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    @property
    def block(self) -> Literal["basic", "bottleneck"]:
        return "basic" if self.depth in (18, 34) else "bottleneck"

    @property
    def layer_channels(self) -> tuple[int, int, int, int]:
        """Output channels of layer1..layer4."""
        expansion = 1 if self.block == "basic" else 4
        return tuple(self.base_width * m * expansion for m in (1, 2, 4, 8))  # type: ignore[return-value]

    @property
    def deep_stem_width(self) -> int:
        return self.stem_width if self.stem_width is not None else 2 * self.base_width

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return from_dict(cls, data)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain JSON/TOML-able values (tuples become lists, None is dropped for TOML)."""
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a dataclass from a dict, refusing unknown keys with a clear message."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return cls(**kwargs)


def save_config(obj: Any, path: str | Path) -> None:
    """Write a dataclass as JSON or TOML, by the file's extension."""
    path = Path(path)
    data = to_dict(obj)
    if path.suffix.lower() == ".toml":
        text = tomli_w.dumps({k: v for k, v in data.items() if v is not None})
    else:
        text = json.dumps(data, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a dataclass from a JSON or TOML file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from exc
    return from_dict(cls, data)


__all__ = ["ModelConfig", "IMAGENET_MEAN", "IMAGENET_STD", "to_dict", "from_dict", "save_config", "load_config"]
