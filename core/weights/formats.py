"""The foreign checkpoint layouts this version reads: a small registry of formats.

Each format is a detector (does this state dict look like mine?) and a key mapper (regular
expressions from its names to ours), plus what the implementation uses for the settings its
files cannot tell (bins, dilation pattern, align_corners). Architecture details that the
tensors do tell (depth, stem, widths, class count) are read from them in :mod:`.arch`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from torch import Tensor

from core.errors import CheckpointError
from core.inference.protocol import TestProtocol

Rule = tuple[str, str]  # (regular expression matching a whole foreign key, replacement giving ours)

_LAYERS: Rule = (r"(layer[1-4]\.\d+\..+)", r"backbone.\1")
_DEEP_STEM: Rule = (r"(conv[123]|bn[123])\.(.+)", r"backbone.\1.\2")


def _seq(prefix: str, target: str, index: int | str) -> Rule:
    """``prefix.index.x`` -> ``target.x`` (an nn.Sequential slot)."""
    return (rf"{re.escape(prefix)}\.{index}\.(.+)", rf"{target}.\1")


@dataclass(frozen=True)
class ForeignFormat:
    name: str
    expects: str  # the layout in words, for refusals
    detect: Callable[[Mapping[str, Tensor]], bool]
    rules: tuple[Rule, ...]
    defaults: Mapping[str, Any]  # ModelConfig fields the file cannot tell: this implementation's values
    assumption: str  # the note saying what was assumed
    drop: tuple[str, ...] = ()  # regexes of keys read but knowingly not used
    backbone_only: bool = False  # the heads are not in such files: they are freshly initialised
    depths: tuple[int, ...] = (18, 34, 50, 101, 152)
    class_names: Callable[[dict[str, Any]], tuple[list[str], list | None] | None] = field(
        default=lambda extras: None)
    needs: Callable[[Mapping[str, Tensor]], str | None] = field(default=lambda t: None)  # problem or None
    # ModelConfig fields the file's own metadata gives (over ``defaults``): extras -> (fields, note) or None
    config_fields: Callable[[dict[str, Any]], tuple[dict[str, Any], str] | None] = field(
        default=lambda extras: None)
    # the source's own test protocol, as far as the file tells: (extras, class count) -> (protocol, note)
    protocol: Callable[[dict[str, Any], int], tuple[TestProtocol, str]] = field(
        default=lambda extras, n: (TestProtocol(), "no test protocol is known for this format: used semseg's ADE20K "
                                                    "protocol (long side 512, 473 windows, mirrored)"))

    @cached_property
    def _compiled(self) -> list[tuple[re.Pattern[str], str]]:
        return [(re.compile(p), r) for p, r in self.rules]

    def rename(self, key: str) -> str | None:
        for pattern, repl in self._compiled:
            m = pattern.fullmatch(key)
            if m:
                return m.expand(repl)
        return None

    def dropped(self, key: str) -> bool:
        return any(re.fullmatch(p, key) for p in self.drop)


@dataclass
class Mapped:
    """A foreign state dict under our names."""

    fmt: ForeignFormat
    tensors: dict[str, Tensor]  # our name -> tensor
    origin: dict[str, str]  # our name -> the file's name
    dropped: list[str]  # the file's names that were read but not used


def map_keys(fmt: ForeignFormat, tensors: Mapping[str, Tensor], where: str) -> Mapped:
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    dropped: list[str] = []
    unfit: list[str] = []
    for key, value in tensors.items():
        if fmt.dropped(key):
            dropped.append(key)
            continue
        ours = fmt.rename(key)
        if ours is None:
            unfit.append(key)
        else:
            out[ours] = value
            origin[ours] = key
    if unfit:
        raise CheckpointError(f"{where}: looks like a {fmt.name} checkpoint ({fmt.expects}) but these keys do not "
                              f"fit that format: {first(unfit)}")
    problem = fmt.needs(tensors)
    if problem:
        raise CheckpointError(f"{where}: {problem}")
    return Mapped(fmt, out, origin, dropped)


def detect(tensors: Mapping[str, Tensor], where: str) -> ForeignFormat:
    for fmt in FORMATS:
        if fmt.detect(tensors):
            return fmt
    known = "; ".join(f"{f.name} ({f.expects})" for f in FORMATS)
    raise CheckpointError(f"{where}: unknown checkpoint layout: its keys fit none of the formats this version "
                          f"reads (pspnet-studio safetensors; {known}); first keys: {first(list(tensors))}")


def first(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def _has_prefix(*prefixes: str) -> Callable[[Mapping[str, Tensor]], bool]:
    return lambda t: any(k.startswith(prefixes) for k in t)


def _conv1_kernel(t: Mapping[str, Tensor]) -> int | None:
    w = t.get("conv1.weight")
    return int(w.shape[-1]) if w is not None and w.dim() == 4 else None


def _is_backbone(t: Mapping[str, Tensor]) -> bool:
    return "layer1.0.conv1.weight" in t and all(re.match(r"(conv[123]|bn[123]|layer[1-4]|fc)\.", k) for k in t)


def _mmseg_classes(extras: dict[str, Any]) -> tuple[list[str], list | None] | None:
    meta = extras.get("meta")
    if not isinstance(meta, Mapping):
        return None
    source = meta.get("dataset_meta") if isinstance(meta.get("dataset_meta"), Mapping) else meta
    names = source.get("classes", source.get("CLASSES"))
    palette = source.get("palette", source.get("PALETTE"))
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names), (list(palette) if isinstance(palette, (list, tuple)) else None)
    return None


def _csail_needs_encoder(t: Mapping[str, Tensor]) -> str | None:
    if not any(k.startswith("layer4.") for k in t):
        return ("a CSAIL decoder needs its encoder: pass both files (encoder_epoch_N.pth and decoder_epoch_N.pth, "
                "in either order)")
    return None


_DATASET_BY_COUNT = {150: "ade20k", 21: "voc", 19: "cityscapes"}


def _semseg_protocol(extras: dict[str, Any], n: int) -> tuple[TestProtocol, str]:
    dataset = _DATASET_BY_COUNT.get(n)
    if dataset is None:
        return (TestProtocol.semseg("ade20k"),
                f"semseg has test settings for 150 (ADE20K), 21 (VOC) and 19 (Cityscapes) classes; this file has {n}: "
                "used its ADE20K protocol (long side 512, 473 windows at stride 316, mirrored)")
    p = TestProtocol.semseg(dataset)
    return p, (f"test protocol: semseg's for {dataset} ({n} classes): long side {p.base_size}, {p.crop} windows at "
               f"stride {p.stride}, mirrored, single scale (tool/test.py)")


def _csail_protocol(extras: dict[str, Any], n: int) -> tuple[TestProtocol, str]:
    return (TestProtocol.csail(),
            "test protocol: CSAIL's eval.py (short side 300, 375, 450, 525, 600 capped at a long side of 1000, "
            "averaged; no windows, no mirror); --scales 1 runs only the 600 one")


def _mmseg_config_text(extras: dict[str, Any]) -> str | None:
    """The mmseg config a checkpoint carries (``meta['config']`` of 0.x, ``meta['cfg']`` of 1.x)."""
    meta = extras.get("meta")
    if isinstance(meta, Mapping):
        return next((meta[k] for k in ("config", "cfg") if isinstance(meta.get(k), str)), None)
    return None


def _mmseg_config_fields(extras: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """``align_corners`` and ``pool_scales`` of the decode head in the config the file carries
    (the Cityscapes 769x769 models upsample with align_corners=True, the others with False)."""
    text = _mmseg_config_text(extras)
    head = _bracketed(text, "decode_head", "(", ")") if text else None
    if head is None:
        return None
    fields: dict[str, Any] = {}
    m = re.search(r"\balign_corners\s*=\s*(True|False)\b", head)
    if m:
        fields["align_corners"] = m.group(1) == "True"
    m = re.search(r"\bpool_scales\s*=\s*[\(\[]([^\)\]]*)[\)\]]", head)
    if m and re.findall(r"\d+", m.group(1)):
        fields["bins"] = tuple(int(v) for v in re.findall(r"\d+", m.group(1)))
    if not fields:
        return None
    said = ", ".join(f"{'pool_scales' if k == 'bins' else k}={v}" for k, v in fields.items())
    return fields, f"from the mmseg config in the file's meta, over the assumption: {said}"


def _mmseg_protocol(extras: dict[str, Any], n: int) -> tuple[TestProtocol, str]:
    text = _mmseg_config_text(extras)
    if text:
        found = _mmseg_from_config(text)
        if found is not None:
            return found, f"test protocol: from the mmseg config in the file's meta: {found.source}"
    if n == 19:
        return (TestProtocol.mmseg(1024, 2048, source="mmseg Cityscapes 512x1024 configs (Resize (2048, 1024), "
                                                       "whole)"),
                "test protocol: the file does not carry its mmseg config; assumed the Cityscapes 512x1024 configs' "
                "(keep-ratio resize to (2048, 1024), whole image); the 769x769 models test in 769 windows at stride "
                "513 after a resize to (2049, 1025): --crop 769")
    known = {150: "ADE20K", 21: "VOC"}.get(n)
    p = TestProtocol.mmseg(512, 2048, source=f"mmseg {known or 'ADE20K-style'} configs (Resize (2048, 512), whole)")
    return p, (f"test protocol: the file does not carry its mmseg config; assumed the {known or 'ADE20K'} configs' "
               "(keep-ratio resize to (2048, 512), whole image)" + ("" if known else f" for its {n} classes"))


def _mmseg_from_config(text: str) -> TestProtocol | None:
    """The test protocol in an mmseg config's text (``meta['config']`` of 0.x checkpoints,
    ``meta['cfg']`` of 1.x): the test pipeline's keep-ratio Resize and the model's test_cfg."""
    pipeline = _bracketed(text, "test_pipeline", "[", "]")
    if pipeline is None:
        return None
    m = re.search(r"\b(?:img_)?scale\s*=\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", pipeline)
    if m is None:
        return None
    a, b = int(m.group(1)), int(m.group(2))
    long, short = max(a, b), min(a, b)
    flip = re.search(r"flip\s*=\s*True", pipeline) is not None
    ratios = re.search(r"img_ratios\s*=\s*\[([^\]]*)\]", pipeline)
    scales = tuple(float(v) for v in re.findall(r"[\d.]+", ratios.group(1))) if ratios else (1.0,)
    test_cfg = _bracketed(text, "test_cfg", "(", ")") or ""
    crop = stride = None
    if re.search(r"mode\s*=\s*['\"]slide['\"]", test_cfg):
        c = re.search(r"crop_size\s*=\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", test_cfg)
        st = re.search(r"stride\s*=\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", test_cfg)
        if c is None or st is None:
            return None
        crop, stride = max(int(c.group(1)), int(c.group(2))), max(int(st.group(1)), int(st.group(2)))
    mode = f"slide {crop}/{stride}" if crop else "whole"
    return TestProtocol.mmseg(short, long, crop=crop, stride=stride, flip=flip, scales=scales or (1.0,),
                              source=f"mmseg config in the checkpoint (Resize ({long}, {short}), keep_ratio; {mode}"
                                     f"{', flip' if flip else ''})")


def _bracketed(text: str, name: str, open_: str, close: str) -> str | None:
    """The text between the brackets that follow ``name =`` / ``name=dict`` (balanced)."""
    m = re.search(rf"\b{re.escape(name)}\s*=\s*(?:dict\s*)?{re.escape(open_)}", text)
    if m is None:
        return None
    depth, i = 1, m.end()
    while i < len(text) and depth:
        ch = text[i]
        depth += (ch in "([{") - (ch in ")]}")
        i += 1
    return text[m.end():i - 1]


def _backbone_protocol(extras: dict[str, Any], n: int) -> tuple[TestProtocol, str]:
    return (TestProtocol(), "an ImageNet backbone has no test protocol of its own: recorded semseg's ADE20K protocol "
                            "(long side 512, 473 windows, mirrored); training records its own")


_BINS_NOTE = "bins (1, 2, 3, 6)"

SEMSEG = ForeignFormat(
    name="semseg",
    expects="hszhao/semseg PSPNet: layer0.*, layerN.*, ppm.features.*, cls.*, aux.*",
    detect=_has_prefix("layer0.", "cls.", "ppm.features."),
    rules=(
        _seq("layer0", "backbone.conv1", 0), _seq("layer0", "backbone.bn1", 1),
        _seq("layer0", "backbone.conv2", 3), _seq("layer0", "backbone.bn2", 4),
        _seq("layer0", "backbone.conv3", 6), _seq("layer0", "backbone.bn3", 7),
        _LAYERS,
        (r"ppm\.features\.(\d+)\.1\.(.+)", r"ppm.branches.\1.conv.\2"),
        (r"ppm\.features\.(\d+)\.2\.(.+)", r"ppm.branches.\1.bn.\2"),
        _seq("cls", "head.conv", 0), _seq("cls", "head.bn", 1), _seq("cls", "head.classifier", 4),
        _seq("aux", "aux_head.conv", 0), _seq("aux", "aux_head.bn", 1), _seq("aux", "aux_head.classifier", 4),
    ),
    defaults=dict(dilation="all", output_stride=8, align_corners=True, bins=(1, 2, 3, 6), dropout=0.1),
    assumption=(f"semseg files do not store the bins, dilation or align_corners; assumed semseg's: {_BINS_NOTE}, "
                "dilation 2 / 4 in every block of layer3 / layer4 (output stride 8), align_corners=True"),
    depths=(50, 101, 152),  # semseg's dilation code only handles bottleneck ResNets
    protocol=_semseg_protocol,
)

CSAIL = ForeignFormat(
    name="csail",
    expects="CSAILVision encoder (conv1..3, bn1..3, layerN) + ppm / ppm_deepsup decoder (ppm.i.1/2, conv_last.*, "
            "cbr_deepsup.*, conv_last_deepsup.*)",
    detect=_has_prefix("conv_last.", "cbr_deepsup.", "conv_last_deepsup."),
    rules=(
        _DEEP_STEM, _LAYERS,
        (r"ppm\.(\d+)\.1\.(.+)", r"ppm.branches.\1.conv.\2"), (r"ppm\.(\d+)\.2\.(.+)", r"ppm.branches.\1.bn.\2"),
        _seq("conv_last", "head.conv", 0), _seq("conv_last", "head.bn", 1), _seq("conv_last", "head.classifier", 4),
        _seq("cbr_deepsup", "aux_head.conv", 0), _seq("cbr_deepsup", "aux_head.bn", 1),
        (r"conv_last_deepsup\.(.+)", r"aux_head.classifier.\1"),
    ),
    defaults=dict(dilation="halved_first", basic_dilate_conv2=True, output_stride=8, align_corners=False,
                  bins=(1, 2, 3, 6), dropout=0.1),
    assumption=(f"CSAIL files do not store the bins, dilation or align_corners; assumed CSAIL's: {_BINS_NOTE}, "
                "output stride 8 with half the dilation in the first block of layer3 / layer4, "
                "align_corners=False"),
    needs=_csail_needs_encoder,
    protocol=_csail_protocol,
)

MMSEG = ForeignFormat(
    name="mmseg",
    expects="mmsegmentation PSPNet: backbone.stem.* / backbone.layerN.*, decode_head.psp_modules.*, "
            "decode_head.bottleneck.*, decode_head.conv_seg.*, auxiliary_head.convs.0.*, auxiliary_head.conv_seg.*",
    detect=_has_prefix("decode_head.", "auxiliary_head."),
    rules=(
        _seq("backbone.stem", "backbone.conv1", 0), _seq("backbone.stem", "backbone.bn1", 1),
        _seq("backbone.stem", "backbone.conv2", 3), _seq("backbone.stem", "backbone.bn2", 4),
        _seq("backbone.stem", "backbone.conv3", 6), _seq("backbone.stem", "backbone.bn3", 7),
        (r"backbone\.((conv1|bn1)\..+)", r"backbone.\1"),  # ResNetV1b (plain stem)
        (r"backbone\.(layer[1-4]\.\d+\..+)", r"backbone.\1"),
        (r"decode_head\.psp_modules\.(\d+)\.1\.conv\.(.+)", r"ppm.branches.\1.conv.\2"),
        (r"decode_head\.psp_modules\.(\d+)\.1\.bn\.(.+)", r"ppm.branches.\1.bn.\2"),
        (r"decode_head\.bottleneck\.conv\.(.+)", r"head.conv.\1"),
        (r"decode_head\.bottleneck\.bn\.(.+)", r"head.bn.\1"),
        (r"decode_head\.conv_seg\.(.+)", r"head.classifier.\1"),
        (r"auxiliary_head\.convs\.0\.conv\.(.+)", r"aux_head.conv.\1"),
        (r"auxiliary_head\.convs\.0\.bn\.(.+)", r"aux_head.bn.\1"),
        (r"auxiliary_head\.conv_seg\.(.+)", r"aux_head.classifier.\1"),
    ),
    defaults=dict(dilation="halved_first", basic_dilate_conv2=False, output_stride=8, align_corners=False,
                  bins=(1, 2, 3, 6), dropout=0.1),
    assumption=(f"mmseg state dicts do not store pool_scales, dilations or align_corners; assumed the PSPNet "
                f"configs' values: {_BINS_NOTE}, dilations (1, 1, 2, 4) with contract_dilation (half in the first "
                "block), align_corners=False"),
    class_names=_mmseg_classes,
    config_fields=_mmseg_config_fields,
    protocol=_mmseg_protocol,
)

_BACKBONE_NOTE = ("the heads are new, so their layout is free; used the defaults: bins (1, 2, 3, 6), dilation 2 / 4 "
                  "in every block of layer3 / layer4, align_corners=True")

TORCHVISION_RESNET = ForeignFormat(
    name="torchvision-resnet",
    expects="torchvision ImageNet ResNet: conv1 (7x7), bn1, layerN.*, fc.*",
    detect=lambda t: _conv1_kernel(t) == 7 and _is_backbone(t),
    rules=((r"((conv1|bn1)\..+)", r"backbone.\1"), _LAYERS),
    drop=(r"fc\..+",),
    defaults={},
    assumption=_BACKBONE_NOTE,
    backbone_only=True,
    protocol=_backbone_protocol,
)

SEMSEG_RESNET_INIT = ForeignFormat(
    name="semseg-resnet-init",
    expects="deep-stem ImageNet ResNet (semseg resnet50_v2.pth; CSAIL encoders): conv1..3 (3x3), bn1..3, layerN.*, "
            "fc.*",
    detect=lambda t: _conv1_kernel(t) == 3 and "conv2.weight" in t and _is_backbone(t),
    rules=(_DEEP_STEM, _LAYERS),
    drop=(r"fc\..+",),
    defaults={},
    assumption=_BACKBONE_NOTE,
    backbone_only=True,
    protocol=_backbone_protocol,
)

STUDIO_STATE_DICT = ForeignFormat(
    name="pspnet-studio-state-dict",
    expects="a bare PSPNet Studio state dict: backbone.*, ppm.branches.*, head.*, aux_head.*",
    detect=lambda t: "backbone.conv1.weight" in t,
    rules=((r"((backbone|ppm|head|aux_head)\..+)", r"\1"),),
    defaults={},
    assumption=("a bare state dict does not store the bins, dilation or align_corners; assumed the defaults: "
                "bins (1, 2, 3, 6), dilation 2 / 4 in every block of layer3 / layer4, align_corners=True"),
    protocol=lambda extras, n: (TestProtocol.native(), "a bare state dict has no test protocol: the image at its own "
                                                       "size, whole, one scale"),
)

# detection order: the first whose detector accepts the keys reads the file
FORMATS: tuple[ForeignFormat, ...] = (MMSEG, SEMSEG, CSAIL, TORCHVISION_RESNET, SEMSEG_RESNET_INIT, STUDIO_STATE_DICT)

__all__ = ["ForeignFormat", "Mapped", "FORMATS", "detect", "map_keys", "first"]
