"""Inference: single scale, multi-scale + flip, sliding window; the result is a :class:`Prediction`.

The multi-scale / sliding-window scheme is the authors' test script's: each scale resizes the
image (bilinear); an image larger than ``crop`` is padded to at least ``crop`` with the mean
(zeros after normalisation), cut into ``crop`` windows with stride ``ceil(crop * stride_ratio)``
whose softmax probabilities are averaged where they overlap; each scale's probabilities are
resized back to the image size and all scales (and mirrored passes) are averaged. An image that
fits in ``crop`` is run whole, without padding.

``predict_steps`` is a generator (progress fractions, a cancel check before every window) so the
GUI can run it in a worker; ``predict`` drives it. Internals (backbone features and pyramid
levels, for the inspector and :meth:`Predictor.rerun_heads`) exist only for a single pass: one
scale of 1.0, no flip, no sliding window; asking for them otherwise is an error that says so.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.classes import ClassTable
from core.errors import Cancelled
from core.generators import run_to_end
from core.model.ppm import Fill, PyramidLevel
from core.model.pspnet import Internals, PSPNet, PSPNetOutput

if TYPE_CHECKING:  # pragma: no cover
    from core.weights import LoadedModel

MULTI_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

CancelFlag = Callable[[], bool] | threading.Event | None


@dataclass
class Prediction:
    labels: np.ndarray  # (H, W) uint8, argmax of probs
    probs: np.ndarray  # (C, H, W) float32 softmax of the main head
    aux_probs: np.ndarray | None  # (C, H, W) float32 softmax of the auxiliary head (None without one)
    confidence: np.ndarray  # (H, W) float32, the highest probability
    entropy: np.ndarray  # (H, W) float32, in nats
    internals: Internals | None = None  # on the CPU; single-pass predictions asked with internals=True
    disabled_levels: tuple[int, ...] = ()
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    @property
    def aux_labels(self) -> np.ndarray | None:
        return None if self.aux_probs is None else self.aux_probs.argmax(0).astype(np.uint8)

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])


@dataclass
class _Pass:
    """One run over the image: a scale, mirrored or not, cut into windows."""

    scale: float
    flip: bool
    size: tuple[int, int]  # the scaled image (h, w)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    windows: list[tuple[int, int, int, int]] = field(default_factory=list)  # (y0, y1, x0, x1) in the padded image


class Predictor:
    def __init__(self, model: PSPNet, *, device: str | torch.device | None = None,
                 scales: Sequence[float] = (1.0,), flip: bool = False, crop: int | None = None,
                 stride_ratio: float = 2 / 3, classes: ClassTable | None = None, amp: bool = True):
        """``amp``: bf16 (or fp16) autocast on CUDA; never on the CPU, where bf16 is far slower."""
        scales = tuple(float(s) for s in scales)
        if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
            raise ValueError(f"scales must be positive numbers, not {scales}")
        if crop is not None and int(crop) < 1:
            raise ValueError(f"crop must be a positive window size or None, not {crop}")
        if not 0 < stride_ratio <= 1:
            raise ValueError(f"stride_ratio must be in (0, 1], not {stride_ratio}")
        num_classes = model.cfg.num_classes
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f"the class table has {len(classes)} classes but the model predicts {num_classes}")
        self.model = model
        self.device = torch.device(device) if device is not None else _model_device(model)
        model.to(self.device)
        self.scales = scales
        self.flip = bool(flip)
        self.crop = int(crop) if crop is not None else None
        self.stride_ratio = float(stride_ratio)
        self.classes = classes if classes is not None else ClassTable.default(num_classes)
        self.amp = amp

    @classmethod
    def from_loaded(cls, loaded: "LoadedModel", **kw: Any) -> "Predictor":
        """A predictor for a model from :func:`core.weights.load_model`, with its class table."""
        kw.setdefault("classes", getattr(loaded, "classes", None))
        return cls(loaded.model, **kw)

    @property
    def num_classes(self) -> int:
        return self.model.cfg.num_classes

    def predict(self, image: np.ndarray, *, internals: bool = False, disabled_levels: Sequence[int] = (),
                cancel: CancelFlag = None, progress: Callable[[float], None] | None = None) -> Prediction:
        steps = self.predict_steps(image, internals=internals, disabled_levels=disabled_levels, cancel=cancel)
        return run_to_end(steps, progress)

    def predict_steps(self, image: np.ndarray, *, internals: bool = False, disabled_levels: Sequence[int] = (),
                      cancel: CancelFlag = None) -> Generator[float, None, Prediction]:
        """Yield the fraction done (0..1] after every window (and, for a single-pass prediction,
        after every backbone stage too); return the :class:`Prediction`.

        ``cancel`` (a callable returning True, or a ``threading.Event``) is checked before every
        window; when set, :class:`core.errors.Cancelled` is raised."""
        img = _check_image(image)
        disabled = self._check_levels(disabled_levels)
        h, w = img.shape[:2]
        passes = self._plan(h, w)
        if internals and (len(passes) > 1 or len(passes[0].windows) > 1 or passes[0].scale != 1.0):
            raise ValueError(
                "internals are only available for a single-pass prediction (one scale of 1.0, no flip, no "
                f"sliding window); this predictor runs scales={self.scales}, flip={self.flip}, crop={self.crop} "
                f"on a {h}x{w} image. Use a single-scale Predictor without crop for the inspector.")
        total = sum(len(p.windows) for p in passes)
        model = self.model
        was_training = model.training
        model.eval()
        try:
            x = self._to_input(img)
            acc: dict[str, Tensor | None] = {}
            inner = None
            done = 0
            for p in passes:
                xs = self._prepare(x, p)
                pacc: dict[str, Tensor | None] = {}
                for win in p.windows:
                    _check_cancel(cancel)
                    steps = self._forward_window(xs, win, pacc, len(p.windows) > 1, internals, disabled)
                    while True:  # a single pass also reports (and checks cancel) per backbone stage
                        try:
                            stage = next(steps)
                        except StopIteration as stop:
                            out = stop.value
                            break
                        if total == 1:
                            yield stage
                            _check_cancel(cancel)
                    if internals:
                        inner = _internals_to_cpu(out.internals)
                    del out
                    done += 1
                    yield done / total
                self._add_pass(acc, pacc, p, (h, w))
            return self._finish(acc, len(passes), inner, disabled)
        finally:
            model.train(was_training)

    def rerun_heads(self, prediction: Prediction, disabled_levels: Sequence[int],
                    fill: Fill = "zeros") -> Prediction:
        """Re-run only the pyramid and the heads on ``prediction.internals`` (no backbone).

        Needs a prediction made by ``predict(..., internals=True)`` (single pass)."""
        if prediction.internals is None:
            raise ValueError("rerun_heads needs a prediction made with internals=True by a single-scale predictor "
                             "(one scale of 1.0, no flip, no sliding window); this prediction has no internals")
        disabled = self._check_levels(disabled_levels)
        layer3 = prediction.internals.layer3.to(self.device)
        layer4 = prediction.internals.layer4.to(self.device)
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), self._autocast():
                out = model.forward_heads(layer3, layer4, prediction.size, internals=True,
                                          disabled_levels=disabled, fill=fill)
                acc = {"main": out.main.float().softmax(1)[0],
                       "aux": out.aux.float().softmax(1)[0] if out.aux is not None else None}
                inner = _internals_to_cpu(out.internals)
                inner.layer3, inner.layer4 = prediction.internals.layer3, prediction.internals.layer4
                return self._finish(acc, 1, inner, disabled)
        finally:
            model.train(was_training)

    # --- the plan -------------------------------------------------------------------------------

    def _plan(self, h: int, w: int) -> list[_Pass]:
        passes = []
        for s in self.scales:
            size = (h, w) if s == 1.0 else (max(1, round(h * s)), max(1, round(w * s)))
            for flipped in ((False, True) if self.flip else (False,)):
                passes.append(self._windows(_Pass(s, flipped, size)))
        return passes

    def _windows(self, p: _Pass) -> _Pass:
        h, w = p.size
        crop = self.crop
        if crop is None or (h <= crop and w <= crop):
            p.windows = [(0, h, 0, w)]
            return p
        ph, pw = max(crop - h, 0), max(crop - w, 0)
        p.pad = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
        H, W = h + ph, w + pw
        stride = int(math.ceil(crop * self.stride_ratio))
        ys = _starts(H, crop, stride)
        xs = _starts(W, crop, stride)
        p.windows = [(y, y + crop, x, x + crop) for y in ys for x in xs]
        return p

    # --- the tensors (every tensor op runs inside inference mode, never across a yield) --------

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp and self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def _to_input(self, img: np.ndarray) -> Tensor:
        t = torch.from_numpy(np.ascontiguousarray(img)).to(self.device)
        return self.model.normalize(t.permute(2, 0, 1)[None].float())

    @torch.inference_mode()
    def _prepare(self, x: Tensor, p: _Pass) -> Tensor:
        if tuple(x.shape[-2:]) != p.size:
            x = F.interpolate(x, size=p.size, mode="bilinear", align_corners=False)
        if p.flip:
            x = x.flip(-1)
        if any(p.pad):
            top, bottom, left, right = p.pad
            x = F.pad(x, (left, right, top, bottom), value=0.0)  # zero after normalisation == the mean
        return x

    def _forward_window(self, xs: Tensor, win: tuple[int, int, int, int], pacc: dict, windowed: bool,
                        internals: bool, disabled: tuple[int, ...]) -> Generator[float, None, PSPNetOutput]:
        """Run one window stage by stage (yielding the fraction of the window done after each
        backbone stage; no torch work runs across a yield); its softmax goes into ``pacc``
        (summed, with a count, when ``windowed``). A single window is kept as it is: no
        accumulator the size of the image is allocated."""
        y0, y1, x0, x1 = win
        xw = xs[..., y0:y1, x0:x1]
        backbone = self.model.backbone
        stages = (backbone.stem, backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
        feats = []
        t = xw
        for i, stage in enumerate(stages):
            with torch.inference_mode(), self._autocast():
                t = stage(t)
            feats.append(t)
            yield (i + 1) / (len(stages) + 1)
        with torch.inference_mode(), self._autocast():
            out = self.model.forward_heads(feats[3], feats[4], xw.shape[-2:], internals=internals,
                                           disabled_levels=disabled)
            self._accumulate(out, xs, win, pacc, windowed)
        return out

    def _accumulate(self, out: PSPNetOutput, xs: Tensor, win: tuple[int, int, int, int], pacc: dict,
                    windowed: bool) -> None:
        y0, y1, x0, x1 = win
        for key, logits in (("main", out.main), ("aux", out.aux)):
            if logits is None:
                continue
            prob = logits.float().softmax(1)[0]
            if not windowed:
                pacc[key] = prob
                continue
            if key not in pacc:
                pacc[key] = torch.zeros(prob.shape[0], *xs.shape[-2:], device=prob.device)
            pacc[key][:, y0:y1, x0:x1] += prob
        if windowed:
            if "count" not in pacc:
                pacc["count"] = torch.zeros(1, *xs.shape[-2:], device=xs.device)
            pacc["count"][:, y0:y1, x0:x1] += 1

    @torch.inference_mode()
    def _add_pass(self, acc: dict, pacc: dict, p: _Pass, size: tuple[int, int]) -> None:
        """Average the windows, cut the padding off, mirror back, resize to the image; add to ``acc``."""
        top, _, left, _ = p.pad
        h, w = p.size
        count = pacc.get("count")
        for key in ("main", "aux"):
            prob = pacc.get(key)
            if prob is None:
                continue
            if count is not None:
                prob = prob / count
            prob = prob[:, top:top + h, left:left + w]
            if p.flip:
                prob = prob.flip(-1)
            if (h, w) != size:
                prob = F.interpolate(prob[None], size=size, mode="bilinear", align_corners=False)[0]
            acc[key] = prob if key not in acc else acc[key] + prob

    @torch.inference_mode()
    def _finish(self, acc: dict, n: int, inner: Internals | None, disabled: tuple[int, ...]) -> Prediction:
        probs = acc["main"] / n if n > 1 else acc["main"]
        confidence, labels = probs.max(0)
        entropy = torch.special.entr(probs).sum(0)
        aux = acc.get("aux")
        if aux is not None and n > 1:
            aux = aux / n
        return Prediction(
            labels=labels.to(torch.uint8).cpu().numpy(),
            probs=probs.float().cpu().numpy(),
            aux_probs=aux.float().cpu().numpy() if aux is not None else None,
            confidence=confidence.float().cpu().numpy(),
            entropy=entropy.float().cpu().numpy(),
            internals=inner,
            disabled_levels=disabled,
            scales=self.scales,
            flip=self.flip,
        )

    def _check_levels(self, disabled_levels: Sequence[int]) -> tuple[int, ...]:
        disabled = tuple(sorted({int(b) for b in disabled_levels}))
        if disabled:
            bins = self.model.bins
            if not bins:
                raise ValueError("this model has no pyramid pooling module; there is no level to switch off")
            unknown = sorted(set(disabled) - set(bins))
            if unknown:
                raise ValueError(f"no pyramid level with bin(s) {unknown}; this model's levels are {bins}")
        return disabled


def _starts(length: int, crop: int, stride: int) -> list[int]:
    """Window starts as in the authors' script: every ``stride``, the last one flush with the end."""
    n = int(math.ceil((length - crop) / stride)) + 1
    return [min(i * stride + crop, length) - crop for i in range(n)]


def _check_image(image: Any) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got an array of shape {a.shape} and dtype {a.dtype}")
    return a


def _check_cancel(cancel: CancelFlag) -> None:
    if cancel is None:
        return
    flag = cancel.is_set() if isinstance(cancel, threading.Event) else cancel()
    if flag:
        raise Cancelled("prediction cancelled")


def _internals_to_cpu(inner: Internals | None) -> Internals | None:
    if inner is None:
        return None

    def cpu(t: Tensor) -> Tensor:
        return t.detach().float().cpu()

    levels = [PyramidLevel(lv.bin, cpu(lv.pooled), cpu(lv.reduced), cpu(lv.upsampled), lv.enabled)
              for lv in inner.levels]
    return Internals(cpu(inner.layer3), cpu(inner.layer4), levels)


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


__all__ = ["Predictor", "Prediction", "MULTI_SCALES"]
