"""ONNX export of a PSPNet, adaptive pyramid pooling included.

ONNX has no adaptive pooling operator, and PyTorch's exporters cannot export
``AdaptiveMaxPool2d`` at all nor ``AdaptiveAvgPool2d`` when the input is not a multiple of the
bin count (the 3- and 6-bin levels on most image sizes). Before exporting, every adaptive pool
is therefore swapped (on a copy of the model) for :class:`ExactAdaptivePool2d`, which computes
the same thing with plain slices: output cell ``i`` of ``b`` covers rows
``floor(i * H / b) .. ceil((i + 1) * H / b)`` (PyTorch's own formula, overlapping regions
included), reduced with ``mean`` or ``amax`` and concatenated. Because average and maximum over
a rectangle are separable, rows are reduced first and then columns. The result equals PyTorch's
up to float summation order.

The exported graph:

- input ``image``: float32 ``(N, 3, H, W)``, RGB on the 0..255 scale; the model's mean/std
  normalisation is part of the graph (``normalize=False`` exports a graph whose input is the
  already normalised image instead; ``metadata["input"]`` says which).
- outputs ``main`` and (when the model has an auxiliary head) ``aux``: float32 logits
  ``(N, classes, H, W)`` at the input size. Softmax / argmax are left to the caller.
- metadata properties: ``pspnet_config`` (ModelConfig JSON), ``classes`` (class table JSON),
  ``input``, ``mean``, ``std``.

Sizes: by default height and width are fixed to ``size`` (the pooling regions are constants;
the batch dimension stays free). With ``dynamic=True`` batch, height and width (>= 16) are
symbolic: the slice bounds of the pooling are computed in the graph from the feature size, so
every input size gives PyTorch's result (the check runs at ``size`` and at a second size).
Dynamic export needs the dynamo-based exporter (``torch.onnx.export(dynamo=True)``, which needs
``onnxscript``) and takes longer (about 15-30 s for a tiny model on 2 CPU cores).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.classes import ClassTable
from core.errors import StudioError
from core.model.pspnet import PSPNet

DEFAULT_OPSET = 18
REL_TOLERANCE = 1e-4  # max |onnx - torch| / max |torch logit|
EXPORTERS = ("auto", "dynamo", "torchscript")
INSTALL_HINT = 'pip install -e ".[onnx]" in the clone, or pip install onnx onnxscript onnxruntime'


class ExportError(StudioError):
    """The model could not be exported, or the exported graph disagrees with PyTorch."""


def require_onnx() -> None:
    """Raise :class:`ExportError` saying what to install when the onnx package is missing: both
    exporters write through it (the dynamo one through onnxscript, which needs it too)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ExportError(f"ONNX export needs the onnx package, which is not installed: {INSTALL_HINT}") from None


