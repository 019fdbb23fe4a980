"""LabelMask: brush / eraser / fill / polygon / accept-prediction against hand-made arrays, exact
undo/redo over random edit sequences, change events, and that a brush segment stays in its box."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from core.errors import MaskError
from core.labels import Edit, LabelMask, Region

_ = 255  # unlabelled, to keep the hand-made arrays readable


def grid(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, np.uint8)


# ---- the tools --------------------------------------------------------------------------------

def test_round_brush_point_is_a_disk_of_radius_plus_half():
    m = LabelMask.empty((7, 9), 3)
    region = m.paint((3, 4), 1, radius=2)
    expected = grid([
        [_, _, _, _, _, _, _, _, _],
        [_, _, _, 1, 1, 1, _, _, _],
        [_, _, 1, 1, 1, 1, 1, _, _],
        [_, _, 1, 1, 1, 1, 1, _, _],
        [_, _, 1, 1, 1, 1, 1, _, _],
        [_, _, _, 1, 1, 1, _, _, _],
        [_, _, _, _, _, _, _, _, _],
    ])
    np.testing.assert_array_equal(m.data, expected)
    assert region == Region(1, 6, 2, 7)  # exactly the changed box


def test_round_brush_segment_radius_0_is_a_one_pixel_line():
    m = LabelMask.empty((4, 7), 2)
    m.paint([(2, 1), (2, 5)], 0, radius=0)
    expected = np.full((4, 7), 255, np.uint8)
    expected[2, 1:6] = 0
    np.testing.assert_array_equal(m.data, expected)


def test_square_brush_sweeps_a_square_along_the_segment():
    m = LabelMask.empty((5, 8), 3)
    m.paint([(1, 1), (1, 4)], 2, radius=1, shape="square")
    expected = np.full((5, 8), 255, np.uint8)
    expected[0:3, 0:6] = 2
    np.testing.assert_array_equal(m.data, expected)
    m2 = LabelMask.empty((5, 5), 3)
    m2.paint([(1, 1), (3, 3)], 1, radius=0, shape="square")
    diagonal = np.zeros((5, 5), bool)
    diagonal[[1, 2, 3], [1, 2, 3]] = True
    np.testing.assert_array_equal(m2.data == 1, diagonal)


def test_brush_clipped_at_the_border_and_outside_does_nothing():
    m = LabelMask.empty((4, 4), 2)
    assert m.paint((0, 0), 1, radius=1, shape="square") == Region(0, 2, 0, 2)
    assert (m.data == 1).sum() == 4
    assert m.paint((-10, -10), 1, radius=1) is None
    assert m.undo_count == 1


def test_eraser_and_preserve_labels():
    m = LabelMask(grid([[0, 0, _, _], [0, 0, _, _]]), 3)
    m.paint([(0, 0), (0, 3)], 2, radius=0, preserve_labels=True)  # only the unlabelled pixels change
    np.testing.assert_array_equal(m.data, grid([[0, 0, 2, 2], [0, 0, _, _]]))
    m.paint([(1, 0), (1, 3)], 255, radius=0)  # eraser
    np.testing.assert_array_equal(m.data, grid([[0, 0, 2, 2], [_, _, _, _]]))


def test_fill_contiguous_uses_4_connectivity_and_replace_all_does_not():
    start = grid([
        [_, _, 1, _],
        [_, 1, _, _],
        [1, _, _, 0],
    ])
    m = LabelMask(start, 3)
    edit = m.fill(0, 0, 2)
    np.testing.assert_array_equal(m.data, grid([
        [2, 2, 1, _],
        [2, 1, _, _],
        [1, _, _, 0],
    ]))
    assert edit is not None and edit.region == Region(0, 2, 0, 2) and edit.kind == "fill" and edit.label == 2
    m.undo()
    m.fill(2, 1, 0, contiguous=False)
    np.testing.assert_array_equal(m.data, grid([
        [0, 0, 1, 0],
        [0, 1, 0, 0],
        [1, 0, 0, 0],
    ]))
    m.undo()
    assert m.fill(0, 2, 2, preserve_labels=True) is None  # the seed region is labelled: kept
    np.testing.assert_array_equal(m.data, start)


def test_polygon_fills_interior_and_edges():
    m = LabelMask.empty((7, 9), 3)
    m.polygon([(0, 0), (0, 6), (6, 0)], 2)
    tri = np.add.outer(np.arange(7), np.arange(9)) <= 6
    np.testing.assert_array_equal(m.data == 2, tri)
    assert (m.data[~tri] == 255).all()


def test_polygon_preserve_labels_and_lasso():
    m = LabelMask.empty((20, 20), 3)
    m.paint((10, 10), 0, radius=0)
    ang = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    lasso = np.stack([10 + 6 * np.sin(ang), 10 + 6 * np.cos(ang)], axis=1)
    m.polygon(lasso, 1, preserve_labels=True)
    assert m.pick(10, 10) == 0  # kept
    assert m.pick(10, 15) == 1 and m.pick(10, 17) == 255 and m.pick(4, 10) == 1


def test_accept_prediction_region_mask_bbox_and_whole():
    pred = grid([[0, 1, 2], [2, 1, 0]])
    m = LabelMask(grid([[_, 0, _], [_, _, 1]]), 3)
    region = np.array([[True, True, False], [False, False, True]])
    m.accept_prediction(pred, region)
    np.testing.assert_array_equal(m.data, grid([[0, 1, _], [_, _, 0]]))
    m.undo()
    m.accept_prediction(pred, (0, 2, 1, 3), preserve_labels=True)
    np.testing.assert_array_equal(m.data, grid([[_, 0, 2], [_, 1, 1]]))
    m.accept_prediction(pred)
    np.testing.assert_array_equal(m.data, pred)
    with pytest.raises(MaskError, match="outside the class table"):
        m.accept_prediction(grid([[0, 5, 2], [2, 1, 0]]))
    with pytest.raises(MaskError, match=r"\(3, 3\)"):
        m.accept_prediction(np.zeros((3, 3), np.uint8))
    np.testing.assert_array_equal(m.data, pred)  # the bad inputs changed nothing


def test_pick_and_bad_arguments():
    m = LabelMask(grid([[0, 1], [2, _]]), 3)
    assert [m.pick(0, 0), m.pick(0, 1), m.pick(1, 0), m.pick(1, 1)] == [0, 1, 2, 255]
    with pytest.raises(ValueError, match="outside"):
        m.pick(2, 0)
    with pytest.raises(MaskError, match="label 3 is outside"):
        m.paint((0, 0), 3)
    with pytest.raises(MaskError, match="outside the class table"):
        LabelMask(grid([[0, 7]]), 3)
    with pytest.raises(ValueError, match="brush shape"):
        m.paint((0, 0), 1, shape="star")
    with pytest.raises(ValueError, match="3"):
        m.polygon([(0, 0), (1, 1)], 1)


def test_data_is_read_only():
    m = LabelMask.empty((3, 3), 2)
    with pytest.raises(ValueError):
        m.data[0, 0] = 1


# ---- undo / redo ------------------------------------------------------------------------------

def test_a_stroke_is_one_undo_step_holding_only_its_box():
    m = LabelMask.empty((100, 120), 4)
    commits: list[Edit] = []
    m.on_commit.connect(commits.append)
    m.begin_stroke()
    for a, b in [((10, 10), (12, 20)), ((12, 20), (20, 30)), ((20, 30), (20, 40))]:
        m.paint([a, b], 3, radius=2)
    assert commits == [] and m.in_stroke
    edit = m.end_stroke()
    assert commits == [edit] and m.undo_count == 1
    assert edit.region == Region(8, 23, 8, 43)
    assert edit.before.shape == edit.after.shape == (15, 35)
    assert (edit.before == 255).all() and edit.label == 3 and edit.kind == "stroke"
    m.undo()
    assert (m.data == 255).all() and not m.can_undo and m.can_redo
    m.redo()
    np.testing.assert_array_equal(m.data[edit.region.slices], edit.after)


def test_stroke_that_changes_nothing_adds_no_step():
    m = LabelMask.empty((10, 10), 2)
    m.begin_stroke()
    m.paint((5, 5), 1, radius=1)
    m.paint((5, 5), 255, radius=1)  # erased again within the stroke
    assert m.end_stroke() is None and m.undo_count == 0
    assert m.paint((5, 5), 255, radius=3) is None  # erasing nothing


def _random_edit(m: LabelMask, rng: np.random.Generator, pred: np.ndarray) -> None:
    h, w = m.shape
    label = int(rng.choice([0, 1, 2, 255]))
    kind = rng.integers(5)
    if kind == 0:
        m.begin_stroke()
        p = rng.uniform(-3, [h + 3, w + 3])
        for _i in range(int(rng.integers(1, 6))):
            q = np.clip(p + rng.normal(0, 6, 2), -3, [h + 3, w + 3])
            m.paint([tuple(p), tuple(q)], label, radius=float(rng.uniform(0, 4)),
                    shape=str(rng.choice(["round", "square"])), preserve_labels=bool(rng.random() < 0.3))
            p = q
        m.end_stroke()
    elif kind == 1:
        m.fill(int(rng.integers(h)), int(rng.integers(w)), label, contiguous=bool(rng.random() < 0.7),
               preserve_labels=bool(rng.random() < 0.3))
    elif kind == 2:
        pts = rng.uniform(-2, [h + 2, w + 2], size=(int(rng.integers(3, 8)), 2))
        m.polygon(pts, label, preserve_labels=bool(rng.random() < 0.3))
    elif kind == 3:
        region = rng.random((h, w)) < 0.2 if rng.random() < 0.5 else (3, 20, 5, 30)
        m.accept_prediction(pred, region)
    else:
        m.paint(tuple(rng.uniform(0, [h, w])), label, radius=float(rng.uniform(0, 5)))


@pytest.mark.parametrize("seed", range(6))
def test_undo_redo_exact_over_random_edit_sequences(seed):
    rng = np.random.default_rng(seed)
    start = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(40, 50))
    pred = rng.integers(0, 3, size=(40, 50)).astype(np.uint8)
    m = LabelMask(start, 3)
    states = [start.copy()]  # states[i] = content after i undoable steps
    pos = 0
    for _step in range(40):
        r = rng.random()
        if r < 0.2 and m.can_undo:
            m.undo()
            pos -= 1
        elif r < 0.3 and m.can_redo:
            m.redo()
            pos += 1
        else:
            before = m.undo_count
            _random_edit(m, rng, pred)
            if m.undo_count != before:  # a step was recorded (edits that change nothing are not)
                del states[pos + 1:]
                states.append(m.data.copy())
                pos += 1
            else:
                np.testing.assert_array_equal(m.data, states[pos])
        np.testing.assert_array_equal(m.data, states[pos])
    final_pos = pos
    while m.can_undo:
        m.undo()
        pos -= 1
        np.testing.assert_array_equal(m.data, states[pos])
    np.testing.assert_array_equal(m.data, start)
    while m.can_redo:
        m.redo()
    np.testing.assert_array_equal(m.data, states[-1])
    assert len(states) - 1 >= final_pos


def test_history_limit_keeps_the_newest_steps():
    m = LabelMask.empty((5, 5), 2, history=3)
    for i in range(5):
        m.paint((i, i), 1, radius=0)
    assert m.undo_count == 3
    while m.can_undo:
        m.undo()
    expected = np.full((5, 5), 255, np.uint8)
    expected[0, 0] = expected[1, 1] = 1  # the two oldest steps fell out of the history
    np.testing.assert_array_equal(m.data, expected)


def test_large_steps_are_compressed_and_still_exact():
    rng = np.random.default_rng(0)
    start = rng.choice(np.array([0, 1, 255], np.uint8), size=(800, 700))
    m = LabelMask(start, 2)
    edit = m.fill(0, 0, 0, contiguous=False)
    assert edit is not None and edit.region.area > 500_000
    edit.after_packed(), edit._before.packed()  # wait for the background compression
    assert edit.nbytes < edit.region.area  # both patches together smaller than one raw copy
    m.undo()
    np.testing.assert_array_equal(m.data, start)
    m.redo()
    assert (m.data[start == start[0, 0]] == 0).all()


# ---- events and state -------------------------------------------------------------------------

def test_change_events_carry_the_region_and_undo_redo_emit_too():
    m = LabelMask.empty((50, 60), 3)
    changes: list[Region] = []
    commits: list[Edit] = []
    m.on_change.connect(changes.append)
    m.on_commit.connect(commits.append)
    m.begin_stroke()
    r1 = m.paint([(10, 10), (10, 20)], 1, radius=1)
    r2 = m.paint([(10, 20), (30, 20)], 1, radius=1)
    m.end_stroke()
    assert changes == [r1, r2] and r1 == Region(9, 12, 9, 22) and r2 == Region(12, 32, 19, 22)  # only what changed
    assert len(commits) == 1 and commits[0].region == Region(9, 32, 9, 22)
    m.undo()
    assert changes[-1] == commits[0].region
    assert commits[-1].kind == "undo" and (commits[-1].after == 255).all()
    m.redo()
    assert commits[-1].kind == "redo" and (commits[-1].after == commits[0].after).all()
    m.on_change.disconnect(changes.append)
    m.paint((40, 40), 2, radius=1)
    assert len(changes) == 4  # two segments, undo, redo; nothing after disconnecting


def test_dirty_revision_and_snapshot():
    m = LabelMask.empty((8, 8), 2)
    assert not m.dirty and m.revision == 0
    m.paint((2, 2), 1, radius=1)
    assert m.dirty and m.revision == 1
    data, rev = m.snapshot()
    m.paint((6, 6), 1, radius=1)
    m.mark_saved(rev)  # a save of the older snapshot finished: still dirty
    assert m.dirty
    assert data[6, 6] == 255 and m.pick(6, 6) == 1  # the snapshot is a copy
    m.mark_saved()
    assert not m.dirty
    m.undo()
    assert m.dirty


def test_brush_segment_on_a_12_megapixel_mask_touches_only_its_box():
    m = LabelMask.empty((3000, 4000), 150)
    m.begin_stroke()
    m.paint([(1500, 2000), (1503, 2006)], 7, radius=12)  # warm up
    tracemalloc.start()
    try:
        region = m.paint([(1503, 2006), (1510, 2015)], 7, radius=12)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert region is not None and region.area < 40 * 40
    assert peak < 200_000, f"a brush segment allocated {peak} bytes (a full copy is 12 MB)"
    edit = m.end_stroke()
    assert edit.region.area < 50 * 50
