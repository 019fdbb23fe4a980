"""core.inspect: feature summaries, change maps, class shares, top-k readout."""

import numpy as np
import pytest
import torch

from core import inspect as ins


def test_as_chw_accepts_batch_of_one_and_tensors():
    t = torch.arange(24, dtype=torch.float32).view(1, 2, 3, 4)
    a = ins.as_chw(t)
    assert a.shape == (2, 3, 4) and a.dtype == np.float32
    assert a[1, 2, 3] == 23
    with pytest.raises(ValueError, match="batch of 2"):
        ins.as_chw(np.zeros((2, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        ins.as_chw(np.zeros((3, 4)))


def test_to_uint8_scales_and_handles_constant():
    out = ins.to_uint8(np.array([[-1.0, 0.0, 1.0]]))
    assert out.tolist() == [[0, 128, 255]]
    assert ins.to_uint8(np.full((2, 2), 7.0)).tolist() == [[0, 0], [0, 0]]
    assert ins.to_uint8(np.array([5.0]), lo=0, hi=10).tolist() == [128]


def test_channel_summaries():
    f = np.zeros((4, 2, 2), np.float32)
    f[2] = -3.0
    f[0, 0, 0] = 1.0
    assert ins.channel_map(f, 2).tolist() == [[-3, -3], [-3, -3]]
    with pytest.raises(ValueError, match="4 channels"):
        ins.channel_map(f, 4)
    np.testing.assert_allclose(ins.mean_abs_activation(f), [[1.0, 0.75], [0.75, 0.75]])
    top = ins.top_channels(f, 2)
    assert [c for c, _ in top] == [2, 0]
    assert top[0][1] == pytest.approx(3.0) and top[1][1] == pytest.approx(0.25)


def test_pca_rgb_separates_two_clusters_and_is_flat_for_one_pixel():
    rng = np.random.default_rng(0)
    f = rng.normal(0, 0.01, (16, 8, 8)).astype(np.float32)
    f[:, :, 4:] += rng.normal(0, 1, (16, 1, 1)).astype(np.float32) * 5  # right half: another vector
    rgb = ins.pca_rgb(f)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    left, right = rgb[:, :4, 0].astype(int), rgb[:, 4:, 0].astype(int)
    assert abs(left.mean() - right.mean()) > 200  # the first component splits the halves
    # a basis fitted elsewhere colours a 1x1 grid; without one it is a flat grey
    basis = ins.fit_pca(f)
    one = f[:, :1, 4:5]
    assert ins.pca_rgb(one, basis)[0, 0, 0] == rgb[0, 4, 0]
    assert ins.pca_rgb(one).tolist() == [[[128, 128, 128]]]
    with pytest.raises(ValueError, match="16 channels"):
        ins.pca_rgb(np.zeros((3, 2, 2)), basis)


def test_change_map_ignores_255_and_counts():
    a = np.array([[0, 1, 2], [255, 1, 1]], np.uint8)
    b = np.array([[0, 2, 2], [3, 255, 0]], np.uint8)
    cm = ins.change_map(a, b)
    assert cm.mask.tolist() == [[False, True, False], [False, False, True]]
    assert (cm.changed, cm.total) == (2, 4) and cm.share == 0.5
    with pytest.raises(ValueError, match="shape"):
        ins.change_map(a, b[:, :2])
    assert ins.change_map(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8)).share == 0.0


def test_class_shares_and_top_k():
    lab = np.array([[0, 0, 1], [2, 255, 0]], np.uint8)
    np.testing.assert_allclose(ins.class_shares(lab, 4), [0.6, 0.2, 0.2, 0.0])
    assert ins.class_shares(np.full((2, 2), 255, np.uint8), 3).tolist() == [0, 0, 0]
    probs = np.zeros((4, 1, 2), np.float32)
    probs[:, 0, 1] = [0.1, 0.5, 0.15, 0.25]
    assert [c for c, _ in ins.top_k_at(probs, 0, 1)] == [1, 3, 2]
    assert ins.top_k_at(probs, 0, 1, 1)[0][1] == pytest.approx(0.5)


def test_available_devices_lists_cpu_first():
    import torch

    devs = ins.available_devices()
    assert devs[0] == "cpu"
    assert len(devs) == 1 + (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert ins.device_name("cpu") == "CPU"
