"""core.training: the generator, determinism, exact resume, the NaN / out-of-memory guards,
cancel, fine-tuning with a frozen backbone and cached features, and learning on synthetic scenes."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from core.config import ModelConfig
from core.data.augment import TrainAugment
from core.data.synthetic import SYNTHETIC_CLASSES, generate_scene, scene_seed
from core.errors import Cancelled, CheckpointError, TrainingError
from core.model import PSPNet
from core.training import TrainConfig, TrainResult, finetune, fixed_val_split, poly_lr, train
from core.training import loop
from core.training.data import Batch, epoch_of, step_samples
from core.training.dist import DistInfo
from core.training.dist import from_sync_bn, to_sync_bn

K = len(SYNTHETIC_CLASSES)
CROP = 32


class Scenes:
    """Synthetic scenes in memory, with the data set interface (classes, name, items)."""

    def __init__(self, n: int, seed: int = 0, size: int = 48, unlabel: float = 0.0):
        self.classes = SYNTHETIC_CLASSES
        self.items = []
        for i in range(n):
            image, mask = generate_scene(scene_seed(seed, i), (size, size))
            if unlabel:  # keep only a band of "painted corrections"
                keep = np.zeros_like(mask, bool)
                keep[int(size * unlabel):int(size * (unlabel + 0.3))] = True
                mask = np.where(keep, mask, 255).astype(np.uint8)
            self.items.append((image, mask))
        self.names = [f"scene_{seed}_{i:03d}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def name(self, i: int) -> str:
        return self.names[i]


@pytest.fixture(scope="module")
def scenes() -> Scenes:
    return Scenes(6)


def tiny_model(seed: int = 0, **kw) -> PSPNet:
    torch.manual_seed(seed)
    return PSPNet(ModelConfig(**{**dict(depth=18, base_width=4, num_classes=K, head_channels=16, aux_channels=8), **kw}))


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(steps=4, batch=2, crop=CROP, lr=0.01, scale=(0.75, 1.25)), **kw})


def run(gen, on_record=None) -> tuple[list, TrainResult]:
    """The records and the result; a cancelled run's partial result (the rule: core/generators.py)."""
    records = []
    while True:
        try:
            rec = next(gen)
        except StopIteration as stop:
            return records, stop.value
        except Cancelled as exc:
            assert isinstance(exc.partial, TrainResult) and exc.partial.cancelled
            return records, exc.partial
        records.append(rec)
        if on_record is not None:
            on_record(rec)


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------------------ schedule and split
def test_poly_lr_follows_the_paper_schedule():
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100) == 0.0
    lrs = [poly_lr(1.0, s, 10) for s in range(11)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_fixed_val_split_is_stable_as_names_are_added():
    names = [f"img_{i:03d}" for i in range(40)]
    train1, val1 = fixed_val_split(names, 0.2)
    assert sorted(train1 + val1) == sorted(names) and not set(train1) & set(val1)
    assert 2 <= len(val1) <= 16  # about a fifth
    assert fixed_val_split(list(reversed(names)), 0.2)[1] == list(reversed(val1))  # order-free membership
    more = names + [f"new_{i:03d}" for i in range(60)]
    train2, val2 = fixed_val_split(more, 0.2)
    assert set(val1) <= set(val2) and set(train1) <= set(train2)
    # tiny sets: one image is never held out, two give one each side
    assert fixed_val_split(["a"], 0.2) == (["a"], [])
    t, v = fixed_val_split(["a", "b"], 0.2)
    assert len(t) == 1 and len(v) == 1


def test_config_rejects_bad_values_with_a_clear_message():
    with pytest.raises(ValueError, match="amp must be one of"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="cache_features needs freeze_backbone"):
        TrainConfig(cache_features=True)
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint_dir"):
        TrainConfig(checkpoint_every=5)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg().to_dict()))) == cfg()


