"""The Predictor: a model, a test protocol and a device; photos in, :class:`Prediction` out.

``predict_steps`` is a generator (progress fractions; a cancel check before every window and,
for a single window, every backbone stage) so the GUI can run it in a worker; with
``preview=True`` it also yields a :class:`Preview` (a fraction carrying an early prediction:
the main head's labels of the working pass's unmirrored windows, its maps made on first use,
no auxiliary head) once those windows are done and more follow. ``predict`` drives it.

The model is never moved or changed: when it is not on ``device`` or not in eval mode, the
predictor runs a copy of it that is (``copied`` says so). ``module`` may name another module
with the same layout to run instead (e.g. an inference copy with batch-norm folded).

Memory: a photo whose estimated need exceeds what is available is refused before any work
(:class:`PredictionTooLarge`); running out anyway frees everything the prediction held and
raises :class:`PredictionOutOfMemory`. Both are :class:`core.errors.StudioError`.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.classes import ClassTable
from core.errors import Cancelled
from core.generators import run_to_end
from core.inference.compose import Placed, photo_labels, store_grid, working_maps
from core.inference.forward import Network, WindowParts, internals_to_cpu, model_device
from core.inference.maps import Accumulator, PassMap, window_values
from core.inference.memory import (MemoryEstimate, PredictionOutOfMemory, PredictionTooLarge, available_memory,
                                   estimate, gib, is_out_of_memory)
from core.inference.plan import ACCUMULATOR_BYTES, PassPlan, Plan, internals_window, make_plan
from core.inference.prediction import Prediction, Preview
from core.inference.protocol import _KEEP, TestProtocol
from core.inference.sampling import resize_image

if TYPE_CHECKING:  # pragma: no cover
    from core.weights import LoadedModel

CancelFlag = Callable[[], bool] | threading.Event | None


@dataclass
class SwitchSource:
    """What a level switch needs to re-run the heads on the working pass: its plan(s), its
    network input and the photo's size (the features come from the prediction's internals or
    are computed again by :meth:`core.LevelSwitch.prepare`)."""

    passes: list[PassPlan]  # the working scale's passes (one; two for a mirrored-image pass)
    photo: tuple[int, int]
    x: Tensor  # (1, 3, Hp, Wp) the working pass's normalised input, on the CPU
    internals_window: int  # index (in passes[0].windows) of the window the internals are of
    protocol: TestProtocol
    # per pass (as in ``passes``), per window: the head's parts, kept while predicting when the
    # module splits its head (then the switch needs no second run of the backbone); else None
    parts: list[list[WindowParts]] | None = None

    @property
    def nbytes(self) -> int:
        kept = sum(w.nbytes for pp in self.parts for w in pp) if self.parts else 0
        return self.x.numel() * self.x.element_size() + kept


class Predictor:
    def __init__(self, model: nn.Module, *, device: str | torch.device | None = None,
                 protocol: TestProtocol | None = None, scales: Sequence[float] | None = None,
                 flip: bool | None = None, crop: Any = _KEEP, base_size: Any = _KEEP,
                 stride_ratio: float | None = None, classes: ClassTable | None = None, amp: bool = True,
                 aux: bool = True, module: nn.Module | None = None, memory_limit: int | None = None,
                 accumulator_bytes: int = ACCUMULATOR_BYTES):
        """``protocol``: how photos are run (default: the photo at its own size, whole, one scale,
        no mirror); ``scales`` / ``flip`` / ``crop`` / ``base_size`` / ``stride_ratio`` override
        its fields (``crop=None``: the whole image; ``base_size=None``: native size). ``aux``:
        also the auxiliary head (its labels and probabilities). ``amp``: bf16 / fp16 autocast on
        CUDA, never on the CPU. ``memory_limit``: bytes to plan with instead of what is free."""
        base = protocol if protocol is not None else TestProtocol.native()
        overrides = dict(scales=tuple(scales) if scales is not None else _KEEP,
                         flip=flip if flip is not None else _KEEP, crop=crop, base_size=base_size,
                         stride_ratio=stride_ratio if stride_ratio is not None else _KEEP)
        for name, v in (("crop", crop), ("base_size", base_size)):
            if v is not _KEEP and v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
                raise ValueError(f"{name} must be a positive number of pixels or None, not {v!r}")
        if crop is not _KEEP and crop is not None:
            overrides["crop"] = int(crop)
        self.protocol = base.replace(**overrides)
        num_classes = model.cfg.num_classes
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f"the class table has {len(classes)} classes but the model predicts {num_classes}")
        have = model_device(model)
        want = _normalise_device(torch.device(device) if device is not None else have)
        self.copied = have != want or model.training
        self.model = copy.deepcopy(model).to(want).eval() if self.copied else model
        self.device = want
        self.module = module if module is not None else self.model
        self.net = Network(self.module)
        self.classes = classes if classes is not None else ClassTable.default(num_classes)
        self.amp = amp
        self.aux = bool(aux)
        self.memory_limit = memory_limit
        self.accumulator_bytes = int(accumulator_bytes)

    @classmethod
    def from_loaded(cls, loaded: "LoadedModel", **kw: Any) -> "Predictor":
        """A predictor for a model from :func:`core.weights.load_model`, with its class table and
        its test protocol (overridable by the keyword arguments)."""
        kw.setdefault("classes", getattr(loaded, "classes", None))
        if kw.get("protocol") is None:
            kw["protocol"] = (getattr(loaded, "protocol", None) or getattr(loaded.model, "test_protocol", None))
        return cls(loaded.model, **kw)

    # --- the protocol, for callers that read the old attributes -------------------------------

    @property
    def num_classes(self) -> int:
        return self.model.cfg.num_classes

    @property
    def scales(self) -> tuple[float, ...]:
        return self.protocol.scales

    @property
    def flip(self) -> bool:
        return self.protocol.flip

    @property
    def crop(self) -> int | None:
        return self.protocol.crop

    @property
    def base_size(self) -> int | None:
        return self.protocol.base_size

    @property
    def stride_ratio(self) -> float:
        return self.protocol.stride_ratio

    def plan(self, size: tuple[int, int]) -> Plan:
        return make_plan(self.protocol, size, self.num_classes, accumulator_bytes=self.accumulator_bytes)

    def estimate(self, size: tuple[int, int], *, internals: bool = False) -> MemoryEstimate:
        """The memory a prediction of an (h, w) photo needs, by item."""
        return estimate(self.plan(size), self.model.cfg, aux=self.aux, internals=internals)

    def check_memory(self, size: tuple[int, int], *, internals: bool = False) -> None:
        """Raise :class:`PredictionTooLarge` when an (h, w) photo needs more memory than there is."""
        need = self.estimate(size, internals=internals)
        avail = self.memory_limit if self.memory_limit is not None else available_memory(self.device)
        if avail is None or need.total <= avail:
            return
        h, w = size
        p = self.protocol
        hints = []
        if p.base_size is None or p.base_size > 1024:
            hints.append("a smaller --base-size (e.g. 512)")
        if len(p.scales) > 1:
            hints.append("fewer --scales")
        if p.crop is None and p.base_size is None:
            hints.append("--crop 473 (windows)")
        hints.append("closing other programs")
        raise PredictionTooLarge(
            f"a {w}x{h} image needs about {gib(need.total)} to predict with {self.num_classes} classes "
            f"({p.describe()}; mostly {need.describe()}), but only {gib(avail)} are available"
            f"{' on ' + str(self.device) if self.device.type != 'cpu' else ''}; try {', or '.join(hints)}")

    # --- predicting -----------------------------------------------------------------------------

    def predict(self, image: np.ndarray, *, internals: bool = False, disabled_levels: Sequence[int] = (),
                cancel: CancelFlag = None, progress: Callable[[float], None] | None = None,
                preview: Callable[[Prediction], None] | None = None) -> Prediction:
        """``preview`` is called with the early prediction (see :meth:`predict_steps`)."""
        steps = self.predict_steps(image, internals=internals, disabled_levels=disabled_levels, cancel=cancel,
                                   preview=preview is not None)

        def on_item(item: float) -> None:
            if isinstance(item, Preview):
                preview(item.prediction)
            if progress is not None:
                progress(float(item))

        return run_to_end(steps, on_item)

    def predict_steps(self, image: np.ndarray, *, internals: bool = False, disabled_levels: Sequence[int] = (),
                      cancel: CancelFlag = None, preview: bool = False) -> Generator[float, None, Prediction]:
        """Yield the fraction done (0..1] after every window (for a single window, after every
        backbone stage too) and, with ``preview``, one :class:`Preview`; return the Prediction.

        ``internals``: keep the working pass's features and pyramid levels (of the window nearest
        the image's centre) for the inspector and :class:`core.LevelSwitch`. ``cancel`` (a
        callable returning True, or a ``threading.Event``) is checked before every window;
        when set, :class:`core.errors.Cancelled` is raised."""
        img = _check_image(image)
        disabled = self._check_levels(disabled_levels)
        plan = self.plan(img.shape[:2])
        self.check_memory(img.shape[:2], internals=internals)
        failure = None
        try:
            result = yield from self._run(img, plan, internals, disabled, cancel, preview)
        except Exception as exc:  # noqa: BLE001 - only running out of memory is translated
            if not is_out_of_memory(exc):
                raise
            failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no details'}"
        if failure is not None:  # the frames that held the tensors are gone with the exception
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            h, w = img.shape[:2]
            need = self.estimate((h, w), internals=internals)
            raise PredictionOutOfMemory(
                f"ran out of memory predicting a {w}x{h} image ({failure}); it needs about {gib(need.total)} with "
                f"{self.protocol.describe()}; free memory or use a smaller --base-size / fewer --scales")
        return result

    def photo_probs(self, image: np.ndarray, head: str = "main", *, disabled_levels: Sequence[int] = ()) -> np.ndarray:
        """The procedure's probabilities at the photo's size, (C, H, W) float32, computed exactly
        from every pass (what :meth:`predict`'s labels are the argmax of). For evaluation
        scripts and tests: a photo needs C x H x W x 4 bytes here."""
        img = _check_image(image)
        if head not in ("main", "aux"):
            raise ValueError(f"head must be 'main' or 'aux', not {head!r}")
        if head == "aux" and not (self.aux and self.net.has_aux):
            raise ValueError("this predictor has no auxiliary head (aux=False, or the model has none)")
        plan = self.plan(img.shape[:2])
        gen = self._run(img, plan, False, self._check_levels(disabled_levels), None, False, maps_only=True)
        kept = run_to_end(gen)
        H, W = plan.photo
        ac = self.net.align_corners
        placed = [Placed(m, *m.plan.axes(plan.photo, ac)) for m in kept[head]]
        out = np.empty((self.num_classes, H, W), np.float32)
        tx = [m.ax.taps(np.arange(W)) for m in placed]
        with torch.inference_mode():
            for y in range(0, H, 32):
                ys = np.arange(y, min(H, y + 32))
                acc = None
                for m, b in zip(placed, tx):
                    v = m.map.sample(m.ay.taps(ys), b)
                    v = v.softmax(0) if m.map.kind == "logits" else v
                    acc = v if acc is None else acc + v
                out[:, y:y + len(ys)] = (acc / len(placed)).numpy()
        return out

    def _run(self, img: np.ndarray, plan: Plan, internals: bool, disabled: tuple[int, ...], cancel: CancelFlag,
             want_preview: bool, maps_only: bool = False) -> Generator[float, None, Any]:
        net, C = self.net, self.num_classes
        total = plan.forwards
        stages = len(net.STAGES) + 1
        done = 0
        kept: dict[str, list[PassMap]] = {"main": [], "aux": []}
        inner = box = source = None
        heads = ("main", "aux") if (self.aux and net.has_aux) else ("main",)
        for pi, p in enumerate(plan.passes):
            x = self._input(img, p)
            accs = {h: Accumulator(p, C, self.device) for h in heads}
            pending: list = []  # (aux logits at the output resolution, window) not summed yet
            keep = internals_window(p) if (internals and p.working) else None
            in_parts = bool(internals and p.working and not disabled and net.splits_head)
            if internals and p.working:
                same = [q for q in plan.passes if q.scale == p.scale]
                parts = (source.parts if source is not None and source.parts is not None
                         and len(source.passes) == len(same) and all(a is b for a, b in zip(source.passes, same))
                         else ([[] for _ in same] if in_parts else None))
                source = SwitchSource(same, plan.photo, x.cpu(), keep, self.protocol, parts=parts)
                pass_parts = parts[next(i for i, q in enumerate(same) if q is p)] if parts is not None else None
            for wi, win in enumerate(p.windows):
                _check_cancel(cancel)
                xw = x[..., win.y0:win.y1, win.x0:win.x1]
                if win.mirrored:
                    xw = xw.flip(-1)
                gen = net.stages(xw)
                while True:
                    with torch.inference_mode(), self._autocast():
                        try:
                            n = next(gen)
                        except StopIteration as stop:
                            layer3, layer4 = stop.value
                            break
                    if total == 1:
                        yield n / stages
                        _check_cancel(cancel)
                with torch.inference_mode(), self._autocast():
                    if in_parts:  # as the level switch computes it; its parts kept
                        out, wparts = net.heads_in_parts(layer3, layer4, aux="aux" in heads, internals=wi == keep)
                        pass_parts.append(wparts.to("cpu", torch.float32))
                    else:
                        out = net.heads(layer3, layer4, aux="aux" in heads, internals=wi == keep, disabled=disabled)
                    accs["main"].add(window_values(net, out.main, p, win), win)
                    if "aux" in heads:  # summed after the preview: the overlay comes first
                        pending.append((out.aux, win))
                    if not (want_preview and pi == 0 and done < (plan.preview_at or 0)):
                        _flush(pending, accs, net, p)
                if wi == keep:
                    inner = internals_to_cpu(out.internals)
                    box = _photo_box(p, win, plan.photo)
                del out, layer3, layer4, xw
                done += 1
                yield done / total
                if want_preview and pi == 0 and done == plan.preview_at:
                    with torch.inference_mode():  # the overlay's labels first: the main head only
                        early = self._finish(plan, {"main": [accs["main"].finish(copy=True).cpu()]}, inner, box,
                                             None, disabled, cancel, preview=True)
                    yield Preview(done / total, early)
                    with torch.inference_mode():
                        _flush(pending, accs, net, p)
            with torch.inference_mode():
                _flush(pending, accs, net, p)
                for h in heads:
                    kept[h].append(accs[h].finish().cpu())
            del x, accs
        _check_cancel(cancel)
        if maps_only:
            return kept
        with torch.inference_mode():
            return self._finish(plan, kept, inner, box, source, disabled, cancel)

    def _finish(self, plan: Plan, maps: dict[str, list[PassMap]], inner: Any, box: Any, source: Any,
                disabled: tuple[int, ...], cancel: CancelFlag, preview: bool = False) -> Prediction:
        H, W = plan.photo
        C = self.num_classes
        grid = store_grid(plan.working_size, C)
        ac = self.net.align_corners
        check = (lambda: _check_cancel(cancel)) if cancel is not None else None
        placed = [Placed(m, *m.plan.axes(plan.photo, ac)) for m in maps["main"]]
        labels = photo_labels(placed, (H, W), cancel=check)
        deferred = None
        if preview:  # the overlay needs the labels; the maps (hover, confidence) are made on first use

            def deferred(pred: Prediction) -> None:
                with torch.inference_mode():
                    w = working_maps(placed, (H, W), grid)
                pred._set_maps(w.probs, w.confidence, w.entropy)

            work = None
        else:
            work = working_maps(placed, (H, W), grid)
        aux_labels = aux_work = None
        if maps.get("aux"):
            placed_aux = [Placed(m, *m.plan.axes(plan.photo, ac)) for m in maps["aux"]]
            aux_labels = photo_labels(placed_aux, (H, W), cancel=check)
            aux_work = working_maps(placed_aux, (H, W), grid).probs
        notes = []
        coarse = [p for p in plan.passes if p.step != (1.0, 1.0)]
        if coarse:
            notes.append("to bound memory, the pass(es) at scale(s) " + ", ".join(f"{p.scale:g}" for p in coarse)
                         + " were summed on a coarser grid than their scaled image (" +
                         ", ".join(f"{p.grid[1]}x{p.grid[0]} for {p.size[1]}x{p.size[0]}" for p in coarse) + ")")
        wp, wc, we = (work.probs, work.confidence, work.entropy) if work is not None else (None, None, None)
        return Prediction(labels, work_probs=wp, work_aux_probs=aux_work, work_confidence=wc, work_entropy=we,
                          aux_labels=aux_labels, num_classes=C, protocol=self.protocol,
                          working_size=plan.working_size, internals=inner, internals_box=box,
                          disabled_levels=disabled, notes=notes, switch_source=source, preview=preview,
                          deferred=deferred)

    def rerun_heads(self, prediction: Prediction, disabled_levels: Sequence[int], fill: str = "zeros", *,
                    exact: bool = False) -> Prediction:
        """Re-run only the pyramid and the heads of ``prediction``'s working pass with some levels
        off (no backbone beyond what :class:`core.LevelSwitch` recomputes once); see
        :meth:`core.LevelSwitch.rerun` for ``exact``."""
        from core.inference.switch import LevelSwitch

        switch = LevelSwitch(self.model, prediction, device=self.device, module=self.module)
        return switch.rerun(disabled_levels, fill, exact=exact)

    # --- tensors ----------------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp and self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def _input(self, img: np.ndarray, p: PassPlan) -> Tensor:
        """The pass's network input: the photo resized as the procedure does, normalised, padded
        with the mean (zero after normalisation)."""
        scaled = resize_image(img, p.size, self.protocol.procedure)
        t = torch.from_numpy(scaled).to(self.device).permute(2, 0, 1)[None]
        del scaled
        x = self.net.normalize(t).contiguous()
        if any(p.pad):
            top, bottom, left, right = p.pad
            x = F.pad(x, (left, right, top, bottom), value=0.0)
        return x

    def _check_levels(self, disabled_levels: Sequence[int]) -> tuple[int, ...]:
        disabled = tuple(sorted({int(b) for b in disabled_levels}))
        if disabled:
            bins = self.net.bins
            if not bins:
                raise ValueError("this model has no pyramid pooling module; there is no level to switch off")
            unknown = sorted(set(disabled) - set(bins))
            if unknown:
                raise ValueError(f"no pyramid level with bin(s) {unknown}; this model's levels are {bins}")
        return disabled


def _flush(pending: list, accs: dict, net: Network, p: PassPlan) -> None:
    """Sum the auxiliary head's windows kept back (small: logits at the output resolution)."""
    while pending:
        logits, win = pending.pop(0)
        accs["aux"].add(window_values(net, logits, p, win), win)


def _photo_box(p: PassPlan, win: Any, photo: tuple[int, int]) -> tuple[int, int, int, int]:
    """A window of pass ``p`` as a (y0, y1, x0, x1) box on the photo."""
    H, W = photo
    t, _, l, _ = p.pad
    h, w = p.size
    y0, y1 = (min(max(v - t, 0), h) for v in (win.y0, win.y1))
    x0, x1 = (min(max(v - l, 0), w) for v in (win.x0, win.x1))
    return (int(round(y0 * H / h)), int(round(y1 * H / h)), int(round(x0 * W / w)), int(round(x1 * W / w)))


def _normalise_device(d: torch.device) -> torch.device:
    if d.type == "cuda" and d.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return d


def _check_image(image: Any) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got an array of shape {a.shape} and dtype {a.dtype}")
    return np.ascontiguousarray(a)


def _check_cancel(cancel: CancelFlag) -> None:
    if cancel is None:
        return
    flag = cancel.is_set() if isinstance(cancel, threading.Event) else cancel()
    if flag:
        raise Cancelled("prediction cancelled")


__all__ = ["Predictor", "SwitchSource"]
