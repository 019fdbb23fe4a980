"""Checkpoints: our safetensors format (bit-exact round trip), every foreign format detected and
mapped, the refusals (clear errors, nothing changed on disk), the unsafe pickle, and fetching
ImageNet weights without a network."""

from __future__ import annotations

import json
import pathlib
import pickle
import re
import urllib.error

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
from core.weights.formats import detect, map_keys
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


# --- fetching ImageNet weights ----------------------------------------------------------------------

def test_fetch_returns_a_cached_file_without_the_network(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("the network was used")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    cached = tmp_path / "resnet50-0676ba61.pth"
    cached.write_bytes(b"weights")
    assert core.fetch_backbone_weights("resnet50", cache_dir=tmp_path) == cached
    # the default folder is torch.hub's checkpoints folder
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"w")
    assert core.fetch_backbone_weights("ResNet18") == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"


def test_fetch_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    calls = []

    def offline(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(CheckpointError) as info:
        core.fetch_backbone_weights("resnet101", cache_dir=tmp_path / "cache", progress=False)
    msg = str(info.value)
    target = tmp_path / "cache" / "resnet101-63fe2227.pth"
    assert "could not download" in msg and "https://download.pytorch.org/models/resnet101-63fe2227.pth" in msg
    assert f"put it at {target}" in msg
    assert calls == [("https://download.pytorch.org/models/resnet101-63fe2227.pth", str(target), "63fe2227")]
    assert not target.exists()


def test_fetch_unknown_name_lists_the_known_ones():
    with pytest.raises(CheckpointError, match="known: resnet18, resnet34, resnet50, resnet101, resnet152"):
        core.fetch_backbone_weights("resnet42")
    assert set(fetch_module.BACKBONE_FILES) == {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}


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