def test_batch_of_one_is_refused_before_anything_runs(scenes):
    model = tiny_model()
    before = state(model)
    with pytest.raises(TrainingError, match="1x1 pyramid level"):
        run(train(model, scenes, cfg=cfg(batch=1)))
    assert_same_state(before, state(model))


# ------------------------------------------------------------------------------ the generator
def test_records_determinism_and_the_effect_of_the_seed(scenes):
    recs1, res1 = run(train(tiny_model(), scenes, cfg=cfg(steps=3)))
    recs2, res2 = run(train(tiny_model(), scenes, cfg=cfg(steps=3)))
    assert [r.step for r in recs1] == [1, 2, 3]
    assert [r.loss for r in recs1] == [r.loss for r in recs2]  # bit for bit
    assert [r.main_loss for r in recs1] == [r.main_loss for r in recs2]
    assert_same_state(state(res1.model), state(res2.model))
    r = recs1[0]
    assert r.steps == 3 and r.epoch == 0 and r.val is None
    assert r.loss == pytest.approx(r.main_loss + 0.4 * r.aux_loss, rel=1e-5)
    assert [x.lr for x in recs1] == [poly_lr(0.01, s, 3) for s in range(3)]
    assert r.images_per_s > 0 and recs1[-1].eta_s == 0.0
    assert [x.epoch for x in recs1] == [0, 0, 0]
    assert epoch_of(3, 2, DistInfo(), 6) == 1  # 6 images, 2 per step: step 4 starts the second pass
    assert epoch_of(1, 2, DistInfo(rank=1, world_size=2), 6) == 0 and epoch_of(2, 2, DistInfo(0, 2), 6) == 1
    assert res1.steps_done == 3 and not res1.cancelled and not res1.model.training
    other, _ = run(train(tiny_model(), scenes, cfg=cfg(steps=3, seed=1)))
    assert [r.loss for r in other] != [r.loss for r in recs1]


def test_heads_learn_ten_times_faster_by_default(scenes):
    model = tiny_model()
    trainer = loop.Trainer(model, cfg(), scenes, range(len(scenes)))
    trainer._setup()
    mults = {g["lr_mult"]: len(g["params"]) for g in trainer.optimizer.param_groups}
    assert mults == {1.0: len(model.backbone_parameters()), 10.0: len(model.head_parameters())}
    g = trainer.optimizer.param_groups[0]
    assert g["momentum"] == 0.9 and g["weight_decay"] == 1e-4


def test_dataloader_workers_give_the_same_batches(scenes):
    recs0, _ = run(train(tiny_model(), scenes, cfg=cfg(steps=2)))
    recs2, _ = run(train(tiny_model(), scenes, cfg=cfg(steps=2, workers=2)))
    assert [r.loss for r in recs0] == [r.loss for r in recs2]


def test_resume_continues_bit_for_bit(scenes, tmp_path):
    straight, res_a = run(train(tiny_model(), scenes, cfg=cfg(steps=6)))
    ckdir = tmp_path / "ck"
    stop = threading.Event()
    first, res_b = run(train(tiny_model(), scenes, cfg=cfg(steps=6, checkpoint_every=3, checkpoint_dir=str(ckdir)),
                                     cancel=stop),
                       on_record=lambda r: r.step == 3 and stop.set())
    assert res_b.cancelled and res_b.steps_done == 3 and res_b.resume_state == ckdir / "last.pt"
    assert not (ckdir / "final.safetensors").exists()
    saved = torch.load(ckdir / "last.pt", weights_only=True)
    assert saved["step"] == 3 and set(saved["rng"]) == {"torch", "cuda", "numpy", "python"}
    # resume into a fresh model with different initial weights
    rest, res_c = run(train(tiny_model(seed=5), scenes, cfg=cfg(steps=6, resume=str(ckdir / "last.pt"))))
    assert [r.step for r in rest] == [4, 5, 6]
    assert [r.loss for r in first + rest] == [r.loss for r in straight]
    assert_same_state(state(res_a.model), state(res_c.model))
    assert res_c.notes and "resumed" in res_c.notes[-1]


