"""Checkpoints: our safetensors format (bit-exact round trip), every foreign format detected and
mapped, the refusals (clear errors, nothing changed on disk), the unsafe pickle, and fetching
ImageNet weights without a network."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import pickle
import re
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import core
from core.classes import ClassTable
from core.config import ModelConfig
from core.errors import CheckpointError
from core.model import PSPNet
from core.weights import fetch as fetch_module
from core.weights import load_backbone
from core.weights.arch import fit_problems
from core.weights.files import read_weight_file
from core.weights.formats import detect, map_keys
from core.weights.unpickle import InertObject
from core import zoo
from http_fixture import Route, refused_url, serving
from reference_weights import model_keys, reference_dir, tsv_keys

TINY = dict(num_classes=5, head_channels=16, aux_channels=8)


def tiny(seed: int = 0, **kw) -> PSPNet:
    """A tiny model whose every tensor (BatchNorm statistics too) is random, so that any
    mix-up of two tensors changes the outputs."""
    torch.manual_seed(seed)
    model = PSPNet(ModelConfig(**{**dict(depth=18, base_width=8), **TINY, **kw}))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):  # He scale: activations neither vanish (slow denormals) nor explode
                m.weight.copy_(torch.randn_like(m.weight) * (2 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn_like(m.bias) * 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.75 + 0.5 * torch.rand_like(m.running_var))
    return model.eval()


def x_input() -> torch.Tensor:
    return torch.randn((1, 3, 33, 41), generator=torch.Generator().manual_seed(3))


def same_outputs(a: PSPNet, b: PSPNet) -> None:
    with torch.no_grad():
        oa, ob = a(x_input()), b(x_input())
    torch.testing.assert_close(ob.main, oa.main, rtol=0, atol=0)
    if oa.aux is not None:
        torch.testing.assert_close(ob.aux, oa.aux, rtol=0, atol=0)


def same_state(a: PSPNet, b: PSPNet, skip: tuple[str, ...] = ()) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if k not in skip:
            assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def snapshot(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- renaming our state dict into the other implementations' layouts (written independently of core) ---

def rename(state: dict[str, torch.Tensor], stem: dict[str, str], ppm: str, heads: dict[str, str],
           layers: str = "{}") -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key.startswith("backbone."):
            rest = key[len("backbone."):]
            part = rest.split(".")[0]
            new = stem[part] + rest[len(part):] if part in stem else layers.format(rest)
        elif key.startswith("ppm.branches."):
            _, _, i, kind, param = key.split(".", 4)
            new = ppm.format(i=i, slot=1 if kind == "conv" else 2, kind=kind, param=param)
        else:
            module, param = key.rsplit(".", 1)
            new = f"{heads[module]}.{param}"
        out[new] = value
    return out


SEMSEG_STEM = {"conv1": "layer0.0", "bn1": "layer0.1", "conv2": "layer0.3", "bn2": "layer0.4", "conv3": "layer0.6",
               "bn3": "layer0.7"}
SEMSEG_HEADS = {"head.conv": "cls.0", "head.bn": "cls.1", "head.classifier": "cls.4", "aux_head.conv": "aux.0",
                "aux_head.bn": "aux.1", "aux_head.classifier": "aux.4"}
CSAIL_HEADS = {"head.conv": "conv_last.0", "head.bn": "conv_last.1", "head.classifier": "conv_last.4",
               "aux_head.conv": "cbr_deepsup.0", "aux_head.bn": "cbr_deepsup.1",
               "aux_head.classifier": "conv_last_deepsup"}
MMSEG_STEM = {"conv1": "backbone.stem.0", "bn1": "backbone.stem.1", "conv2": "backbone.stem.3",
              "bn2": "backbone.stem.4", "conv3": "backbone.stem.6", "bn3": "backbone.stem.7"}
MMSEG_HEADS = {"head.conv": "decode_head.bottleneck.conv", "head.bn": "decode_head.bottleneck.bn",
               "head.classifier": "decode_head.conv_seg", "aux_head.conv": "auxiliary_head.convs.0.conv",
               "aux_head.bn": "auxiliary_head.convs.0.bn", "aux_head.classifier": "auxiliary_head.conv_seg"}


def to_semseg(model: PSPNet) -> dict[str, torch.Tensor]:
    return rename(model.state_dict(), SEMSEG_STEM, "ppm.features.{i}.{slot}.{param}", SEMSEG_HEADS)


def to_csail(model: PSPNet) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    state = rename(model.state_dict(), {}, "ppm.{i}.{slot}.{param}", CSAIL_HEADS)
    encoder = {k: v for k, v in state.items() if re.match(r"(conv|bn)[123]\.|layer", k)}
    decoder = {k: v for k, v in state.items() if k not in encoder}
    return encoder, decoder


def to_mmseg(model: PSPNet) -> dict[str, torch.Tensor]:
    return rename(model.state_dict(), MMSEG_STEM, "decode_head.psp_modules.{i}.1.{kind}.{param}", MMSEG_HEADS,
                  layers="backbone.{}")


def backbone_file(model: PSPNet) -> dict[str, torch.Tensor]:
    """An ImageNet-style file: the backbone under torchvision names, plus the 1000-way fc."""
    state = {k[len("backbone."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    state["fc.weight"] = torch.randn(1000, model.cfg.layer_channels[3])
    state["fc.bias"] = torch.randn(1000)
    return state


# --- our format -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(stem="plain", pooling="max", bins=(1, 3), aux=False, align_corners=False),
                                dict(depth=50, base_width=4, output_stride=16, reduction_channels=8)])
def test_our_checkpoint_round_trip_is_bit_exact(tmp_path, kw):
    model = tiny(**kw)
    classes = ClassTable(("sky", "road", "car", "tree", "person"),
                         ((0, 0, 255), (128, 64, 128), (255, 0, 0), (0, 128, 0), (220, 20, 60)), "mine")
    path = tmp_path / "model.safetensors"
    core.save_checkpoint(path, model, classes, {"training": {"run": "r7", "steps": 120}, "imported_from": "semseg"})

    loaded = core.load_model(path)
    assert loaded.config == model.cfg
    assert loaded.classes == classes
    assert loaded.provenance["training"] == {"run": "r7", "steps": 120}
    assert loaded.provenance["imported_from"] == "semseg"
    assert loaded.provenance["source"] == "pspnet-studio"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", loaded.provenance["created"])
    assert loaded.report.format == "pspnet-studio" and loaded.report.reinitialised == []
    assert sorted(loaded.report.loaded) == sorted(model.state_dict())
    assert loaded.sources == [path] and not loaded.model.training
    same_state(model, loaded.model)
    same_outputs(model, loaded.model)
    # nothing but tensors and strings in the file
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "pspnet-studio" and meta["format_version"] == "1"
    assert json.loads(meta["config"]) == model.cfg.to_dict()
    assert json.loads(meta["classes"]) == classes.to_dict()
    assert list(tmp_path.iterdir()) == [path]  # no temp file left


def test_class_count_change_reinitialises_only_the_classifiers(tmp_path):
    model = tiny()
    path = tmp_path / "m.safetensors"
    core.save_checkpoint(path, model, ClassTable.default(5))
    new = ClassTable.from_names(["a", "b", "c"])
    loaded = core.load_model(path, classes=new)
    classifiers = ["head.classifier.weight", "head.classifier.bias", "aux_head.classifier.weight",
                   "aux_head.classifier.bias"]
    assert sorted(loaded.report.reinitialised) == sorted(classifiers)
    assert not set(classifiers) & set(loaded.report.loaded)
    assert loaded.config.num_classes == 3 and loaded.classes == new
    assert loaded.model.head.classifier.weight.shape == (3, 16, 1, 1)
    assert any("5 classes" in n for n in loaded.report.notes)
    theirs, ours = model.state_dict(), loaded.model.state_dict()
    for k in theirs:
        if k not in classifiers:
            assert torch.equal(theirs[k], ours[k]), k
    with torch.no_grad():
        assert loaded.model(x_input()).main.shape == (1, 3, 33, 41)
    summary = loaded.report.summary()
    assert summary.splitlines()[0] == "format: pspnet-studio"
    assert "freshly initialised 4 tensors: aux_head.classifier, head.classifier" in summary
    # num_classes alone: generated names; a conflicting pair is refused
    assert core.load_model(path, num_classes=7).classes == ClassTable.default(7)
    with pytest.raises(CheckpointError, match="num_classes=4 but the class table given has 3"):
        core.load_model(path, num_classes=4, classes=new)


def test_save_refuses_a_class_table_of_another_size_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.safetensors"
    core.save_checkpoint(path, tiny(), ClassTable.default(5))
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="class table has 4 classes but the model 5"):
        core.save_checkpoint(path, tiny(seed=1), ClassTable.default(4))
    assert snapshot(tmp_path) == before


# --- foreign formats ------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrapped", [True, False])
def test_semseg_checkpoint(tmp_path, wrapped):
    model = tiny(depth=50, base_width=4)
    state = to_semseg(model)
    if reference_dir() is not None:  # the renaming above is the real layout
        assert set(state) == {k for k, _, _ in model_keys("semseg_pspnet50")}
    path = tmp_path / "train_epoch_50.pth"
    payload = {"epoch": 50, "state_dict": {"module." + k: v for k, v in state.items()},
               "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0]}]}} if wrapped else state
    torch.save(payload, path)
    loaded = core.load_model(path)
    assert loaded.report.format == "semseg"
    assert loaded.config == model.cfg  # deep stem, dilation "all", align_corners True: semseg's
    assert any("assumed semseg's" in n for n in loaded.report.notes)
    if wrapped:
        assert loaded.provenance["epoch"] == 50
        assert any("optimizer" in n for n in loaded.report.notes)
    same_state(model, loaded.model)
    same_outputs(model, loaded.model)


def test_csail_pair_in_either_order_with_r18_style_ppm(tmp_path):
    # CSAIL's resnet18dilated: deep stem, half dilation in the first block, the 2nd conv of a
    # BasicBlock dilated; the PPM keeps its full width (R18: 512 == fc_dim) and aux = fc_dim / 4
    model = tiny(dilation="halved_first", basic_dilate_conv2=True, align_corners=False, reduction_channels=64,
                 aux_channels=16)
    encoder, decoder = to_csail(model)
    torch.save(encoder, tmp_path / "encoder_epoch_20.pth")
    torch.save(decoder, tmp_path / "decoder_epoch_20.pth")
    for order in ([tmp_path / "encoder_epoch_20.pth", tmp_path / "decoder_epoch_20.pth"],
                  [tmp_path / "decoder_epoch_20.pth", tmp_path / "encoder_epoch_20.pth"]):
        loaded = core.load_model(order)
        assert loaded.report.format == "csail"
        assert loaded.config == model.cfg
        assert loaded.sources == order
        same_outputs(model, loaded.model)


def test_csail_key_layout_is_the_real_one():
    if reference_dir() is None:
        pytest.skip("the reference key lists (shared/reference/) are not on this machine")
    encoder, decoder = to_csail(tiny(depth=50, base_width=4))
    assert set(encoder) == {k for k, _, _ in model_keys("csail_resnet50dilated_encoder")}
    assert set(decoder) == {k for k, _, _ in model_keys("csail_ppm_deepsup_decoder")}


def test_mmseg_checkpoint_with_class_names_from_meta(tmp_path):
    # ResNetV1c (stem 32-32-64 for width 64: here 4-4-8), contract_dilation, BasicBlock 2nd conv undilated
    model = tiny(stem_width=8, dilation="halved_first", basic_dilate_conv2=False, align_corners=False)
    names = ["wall", "floor", "ceiling", "bed", "window"]
    palette = [[120, 120, 120], [80, 50, 50], [120, 120, 80], [204, 5, 255], [230, 230, 230]]
    path = tmp_path / "pspnet_r18-d8.pth"
    torch.save({"meta": {"dataset_meta": {"classes": names, "palette": palette}, "mmseg_version": "1.2.2"},
                "state_dict": to_mmseg(model)}, path)
    loaded = core.load_model(path)
    assert loaded.report.format == "mmseg"
    assert loaded.config == model.cfg
    assert list(loaded.classes.names) == names
    assert [list(c) for c in loaded.classes.colors] == palette
    same_state(model, loaded.model)
    same_outputs(model, loaded.model)
    # mmseg 0.x kept the names in meta["CLASSES"]
    torch.save({"meta": {"CLASSES": tuple(names)}, "state_dict": to_mmseg(model)}, path)
    assert list(core.load_model(path).classes.names) == names


def test_class_table_guessed_from_the_class_count_when_the_file_has_none(tmp_path):
    model = tiny(depth=50, base_width=4, num_classes=21)
    path = tmp_path / "voc.pth"
    torch.save(to_semseg(model), path)
    loaded = core.load_model(path)
    try:
        voc = ClassTable.builtin("voc")
    except ValueError:
        pytest.skip("the built-in VOC class table is not there")
    assert loaded.classes == voc
    assert any("voc" in n for n in loaded.report.notes)


@pytest.mark.parametrize("stem,fmt", [("plain", "torchvision-resnet"), ("deep", "semseg-resnet-init")])
def test_imagenet_backbone_file_loads_the_backbone_and_new_heads(tmp_path, stem, fmt):
    source = tiny(stem=stem)
    path = tmp_path / "resnet.pth"
    torch.save(backbone_file(source), path)
    loaded = core.load_model(path, num_classes=4)
    assert loaded.report.format == fmt
    assert loaded.config.stem == stem and loaded.config.num_classes == 4
    assert all(k.startswith("backbone.") for k in loaded.report.loaded)
    assert sorted(loaded.report.loaded) == sorted(k for k in source.state_dict() if k.startswith("backbone."))
    assert "head.classifier.weight" in loaded.report.reinitialised
    assert "ppm.branches.0.conv.weight" in loaded.report.reinitialised
    assert any("fc.weight" in n and "ImageNet classifier" in n for n in loaded.report.notes)
    theirs, ours = source.state_dict(), loaded.model.state_dict()
    assert all(torch.equal(theirs[k], ours[k]) for k in theirs if k.startswith("backbone."))
    assert not torch.equal(theirs["head.conv.weight"], ours["head.conv.weight"])
    # without num_classes: 150 heads, said so
    default = core.load_model(path)
    assert default.config.num_classes == 150
    assert any("150 classes" in n for n in default.report.notes)


@pytest.mark.parametrize("file_name,fmt,depth,stem", [
    ("keys_torchvision_resnet18.tsv", "torchvision-resnet", 18, "plain"),
    ("keys_torchvision_resnet50.tsv", "torchvision-resnet", 50, "plain"),
    ("keys_semseg_resnet50_v2_init.tsv", "semseg-resnet-init", 50, "deep"),
])
def test_real_imagenet_key_lists_map_onto_our_backbone(file_name, fmt, depth, stem):
    """Every key and shape of the real files fits our backbone (checked on the meta device: no compute)."""
    if reference_dir() is None:
        pytest.skip("the reference key lists (shared/reference/) are not on this machine")
    tensors = {k: torch.empty(shape, device="meta") for k, shape, _ in tsv_keys(file_name)}
    found = detect(tensors, file_name)
    assert found.name == fmt
    mapped = map_keys(found, tensors, file_name)
    assert mapped.dropped == ["fc.weight", "fc.bias"]
    with torch.device("meta"):
        model = PSPNet(ModelConfig(depth=depth, stem=stem))
    expected = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert fit_problems(expected, mapped.tensors) == []
    assert len(mapped.tensors) == len(expected)


@pytest.mark.parametrize("kw", [dict(), dict(use_ppm=False), dict(reduction=False),
                                dict(aux=False, aux_channels=256)])  # without aux head its width is moot
def test_bare_state_dict_of_ours_in_a_pth(tmp_path, kw):
    model = tiny(**kw)
    torch.save(model.state_dict(), tmp_path / "sd.pth")
    loaded = core.load_model(tmp_path / "sd.pth")
    assert loaded.report.format == "pspnet-studio-state-dict"
    assert loaded.config == model.cfg
    same_outputs(model, loaded.model)


def test_old_files_without_batchnorm_counters_load(tmp_path):
    model = tiny(depth=50, base_width=4)
    state = {k: v for k, v in to_semseg(model).items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    loaded = core.load_model(tmp_path / "old.pth")
    same_outputs(model, loaded.model)
    assert any("num_batches_tracked" in n for n in loaded.report.notes)


def test_load_backbone_into_a_model_built_from_a_config(tmp_path):
    source = tiny(depth=50, base_width=4)
    torch.save(to_semseg(source), tmp_path / "full.pth")
    target = tiny(seed=5, depth=50, base_width=4, num_classes=3)
    head_before = target.head.conv.weight.clone()
    report = load_backbone(target, tmp_path / "full.pth")
    assert report.format == "semseg"
    assert torch.equal(target.backbone.layer4[2].conv3.weight, source.backbone.layer4[2].conv3.weight)
    assert torch.equal(target.head.conv.weight, head_before)
    with pytest.raises(CheckpointError, match=r"full\.pth.*backbone does not fit.*layer0\.0\.weight"):
        load_backbone(tiny(depth=50, base_width=4, stem="plain"), tmp_path / "full.pth")


# --- refusals: a clear CheckpointError and nothing changed on disk ----------------------------------------

def refused(path_or_paths, match: str, folder: pathlib.Path, **kw) -> str:
    before = snapshot(folder)
    with pytest.raises(CheckpointError, match=match) as info:
        core.load_model(path_or_paths, **kw)
    assert snapshot(folder) == before
    return str(info.value)


def test_foreign_files_are_refused_clearly(tmp_path):
    (tmp_path / "notes.pth").write_text("these are not weights\n")
    assert "not a weight file" in refused(tmp_path / "notes.pth", "notes.pth", tmp_path)

    (tmp_path / "empty.pth").write_bytes(b"")
    refused(tmp_path / "empty.pth", r"empty\.pth: the file is empty", tmp_path)

    refused(tmp_path / "missing.pth", r"missing\.pth: no such file", tmp_path)

    torch.save({"lr": 0.1, "name": "run"}, tmp_path / "dict.pth")
    refused(tmp_path / "dict.pth", r"dict\.pth: no state dict in it.*lr", tmp_path)

    torch.save({"encoder.w": torch.zeros(2), "decoder.b": torch.zeros(3)}, tmp_path / "other.pth")
    msg = refused(tmp_path / "other.pth", r"other\.pth: unknown checkpoint layout", tmp_path)
    assert "encoder.w" in msg and "semseg" in msg and "csail" in msg and "mmseg" in msg and "torchvision" in msg

    save_file({"a": torch.zeros(10)}, tmp_path / "other.safetensors")
    refused(tmp_path / "other.safetensors", "unknown checkpoint layout.*first keys: a", tmp_path)


def test_truncated_files_are_refused(tmp_path):
    core.save_checkpoint(tmp_path / "full.safetensors", tiny(), ClassTable.default(5))
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.safetensors", r"cut\.safetensors: (corrupt or )?truncated safetensors", tmp_path)
    (tmp_path / "cut_header.safetensors").write_bytes(data[:40])
    refused(tmp_path / "cut_header.safetensors", r"truncated safetensors", tmp_path)

    torch.save(to_semseg(tiny(depth=50, base_width=4)), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.pth", r"cut\.pth: corrupt or truncated PyTorch file", tmp_path)


def test_keys_that_do_not_fit_the_detected_format_are_named(tmp_path):
    state = to_semseg(tiny(depth=50, base_width=4))
    state["extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "x.pth")
    msg = refused(tmp_path / "x.pth", r"x\.pth: looks like a semseg checkpoint", tmp_path)
    assert "extra.weight" in msg and "cls.*" in msg  # names the format's layout


def test_mismatched_shapes_are_refused_with_the_files_key_names(tmp_path):
    state = to_semseg(tiny(depth=50, base_width=4))
    state["ppm.features.1.1.weight"] = torch.zeros(7, 128, 1, 1)  # one branch narrower than the others
    torch.save(state, tmp_path / "bad.pth")
    msg = refused(tmp_path / "bad.pth", r"bad\.pth: the semseg weights do not fit", tmp_path)
    assert "ppm.features.1.1.weight (7, 128, 1, 1)" in msg

    state = to_semseg(tiny(depth=50, base_width=4))
    state["aux.4.weight"] = torch.zeros(9, 8, 1, 1)
    torch.save(state, tmp_path / "aux.pth")
    refused(tmp_path / "aux.pth", r"main classifier has 5 classes but the auxiliary one 9", tmp_path)

    state = to_semseg(tiny(depth=50, base_width=4))
    del state["layer3.5.conv1.weight"], state["layer3.5.bn1.weight"]
    state = {k: v for k, v in state.items() if not k.startswith("layer3.5.")}
    torch.save(state, tmp_path / "depth.pth")
    refused(tmp_path / "depth.pth", r"bottleneck blocks \(3, 4, 5, 3\) per layer", tmp_path)

    # our own format: a tensor whose shape disagrees with the stored config
    model = tiny()
    core.save_checkpoint(tmp_path / "ours.safetensors", model, ClassTable.default(5))
    with safe_open(str(tmp_path / "ours.safetensors"), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors["head.conv.weight"] = torch.zeros(16, 3, 3, 3)
    save_file(tensors, tmp_path / "tampered.safetensors", metadata=meta)
    msg = refused(tmp_path / "tampered.safetensors", r"tampered\.safetensors: the pspnet-studio weights do not "
                  r"fit", tmp_path)
    assert "head.conv.weight (16, 3, 3, 3)" in msg


def test_a_newer_format_version_is_refused(tmp_path):
    model = tiny()
    core.save_checkpoint(tmp_path / "m.safetensors", model, ClassTable.default(5))
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, tmp_path / "v2.safetensors", metadata={**meta, "format_version": "2"})
    refused(tmp_path / "v2.safetensors", r"v2\.safetensors: PSPNet Studio checkpoint of format_version '2'", tmp_path)
    save_file(tensors, tmp_path / "cfg.safetensors", metadata={**meta, "config": '{"depth": 19}'})
    refused(tmp_path / "cfg.safetensors", r"cfg\.safetensors: PSPNet Studio checkpoint with an invalid config", tmp_path)


def test_wrong_combinations_of_files_are_refused(tmp_path):
    encoder, decoder = to_csail(tiny(dilation="halved_first", align_corners=False))
    torch.save(decoder, tmp_path / "decoder.pth")
    refused(tmp_path / "decoder.pth", "CSAIL decoder needs its encoder", tmp_path)
    torch.save(to_semseg(tiny(depth=50, base_width=4)), tmp_path / "a.pth")
    torch.save(to_semseg(tiny(depth=50, base_width=4)), tmp_path / "b.pth")
    refused([tmp_path / "a.pth", tmp_path / "b.pth"], "more than one of the files", tmp_path)
    core.save_checkpoint(tmp_path / "ours.safetensors", tiny(), ClassTable.default(5))
    refused([tmp_path / "ours.safetensors", tmp_path / "decoder.pth"], "single file", tmp_path)


class _Payload:
    """Unpickling this calls Path.touch(marker): code that runs at load time."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    # the control: plain pickle does run this payload (so the test below can fail)
    control = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists()

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    state = to_semseg(tiny(depth=50, base_width=4))
    torch.save({"epoch": 1, "state_dict": state, "hook": _Payload(marker)}, path)
    msg = refused(path, r"evil\.pth: refused as unsafe", tmp_path)
    assert "weights_only=True" in msg
    assert not marker.exists()