class ExactAdaptivePool2d(nn.Module):
    """Adaptive average / max pooling to ``bins x bins`` written with slices, mean/amax and cat.

    Numerically the same as ``nn.AdaptiveAvgPool2d`` / ``nn.AdaptiveMaxPool2d`` for every input
    size, and exportable to ONNX (fixed or symbolic sizes)."""

    def __init__(self, bins: int, mode: str = "avg"):
        super().__init__()
        if mode not in ("avg", "max"):
            raise ValueError(f"pooling mode must be 'avg' or 'max', not {mode!r}")
        self.bins = int(bins)
        self.mode = mode

    def _reduce(self, x: Tensor, dim: int) -> Tensor:
        n, b = x.shape[dim], self.bins
        parts = []
        for i in range(b):
            start = (i * n) // b
            end = ((i + 1) * n + b - 1) // b  # ceil((i + 1) * n / b) with non-negative integers only
            part = x.narrow(dim, start, end - start)
            parts.append(part.mean(dim, keepdim=True) if self.mode == "avg" else part.amax(dim, keepdim=True))
        return parts[0] if b == 1 else torch.cat(parts, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self._reduce(self._reduce(x, -2), -1)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, mode={self.mode!r}"


def replace_adaptive_pooling(module: nn.Module) -> int:
    """Swap every square ``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` in ``module`` (in place)
    for :class:`ExactAdaptivePool2d`; returns how many were replaced."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            size = child.output_size
            sizes = (size, size) if isinstance(size, int) else tuple(size)
            if len(set(sizes)) != 1 or sizes[0] is None:
                raise ExportError(f"cannot export adaptive pooling to {size}: only square b x b grids are supported")
            if isinstance(child, nn.AdaptiveMaxPool2d) and child.return_indices:
                raise ExportError("cannot export adaptive max pooling that returns indices")
            mode = "avg" if isinstance(child, nn.AdaptiveAvgPool2d) else "max"
            setattr(module, name, ExactAdaptivePool2d(int(sizes[0]), mode))
            count += 1
        else:
            count += replace_adaptive_pooling(child)
    return count


class ExportWrapper(nn.Module):
    """The graph that is exported: (optional normalisation) -> backbone -> pyramid -> heads,
    returning plain tensors. Written without Python ints taken from shapes so that symbolic
    (dynamic) sizes flow through."""

    def __init__(self, model: PSPNet, normalize: bool = True):
        super().__init__()
        self.model = model
        self.normalize = normalize
        self.align_corners = bool(model.cfg.align_corners)

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        x = (image - m.mean) / m.std if self.normalize else image
        stages = m.backbone(x)
        size = x.shape[-2:]
        fused = m.ppm(stages.layer4)[0] if m.ppm is not None else stages.layer4
        main = F.interpolate(m.head(fused), size=size, mode="bilinear", align_corners=self.align_corners)
        if m.aux_head is None:
            return (main,)
        aux = F.interpolate(m.aux_head(stages.layer3), size=size, mode="bilinear", align_corners=self.align_corners)
        return main, aux


@dataclass
class CheckResult:
    """onnxruntime against PyTorch on one input size."""

    size: tuple[int, int]
    output: str
    max_abs_diff: float
    max_abs_logit: float
    rel_diff: float
    argmax_equal: float  # fraction of pixels whose argmax agrees
    argmax_ties: bool  # every disagreeing pixel is a near tie (top-2 margin within the tolerance)
    ok: bool

    def summary(self) -> str:
        h, w = self.size
        verdict = "OK" if self.ok else "MISMATCH"
        return (f"{verdict} {self.output} at {h}x{w}: max |diff| {self.max_abs_diff:.3g} = {self.rel_diff:.3g} of max "
                f"|logit| {self.max_abs_logit:.3g} (limit {REL_TOLERANCE:g}); argmax equal on "
                f"{100 * self.argmax_equal:.3f}% of pixels" + ("" if self.argmax_equal == 1.0 else
                                                               (" (the rest are ties)" if self.argmax_ties else "")))


@dataclass
class ExportReport:
    path: Path
    size: tuple[int, int]
    dynamic: bool
    opset: int
    normalize: bool
    outputs: tuple[str, ...]
    pools_replaced: int
    exporter: str
    checks: list[CheckResult] = field(default_factory=list)
    check_skipped: str | None = None  # why no check ran (e.g. onnxruntime missing)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> str:
        h, w = self.size
        sizes = "dynamic batch/height/width" if self.dynamic else f"fixed size {h}x{w}"
        lines = [f"wrote {self.path} (opset {self.opset}, {sizes}, {self.exporter} exporter, outputs: "
                 f"{', '.join(self.outputs)}; input: {'RGB 0..255' if self.normalize else 'normalised image'}; "
                 f"{self.pools_replaced} adaptive pooling layer(s) replaced by exact slices)"]
        if self.check_skipped:
            lines.append(f"check skipped: {self.check_skipped}")
        lines += [f"check: {c.summary()}" for c in self.checks]
        return "\n".join(lines)


def export_onnx(model: PSPNet, path: str | Path, *, size: Sequence[int] = (473, 473), dynamic: bool = False,
                opset: int = DEFAULT_OPSET, normalize: bool = True, classes: ClassTable | None = None,
                check: bool | None = None, strict: bool = False, exporter: str = "auto") -> ExportReport:
    """Export ``model`` to ONNX at ``path`` (written atomically).

    ``check``: compare onnxruntime with PyTorch (None: when onnxruntime is installed; True: it
    must be installed). ``strict``: a mismatch raises :class:`ExportError` (the file stays, so it
    can be looked at). ``exporter``: "dynamo" (torch.export based, needs onnxscript), "torchscript"
    (the legacy exporter: fixed sizes only, quicker) or "auto" (dynamo, falling back to torchscript
    for a fixed size). The caller's model is not modified (a CPU copy is exported)."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    if dynamic and exporter == "torchscript":
        raise ExportError("dynamic sizes need the dynamo exporter (the torchscript one fixes the pooling regions)")
    path = Path(path)
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"export size must be positive, not {h}x{w}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder for the ONNX file")
    require_onnx()
    runtime = _onnxruntime()
    if check and runtime is None:
        raise ExportError(f"cannot check the export: onnxruntime is not installed: {INSTALL_HINT}")
    reference = copy.deepcopy(model).float().cpu().eval()  # what the check compares against: the model as it is
    net = copy.deepcopy(reference)
    pools = replace_adaptive_pooling(net)
    wrapper = ExportWrapper(net, normalize).eval()
    outputs = ("main", "aux") if net.aux_head is not None else ("main",)
    # a batch of 2: torch.export specialises dimensions whose example size is 1
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    if not normalize:
        example = net.normalize(example)
    used = _export(wrapper, example, path, outputs, dynamic, opset, exporter)
    _add_metadata(path, net, classes, normalize)
    report = ExportReport(path, (h, w), dynamic, opset, normalize, outputs, pools, used)
    if check is False:
        report.check_skipped = "not asked for"
    elif runtime is None:
        report.check_skipped = "onnxruntime is not installed"
    else:
        sizes = [(h, w)] + ([(h + 17, w + 9)] if dynamic else [])
        for s in sizes:
            report.checks.extend(check_onnx(path, reference, s, normalize=normalize))
        if strict and not report.ok:
            raise ExportError(f"{path}: the ONNX graph disagrees with PyTorch:\n" +
                              "\n".join(c.summary() for c in report.checks if not c.ok))
    return report


