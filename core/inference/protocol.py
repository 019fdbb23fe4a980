"""The test protocol: how a model is run on an image of any size, recorded with the model.

A :class:`TestProtocol` says at which size the network sees a photo (``base_size``: the long
side at scale 1, or ``None`` for the photo's own size, "native"), in which windows (``crop``,
``stride_ratio``), at which ``scales`` (relative to the base size) and whether the mirror image
is averaged in (``flip``). ``procedure`` names whose arithmetic the rest follows, because the
three public implementations differ in more than their numbers:

``"semseg"`` (hszhao/semseg ``tool/test.py``, the authors')
    long side ``round(scale * base_size)``, the other side in proportion (Python ``round``);
    the float image resized bilinearly (OpenCV); padded with the mean to at least ``crop``;
    ``crop`` windows every ``ceil(crop * stride_ratio)`` pixels, the last flush with the edge;
    each window's softmax (of the logits upsampled to the window) and, with ``flip``, the
    softmax of its mirror image are averaged where windows overlap; the padding is cut off;
    the probabilities are resized bilinearly to the photo and averaged over the scales.
``"mmseg"`` (open-mmlab/mmsegmentation, ``EncoderDecoder`` whole / slide inference)
    keep-ratio resize of the uint8 image (OpenCV bilinear) so that the short side is at most
    ``base_size * scale`` and the long side at most ``max_long * scale`` (``int(x + 0.5)``);
    no padding; with ``crop``, windows as in ``slide_inference`` (stride ``ceil(crop *
    stride_ratio)``) whose *logits* are averaged; the logits are resized to the photo, then
    the softmax; with ``flip`` the whole image is mirrored (a second pass).
``"csail"`` (CSAILVision/semantic-segmentation-pytorch ``eval.py``, ``ValDataset``)
    short side ``base_size * scale`` capped so that the long side is at most ``max_long``
    (not scaled), ``int()``-truncated then rounded up to a multiple of 8; PIL bilinear resize
    of the uint8 image; the whole image at once; the logits at the network's output
    resolution are upsampled straight to the photo, then the softmax, averaged over scales.

``miou`` is the source's metric convention: ``"all"`` (semseg, CSAIL: the mean over every
class, a class absent from labels and prediction counting 0) or ``"present"`` (mmseg and
ours: the mean over the classes present in the labels or the prediction).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

Procedure = Literal["semseg", "mmseg", "csail"]
Side = Literal["long", "short"]
MeanOver = Literal["all", "present"]

PROCEDURES: tuple[str, ...] = ("semseg", "mmseg", "csail")
MULTI_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # the paper's / semseg's multi-scale set


@dataclass(frozen=True)
class TestProtocol:
    """How to run a model on a photo (see the module's docstring). The defaults are semseg's
    ADE20K single-scale test: long side 512, 473 windows at stride 2/3, mirror averaged."""

    __test__ = False  # not a pytest test class

    base_size: int | None = 512  # the side at scale 1 (``side``); None = the photo's own size ("native")
    crop: int | None = 473  # window side; None = the whole (scaled) image in one pass
    stride_ratio: float = 2 / 3
    scales: tuple[float, ...] = (1.0,)  # relative to base_size
    flip: bool = True
    side: Side = "long"  # which side base_size sets
    max_long: int | None = None  # a cap on the long side (mmseg: scaled with the scale; CSAIL: fixed)
    procedure: Procedure = "semseg"
    miou: MeanOver = "all"
    source: str = ""  # where the values come from, in words (shown to the user)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "flip", bool(self.flip))
        object.__setattr__(self, "stride_ratio", float(self.stride_ratio))
        problems = []
        if self.base_size is not None and (not isinstance(self.base_size, int) or self.base_size < 1):
            problems.append(f"base_size must be a positive number of pixels or 'native', not {self.base_size!r}")
        if self.crop is not None and (not isinstance(self.crop, int) or self.crop < 1):
            problems.append(f"crop must be a positive window size or none, not {self.crop!r}")
        if not 0 < self.stride_ratio <= 1:
            problems.append(f"stride_ratio must be in (0, 1], not {self.stride_ratio}")
        if not self.scales or any(not (s > 0 and math.isfinite(s)) for s in self.scales):
            problems.append(f"scales must be positive numbers, not {self.scales}")
        if self.side not in ("long", "short"):
            problems.append(f"side must be 'long' or 'short', not {self.side!r}")
        if self.max_long is not None and (not isinstance(self.max_long, int) or self.max_long < 1):
            problems.append(f"max_long must be a positive number of pixels or none, not {self.max_long!r}")
        if self.procedure not in PROCEDURES:
            problems.append(f"procedure must be one of {', '.join(PROCEDURES)}, not {self.procedure!r}")
        if self.miou not in ("all", "present"):
            problems.append(f"miou must be 'all' or 'present', not {self.miou!r}")
        if problems:
            raise ValueError("invalid test protocol: " + "; ".join(problems))

    # --- the sources' protocols ------------------------------------------------------------

    @classmethod
    def native(cls, **kw: Any) -> "TestProtocol":
        """The photo at its own size, whole, one scale, no mirror: what a bare Predictor does."""
        base = dict(base_size=None, crop=None, flip=False, miou="present", source="the image at its own size")
        base.update(kw)
        return cls(**base)

    @classmethod
    def semseg(cls, dataset: str = "ade20k", **kw: Any) -> "TestProtocol":
        """hszhao/semseg's test.py with its configs' TEST section: ADE20K and VOC base 512 /
        crop 473, Cityscapes base 2048 / crop 713; single scale; net_process mirrors (flip)."""
        presets = {"ade20k": (512, 473), "voc": (512, 473), "cityscapes": (2048, 713)}
        if dataset not in presets:
            raise ValueError(f"semseg has test settings for {', '.join(presets)}, not {dataset!r}")
        base, crop = presets[dataset]
        fields_ = dict(base_size=base, crop=crop, stride_ratio=2 / 3, scales=(1.0,), flip=True, side="long",
                       procedure="semseg", miou="all",
                       source=f"semseg {dataset} (tool/test.py, config/{dataset}/*_pspnet50.yaml TEST)")
        fields_.update(kw)
        return cls(**fields_)

    @classmethod
    def mmseg(cls, short: int = 512, long: int = 2048, *, crop: int | None = None, stride: int | None = None,
              **kw: Any) -> "TestProtocol":
        """mmsegmentation's test pipeline: Resize(scale=(long, short), keep_ratio=True) and
        test_cfg mode 'whole' (``crop`` None) or 'slide' with ``crop`` / ``stride``."""
        ratio = (stride / crop) if (crop and stride) else 2 / 3
        fields_ = dict(base_size=short, crop=crop, stride_ratio=ratio, scales=(1.0,), flip=False, side="short",
                       max_long=long, procedure="mmseg", miou="present",
                       source=f"mmseg (Resize scale=({long}, {short}), keep_ratio; "
                              + (f"slide {crop}/{stride})" if crop else "whole)"))
        fields_.update(kw)
        return cls(**fields_)

    @classmethod
    def csail(cls, **kw: Any) -> "TestProtocol":
        """CSAIL's eval.py with config/ade20k-*-ppm_deepsup.yaml: imgSizes (300, 375, 450, 525,
        600) as short sides, imgMaxSize 1000, padding_constant 8, no mirror."""
        fields_ = dict(base_size=600, crop=None, scales=(0.5, 0.625, 0.75, 0.875, 1.0), flip=False, side="short",
                       max_long=1000, procedure="csail", miou="all",
                       source="CSAIL (eval.py; imgSizes 300..600, imgMaxSize 1000)")
        fields_.update(kw)
        return cls(**fields_)

    @classmethod
    def for_training(cls, crop: int, base_size: int | None, flip: bool = True) -> "TestProtocol":
        """What our training recorded: its crop, the long side of its images (None: native)."""
        where = f"long side {base_size}" if base_size else "the images' own size"
        return cls(base_size=base_size, crop=crop, stride_ratio=2 / 3, scales=(1.0,), flip=flip, side="long",
                   procedure="semseg", miou="present",
                   source=f"our training (crop {crop}, images at {where})")

    # --- changing it ---------------------------------------------------------------------------

    def replace(self, **changes: Any) -> "TestProtocol":
        """A copy with some fields changed (``source`` says it was overridden)."""
        changes = {k: v for k, v in changes.items() if v is not _KEEP}
        if not changes:
            return self
        src = changes.pop("source", None)
        if src is None:
            said = ", ".join(f"{k} {_show(k, v)}" for k, v in changes.items())
            src = f"{self.source or 'protocol'}; overridden: {said}"
        return dataclasses.replace(self, source=src, **changes)

    # --- sizes -----------------------------------------------------------------------------------

    def scaled_size(self, h: int, w: int, scale: float = 1.0) -> tuple[int, int]:
        """(h, w) of the photo as the network sees it at ``scale``, by the procedure's arithmetic."""
        if h < 1 or w < 1:
            raise ValueError(f"image size must be positive, not {h}x{w}")
        if self.procedure == "semseg":
            return _semseg_size(h, w, scale, self.base_size, self.side, self.max_long)
        if self.procedure == "mmseg":
            return _mmseg_size(h, w, scale, self.base_size, self.side, self.max_long)
        return _csail_size(h, w, scale, self.base_size, self.side, self.max_long)

    @property
    def stride(self) -> int | None:
        if self.crop is None:
            return None
        return max(1, int(math.ceil(self.crop * self.stride_ratio - 1e-9)))

    @property
    def working_scale(self) -> float:
        """The scale whose pass is the working resolution: 1.0, or the one nearest to it."""
        return min(self.scales, key=lambda s: (abs(math.log(s)), s))

    # --- words and files -----------------------------------------------------------------------

    def describe(self) -> str:
        base = "native size" if self.base_size is None else f"{self.side} side {self.base_size}"
        if self.max_long is not None:
            base += f" (long side at most {self.max_long})"
        win = f"{self.crop} px windows at stride {self.stride}" if self.crop else "whole image"
        scales = ", ".join(f"{s:g}" for s in self.scales)
        return (f"{self.procedure} procedure: {base}, {win}, scale{'s' if len(self.scales) > 1 else ''} {scales}"
                f"{', flip' if self.flip else ', no flip'}; mIoU over {self.miou} classes")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["base_size"] = "native" if self.base_size is None else self.base_size
        d["scales"] = list(self.scales)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TestProtocol":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown test protocol field(s): {', '.join(unknown)}")
        d = dict(data)
        if d.get("base_size") == "native":
            d["base_size"] = None
        if "scales" in d:
            d["scales"] = tuple(d["scales"])
        return cls(**d)