# --- mmseg 1.x / mmengine Runner checkpoints: read as data, never run -------------------------------------

def importable(monkeypatch, module: str, **attrs) -> types.ModuleType:
    """A module (and its parents) that pickle can find while a test writes a file."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        mod = sys.modules.get(name) or types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, mod)
        if i > 1:
            setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], mod)
    mod = sys.modules[module]
    for key, value in attrs.items():
        value.__module__, value.__qualname__ = module, key
        setattr(mod, key, value)
    return mod


def unimportable(monkeypatch, root: str) -> None:
    """From here on ``import root`` fails, as on a machine without that library."""
    for name in [n for n in list(sys.modules) if n == root or n.startswith(root + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, root, None)


class HistoryBuffer:
    """The shape of mmengine.logging.history_buffer.HistoryBuffer (written here, not imported)."""

    def __init__(self, log_history=(), count_history=(), max_length=1000000):
        self.max_length = max_length
        self._log_history = np.array(log_history)
        self._count_history = np.array(count_history)


def runner_checkpoint(model: PSPNet, names: list[str], *, optimizer: bool = True) -> dict:
    """What mmengine's Runner.save_checkpoint writes for an mmseg 1.x PSPNet (meta, state_dict,
    message_hub, optimizer, param_schedulers), with real-shaped training state."""
    rng = np.random.default_rng(0)
    palette = [[int(v) for v in rng.integers(0, 255, 3)] for _ in names]
    dataset_meta = {"classes": tuple(names), "palette": palette, "label_map": None, "reduce_zero_label": True}
    cfg_text = "model = dict(type='EncoderDecoder', decode_head=dict(type='PSPHead', num_classes=5))\n" * 40
    meta = {"epoch": 0, "iter": 160000, "cfg": cfg_text, "seed": 304, "experiment_name": "pspnet_r18_20240102",
            "time": "20240102_030405", "mmengine_version": "0.10.4", "dataset_meta": dataset_meta}
    scalars = OrderedDict()
    for key in ("train/lr", "train/loss", "train/decode.loss_ce", "train/aux.loss_ce", "train/time", "train/data_time"):
        history = rng.random(1000) * 2
        scalars[key] = HistoryBuffer(history.tolist(), [1] * 1000)
    runtime = OrderedDict(cfg=cfg_text, seed=304, experiment_name="pspnet_r18_20240102", mmengine_version="0.10.4",
                          epoch=0, iter=160000, max_epochs=1, max_iters=160000, dataset_meta=dataset_meta,
                          eta=np.float64(0.0), best_score=np.float64(0.4248), last_ckpt="work_dirs/iter_160000.pth",
                          confusion=rng.random((5, 5)).astype(np.float32))
    message_hub = {"log_scalars": scalars, "runtime_info": runtime,
                   "resumed_keys": OrderedDict((k, True) for k in list(scalars) + list(runtime))}
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    model(torch.randn(2, 3, 33, 33)).main.mean().backward()
    sgd.step()
    model.eval()
    schedulers = [{"eta_min": 1e-4, "power": 0.9, "begin": 0, "end": 160000, "by_epoch": False, "param_name": "lr",
                   "last_step": 160000, "base_values": [0.01], "_global_step": 160000, "verbose": False,
                   "total_iters": 160000, "_get_value_called_within_step": False,
                   "_last_value": [np.float64(1e-4)]}]
    ckpt = {"meta": meta, "state_dict": to_mmseg(model), "message_hub": message_hub, "param_schedulers": schedulers}
    if optimizer:
        ckpt["optimizer"] = sgd.state_dict()
    return ckpt


MMSEG_NAMES = ["wall", "building", "sky", "floor", "tree"]


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("published", [False, True], ids=["runner", "published"])
def test_mmengine_runner_checkpoint_loads_without_mmengine(tmp_path, monkeypatch, zipped, published):
    model = tiny(stem_width=8, dilation="halved_first", basic_dilate_conv2=False, align_corners=False)
    importable(monkeypatch, "mmengine.logging.history_buffer", HistoryBuffer=HistoryBuffer)
    ckpt = runner_checkpoint(model, MMSEG_NAMES, optimizer=not published)  # publish_model drops only the optimizer
    path = tmp_path / "iter_160000.pth"
    torch.save(ckpt, path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(pickle.UnpicklingError, match="HistoryBuffer"):  # what plain weights_only says
        torch.load(path, weights_only=True)
    unimportable(monkeypatch, "mmengine")

    loaded = core.load_model(path)
    assert loaded.report.format == "mmseg" and loaded.config == model.cfg
    assert list(loaded.classes.names) == MMSEG_NAMES
    assert [list(c) for c in loaded.classes.colors] == ckpt["meta"]["dataset_meta"]["palette"]
    same_state(model, loaded.model)
    same_outputs(model, loaded.model)
    ignored = next(n for n in loaded.report.notes if n.startswith("ignored the file's"))
    assert "message_hub" in ignored and "param_schedulers" in ignored and ("optimizer" in ignored) != published
    assert sys.modules["mmengine"] is None  # nothing imported it

    wf = read_weight_file(path)
    assert wf.extras["meta"] == ckpt["meta"]
    hub = wf.extras["message_hub"]
    for key, buffer in ckpt["message_hub"]["log_scalars"].items():
        inert = hub["log_scalars"][key]
        assert isinstance(inert, InertObject) and inert.pickled_name == "mmengine.logging.history_buffer.HistoryBuffer"
        fields = inert.fields
        assert fields["max_length"] == 1000000
        np.testing.assert_array_equal(fields["_log_history"], buffer._log_history)
        np.testing.assert_array_equal(fields["_count_history"], buffer._count_history)
        assert fields["_log_history"].dtype == np.float64 and fields["_count_history"].dtype == np.int64
    info = hub["runtime_info"]
    assert info["best_score"] == np.float64(0.4248) and isinstance(info["best_score"], np.float64)
    np.testing.assert_array_equal(info["confusion"], ckpt["message_hub"]["runtime_info"]["confusion"])
    assert info["dataset_meta"] == ckpt["meta"]["dataset_meta"]
    assert wf.extras["param_schedulers"] == ckpt["param_schedulers"]
    if not published:
        momentum = wf.extras["optimizer"]["state"]
        assert all(torch.equal(momentum[i]["momentum_buffer"], ckpt["optimizer"]["state"][i]["momentum_buffer"])
                   for i in ckpt["optimizer"]["state"])


class Call:
    """Unpickling this calls ``func(*args)``: a payload."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def evil_touch(path):
    pathlib.Path(path).touch()


