"""The test protocol travels with the model: recorded in our checkpoints, set by each importer to
its source's own, recorded by training, chosen (with a note) for files that predate it."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import core
from core.classes import ClassTable
from core.errors import CheckpointError
from core.inference import Predictor, TestProtocol
from test_weights import tiny, to_csail, to_mmseg, to_semseg

MMSEG_0X_CONFIG = """norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    decode_head=dict(type='PSPHead', in_channels=2048, channels=512, pool_scales=(1, 2, 3, 6), num_classes=19,
                     align_corners=False),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(769, 769), stride=(513, 513)))
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=(2049, 1025),
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=True),
            dict(type='RandomFlip'),
            dict(type='Normalize', **img_norm_cfg),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='Collect', keys=['img'])
        ])
]
"""

MMSEG_1X_CONFIG = """model = dict(
    type='EncoderDecoder',
    test_cfg=dict(mode='whole'),
    decode_head=dict(type='PSPHead', num_classes=150, align_corners=False))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
tta_pipeline = [dict(type='TestTimeAug', transforms=[[dict(type='Resize', scale_factor=0.5, keep_ratio=True)]])]
"""


def test_our_checkpoint_records_the_protocol_and_reads_it_back(tmp_path):
    model = tiny()
    protocol = TestProtocol.semseg("cityscapes", scales=(0.75, 1.0), source="test")
    path = tmp_path / "m.safetensors"
    core.save_checkpoint(path, model, ClassTable.default(5), {"source": "test"}, protocol=protocol)
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["protocol"])["base_size"] == 2048
    loaded = core.load_model(path)
    assert loaded.protocol == protocol and loaded.model.test_protocol == protocol
    pred = Predictor.from_loaded(loaded)
    assert pred.protocol == protocol and pred.crop == 713 and pred.scales == (0.75, 1.0)
    # a copy of the model (as fine-tuning makes) keeps it, and saving it records it again
    again = tmp_path / "again.safetensors"
    core.save_checkpoint(again, copy.deepcopy(loaded.model), loaded.classes)
    assert core.load_model(again).protocol == protocol
    # without one: the photo at its own size
    fresh = tmp_path / "fresh.safetensors"
    core.save_checkpoint(fresh, tiny(), ClassTable.default(5))
    assert core.load_model(fresh).protocol == TestProtocol.native()


def _strip_protocol(path, provenance=None):
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta.pop("protocol")
    if provenance is not None:
        meta["provenance"] = json.dumps(provenance)
    save_file(tensors, str(path), metadata=meta)


def test_an_older_file_without_a_protocol_gets_one_from_its_provenance_with_a_note(tmp_path):
    path = tmp_path / "old.safetensors"
    core.save_checkpoint(path, tiny(), ClassTable.default(5))
    _strip_protocol(path, {"source": "pspnet-studio", "train_config": {"crop": 96, "flip": True}})
    loaded = core.load_model(path)
    assert loaded.protocol.crop == 96 and loaded.protocol.base_size is None and loaded.protocol.flip
    assert any("records no test protocol" in n and "crop 96" in n for n in loaded.report.notes)
    imported = tmp_path / "imported.safetensors"
    core.save_checkpoint(imported, tiny(num_classes=19), ClassTable.default(19))
    _strip_protocol(imported, {"source": "x.pth", "imported_from": "semseg"})
    loaded = core.load_model(imported)
    assert loaded.protocol == TestProtocol.semseg("cityscapes")
    assert any("imported from semseg" in n for n in loaded.report.notes)
    plain = tmp_path / "plain.safetensors"
    core.save_checkpoint(plain, tiny(), ClassTable.default(5))
    _strip_protocol(plain, {"source": "somewhere"})
    assert core.load_model(plain).protocol == TestProtocol.native()


def test_a_broken_protocol_entry_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    core.save_checkpoint(path, tiny(), ClassTable.default(5))
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["protocol"] = json.dumps({"base_size": -3})
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="invalid test protocol"):
        core.load_model(path)


@pytest.mark.parametrize("classes, dataset", [(150, "ade20k"), (21, "voc"), (19, "cityscapes")])
def test_semseg_files_get_semseg_test_settings_for_their_data_set(tmp_path, classes, dataset):
    model = tiny(depth=50, base_width=4, num_classes=classes)
    path = tmp_path / "train_epoch_50.pth"
    torch.save({"epoch": 50, "state_dict": {"module." + k: v for k, v in to_semseg(model).items()}}, path)
    loaded = core.load_model(path)
    assert loaded.protocol == TestProtocol.semseg(dataset)
    assert (loaded.protocol.base_size, loaded.protocol.crop) == {"ade20k": (512, 473), "voc": (512, 473),
                                                                 "cityscapes": (2048, 713)}[dataset]
    assert loaded.protocol.flip and loaded.protocol.miou == "all"
    assert any(f"semseg's for {dataset}" in n for n in loaded.report.notes)


def test_semseg_files_of_another_class_count_get_the_ade20k_settings_and_a_note(tmp_path):
    path = tmp_path / "train_epoch_5.pth"
    torch.save(to_semseg(tiny(depth=50, base_width=4, num_classes=7)), path)
    loaded = core.load_model(path)
    assert loaded.protocol == TestProtocol.semseg("ade20k")
    assert any("this file has 7" in n for n in loaded.report.notes)


def _mmseg_file(tmp_path, meta, classes=5):
    model = tiny(stem_width=8, dilation="halved_first", basic_dilate_conv2=False, align_corners=False,
                 num_classes=classes)
    path = tmp_path / "pspnet.pth"
    torch.save({"meta": meta, "state_dict": to_mmseg(model)}, path)
    return core.load_model(path)


def test_mmseg_files_take_their_config_test_pipeline_and_test_cfg(tmp_path):
    loaded = _mmseg_file(tmp_path, {"config": MMSEG_0X_CONFIG, "CLASSES": tuple("abcde")})
    p = loaded.protocol
    assert (p.procedure, p.side, p.base_size, p.max_long, p.crop, p.stride, p.flip) == \
        ("mmseg", "short", 1025, 2049, 769, 513, False)
    assert p.miou == "present" and any("from the mmseg config" in n for n in loaded.report.notes)
    p = _mmseg_file(tmp_path, {"cfg": MMSEG_1X_CONFIG}).protocol
    assert (p.base_size, p.max_long, p.crop, p.scales) == (512, 2048, None, (1.0,))


def test_an_mmseg_config_in_the_file_sets_align_corners_and_pool_scales(tmp_path):
    """The Cityscapes 769x769 models upsample with align_corners=True: read from the config the
    file carries, the model computes what mmseg computes (not the assumed False)."""
    config = MMSEG_0X_CONFIG.replace("align_corners=False", "align_corners=True")
    model = tiny(stem_width=8, dilation="halved_first", basic_dilate_conv2=False, align_corners=True, num_classes=5)
    path = tmp_path / "pspnet769.pth"
    torch.save({"meta": {"config": config}, "state_dict": to_mmseg(model)}, path)
    loaded = core.load_model(path)
    assert loaded.config.align_corners is True and loaded.config == model.cfg
    assert any("over the assumption: align_corners=True, pool_scales=(1, 2, 3, 6)" in n for n in loaded.report.notes)
    x = torch.rand(1, 3, 67, 93) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(x).main, model.eval()(x).main)
    # without its config the file gets the PSPNet configs' value, and says it assumed it
    torch.save({"meta": {}, "state_dict": to_mmseg(model)}, path)
    plain = core.load_model(path)
    assert plain.config.align_corners is False and not any("over the assumption" in n for n in plain.report.notes)


@pytest.mark.parametrize("classes, short", [(150, 512), (19, 1024)])
def test_mmseg_files_without_their_config_get_the_data_set_configs(tmp_path, classes, short):
    loaded = _mmseg_file(tmp_path, {"mmseg_version": "1.2.2"}, classes)
    p = loaded.protocol
    assert (p.procedure, p.base_size, p.max_long, p.crop) == ("mmseg", short, 2048, None)
    assert any("does not carry its mmseg config" in n for n in loaded.report.notes)


def test_csail_files_get_csail_eval_settings(tmp_path):
    model = tiny(dilation="halved_first", basic_dilate_conv2=True, align_corners=False, reduction_channels=64,
                 aux_channels=16)
    encoder, decoder = to_csail(model)
    torch.save(encoder, tmp_path / "encoder_epoch_20.pth")
    torch.save(decoder, tmp_path / "decoder_epoch_20.pth")
    loaded = core.load_model([tmp_path / "encoder_epoch_20.pth", tmp_path / "decoder_epoch_20.pth"])
    p = loaded.protocol
    assert p == TestProtocol.csail()
    assert [round(p.base_size * s) for s in p.scales] == [300, 375, 450, 525, 600] and p.max_long == 1000
    assert p.scaled_size(375, 500, 0.5) == (304, 400)


def test_training_records_its_crop_and_the_size_of_its_images(tmp_path):
    from core.training import TrainConfig, train
    from core.generators import run_to_end

    scenes = core.write_demo_project(tmp_path / "scenes", n_train=3, n_val=1, size=(48, 80), seed=0)
    data = core.open_dataset(scenes, "train")
    model = core.build_model(core.ModelConfig(depth=18, base_width=8, num_classes=len(data.classes),
                                              head_channels=16, aux_channels=8))
    cfg = TrainConfig(steps=1, batch=2, crop=40, checkpoint_dir=str(tmp_path / "run"), device="cpu")
    result = run_to_end(train(model, data, cfg=cfg))
    loaded = core.load_model(result.checkpoint)
    p = loaded.protocol
    assert (p.crop, p.base_size, p.procedure, p.flip) == (40, 80, "semseg", True)
    assert "our training" in p.source


def test_protocol_json_round_trip_and_validation():
    for p in (TestProtocol(), TestProtocol.native(), TestProtocol.mmseg(512, 2048, crop=512, stride=341),
              TestProtocol.csail(), TestProtocol.for_training(128, 256)):
        assert TestProtocol.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert TestProtocol.native().to_dict()["base_size"] == "native"
    with pytest.raises(ValueError, match="unknown test protocol field"):
        TestProtocol.from_dict({"size": 3})
    for bad in (dict(crop=0), dict(stride_ratio=1.5), dict(scales=()), dict(procedure="caffe"), dict(side="wide")):
        with pytest.raises(ValueError, match="invalid test protocol"):
            TestProtocol(**bad)
    changed = TestProtocol().replace(crop=None, base_size=None)
    assert changed.crop is None and changed.base_size is None and "overridden" in changed.source
    assert "semseg procedure" in TestProtocol().describe()
