"""Per-step training batches that depend only on (seed, step, rank), never on history.

Sample ``g`` of the run (a global counter: step, slot in the batch, rank, rank-strided like
``DistributedSampler``) maps to a data set index through a seeded permutation per epoch, and
is augmented with its own ``np.random.Generator`` seeded by ``(seed, g)``. So a resumed run,
a run with DataLoader workers and a run in the main process all see the same pixels, and
``torchrun`` ranks see disjoint samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from core.loss import IGNORE_INDEX
from core.training.dist import DistInfo

Augment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
_PERM = 0x5EED  # separates the permutation streams from the augmentation streams


def seed_seq(*parts: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(p) % 2**63 for p in parts])


def torch_seed(*parts: int) -> int:
    """A torch seed for (seed, step, rank ...): dropout draws the same numbers after a resume."""
    return int(seed_seq(*parts).generate_state(1, np.uint64)[0] % 2**63)


@dataclass
class Batch:
    """One step's samples: either images (N, 3, H, W) on the 0..255 scale or cached backbone
    features; masks (N, H, W) with 255 = ignore."""

    masks: torch.Tensor
    images: torch.Tensor | None = None
    layer3: torch.Tensor | None = None
    layer4: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def chunks(self, size: int, min_size: int = 1) -> Iterator["Batch"]:
        """Near-equal micro-batches of about ``size`` images, none smaller than ``min_size``."""
        n = len(self)
        k = max(1, min(-(-n // max(size, 1)), n // max(min_size, 1)))
        if k == 1:
            yield self
            return
        parts = [None if t is None else torch.tensor_split(t, k) for t in (self.masks, self.images, self.layer3, self.layer4)]
        for i in range(k):
            yield Batch(*(None if p is None else p[i] for p in parts))

    def pin_memory(self) -> "Batch":  # called by DataLoader(pin_memory=True)
        return Batch(*(None if t is None else t.pin_memory() for t in (self.masks, self.images, self.layer3, self.layer4)))

    def to(self, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format) -> "Batch":
        def move(t: torch.Tensor | None, fmt: bool) -> torch.Tensor | None:
            if t is None:
                return None
            t = t.to(device, non_blocking=True)
            return t.contiguous(memory_format=memory_format) if fmt else t

        return Batch(move(self.masks, False).long(), move(self.images, True), move(self.layer3, True),
                     move(self.layer4, True))


class SampleOrder:
    """Global sample number -> position in the (sub)set, a fresh seeded permutation per epoch."""

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError("the training set is empty")
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, np.arange(n)

    def __call__(self, g: int) -> int:
        epoch, pos = divmod(int(g), self.n)
        if epoch != self._epoch:
            self._perm = np.random.default_rng(seed_seq(self.seed, _PERM, epoch)).permutation(self.n)
            self._epoch = epoch
        return int(self._perm[pos])


def step_samples(step: int, batch: int, info: DistInfo) -> list[int]:
    """The global sample numbers of one rank's share of a step (rank-strided)."""
    base = step * batch * info.world_size
    return [base + j * info.world_size + info.rank for j in range(batch)]


def epoch_of(step: int, batch: int, info: DistInfo, n: int) -> int:
    return step * batch * info.world_size // max(n, 1)


class AugmentedSamples(Dataset):
    """Map-style view: global sample number -> (image 3xHxW float32 0..255, mask HxW uint8)."""

    def __init__(self, dataset: Any, indices: Sequence[int], augment: Augment, seed: int):
        self.dataset, self.indices, self.augment, self.seed = dataset, list(indices), augment, seed
        self.order = SampleOrder(len(self.indices), seed)

    def __len__(self) -> int:  # not used by the sampler; the run is as long as it has steps
        return len(self.indices)

    def __getitem__(self, g: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.dataset[self.indices[self.order(g)]]
        image, mask = self.augment(image, mask, np.random.default_rng(seed_seq(self.seed, g)))
        img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
        return img, torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))