class EvilOnInit:
    def __init__(self, path):
        pathlib.Path(path).touch()


class EvilOnState:
    def __setstate__(self, state):
        pathlib.Path(state["path"]).touch()


def payloads(marker: pathlib.Path) -> dict:
    return {
        "os.mkdir": Call(os.mkdir, str(marker)),
        "builtins.exec": Call(exec, f"open({str(marker)!r}, 'w').close()"),
        "builtins.eval": Call(eval, f"open({str(marker)!r}, 'w').close()"),
        "pathlib.Path.touch": Call(pathlib.Path.touch, marker),
        "torch.save": Call(torch.save, {"x": 1}, str(marker)),
        "unknown function": Call(evil_touch, str(marker)),
        "unknown class": Call(EvilOnInit, str(marker)),
        "inside a numpy object array": np.array([Call(evil_touch, str(marker)), 1], dtype=object),
    }


@pytest.mark.parametrize("kind", list(payloads(pathlib.Path("x"))))
def test_a_payload_deep_inside_a_runner_checkpoint_is_refused_and_never_runs(tmp_path, monkeypatch, kind):
    importable(monkeypatch, "mmengine.logging.history_buffer", HistoryBuffer=HistoryBuffer)
    importable(monkeypatch, "evil_plugins.hooks", evil_touch=evil_touch, EvilOnInit=EvilOnInit)
    marker = tmp_path / "marker"
    payload = payloads(marker)[kind]
    # the control: plain pickle runs the payload (so the check below can fail)
    pickle.loads(pickle.dumps(payload))
    assert marker.exists()
    if marker.is_dir():
        marker.rmdir()
    else:
        marker.unlink()

    ckpt = runner_checkpoint(tiny(stem_width=8, dilation="halved_first", basic_dilate_conv2=False,
                                  align_corners=False), MMSEG_NAMES)
    buffer = ckpt["message_hub"]["log_scalars"]["train/loss"]
    buffer.hooks = [{"after_iter": (1, {"deep": [payload]})}]  # nested inside an unknown object's state
    folder = tmp_path / "files"
    folder.mkdir()
    torch.save(ckpt, folder / "evil.pth")
    unimportable(monkeypatch, "mmengine")
    unimportable(monkeypatch, "evil_plugins")
    msg = refused(folder / "evil.pth", r"evil\.pth: refused as unsafe", folder)
    assert "nothing in it was loaded" in msg and "\n" not in msg
    assert not marker.exists()


