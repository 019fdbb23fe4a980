"""Data set layouts (tiny fake trees), built-in class tables and class remapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.classes import ClassTable
from core.data.datasets import CITYSCAPES_TRAIN_IDS, open_dataset
from core.data.io import write_mask
from core.data.remap import ClassRemap
from core.errors import DatasetError, MaskError

H, W = 12, 16


def _img(path: Path, value: int = 100, size: tuple[int, int] = (H, W)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((*size, 3), value, np.uint8)
    a[0, 0] = (255, 0, 0)
    Image.fromarray(a).save(path)
    return path


def _ids(path: Path, ids: np.ndarray) -> Path:
    """An id-valued greyscale PNG (how ADE20K and Cityscapes store labels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint8)).save(path)
    return path


def _stripes(values: list[int]) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    for k, v in enumerate(values):
        m[:, k * W // len(values): (k + 1) * W // len(values)] = v
    return m


# ---- built-in class tables ------------------------------------------------------------------


def test_builtin_class_tables():
    ade, voc, cs = (ClassTable.builtin(n) for n in ("ade20k", "voc", "cityscapes"))
    assert (len(ade), len(voc), len(cs)) == (150, 21, 19)
    assert ade.names[:4] == ("wall", "building", "sky", "floor") and ade.names[-1] == "flag"
    assert ade.names[12] == "person" and ade.colors[12] == (150, 5, 61)
    assert ade.colors[0] == (120, 120, 120) and ade.colors[2] == (6, 230, 230)
    assert len(set(ade.names)) == 150
    assert voc.names[0] == "background" and voc.names[15] == "person" and voc.names[20] == "tvmonitor"
    assert voc.colors[0] == (0, 0, 0) and voc.colors[1] == (128, 0, 0) and voc.colors[15] == (192, 128, 128)
    assert cs.names[0] == "road" and cs.colors[0] == (128, 64, 128)
    assert cs.names[10] == "sky" and cs.colors[10] == (70, 130, 180)
    assert cs.names[18] == "bicycle" and cs.colors[18] == (119, 11, 32)
    for t in (voc, cs):
        assert len(set(t.colors)) == len(t)
    assert {ade.name, voc.name, cs.name} == {"ade20k", "voc", "cityscapes"}


# ---- our layout -----------------------------------------------------------------------------

TABLE = ClassTable.from_names(["bg", "thing", "stuff"], name="mine")


def _ours(root: Path) -> Path:
    _img(root / "images" / "a.jpg")
    _img(root / "images" / "b.png")
    _img(root / "images" / "c.png")  # unlabelled
    (root / "images" / "notes.txt").write_text("not an image")
    (root / "masks").mkdir()
    write_mask(root / "masks" / "a.png", _stripes([0, 1, 2, 255]), TABLE)
    write_mask(root / "masks" / "b.png", _stripes([2, 1]), TABLE)
    TABLE.save(root / "classes.json")
    return root


def test_ours_layout_splits_without_lists(tmp_path):
    root = _ours(tmp_path / "proj")
    train = open_dataset(root)
    assert train.layout == "ours" and train.classes == TABLE
    assert [train.name(i) for i in range(len(train))] == ["a", "b"]
    img, mask = train[0]
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(mask, _stripes([0, 1, 2, 255]))
    assert len(open_dataset(root, "val")) == 0
    every = open_dataset(root, "all")
    assert [every.name(i) for i in range(len(every))] == ["a", "b", "c"]
    assert every.mask_path(2) is None and every.image_path(2) == root / "images" / "c.png"
    img, mask = every[2]
    assert mask.shape == (H, W) and (mask == 255).all()
    assert every[-1][1].shape == (H, W)
    with pytest.raises(IndexError):
        every[3]
    assert len(list(every)) == 3  # iteration stops at the end


def test_ours_layout_list_files(tmp_path):
    root = _ours(tmp_path / "proj")
    (root / "val.txt").write_text("b\n")
    assert [open_dataset(root, "train").name(i) for i in range(1)] == ["a"] and len(open_dataset(root, "train")) == 1
    assert open_dataset(root, "val").name(0) == "b"
    (root / "train.txt").write_text("# training images\nc.png\n\na\n")
    train = open_dataset(root, "train")
    assert [train.name(i) for i in range(len(train))] == ["c", "a"]
    (root / "train.txt").write_text("a\nzebra\n")
    with pytest.raises(DatasetError, match=r"train.txt, line 2: no image 'zebra'"):
        open_dataset(root, "train")


def test_ours_layout_problems(tmp_path):
    root = _ours(tmp_path / "proj")
    _img(root / "images" / "a.png")  # a.jpg and a.png
    with pytest.raises(DatasetError, match="two images share the name 'a'"):
        open_dataset(root)
    (root / "images" / "a.png").unlink()
    (root / "classes.json").unlink()
    with pytest.raises(DatasetError, match="no classes.json"):
        open_dataset(root)
    (root / "classes.json").write_text("{broken")
    with pytest.raises(DatasetError, match="classes.json"):
        open_dataset(root)
    TABLE.save(root / "classes.json")
    write_mask(root / "masks" / "b.png", np.zeros((H + 1, W), np.uint8), TABLE)
    ds = open_dataset(root)
    with pytest.raises(MaskError, match=r"mask is 16x13 \(WxH\) but the image is 16x12"):
        ds[1]


def test_ours_layout_accepts_colour_masks(tmp_path):
    root = _ours(tmp_path / "proj")
    ids = _stripes([1, 0, 2])
    Image.fromarray(np.array(TABLE.colors, np.uint8)[ids]).save(root / "masks" / "b.png")
    np.testing.assert_array_equal(open_dataset(root)[1][1], ids)


# ---- PASCAL VOC -----------------------------------------------------------------------------


def _voc(root: Path) -> Path:
    base = root / "VOCdevkit" / "VOC2012"
    voc = ClassTable.builtin("voc")
    for stem, cls in [("2007_000032", 1), ("2007_000039", 15), ("2007_000063", 20)]:
        _img(base / "JPEGImages" / f"{stem}.jpg")
        m = np.zeros((H, W), np.uint8)
        m[3:9, 4:12] = cls
        m[2, 3:13] = 255  # the white border VOC draws around objects
        (base / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        write_mask(base / "SegmentationClass" / f"{stem}.png", m, voc)
    lists = base / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2007_000032\n2007_000039\n")
    (lists / "val.txt").write_text("2007_000063\n")
    return base


@pytest.mark.parametrize("where", ["parent", "devkit", "base"])
def test_voc_layout(tmp_path, where):
    base = _voc(tmp_path / "data")
    root = {"parent": tmp_path / "data", "devkit": tmp_path / "data" / "VOCdevkit", "base": base}[where]
    train = open_dataset(root, "train")
    assert train.layout == "voc" and len(train) == 2 and train.root == base
    assert train.classes.name == "voc" and len(train.classes) == 21
    _, mask = train[1]
    assert set(np.unique(mask).tolist()) == {0, 15, 255}
    assert mask[2, 5] == 255 and mask[5, 6] == 15
    assert [open_dataset(root, "val").name(0)] == ["2007_000063"]
    assert len(open_dataset(root, "all")) == 3


def test_voc_missing_files(tmp_path):
    base = _voc(tmp_path)
    (base / "SegmentationClass" / "2007_000039.png").unlink()
    with pytest.raises(DatasetError, match="missing files: .*2007_000039.png"):
        open_dataset(tmp_path, "train")
    (base / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DatasetError, match="no split list .*val.txt"):
        open_dataset(tmp_path, "val")


# ---- ADE20K ---------------------------------------------------------------------------------


def _ade(root: Path) -> Path:
    base = root / "ADEChallengeData2016"
    for sub, stems in [("training", ["ADE_train_00000001", "ADE_train_00000002"]), ("validation", ["ADE_val_00000001"])]:
        for stem in stems:
            _img(base / "images" / sub / f"{stem}.jpg")
            _ids(base / "annotations" / sub / f"{stem}.png", _stripes([0, 1, 13, 150]))
    return base


def test_ade20k_layout(tmp_path):
    _ade(tmp_path)
    train = open_dataset(tmp_path)
    assert train.layout == "ade20k" and len(train) == 2 and len(train.classes) == 150
    _, mask = train[0]
    np.testing.assert_array_equal(mask, _stripes([255, 0, 12, 149]))  # 0 other -> ignore, k -> k-1
    assert train.name(1) == "ADE_train_00000002"
    assert len(open_dataset(tmp_path, "val")) == 1 and len(open_dataset(tmp_path, "all")) == 3


def test_ade20k_bad_ids(tmp_path):
    base = _ade(tmp_path)
    _ids(base / "annotations" / "validation" / "ADE_val_00000001.png", _stripes([1, 151, 200]))
    ds = open_dataset(base, "val")
    with pytest.raises(MaskError, match=r"ADE_val_00000001.png: label ids 151, 200 are not valid .*0\.\.150"):
        ds[0]


def test_ade20k_with_remap(tmp_path):
    _ade(tmp_path)
    ds = open_dataset(tmp_path, "train", remap="ade20k_to_25")
    assert len(ds.classes) == 25 and ds.source_classes.name == "ade20k"
    _, mask = ds[0]
    t = ds.classes.names
    # ids 1 wall, 13 person, 150 flag
    expect = _stripes([255, t.index("wall"), t.index("person"), t.index("sign or picture")])
    np.testing.assert_array_equal(mask, expect)


# ---- Cityscapes -----------------------------------------------------------------------------


def _cityscapes(root: Path) -> Path:
    for split, city, n in [("train", "aachen", 2), ("train", "bochum", 1), ("val", "frankfurt", 1)]:
        for k in range(n):
            prefix = f"{city}_{k:06d}_000019"
            _img(root / "leftImg8bit" / split / city / f"{prefix}_leftImg8bit.png")
            _ids(root / "gtFine" / split / city / f"{prefix}_gtFine_labelIds.png", _stripes([0, 7, 26, 29, 33, 23]))
            _ids(root / "gtFine" / split / city / f"{prefix}_gtFine_instanceIds.png", np.zeros((H, W)))
    return root


def test_cityscapes_layout(tmp_path):
    _cityscapes(tmp_path / "cityscapes")
    train = open_dataset(tmp_path)  # the parent of cityscapes/
    assert train.layout == "cityscapes" and len(train) == 3 and len(train.classes) == 19
    assert [train.name(i) for i in range(3)] == ["aachen/aachen_000000_000019", "aachen/aachen_000001_000019",
                                                  "bochum/bochum_000000_000019"]
    _, mask = train[2]
    np.testing.assert_array_equal(mask, _stripes([255, 0, 13, 255, 18, 10]))  # 29 caravan is not evaluated
    assert len(open_dataset(tmp_path, "val")) == 1 and len(open_dataset(tmp_path, "all")) == 4
    assert len(CITYSCAPES_TRAIN_IDS) == 19 and sorted(CITYSCAPES_TRAIN_IDS.values()) == list(range(19))


# ---- detection and arguments ----------------------------------------------------------------


def test_unknown_layout_names_what_was_looked_for(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path)
    msg = str(err.value)
    for word in ("ours", "PASCAL VOC", "ADE20K", "Cityscapes", str(tmp_path)):
        assert word in msg
    with pytest.raises(DatasetError, match="no such folder"):
        open_dataset(tmp_path / "nope")
    _ade(tmp_path)
    with pytest.raises(DatasetError, match="unknown split 'test'"):
        open_dataset(tmp_path, "test")
    with pytest.raises(DatasetError, match="unknown data set layout 'coco'"):
        open_dataset(tmp_path, layout="coco")
    with pytest.raises(DatasetError, match="not a PASCAL VOC"):
        open_dataset(tmp_path, layout="voc")
    assert open_dataset(tmp_path, layout="ade20k").layout == "ade20k"


# ---- remapping ------------------------------------------------------------------------------


def test_shipped_ade20k_to_25_assigns_every_class():
    r = ClassRemap.builtin("ade20k_to_25")
    ade = ClassTable.builtin("ade20k")
    assert r.source is not None and r.source.names == ade.names
    assert len(r.target) == 25 and len(set(r.target.colors)) == 25
    assert (r.lut[:150] != 255).all() and r.lut[255] == 255
    assert set(r.lut[:150].tolist()) == set(range(25))  # every group used
    t, s = r.target.names, ade.names
    for src, tgt in [("house", "building"), ("tree", "vegetation"), ("sea", "water"), ("bus", "vehicle"),
                     ("sofa", "furniture"), ("person", "person"), ("sky", "sky"), ("ceiling", "ceiling")]:
        assert t[r.lut[s.index(src)]] == tgt
    m = r.matrix()
    assert m.shape == (25, 150) and (m.sum(axis=0) == 1).all()


def test_remap_apply_and_probs():
    src = ClassTable.from_names(["a", "b", "c", "d"])
    tgt = ClassTable.from_names(["ab", "c"])
    r = ClassRemap.from_mapping(src, tgt, {"a": "ab", "b": "ab", "2": 1, "d": None})
    mask = np.array([[0, 1, 2, 3, 255]], np.uint8)
    np.testing.assert_array_equal(r.apply(mask), [[0, 0, 1, 255, 255]])
    labels = np.array([[3, 2, 0]], np.int64)
    np.testing.assert_array_equal(r.apply_labels(labels), [[255, 1, 0]])
    tl = r.apply_labels(torch.tensor([[3, 2, 1]]))
    assert tl.dtype == torch.int64 and tl.tolist() == [[255, 1, 0]]
    with pytest.raises(TypeError):
        r.apply(labels)
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=(3, 5)).transpose(2, 0, 1).astype(np.float32)
    out = r.apply_probs(probs)
    assert out.shape == (2, 3, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], probs[0] + probs[1], rtol=1e-6)
    np.testing.assert_allclose(out[1], probs[2], rtol=1e-6)
    np.testing.assert_allclose(r.apply_probs(probs, renormalize=True).sum(0), 1.0, rtol=1e-5)
    batch = torch.from_numpy(np.stack([probs, probs]))
    tout = r.apply_probs(batch)
    assert tout.shape == (2, 2, 3, 5)
    np.testing.assert_allclose(tout[1].numpy(), out, rtol=1e-6)
    with pytest.raises(ValueError, match="4"):
        r.apply_probs(probs[:3])


