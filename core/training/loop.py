"""The training loop: one generator for training from scratch and for fine-tuning.

Per step: check cancel -> take the step's batch -> forward/backward (micro-batches after an
out-of-memory) -> guard against a non-finite loss or gradient -> poly LR -> SGD step -> yield
a :class:`TrainProgress`. Cancel follows core/generators.py's rule: the run raises
:class:`core.errors.Cancelled` with the TrainResult of the last completed step as ``partial``.
The guards run before ``optimizer.step()`` and the BatchNorm
statistics are snapshotted before the forward pass, so a failed step leaves the model's
weights and statistics exactly as the last good step left them.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from core.errors import Cancelled, TrainingError
from core.generators import Cancel, is_cancelled as _is_cancelled
from core.loss import IGNORE_INDEX, pspnet_loss
from core.training import dist as D
from core.training.data import (AugmentedSamples, Batch, FeatureCache, Interrupted, augmented_batches, epoch_of,
                                 torch_seed)
from core.training.schedule import poly_lr
from core.training.state import load_state, save_state, set_rng_state
from core.training.types import TrainConfig, TrainProgress, TrainResult

RESUME_NAME = "last.pt"
FINAL_NAME = "final.safetensors"


class _NonFinite(Exception):
    pass


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def resolve_device(name: str | None, info: D.DistInfo) -> torch.device:
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", info.local_rank if info.distributed else torch.cuda.current_device())
    return device


def resolve_amp(mode: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None, a note). Mixed precision runs on CUDA only (bf16 on this kind
    of CPU is two orders of magnitude slower than fp32)."""
    if device.type != "cuda":
        return None, (f"amp {mode} ignored: mixed precision runs on CUDA only" if mode in ("bf16", "fp16") else "")
    if mode == "off":
        return None, ""
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return (torch.bfloat16 if mode == "bf16" else torch.float16), ""