def test_an_unknown_class_with_a_dangerous_setstate_is_read_as_inert_data(tmp_path, monkeypatch):
    importable(monkeypatch, "evil_plugins.state", EvilOnState=EvilOnState)
    marker = tmp_path / "marker"
    obj = EvilOnState.__new__(EvilOnState)
    obj.path = str(marker)
    pickle.loads(pickle.dumps(obj))  # the control: plain pickle calls the class's __setstate__
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "m.pth"
    torch.save({"state_dict": to_semseg(tiny(depth=50, base_width=4)), "hook": obj}, path)
    unimportable(monkeypatch, "evil_plugins")
    loaded = core.load_model(path)  # the class is never looked up: its state is data
    assert loaded.report.format == "semseg" and not marker.exists()
    inert = read_weight_file(path).extras["hook"]
    assert isinstance(inert, InertObject) and inert.fields == {"path": str(marker)}
    assert not marker.exists()


def test_a_whole_pickled_object_instead_of_a_state_dict_is_named(tmp_path, monkeypatch):
    class Trainer:
        pass

    importable(monkeypatch, "somelib.train", Trainer=Trainer)
    t = Trainer()
    t.weights = {"a": torch.zeros(2)}
    torch.save(t, tmp_path / "trainer.pth")
    unimportable(monkeypatch, "somelib")
    refused(tmp_path / "trainer.pth", r"no state dict in it.*an object of class somelib\.train\.Trainer", tmp_path)