def test_remap_file_round_trip_and_errors(tmp_path):
    src = ClassTable.from_names(["wall", "house", "tree"])
    tgt = ClassTable.from_names(["built", "green"])
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"source": src.to_dict(), "target": tgt.to_dict(),
                             "mapping": {"wall": "built", "house": 0, "tree": "green"}}))
    r = ClassRemap.load(p)
    assert r.name == "r" and r.lut[:3].tolist() == [0, 0, 1]
    r.save(tmp_path / "copy.json")
    np.testing.assert_array_equal(ClassRemap.load(tmp_path / "copy.json").lut, r.lut)

    def bad(mapping, **extra):
        p.write_text(json.dumps({"source": src.to_dict(), "target": tgt.to_dict(), "mapping": mapping, **extra}))
        return ClassRemap.load(p)

    with pytest.raises(DatasetError, match=r"r.json.*'tree' are not mapped"):
        bad({"wall": "built", "house": "built"})
    assert bad({"wall": "built"}, unmapped="ignore").lut[:3].tolist() == [0, 255, 255]
    with pytest.raises(DatasetError, match="target class 'Green' is not in the table .*did you mean 'green'"):
        bad({"wall": "built", "house": "built", "tree": "Green"})
    with pytest.raises(DatasetError, match="source class 'bush' is not in the table"):
        bad({"bush": "green"})
    with pytest.raises(DatasetError, match="id 7 is outside 0..1"):
        bad({"wall": 7, "house": 0, "tree": 1})
    p.write_text("{nope")
    with pytest.raises(DatasetError, match="not valid JSON"):
        ClassRemap.load(p)
    with pytest.raises(DatasetError, match="no built-in remap 'x'.*ade20k_to_25"):
        ClassRemap.builtin("x")


def test_remap_must_fit_the_data_set(tmp_path):
    _voc(tmp_path)
    with pytest.raises(DatasetError, match="remap 'ade20k_to_25' is for the 150-class table 'ade20k'.*21-class"):
        open_dataset(tmp_path, remap="ade20k_to_25")
    voc = ClassTable.builtin("voc")
    two = ClassTable.from_names(["background", "object"])
    r = ClassRemap.from_mapping(voc, two, {n: ("background" if n == "background" else "object") for n in voc.names})
    ds = open_dataset(tmp_path, "val", remap=r)
    assert ds.classes == two
    assert set(np.unique(ds[0][1]).tolist()) == {0, 1, 255}