class _HeadsOnly(nn.Module):
    """What DDP wraps when the backbone is frozen: the pyramid and the heads on given features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, layer3: torch.Tensor, layer4: torch.Tensor, size: Sequence[int]):
        return self.model.forward_heads(layer3, layer4, size)


class Trainer:
    """Holds one run's state; :meth:`run` is the generator behind ``train`` and ``finetune``."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, train_set: Any, train_indices: Sequence[int],
                 val_set: Any = None, *, cancel: Cancel = None, classes: Any = None,
                 augment: Callable | None = None):
        self.cfg, self.model, self.cancel = cfg, model, cancel
        self.train_set, self.train_indices, self.val_set = train_set, list(train_indices), val_set
        self.classes, self.augment = classes, augment
        self.notes: list[str] = []
        self.info = D.init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.info)
        self.amp_dtype, note = resolve_amp(cfg.amp, self.device)
        self._note(note)
        cuda = self.device.type == "cuda"
        self.memory_format = (torch.channels_last if cuda and cfg.channels_last in ("auto", True)
                              else torch.contiguous_format)
        if cfg.channels_last is True and not cuda:
            self._note("channels_last ignored: it is used on CUDA only")
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.micro = cfg.batch
        self.pending: list[str] = []  # messages for the next progress record
        self.grad_flags: list[tuple[nn.Parameter, bool]] = []
        self.sync_bn = False

    # ----------------------------------------------------------------- set-up
    def _note(self, text: str) -> None:
        if text:
            self.notes.append(text)

    def _setup(self) -> None:
        cfg, model, info = self.cfg, self.model, self.info
        if not self.train_indices:
            raise TrainingError("the training set is empty")
        # the 1x1 pyramid level's BatchNorm sees one value per image and channel: it needs two images
        self.min_micro = 2 if model.ppm is not None and 1 in model.bins and model.cfg.reduction else 1
        if cfg.batch < self.min_micro:
            raise TrainingError(f"batch {cfg.batch} is too small: the 1x1 pyramid level's BatchNorm needs at least "
                                f"{self.min_micro} images per step (per process under torchrun)")
        model.to(self.device, memory_format=self.memory_format)
        if info.distributed and cfg.sync_bn:
            if self.device.type == "cuda":
                D.to_sync_bn(model)
                self.sync_bn = True
            else:
                self._note("sync_bn ignored: SyncBatchNorm needs CUDA; each process keeps its own statistics")
        classes = self.classes or getattr(self.train_set, "classes", None)
        if classes is not None and len(classes) != model.cfg.num_classes:
            raise TrainingError(f"the class table has {len(classes)} classes but the model predicts "
                                f"{model.cfg.num_classes}")
        # the config decides what trains; the caller's flags come back at the end of the run
        self.grad_flags = [(p, p.requires_grad) for p in model.parameters()]
        for p in model.backbone_parameters():
            p.requires_grad_(not cfg.freeze_backbone)
        for p in model.head_parameters():
            p.requires_grad_(True)
        groups = []
        if not cfg.freeze_backbone:
            groups.append({"params": [p for p in model.backbone_parameters() if p.requires_grad], "lr_mult": 1.0})
        groups.append({"params": [p for p in model.head_parameters() if p.requires_grad], "lr_mult": cfg.head_lr_mult})
        groups = [g for g in groups if g["params"]]
        if not groups:
            raise TrainingError("nothing to train: every parameter is frozen")
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.start = 0
        if cfg.resume:
            state = load_state(cfg.resume, model.cfg.to_dict(), self.device)
            model.load_state_dict(state["model"])
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except ValueError as exc:
                raise TrainingError(f"{cfg.resume}: the optimizer state does not fit this run "
                                    f"(frozen backbone changed?): {exc}") from exc
            if self.scaler is not None and state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            self.start = int(state["step"])
            if state.get("world_size", 1) != info.world_size:
                self._note(f"resumed with {info.world_size} process(es) instead of {state['world_size']}: "
                           "the samples differ from the original run")
            self._note(f"resumed from {cfg.resume} at step {self.start}")
        self.net = (D.wrap_ddp(_HeadsOnly(model), info, self.device) if cfg.freeze_backbone else
                    D.wrap_ddp(model, info, self.device,
                               find_unused=model.aux_head is not None and not cfg.aux_weight))
        self.buffers = [b for b in model.buffers()]
        self.saved_buffers = [b.detach().clone() for b in self.buffers]

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _batches(self) -> Iterator[Batch]:
        cfg = self.cfg
        if cfg.cache_features:
            cache = FeatureCache.build(self.model, self.train_set, self.train_indices, cfg.crop, self.device,
                                       self._autocast, cfg.seed, self.memory_format, self._stop_now)
            return cache.batches(self.start, cfg.steps, cfg.batch, self.info)
        augment = self.augment
        if augment is None:
            from core.data.augment import TrainAugment

            augment = TrainAugment(cfg.crop, scale=cfg.scale, rotate=cfg.rotate, blur=cfg.blur, flip=cfg.flip,
                                   mean=self.model.cfg.mean)
        samples = AugmentedSamples(self.train_set, self.train_indices, augment, cfg.seed)
        return augmented_batches(samples, self.start, cfg.steps, cfg.batch, self.info, cfg.workers,
                                 pin=self.device.type == "cuda")

    def _train_mode(self) -> None:
        self.model.train()
        if self.cfg.freeze_backbone:
            self.model.backbone.eval()  # frozen BatchNorm statistics too

    # ----------------------------------------------------------------- one step
    def forward(self, chunk: Batch):
        """The network's output for one (micro-)batch already on the device."""
        model = self.model
        if chunk.images is not None:
            x = model.normalize(chunk.images).contiguous(memory_format=self.memory_format)
            if not self.cfg.freeze_backbone:
                with self._autocast():
                    return self.net(x)
            with torch.no_grad(), self._autocast():
                stages = model.backbone(x)
            layer3, layer4, size = stages.layer3, stages.layer4, x.shape[-2:]
        else:
            layer3, layer4, size = chunk.layer3.float(), chunk.layer4.float(), chunk.masks.shape[-2:]
        with self._autocast():
            return self.net(layer3, layer4, size)

    def _losses(self, batch: Batch) -> torch.Tensor:
        """Forward + backward of every micro-batch; returns [total, main, aux] (mean over ranks)."""
        n, sums = len(batch), torch.zeros(3, device=self.device)
        for chunk in batch.chunks(self.micro, self.min_micro):
            out = self.forward(chunk)
            with self._autocast():
                parts = pspnet_loss(out, chunk.masks, self.cfg.aux_weight)
            aux = parts.aux.detach() if parts.aux is not None else torch.zeros((), device=self.device)
            vals = D.all_mean(torch.stack([parts.total.detach(), parts.main.detach(), aux]).float(), self.info)
            if not bool(torch.isfinite(vals).all()):
                raise _NonFinite("loss")
            w = len(chunk) / n
            loss = parts.total * w
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            sums += vals * w
        return sums

    def _step(self, step: int, batch: Batch) -> torch.Tensor:
        self._train_mode()
        torch.manual_seed(torch_seed(self.cfg.seed, step, self.info.rank))  # dropout: same draws on resume
        with torch.no_grad():
            for saved, b in zip(self.saved_buffers, self.buffers):
                saved.copy_(b)
        self.optimizer.zero_grad(set_to_none=True)
        vals = self._losses(batch)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # inf grads here are the scaler's business: it skips the step
        else:
            grads = [p.grad for p in self.params if p.grad is not None]
            if grads and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)).all()):
                raise _NonFinite("gradient")
        lr = poly_lr(self.cfg.lr, step, self.cfg.steps, self.cfg.power)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g["lr_mult"]
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return vals

    def _check_labels(self, batch: Batch, step: int) -> None:
        """Refuse label ids the model has no class for (on CUDA they would be a device-side assert)."""
        k = self.model.cfg.num_classes
        m = batch.masks
        bad = m[(m != IGNORE_INDEX) & (m >= k)]
        if bad.numel():
            ids = sorted(set(bad.unique().tolist()))[:10]
            raise TrainingError(f"step {step + 1}: the training masks hold label ids {ids}, outside the model's "
                                f"0..{k - 1} (and not the ignore label {IGNORE_INDEX})")

    def _restore_buffers(self) -> None:
        with torch.no_grad():
            for saved, b in zip(self.saved_buffers, self.buffers):
                b.copy_(saved)
        self.optimizer.zero_grad(set_to_none=True)

    def _guarded_step(self, step: int, batch: Batch) -> torch.Tensor:
        """:meth:`_step` with the faults handled: NaN/inf -> TrainingError, out of memory -> half
        the micro-batch (gradients accumulated, so the effective batch and the LR stay)."""
        while True:
            failure: BaseException | None = None
            try:
                return self._step(step, batch)
            except _NonFinite as exc:
                failure = exc
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                failure = exc
            # out of the except block, so the traceback no longer pins the step's tensors
            self._restore_buffers()
            if isinstance(failure, _NonFinite):
                raise TrainingError(f"step {step + 1}: the {failure} is not finite (NaN or inf); training stopped "
                                    "and the model keeps the weights of the last good step (lower the "
                                    "learning rate, or check the images for broken values)")
            failure = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if self.micro <= self.min_micro or self.info.distributed:
                where = (f"under torchrun (batch {self.micro} per process)" if self.info.distributed
                         else f"with {self.micro} image(s) at once, the fewest this model can train on")
                raise TrainingError(f"step {step + 1}: out of memory on {self.device} {where}; use a smaller "
                                    f"crop (now {self.cfg.crop}), amp, or a smaller model")
            old, self.micro = self.micro, max(self.min_micro, self.micro // 2)
            text = (f"out of memory at step {step + 1} with {old} images at once: retrying in micro-batches of "
                    f"{self.micro} (gradients accumulated; the effective batch stays {self.cfg.batch})")
            self._note(text)
            self.pending.append(text)

    def _stop_now(self) -> bool:
        """Cancel inside a phase between steps (caching, validation). Under torchrun the ranks must
        stop together, so there cancel waits for the next step boundary."""
        return not self.info.distributed and _is_cancelled(self.cancel)

    # ----------------------------------------------------------------- validation, saving
    def validate(self):
        from core.metrics import ConfusionMatrix

        model = self.model
        D.broadcast_buffers(model, self.info)  # every rank validates the model rank 0 saves
        cm = ConfusionMatrix(model.cfg.num_classes)
        n = len(self.val_set)
        if self.cfg.val_limit:
            n = min(n, self.cfg.val_limit)
        model.eval()
        try:
            with torch.inference_mode(), self._autocast():
                for i in range(self.info.rank, n, self.info.world_size):
                    if self._stop_now():
                        raise Interrupted
                    image, mask = self.val_set[i]
                    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(self.device)
                    out = model(model.normalize(x).contiguous(memory_format=self.memory_format))
                    cm.update(out.main.argmax(1)[0].cpu().numpy(), np.asarray(mask))
        finally:
            self._train_mode()
        if self.info.distributed:
            cm.reduce_()
        return cm.compute()

    def _save_state(self, step: int) -> Path | None:
        if not self.cfg.checkpoint_dir or not self.info.is_main:
            return None
        return save_state(Path(self.cfg.checkpoint_dir) / RESUME_NAME, step=step, model=self.model,
                          optimizer=self.optimizer, scaler=self.scaler, train_config=self.cfg.to_dict(),
                          model_config=self.model.cfg.to_dict(), world_size=self.info.world_size)

    def _save_final(self, steps_done: int, metrics: Any) -> Path | None:
        if not self.cfg.checkpoint_dir or not self.info.is_main:
            return None
        from core.weights import save_checkpoint

        classes = self.classes or getattr(self.train_set, "classes", None)
        if classes is None:
            from core.classes import ClassTable

            classes = ClassTable.default(self.model.cfg.num_classes)
        provenance = {"train_config": json.loads(json.dumps(self.cfg.to_dict())), "steps_done": steps_done,
                      "world_size": self.info.world_size}
        if metrics is not None:
            provenance["val_miou"] = None if math.isnan(metrics.miou) else float(metrics.miou)
            provenance["val_pixel_acc"] = None if math.isnan(metrics.pixel_acc) else float(metrics.pixel_acc)
        path = Path(self.cfg.checkpoint_dir) / FINAL_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        from core.inference.protocol import TestProtocol, training_long_side

        protocol = TestProtocol.for_training(self.cfg.crop, training_long_side(self.train_set, self.train_indices),
                                             flip=self.cfg.flip)
        save_checkpoint(path, self.model, classes, provenance, protocol=protocol)
        return path

    # ----------------------------------------------------------------- the generator
    def run(self) -> Generator[TrainProgress, None, TrainResult]:
        cfg, info, main = self.cfg, self.info, self.info.is_main
        history: list[TrainProgress] = []
        metrics = None
        resume_state: Path | None = None
        cancelled = False
        times: deque[float] = deque(maxlen=20)
        images_per_step = cfg.batch * info.world_size
        last_val_step = -1
        batches: Iterator[Batch] | None = None
        try:
            self._setup()
            done = self.start
            try:
                batches = self._batches()
                for step in range(self.start, cfg.steps):
                    if D.any_rank(_is_cancelled(self.cancel), info, self.device):
                        cancelled = True
                        break
                    t0 = time.perf_counter()
                    batch = next(batches)
                    self._check_labels(batch, step)
                    batch = batch.to(self.device, self.memory_format)
                    vals = self._guarded_step(step, batch).tolist()
                    done = step + 1
                    dt = time.perf_counter() - t0
                    times.append(dt)
                    rec = TrainProgress(
                        step=done, steps=cfg.steps, epoch=epoch_of(step, cfg.batch, info, len(self.train_indices)),
                        loss=vals[0], main_loss=vals[1], aux_loss=vals[2] if self.model.aux_head is not None
                        and cfg.aux_weight else None, lr=poly_lr(cfg.lr, step, cfg.steps, cfg.power),
                        images_per_s=images_per_step / dt if dt > 0 else math.inf,
                        eta_s=(sum(times) / len(times)) * (cfg.steps - done), message="; ".join(self.pending))
                    self.pending.clear()
                    history.append(rec)
                    if main:
                        yield rec
                    if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                        resume_state = self._save_state(done) or resume_state
                    if self.val_set is not None and cfg.val_every and done % cfg.val_every == 0:
                        metrics = self.validate()
                        last_val_step = done
                        val_rec = TrainProgress(**{**rec.__dict__, "val": metrics,
                                                   "message": f"validation: mIoU {metrics.miou:.4f}"})
                        history.append(val_rec)
                        if main:
                            yield val_rec
                if not cancelled and self.val_set is not None and last_val_step != done:
                    metrics = self.validate()
                    val_rec = TrainProgress(**{**(history[-1].__dict__ if history else _empty(done, cfg).__dict__),
                                               "val": metrics, "message": f"validation: mIoU {metrics.miou:.4f}"})
                    history.append(val_rec)
                    if main:
                        yield val_rec
            except Interrupted:  # cancelled while caching features or validating
                cancelled = True
            if cancelled:
                resume_state = self._save_state(done) or resume_state
            D.broadcast_buffers(self.model, info)
        finally:  # also when training fails or the consumer closes the generator early
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops DataLoader workers
            for p, flag in self.grad_flags:
                p.requires_grad_(flag)
            if self.sync_bn:
                D.from_sync_bn(self.model)
        self.model.eval()
        final = None if cancelled else self._save_final(done, metrics)
        D.barrier(info)
        result = TrainResult(self.model, history, metrics, cancelled, done, final, resume_state, list(self.notes))
        if cancelled:
            raise Cancelled(f"training cancelled after {done} of {cfg.steps} steps", partial=result)
        return result


def _empty(done: int, cfg: TrainConfig) -> TrainProgress:
    return TrainProgress(done, cfg.steps, 0, math.nan, math.nan, None, 0.0, 0.0, 0.0)