class StepBatches(Sampler[list[int]]):
    """Batches of global sample numbers for steps ``start .. steps-1`` of one rank."""

    def __init__(self, start: int, steps: int, batch: int, info: DistInfo):
        self.start, self.steps, self.batch, self.info = start, steps, batch, info

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.steps):
            yield step_samples(step, self.batch, self.info)

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)


def _collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> Batch:
    return Batch(torch.stack([m for _, m in items]), torch.stack([i for i, _ in items]))


def _seed_worker(worker_id: int) -> None:
    """Seed the global RNGs of a worker (only data sets that use them need it; ours do not)."""
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def augmented_batches(samples: AugmentedSamples, start: int, steps: int, batch: int, info: DistInfo,
                      workers: int, pin: bool) -> Iterator[Batch]:
    """One :class:`Batch` per step; a DataLoader with ``workers`` processes, or the main process."""
    sampler = StepBatches(start, steps, batch, info)
    if workers <= 0:
        for gs in sampler:
            yield _collate([samples[g] for g in gs])
        return
    gen = torch.Generator().manual_seed(torch_seed(samples.seed, info.rank))
    loader = DataLoader(samples, batch_sampler=sampler, num_workers=workers, collate_fn=_collate,
                        pin_memory=pin, worker_init_fn=_seed_worker, generator=gen,
                        prefetch_factor=4, persistent_workers=False)
    yield from loader


def fit_pad(image: np.ndarray, mask: np.ndarray, crop: int, mean: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Shrink (never enlarge) so the image fits in crop x crop, then pad right/bottom with the
    mean colour (0 after normalising) and the ignore label: the fixed input of cached features."""
    h, w = mask.shape[:2]
    s = min(1.0, crop / max(h, w))
    if s < 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    h, w = mask.shape[:2]
    img = np.empty((crop, crop, 3), np.float32)
    img[:] = np.asarray(mean, np.float32)
    img[:h, :w] = image
    out = np.full((crop, crop), IGNORE_INDEX, np.uint8)
    out[:h, :w] = mask
    return img, out


class Interrupted(Exception):
    """Raised inside a phase that runs before or between steps (feature caching, validation) when
    the run is cancelled; the training loop turns it into a cancelled result."""


class FeatureCache:
    """layer3 / layer4 of each training image (fit_pad'ed, un-augmented), computed once."""

    def __init__(self, layer3: torch.Tensor, layer4: torch.Tensor, masks: torch.Tensor, seed: int):
        self.layer3, self.layer4, self.masks = layer3, layer4, masks
        self.order = SampleOrder(int(masks.shape[0]), seed)

    @classmethod
    @torch.no_grad()
    def build(cls, model: torch.nn.Module, dataset: Any, indices: Sequence[int], crop: int, device: torch.device,
              autocast: Callable[[], Any], seed: int, memory_format: torch.memory_format,
              stop: Callable[[], bool] = lambda: False) -> "FeatureCache":
        """Run the frozen backbone once per image; ``stop()`` is asked before each (raises Interrupted)."""
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        was_training = model.backbone.training
        model.backbone.eval()
        l3, l4, masks = [], [], []
        try:
            for i in indices:
                if stop():
                    raise Interrupted
                image, mask = fit_pad(*dataset[i], crop, model.cfg.mean)
                x = torch.from_numpy(image).permute(2, 0, 1)[None].to(device)
                x = model.normalize(x).contiguous(memory_format=memory_format)
                with autocast():
                    stages = model.backbone(x)
                l3.append(stages.layer3.to(dtype))
                l4.append(stages.layer4.to(dtype))
                masks.append(torch.from_numpy(mask))
        finally:
            model.backbone.train(was_training)
        return cls(torch.cat(l3), torch.cat(l4), torch.stack(masks), seed)

    def batches(self, start: int, steps: int, batch: int, info: DistInfo) -> Iterator[Batch]:
        for step in range(start, steps):
            idx = torch.tensor([self.order(g) for g in step_samples(step, batch, info)])
            yield Batch(self.masks[idx], None, self.layer3[idx], self.layer4[idx])