def training_long_side(dataset: Any, indices: Sequence[int], samples: int = 32) -> int | None:
    """The median long side of (up to ``samples`` of) a training set's images, read from their
    headers: the size at which a model trained on them (random scale around 1) sees the world.
    None when the data set cannot tell (the protocol then keeps photos at their own size)."""
    from core.data.io import image_size
    from core.errors import StudioError

    idx = list(indices)
    if not idx or not hasattr(dataset, "image_path"):
        return None
    pick = [idx[round(i * (len(idx) - 1) / max(1, samples - 1))] for i in range(min(samples, len(idx)))]
    sides = []
    for i in dict.fromkeys(pick):
        try:
            sides.append(max(image_size(dataset.image_path(i))))
        except (StudioError, OSError, AttributeError, TypeError, ValueError):
            return None
    return int(sorted(sides)[len(sides) // 2]) if sides else None


_KEEP: Any = object()  # "leave this field as it is" for TestProtocol.replace / overrides


def _show(name: str, value: Any) -> str:
    if name == "base_size" and value is None:
        return "native"
    if name == "crop" and value is None:
        return "none (whole image)"
    if isinstance(value, tuple):
        return " ".join(f"{v:g}" for v in value)
    return str(value)


def parse_size(text: str, what: str, *, none_words: Sequence[str]) -> int | None:
    """A command-line size: a positive integer, or one of ``none_words`` (-> None)."""
    t = str(text).strip().lower()
    if t in none_words:
        return None
    try:
        v = int(t)
    except ValueError:
        raise ValueError(f"{what} must be a positive number of pixels or {' / '.join(none_words)}, not {text!r}") \
            from None
    if v < 1:
        raise ValueError(f"{what} must be a positive number of pixels or {' / '.join(none_words)}, not {text!r}")
    return v


# --- the three size rules ----------------------------------------------------------------------


def _semseg_size(h: int, w: int, scale: float, base: int | None, side: str, max_long: int | None):
    long, short = max(h, w), min(h, w)
    if base is None:
        target = round(scale * long)
    elif side == "long":
        target = round(scale * base)
    else:  # not semseg's own habit: short side base * scale, the long side in proportion
        target = round(scale * base / short * long)
    if max_long is not None:
        target = min(target, round(scale * max_long))
    target = max(1, target)
    if h > w:
        return target, max(1, round(target / float(h) * w))
    return max(1, round(target / float(w) * h)), target


def _mmseg_size(h: int, w: int, scale: float, base: int | None, side: str, max_long: int | None):
    long, short = max(h, w), min(h, w)
    if base is None:
        factor = scale
    else:
        edge = int(base * scale)  # mmseg 0.x MultiScaleFlipAug: int(img_scale * ratio)
        factor = edge / (short if side == "short" else long)
        if max_long is not None:
            factor = min(factor, int(max_long * scale) / long)
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def _csail_size(h: int, w: int, scale: float, base: int | None, side: str, max_long: int | None):
    long, short = max(h, w), min(h, w)
    if base is None:
        factor = scale
    else:
        edge = round(base * scale)  # one of imgSizes
        factor = edge / float(short if side == "short" else long)
    if max_long is not None:
        factor = min(factor, max_long / float(long))
    th, tw = int(h * factor), int(w * factor)
    return _up8(max(1, th)), _up8(max(1, tw))


def _up8(x: int, p: int = 8) -> int:
    return ((x - 1) // p + 1) * p


__all__ = ["TestProtocol", "PROCEDURES", "MULTI_SCALES", "parse_size", "training_long_side"]