def _export(wrapper: nn.Module, example: Tensor, path: Path, outputs: tuple[str, ...], dynamic: bool,
            opset: int, exporter: str) -> str:
    """Run the exporter into a temp file, then move it in place. Returns the exporter's name."""
    from core.atomic import atomic_write

    tmp = path.with_name(f".{path.name}.export.tmp")
    try:
        used = _run_exporter(wrapper, example, tmp, outputs, dynamic, opset, exporter)
        data = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write(path, lambda f: f.write(data))
    return used


def _run_exporter(wrapper: nn.Module, example: Tensor, tmp: Path, outputs: tuple[str, ...], dynamic: bool,
                  opset: int, exporter: str) -> str:
    errors: list[str] = []
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed. Skipping ..." and the like
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        if exporter != "torchscript":
            try:
                return _dynamo(wrapper, example, tmp, outputs, dynamic, opset)
            except ImportError as exc:
                errors.append(f"dynamo exporter unavailable ({exc})")
            except Exception as exc:  # noqa: BLE001 - reported below, or the torchscript exporter is tried
                errors.append(f"dynamo exporter: {type(exc).__name__}: {_first_line(exc)}")
            if dynamic or exporter == "dynamo":
                raise ExportError("ONNX export failed: " + "; ".join(errors))
        try:
            _torchscript(wrapper, example, tmp, outputs, opset)
            return "torchscript"
        except Exception as exc:  # noqa: BLE001
            errors.append(f"torchscript exporter: {type(exc).__name__}: {_first_line(exc)}")
        raise ExportError("ONNX export failed: " + "; ".join(errors))
    finally:
        quiet.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _dynamo(wrapper: nn.Module, example: Tensor, tmp: Path, outputs: tuple[str, ...], dynamic: bool,
            opset: int) -> str:
    """The torch.export-based exporter (torch.onnx.export's default); needs onnxscript."""
    import onnxscript  # noqa: F401  (a clear ImportError here rather than deep inside torch)

    d = torch.export.Dim
    dims = {0: d("batch", min=1)}  # the batch is free in every export
    if dynamic:
        dims.update({2: d("height", min=16), 3: d("width", min=16)})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapper, (example,), None, dynamo=True, opset_version=opset,
                                    input_names=["image"], output_names=list(outputs), verbose=False,
                                    dynamic_shapes={"image": dims})
        program.save(str(tmp), external_data=False)
    return "dynamo"


