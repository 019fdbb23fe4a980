"""The photo-sized results computed band by band equal the whole-photo computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.inference.compose import Placed, photo_labels, working_maps
from core.inference.maps import PassMap
from core.inference.plan import PassPlan
from core.inference.sampling import Axis, resize_plane


def smooth_map(c: int, h: int, w: int, seed: int, scale: float = 8.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, c, max(2, h // 6), max(2, w // 6), generator=g) * scale
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]


def plan_for(size, value="probs", pad=(0, 0, 0, 0)) -> PassPlan:
    h, w = size
    p = PassPlan(1.0, size, pad, [], value, False)
    p.grid = (h + pad[0] + pad[1], w + pad[2] + pad[3])
    return p


def dense_reference(maps, photo, align=False):
    """Every map resized to the photo with F.interpolate (the padding cut off first), the softmax
    of logits, the mean, the argmax: the computation without bands or shortcuts."""
    acc = 0
    for values, p in maps:
        t, b, l, r = p.pad
        v = values[:, t:values.shape[1] - b, l:values.shape[2] - r]
        up = F.interpolate(v[None], size=photo, mode="bilinear", align_corners=align and p.value == "logits")[0]
        acc = acc + (up.softmax(0) if p.value == "logits" else up)
    return (acc / len(maps)).numpy()


def placed(values, p, photo, align=False):
    return Placed(PassMap(values, p), *p.axes(photo, align))


def near_tie(ref: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    top2 = np.sort(ref, axis=0)[-2:]
    return (top2[1] - top2[0]) <= eps


@pytest.mark.parametrize("grid, photo, value, pad", [
    ((24, 32), (151, 203), "probs", (0, 0, 0, 0)),  # up: most pixels settled by their neighbours
    ((40, 31), (17, 12), "probs", (0, 0, 0, 0)),  # down
    ((21, 30), (47, 61), "logits", (0, 0, 0, 0)),
    ((18, 25), (37, 50), "probs", (3, 4, 0, 2)),  # semseg's padding cut off
])
def test_band_wise_labels_equal_the_whole_photo_argmax(grid, photo, value, pad):
    c = 7
    p = plan_for(grid, value, pad)
    values = smooth_map(c, *p.grid, seed=1)
    if value == "probs":
        values = values.softmax(0)
    ref = dense_reference([(values, p)], photo)
    maps = [placed(values, p, photo)]
    fast = photo_labels(maps, photo, rows=7)  # odd band height
    exact = photo_labels(maps, photo, shortcut=False, rows=64)
    ties = near_tie(ref)
    assert np.array_equal(fast[~ties], ref.argmax(0)[~ties])
    assert np.array_equal(exact[~ties], ref.argmax(0)[~ties])
    assert ties.mean() < 0.01


def test_several_passes_and_both_kinds_of_map():
    photo = (73, 95)
    c = 6
    pa, pb = plan_for((30, 40)), plan_for((45, 60))
    a = smooth_map(c, 30, 40, seed=2).softmax(0)
    b = smooth_map(c, 45, 60, seed=3).softmax(0)
    ref = dense_reference([(a, pa), (b, pb)], photo)
    got = photo_labels([placed(a, pa, photo), placed(b, pb, photo)], photo, rows=16)
    ties = near_tie(ref)
    assert np.array_equal(got[~ties], ref.argmax(0)[~ties])
    la, lb = plan_for((30, 40), "logits"), plan_for((45, 60), "logits")
    ga, gb = smooth_map(c, 30, 40, seed=4), smooth_map(c, 45, 60, seed=5)
    ref = dense_reference([(ga, la), (gb, lb)], photo)
    got = photo_labels([placed(ga, la, photo), placed(gb, lb, photo)], photo, rows=16)
    ties = near_tie(ref)
    assert np.array_equal(got[~ties], ref.argmax(0)[~ties])


def test_working_maps_are_the_resized_mean_with_its_confidence_and_entropy():
    photo = (90, 120)
    p = plan_for((30, 40))
    v = smooth_map(5, 30, 40, seed=6).softmax(0)
    work = working_maps([placed(v, p, photo)], photo, (45, 60), rows=7)
    ref = F.interpolate(v[None], size=(45, 60), mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(work.probs.astype(np.float32), ref.numpy(), atol=1e-3)  # float16
    np.testing.assert_allclose(work.confidence, ref.amax(0).numpy(), atol=1e-5)  # torch: float32 coordinates
    np.testing.assert_allclose(work.entropy, torch.special.entr(ref).sum(0).numpy(), atol=1e-5)
    same = working_maps([placed(v, p, photo)], photo, (30, 40))  # the map's own grid: a copy
    np.testing.assert_allclose(same.probs.astype(np.float32), v.numpy(), atol=1e-3)


def test_resized_planes_equal_f_interpolate():
    plane = np.random.default_rng(0).random((37, 52)).astype(np.float32)
    for size in ((100, 141), (11, 13), (37, 52)):
        ref = F.interpolate(torch.from_numpy(plane)[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        np.testing.assert_allclose(resize_plane(plane, size, rows=9, dtype=np.float32), ref.numpy(), atol=1e-5)


def test_axes_follow_f_interpolate_with_and_without_corners():
    src = torch.arange(7.0).view(1, 1, 1, 7)
    for align in (False, True):
        for n in (3, 7, 20):
            ref = F.interpolate(src, size=(1, n), mode="bilinear", align_corners=align)[0, 0, 0].numpy()
            t = Axis.resize(7, n, align_corners=align).taps(np.arange(n))
            got = (1 - t.w.numpy()) * t.i0.numpy() + t.w.numpy() * t.i1.numpy()
            np.testing.assert_allclose(got, ref, atol=1e-5)