# --- fetching ImageNet weights ---------------------------------------------------------------------

def served_backbone(server, tmp_path, name="resnet18", *, publish=True):
    """The zoo's torchvision entry for ``name`` with its file on a local HTTP server (a tiny but
    real torchvision-layout file; its hash prefix published unless ``publish`` is False)."""
    path = tmp_path / "served.pth"
    torch.save(backbone_file(tiny(stem="plain")), path)
    data = path.read_bytes()
    e = zoo.entry(f"torchvision-{name}")
    url = server.add("/" + e.files[0].file_name, Route(data))
    prefix = hashlib.sha256(data).hexdigest()[:8] if publish else "00000000"
    return dataclasses.replace(e, files=(dataclasses.replace(e.files[0], url=url, sha256_prefix=prefix),)), data


@pytest.fixture()
def server():
    with serving() as state:
        yield state


def test_fetch_returns_a_cached_file_without_the_network(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("the network was used")

    monkeypatch.setattr(fetch_module, "download", no_network)
    monkeypatch.setenv("PSPNET_STUDIO_HOME", str(tmp_path / "home"))
    cached = tmp_path / "resnet50-0676ba61.pth"
    cached.write_bytes(b"weights")
    assert core.fetch_backbone_weights("resnet50", cache_dir=tmp_path) == cached
    # the default folder is torch.hub's checkpoints folder
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"w")
    assert core.fetch_backbone_weights("ResNet18") == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    # ... and a copy in the zoo cache (`models get torchvision-resnet34`) is used as it is
    zoo_copy = tmp_path / "home" / "models" / "torchvision-resnet34" / "resnet34-b627a593.pth"
    zoo_copy.parent.mkdir(parents=True)
    zoo_copy.write_bytes(b"w")
    assert core.fetch_backbone_weights("resnet34") == zoo_copy


