"""How much memory a prediction needs, how much there is, and what happens when it runs out.

:func:`estimate` adds up the big allocations of one prediction from the plan (the photo's
size, the protocol), the model's widths and the class count: the photo's float copy, the
largest window's activations and its upsampled output, the passes' maps, the kept maps and
the photo-sized results. :func:`available_memory` is what this process can still allocate:
the smallest of the system's available memory (``/proc/meminfo``), the cgroup's limit and the
address-space limit (``ulimit -v``); on CUDA, the device's free memory. A prediction whose
estimate exceeds it is refused before any work with :class:`PredictionTooLarge`; one that
runs out anyway raises :class:`PredictionOutOfMemory` after letting go of what it held.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass, field

import torch

from core.config import ModelConfig
from core.errors import StudioError
from core.inference.compose import BAND_ROWS, POINT_CHUNK, store_grid
from core.inference.plan import Plan

SLACK = 1.25  # allocator slack and the small things not counted


class PredictionError(StudioError):
    """A prediction could not be made (see the subclasses)."""


class PredictionTooLarge(PredictionError):
    """The photo needs more memory under this protocol than there is; nothing was computed."""


class PredictionOutOfMemory(PredictionError):
    """Memory ran out during the prediction; everything it held has been let go."""


@dataclass
class MemoryEstimate:
    parts: dict[str, int] = field(default_factory=dict)  # bytes per item

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()) * SLACK)

    def describe(self) -> str:
        big = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{k} {gib(v)}" for k, v in big)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 * 0.1 else f"{n / 2**20:.0f} MB"


def estimate(plan: Plan, cfg: ModelConfig, *, aux: bool = True, internals: bool = False,
             keep_passes: bool = True) -> MemoryEstimate:
    """The peak of one prediction, in bytes, by item (see the module's docstring)."""
    H, W = plan.photo
    C = cfg.num_classes
    heads = 2 if (aux and cfg.aux) else 1
    f4 = 4
    parts: dict[str, int] = {}
    proc = plan.protocol.procedure
    biggest_input = max(p.padded[0] * p.padded[1] for p in plan.passes)
    parts["photo and its scaled copy"] = (H * W * 3 * f4 if proc == "semseg" else H * W * 3) + 3 * biggest_input * f4 * 2
    # the network on its largest window
    win = max((w.size[0] * w.size[1], w.size) for p in plan.passes for w in p.windows)[1]
    parts["network activations"] = activations(cfg, win)
    at_features = all(p.at_features for p in plan.passes)
    parts["window outputs"] = 0 if at_features else C * win[0] * win[1] * f4
    # the passes' maps: one being summed, the finished ones kept for the exact composition
    maps = []
    for p in plan.passes:
        if p.at_features:
            gh, gw = _features(cfg, p.size)
        else:
            gh, gw = p.grid
        maps.append((C + 1) * gh * gw * f4 * heads)
    parts["pass maps"] = sum(maps) if keep_passes else max(maps)
    # what the prediction keeps, and the band-wise composition
    sh, sw = store_grid(plan.working_size, C)
    parts["working-resolution maps"] = heads * C * sh * sw * 2 + C * sh * sw * f4 * 2 // 32
    parts["photo-sized results"] = H * W * (1 + (heads > 1) + 4 + 4) + 12 * BAND_ROWS * W * 8
    parts["exact points"] = 6 * C * min(POINT_CHUNK, H * W) * f4
    if internals:
        fh, fw = _features(cfg, win)
        c3, c4 = cfg.layer_channels[2], cfg.layer_channels[3]
        branches = (c4 // max(1, len(cfg.bins)) if cfg.reduction else c4) * len(cfg.bins) if cfg.use_ppm else 0
        parts["inspector features"] = (c3 + c4 + branches) * fh * fw * f4 + 3 * biggest_input * f4
    return MemoryEstimate(parts)


def activations(cfg: ModelConfig, size: tuple[int, int]) -> int:
    """The largest set of live activations in one forward of an (h, w) input, in bytes."""
    h, w = size
    n2 = math.ceil(h / 2) * math.ceil(w / 2)
    n4 = math.ceil(h / 4) * math.ceil(w / 4)
    fh, fw = _features(cfg, size)
    nf = fh * fw
    c1, c2, c3, c4 = cfg.layer_channels
    stem = cfg.deep_stem_width if cfg.stem == "deep" else cfg.base_width
    branches = 0
    if cfg.use_ppm:
        per = (cfg.reduction_channels or c4 // max(1, len(cfg.bins))) if cfg.reduction else c4
        branches = per * len(cfg.bins)
    peaks = [
        3 * stem * n2,
        3 * c1 * n4 + stem * n4,
        (3 * c2 + c1) * max(nf, n4 // 4),
        (3 * c3 + c2) * nf,
        (3 * c4 + c3) * nf,
        (c3 + c4 + (c4 + branches) + branches + 2 * cfg.head_channels) * nf,
    ]
    return max(peaks) * 4


def _features(cfg: ModelConfig, size: tuple[int, int]) -> tuple[int, int]:
    s = cfg.output_stride
    return math.ceil(size[0] / s), math.ceil(size[1] / s)


# --- what there is -----------------------------------------------------------------------------------


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes this process can still allocate on ``device`` (None when it cannot be told)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            reserved = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
            return int(free + max(0, reserved))
        except (RuntimeError, AssertionError):
            return None
    limits = [v for v in (_meminfo_available(), _cgroup_available(), _address_space_left()) if v is not None]
    return min(limits) if limits else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def _address_space_left() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        return None
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure of numpy, torch (CPU or CUDA) or OpenCV."""
    if isinstance(exc, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc)
    from_cv2 = type(exc).__module__.startswith("cv2")
    return (isinstance(exc, RuntimeError) or from_cv2) and any(
        s in text for s in ("out of memory", "can't allocate memory", "Insufficient Memory", "bad_alloc",
                            "Failed to allocate"))


__all__ = ["MemoryEstimate", "estimate", "activations", "available_memory", "is_out_of_memory", "gib",
           "PredictionError", "PredictionTooLarge", "PredictionOutOfMemory"]