def test_cancel_keeps_the_last_completed_step(scenes):
    snapshots = {}
    flag = threading.Event()

    def on_record(r):
        snapshots[r.step] = state(model)
        if r.step == 2:
            flag.set()

    model = tiny_model()
    recs, res = run(train(model, scenes, cfg=cfg(steps=5), cancel=flag), on_record)
    assert res.cancelled and res.steps_done == 2 and [r.step for r in recs] == [1, 2]
    assert_same_state(snapshots[2], state(res.model))
    # the rule (core/generators.py): a cancelled run raises, its partial result on the exception
    flag = threading.Event()
    gen = train(tiny_model(), scenes, cfg=cfg(steps=5), cancel=flag)
    assert next(gen).step == 1
    flag.set()
    with pytest.raises(Cancelled, match="after 1 of 5 steps") as info:
        next(gen)
    assert info.value.partial.steps_done == 1 and info.value.partial.cancelled
    assert res.checkpoint is None and res.metrics is None
    # a callable works too, and a cancel before the first step changes nothing
    model = tiny_model()
    before = state(model)
    recs, res = run(train(model, scenes, cfg=cfg(steps=5, amp="bf16", channels_last=True), cancel=lambda: True))
    assert recs == [] and res.cancelled and res.steps_done == 0
    assert_same_state(before, state(model))
    # mixed precision and channels_last are CUDA-only: on the CPU they are dropped, and said so
    assert any("amp bf16 ignored" in n for n in res.notes) and any("channels_last ignored" in n for n in res.notes)


class CountingScenes(Scenes):
    """Counts image reads and sets ``flag`` at read number ``at``."""

    def __init__(self, base: Scenes, flag: threading.Event, at: int):
        self.__dict__.update(base.__dict__)
        self.flag, self.at, self.reads = flag, at, 0

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.at:
            self.flag.set()
        return super().__getitem__(i)


def test_cancel_while_caching_features_or_validating_stops_inside_that_phase(scenes):
    # caching features: cancel at the 2nd of 6 images -> the 3rd is never read, no step is taken
    flag = threading.Event()
    data = CountingScenes(scenes, flag, at=2)
    model = tiny_model()
    before = state(model)
    recs, res = run(train(model, data, cfg=cfg(steps=3, freeze_backbone=True, cache_features=True), cancel=flag))
    assert res.cancelled and res.steps_done == 0 and recs == [] and data.reads == 2
    assert_same_state(before, state(model))
    # validation after step 2 (val_every=2): cancel at the 2nd held-out image -> the rest are skipped
    flag = threading.Event()
    val = CountingScenes(Scenes(5, seed=9), flag, at=2)
    recs, res = run(train(tiny_model(), scenes, val, cfg=cfg(steps=4, val_every=2), cancel=flag))
    assert res.cancelled and res.steps_done == 2 and val.reads == 2
    assert [r.step for r in recs] == [1, 2] and all(r.val is None for r in recs) and res.metrics is None


def test_resume_refuses_another_architecture_and_non_states(scenes, tmp_path):
    run(train(tiny_model(), scenes, cfg=cfg(steps=1, checkpoint_every=1, checkpoint_dir=str(tmp_path))))
    other = tiny_model(head_channels=8)
    before = state(other)
    with pytest.raises(CheckpointError, match="another model architecture.*head_channels"):
        run(train(other, scenes, cfg=cfg(steps=2, resume=str(tmp_path / "last.pt"))))
    assert_same_state(before, state(other))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="bad.pt: not a readable training state"):
        run(train(tiny_model(), scenes, cfg=cfg(resume=str(bad))))


