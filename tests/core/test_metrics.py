"""Confusion matrix and mIoU against values worked out by hand."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from core.errors import StudioError
from core.metrics import ConfusionMatrix, SegMetrics

# 3x3 example, worked by hand (255 = ignore):
#   truth       prediction
#   0 0 1       0 1 1
#   1 2 2       1 2 0
#   . 0 1       2 0 1
# pairs (truth, pred): (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (0,0) (1,1)
# matrix rows = truth: [2 1 0] [0 3 0] [1 0 1]
# IoU: 2/(3+3-2) = .5, 3/(3+4-3) = .75, 1/(2+1-1) = .5 -> mIoU 1.75/3
# acc: 2/3, 3/3, 1/2 -> mean 13/18; pixel acc 6/8
TRUTH = np.array([[0, 0, 1], [1, 2, 2], [255, 0, 1]], np.uint8)
PRED = np.array([[0, 1, 1], [1, 2, 0], [2, 0, 1]], np.uint8)


def test_hand_computed_3x3():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TRUTH)
    np.testing.assert_array_equal(cm.matrix, [[2, 1, 0], [0, 3, 0], [1, 0, 1]])
    assert cm.matrix.dtype == np.int64
    m = cm.compute()
    assert m.per_class_iou == pytest.approx([0.5, 0.75, 0.5])
    assert m.miou == pytest.approx(1.75 / 3)
    assert m.per_class_acc == pytest.approx([2 / 3, 1.0, 0.5])
    assert m.mean_acc == pytest.approx(13 / 18)
    assert m.pixel_acc == pytest.approx(0.75)
    assert m.absent == [] and m.pixels == 8


def test_tensors_any_shape_and_batches_add_up():
    cm = ConfusionMatrix(3)
    cm.update(torch.from_numpy(PRED.astype(np.int64))[None], torch.from_numpy(TRUTH)[None])  # (1, 3, 3) tensors
    cm.update(PRED.ravel(), TRUTH.ravel())  # flat numpy
    np.testing.assert_array_equal(cm.matrix, 2 * np.array([[2, 1, 0], [0, 3, 0], [1, 0, 1]]))
    assert cm.compute().miou == pytest.approx(1.75 / 3)  # doubling every count changes no ratio


def test_absent_class_left_out_and_said():
    cm = ConfusionMatrix(4)  # class 3 is in neither labels nor prediction
    cm.update(PRED, TRUTH)
    m = cm.compute()
    assert m.per_class_iou[3] is None and m.per_class_acc[3] is None
    assert m.absent == [3]
    assert m.miou == pytest.approx(1.75 / 3)  # not (1.75 + 0) / 4
    d = m.to_dict(["sky", "road", "car", "boat"])
    json.dumps(d)
    assert d["absent"] == [3]
    assert "3 (boat)" in d["note"] and "left out" in d["note"]
    assert d["per_class"][1] == {"id": 1, "name": "road", "iou": 0.75, "acc": 1.0}


def test_class_only_in_prediction_counts_as_zero_iou():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 3, 1, 1])  # a false class-3 pixel
    cm = ConfusionMatrix(4)
    cm.update(pred, truth)
    m = cm.compute()
    # IoU: class 0 = 1/2, class 1 = 1, class 2 absent, class 3 = 0/1
    assert m.per_class_iou == [0.5, 1.0, None, 0.0]
    assert m.miou == pytest.approx(1.5 / 3)
    assert m.per_class_acc == [0.5, 1.0, None, None]  # accuracy needs labelled pixels
    assert m.mean_acc == pytest.approx(0.75)
    assert m.absent == [2]


def test_empty_matrix_gives_nan_and_json_none():
    m = ConfusionMatrix(2).compute()
    assert math.isnan(m.miou) and math.isnan(m.pixel_acc)
    assert m.absent == [0, 1]
    assert m.to_dict()["miou"] is None


def test_bad_input_is_refused_with_the_problem_named():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match=r"label ids \[7\]"):
        cm.update(np.zeros(2, np.uint8), np.array([0, 7], np.uint8))
    with pytest.raises(ValueError, match=r"predicted ids \[5\]"):
        cm.update(np.array([5, 0]), np.array([0, 255]))
    with pytest.raises(ValueError, match="integer"):
        cm.update(np.zeros(2, np.float32), np.zeros(2, np.uint8))
    assert cm.total == 0  # nothing counted by a refused update
    with pytest.raises(ValueError, match="merge"):
        cm.merge(ConfusionMatrix(4))


def test_merge_equals_one_update():
    a, b, both = ConfusionMatrix(3), ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED[:2], TRUTH[:2])
    b.update(PRED[2:], TRUTH[2:])
    both.update(PRED, TRUTH)
    np.testing.assert_array_equal(a.merge(b).matrix, both.matrix)


@pytest.mark.parametrize("ext", [".npy", ".csv"])
def test_save_load_round_trip(tmp_path, ext):
    cm = ConfusionMatrix(3, ignore_index=254)
    cm.update(PRED, np.where(TRUTH == 255, 254, TRUTH))
    path = tmp_path / f"cm{ext}"
    cm.save(path)
    back = ConfusionMatrix.load(path)
    np.testing.assert_array_equal(back.matrix, cm.matrix)
    assert back.num_classes == 3
    if ext == ".csv":
        assert back.ignore_index == 254
        assert "rows = truth" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_save_and_load_refuse_bad_files(tmp_path):
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match=".txt"):
        cm.save(tmp_path / "cm.txt")
    assert not os.listdir(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(StudioError, match="square"):
        ConfusionMatrix.load(bad)
    neg = tmp_path / "neg.csv"
    neg.write_text("1,-2\n3,4\n")
    with pytest.raises(StudioError, match="non-negative"):
        ConfusionMatrix.load(neg)
    with pytest.raises(StudioError, match="missing.npy"):
        ConfusionMatrix.load(tmp_path / "missing.npy")


def test_reduce_without_distributed_is_a_no_op():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TRUTH)
    before = cm.matrix.copy()
    cm.reduce_()
    np.testing.assert_array_equal(cm.matrix, before)


def test_reduce_sums_over_a_one_process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdv'}", rank=0, world_size=1)
    try:
        cm = ConfusionMatrix(3)
        cm.update(PRED, TRUTH)
        cm.reduce_()
        np.testing.assert_array_equal(cm.matrix, [[2, 1, 0], [0, 3, 0], [1, 0, 1]])
    finally:
        dist.destroy_process_group()


def test_markdown_table_lists_every_class():
    cm = ConfusionMatrix(4)
    cm.update(PRED, TRUTH)
    md = cm.compute().to_markdown(["a", "b", "c", "d"])
    assert "| b | 75.0 | 100.0 |" in md
    assert "| d | - | - |" in md
    assert isinstance(cm.compute(), SegMetrics)
