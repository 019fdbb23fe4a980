"""Several processes under ``torchrun``: detection, process group, DDP wrapping, SyncBatchNorm.

``torchrun --nproc_per_node=N main.py train ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; :func:`init_distributed` turns them into a process group (NCCL on CUDA,
gloo on the CPU). Outside torchrun everything here is a no-op for a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the torchrun job this process belongs to (once); a world of one outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
        if use_cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean over processes (NaN anywhere gives NaN everywhere, so every rank stops together)."""
    if not info.distributed:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / info.world_size


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on one of them (cancel must stop all ranks at once)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's BatchNorm statistics (DDP syncs them only at each forward's start)."""
    if info.distributed:
        for b in module.buffers():
            dist.broadcast(b, src=0)


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device, find_unused: bool = False) -> nn.Module:
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def to_sync_bn(model: nn.Module) -> nn.Module:
    """BatchNorm -> SyncBatchNorm in place (the children are replaced; the state dict keys stay)."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def from_sync_bn(module: nn.Module) -> nn.Module:
    """Undo :func:`to_sync_bn`: plain BatchNorm2d holding the same parameter and statistics
    tensors, so the trained model runs in one process again (SyncBatchNorm needs a process group)."""
    if isinstance(module, nn.SyncBatchNorm):
        bn = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, device="meta")
        if module.affine:
            bn.weight, bn.bias = module.weight, module.bias
        if module.track_running_stats:
            bn.running_mean, bn.running_var = module.running_mean, module.running_var
            bn.num_batches_tracked = module.num_batches_tracked
        bn.train(module.training)
        return bn
    for name, child in module.named_children():
        new = from_sync_bn(child)
        if new is not child:
            setattr(module, name, new)
    return module