# ------------------------------------------------------------------------------ faults
def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_weights(scenes):
    aug = TrainAugment(CROP, scale=(0.75, 1.25))
    calls = []

    def poisoned(image, mask, rng):
        calls.append(1)
        img, m = aug(image, mask, rng)
        if len(calls) > 4:  # the third step's images (batch 2)
            img = np.full_like(img, np.nan)
        return img, m

    model = tiny_model()
    good = {}
    with pytest.raises(TrainingError, match=r"step 3: the loss is not finite") as err:
        run(train(model, scenes, cfg=cfg(steps=5), augment=poisoned), lambda r: good.update(state(model)))
    assert "last good step" in str(err.value)
    assert_same_state(good, state(model))  # BatchNorm statistics included


def test_non_finite_gradient_stops_before_the_optimizer_step(scenes, monkeypatch):
    real = loop.pspnet_loss
    calls = []

    def loss_with_nan_grad(out, target, aux_weight=0.4):
        calls.append(1)
        parts = real(out, target, aux_weight)
        if len(calls) == 2:  # finite value (sqrt(0) = 0), NaN gradient
            parts.total = parts.total + torch.sqrt(out.main.sum() * 0.0)
        return parts

    monkeypatch.setattr(loop, "pspnet_loss", loss_with_nan_grad)
    model = tiny_model()
    good = {}
    with pytest.raises(TrainingError, match=r"step 2: the gradient is not finite"):
        run(train(model, scenes, cfg=cfg(steps=3)), lambda r: good.update(state(model)))
    assert_same_state(good, state(model))


def test_out_of_memory_halves_the_micro_batch_then_gives_up(scenes, monkeypatch):
    real = loop.Trainer.forward
    sizes = []

    def forward(self, chunk: Batch):
        sizes.append(len(chunk))
        if len(chunk) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, chunk)

    monkeypatch.setattr(loop.Trainer, "forward", forward)
    recs, res = run(train(tiny_model(), scenes, cfg=cfg(steps=2, batch=4)))
    assert sizes == [4, 2, 2, 2, 2]  # the first step failed whole, then ran in two halves
    assert "micro-batches of 2" in recs[0].message and "effective batch stays 4" in recs[0].message
    assert recs[1].message == "" and res.steps_done == 2 and any("out of memory" in n for n in res.notes)
    assert all(np.isfinite(r.loss) for r in recs)

    def always_oom(self, chunk):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(loop.Trainer, "forward", always_oom)
    model = tiny_model()
    before = state(model)
    with pytest.raises(TrainingError, match="step 1: out of memory .* 2 image"):
        run(train(model, scenes, cfg=cfg(steps=2, batch=4)))
    assert_same_state(before, state(model))


def test_ranks_draw_disjoint_samples_that_tile_each_step():
    per_rank = [step_samples(3, 4, DistInfo(rank=r, world_size=2)) for r in range(2)]
    assert sorted(per_rank[0] + per_rank[1]) == list(range(24, 32))
    assert step_samples(3, 4, DistInfo()) == [12, 13, 14, 15]


def test_micro_batches_never_go_below_the_minimum():
    b = Batch(torch.zeros(5, 4, 4, dtype=torch.uint8), torch.zeros(5, 3, 4, 4))
    assert [len(c) for c in b.chunks(2, 2)] == [3, 2]
    assert [len(c) for c in b.chunks(2, 1)] == [2, 2, 1]
    assert [len(c) for c in b.chunks(8, 2)] == [5]