def _torchscript(wrapper: nn.Module, example: Tensor, tmp: Path, outputs: tuple[str, ...], opset: int) -> None:
    """The legacy TorchScript exporter: the pooling regions become constants (fixed size)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=list(outputs),
                          dynamic_axes={"image": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})


def _add_metadata(path: Path, net: PSPNet, classes: ClassTable | None, normalize: bool) -> None:
    """Record the config, class table and input convention in the file."""
    import onnx

    from core.atomic import atomic_write

    proto = onnx.load(str(path))
    table = classes if classes is not None else ClassTable.default(net.cfg.num_classes)
    meta = {
        "pspnet_config": json.dumps(net.cfg.to_dict()),
        "classes": json.dumps(table.to_dict()),
        "input": "RGB float32 on the 0..255 scale, (N, 3, H, W)" if normalize else
                 "normalised RGB float32 ((x - mean) / std on the 0..255 scale), (N, 3, H, W)",
        "mean": json.dumps(list(net.cfg.mean)),
        "std": json.dumps(list(net.cfg.std)),
        "outputs": "logits (N, classes, H, W): main" + (", aux (layer3 head)" if net.aux_head is not None else ""),
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def check_onnx(path: str | Path, model: PSPNet, size: Sequence[int], *, normalize: bool = True,
               seed: int = 0) -> list[CheckResult]:
    """Run the ONNX file with onnxruntime and ``model`` (the PyTorch model itself, with its
    adaptive pooling) on the same random image of ``size``; compare every output the file has.
    ``normalize``: the graph takes RGB 0..255 (True) or the normalised image (False)."""
    ort = _onnxruntime()
    if ort is None:
        raise ExportError("onnxruntime is not installed")
    h, w = (int(v) for v in size)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255
    x = model.normalize(image)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        model.train(was_training)
    ref = {"main": out.main, "aux": out.aux}
    got = session.run(outputs, {name: (image if normalize else x).numpy()})
    results = []
    for o, g in zip(outputs, got):
        if ref.get(o) is None:
            raise ExportError(f"{path}: output {o!r} has no counterpart in the PyTorch model")
        results.append(compare_logits(ref[o].numpy(), g, (h, w), o))
    return results


def compare_logits(ref: np.ndarray, got: np.ndarray, size: tuple[int, int], output: str = "main") -> CheckResult:
    """``got`` agrees with ``ref`` when max |diff| <= REL_TOLERANCE * max |ref| and the argmax
    over classes is equal wherever ``ref``'s top two logits are not tied within that bound."""
    if ref.shape != got.shape:
        return CheckResult(size, output, math.inf, float(np.abs(ref).max()), math.inf, 0.0, False, False)
    diff = float(np.abs(ref - got).max())
    scale = float(np.abs(ref).max())
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
    same = ref.argmax(1) == got.argmax(1)
    equal = float(same.mean())
    ties = True
    if not same.all():
        top2 = np.sort(ref, axis=1)[:, -2:]
        margin = (top2[:, 1] - top2[:, 0])[~same]
        ties = bool((margin <= 2 * REL_TOLERANCE * scale).all())
    ok = rel <= REL_TOLERANCE and ties
    return CheckResult(size, output, diff, scale, rel, equal, ties, ok)


__all__ = ["ExactAdaptivePool2d", "replace_adaptive_pooling", "ExportWrapper", "export_onnx", "require_onnx",
           "check_onnx", "compare_logits", "ExportReport", "CheckResult", "ExportError", "DEFAULT_OPSET",
           "REL_TOLERANCE", "EXPORTERS", "INSTALL_HINT"]