def test_fetch_downloads_and_checks_the_hash_prefix(server, tmp_path, monkeypatch):
    e, data = served_backbone(server, tmp_path)
    monkeypatch.setattr(fetch_module, "entry", lambda name: e)
    path = core.fetch_backbone_weights("resnet18", cache_dir=tmp_path / "cache", progress=False)
    assert path == tmp_path / "cache" / "resnet18-f37072fd.pth" and path.read_bytes() == data
    assert core.load_model(path, num_classes=3).report.format == "torchvision-resnet"

    bad, _ = served_backbone(server, tmp_path, publish=False)
    monkeypatch.setattr(fetch_module, "entry", lambda name: bad)
    with pytest.raises(CheckpointError, match="could not download the ImageNet weights for resnet18: .*not the "
                                              "published file"):
        core.fetch_backbone_weights("resnet18", cache_dir=tmp_path / "other", progress=False)
    assert list((tmp_path / "other").iterdir()) == []


def test_fetch_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    e = zoo.entry("torchvision-resnet101")
    url = refused_url("/resnet101-63fe2227.pth")
    monkeypatch.setattr(fetch_module, "entry", lambda name: dataclasses.replace(
        e, files=(dataclasses.replace(e.files[0], url=url),)))
    with pytest.raises(CheckpointError) as info:
        core.fetch_backbone_weights("resnet101", cache_dir=tmp_path / "cache", progress=False)
    msg = str(info.value)
    target = tmp_path / "cache" / "resnet101-63fe2227.pth"
    assert "\n" not in msg and "could not download" in msg and url in msg and "connection refused" in msg
    assert f"put it at {target}" in msg
    assert not target.exists()


def test_fetch_unknown_name_lists_the_known_ones():
    with pytest.raises(CheckpointError, match="known: resnet18, resnet34, resnet50, resnet101, resnet152"):
        core.fetch_backbone_weights("resnet42")
    assert set(fetch_module.BACKBONE_FILES) == {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
    assert fetch_module.backbone_url("resnet50") == "https://download.pytorch.org/models/resnet50-0676ba61.pth"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_load_onto_cuda_gives_the_cpu_outputs(tmp_path):
    model = tiny()
    core.save_checkpoint(tmp_path / "m.safetensors", model, ClassTable.default(5))
    loaded = core.load_model(tmp_path / "m.safetensors", device="cuda")
    assert all(p.device.type == "cuda" for p in loaded.model.parameters())
    with torch.no_grad():
        ours = loaded.model(x_input().cuda()).main.cpu()
        ref = model(x_input()).main
    torch.testing.assert_close(ours, ref, rtol=1e-3, atol=1e-3)