def test_sync_bn_round_trip_keeps_the_state():
    model = tiny_model()
    before, params = state(model), [id(p) for p in model.parameters()]
    to_sync_bn(model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    from_sync_bn(model)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert_same_state(before, state(model))
    assert [id(p) for p in model.parameters()] == params  # the same tensors, so the optimizer's too


def test_label_ids_beyond_the_model_and_a_mismatched_class_table_are_refused(scenes):
    bad = Scenes(2, seed=9)
    bad.items[1][1][5:9, 5:9] = 12
    bad.items[0][1][5:9, 5:9] = 12
    model = tiny_model()
    before = state(model)
    with pytest.raises(TrainingError, match=r"step 1: the training masks hold label ids \[12\]"):
        run(train(model, bad, cfg=cfg(crop=48, scale=(1.0, 1.0), rotate=0)))
    assert_same_state(before, state(model))
    with pytest.raises(TrainingError, match="class table has 10 classes but the model predicts 5"):
        run(train(tiny_model(num_classes=5), scenes, cfg=cfg()))


# ------------------------------------------------------------------------------ fine-tuning
def test_finetune_frozen_cached_trains_only_the_heads_on_labelled_pixels():
    data = Scenes(5, seed=3, unlabel=0.45)
    data.items[4] = (data.items[4][0], np.full_like(data.items[4][1], 255))  # one unlabelled image
    model = tiny_model()
    before = state(model)
    c = cfg(steps=25, batch=2, crop=40, lr=0.02, freeze_backbone=True, cache_features=True, val_fraction=0.3)
    recs, res = run(finetune(model, data, c))
    after = state(res.model)
    backbone = [k for k in before if k.startswith("backbone.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)  # weights and BN statistics
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))
    losses = [r.loss for r in recs if r.val is None]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    _, val_names = fixed_val_split(data.names, 0.3)
    labelled_val = [n for n in val_names if n != data.names[4]]
    assert labelled_val, "the test needs a labelled validation image"
    assert res.metrics is not None and res.metrics.pixels == sum(
        int((data.items[data.names.index(n)][1] != 255).sum()) for n in labelled_val)
    assert all(p.requires_grad for p in model.parameters())  # the caller's flags come back


def test_finetune_without_cache_and_without_labels(tmp_path):
    data = Scenes(3, seed=4, unlabel=0.5)
    model = tiny_model()
    before = state(model)
    recs, res = run(finetune(model, data, cfg(steps=2, freeze_backbone=True), val_names=[data.name(0)]))
    assert res.steps_done == 2 and res.metrics is not None
    assert all(torch.equal(before[k], v) for k, v in state(model).items() if k.startswith("backbone."))
    empty = Scenes(2, seed=5, unlabel=0.5)
    empty.items = [(im, np.full_like(m, 255)) for im, m in empty.items]
    with pytest.raises(TrainingError, match="none of the 2 image"):
        run(finetune(tiny_model(), empty, cfg()))


# ------------------------------------------------------------------------------ it learns
def test_learns_synthetic_scenes_and_saves_a_loadable_model(tmp_path):
    from core.data.datasets import open_dataset
    from core.data.synthetic import write_demo_project
    from core.weights import load_model

    root = write_demo_project(tmp_path / "demo", n_train=24, n_val=6, size=(48, 48), seed=0)
    train_set, val_set = open_dataset(root, "train"), open_dataset(root, "val")
    torch.manual_seed(0)
    model = PSPNet(ModelConfig(depth=18, base_width=8, num_classes=K, head_channels=32, aux_channels=16))
    c = TrainConfig(steps=60, batch=8, crop=48, lr=0.02, scale=(0.75, 1.25), rotate=0, blur=0, val_every=30,
                    checkpoint_dir=str(tmp_path / "run"))
    recs, res = run(train(model, train_set, val_set, c))
    losses = [r.loss for r in recs if r.val is None]
    vals = [r.val for r in recs if r.val is not None]
    assert len(losses) == 60 and len(vals) == 2
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    # measured at step 60: mIoU 0.29 with this seed (0.33 and 0.44 with seeds 1 and 2); chance is ~0.05
    assert res.metrics is vals[-1] and res.metrics.miou > 0.2
    loaded = load_model(res.checkpoint)
    assert loaded.classes == SYNTHETIC_CLASSES
    assert loaded.provenance["train_config"]["steps"] == 60 and loaded.provenance["steps_done"] == 60
    assert_same_state(state(res.model.cpu()), state(loaded.model))
