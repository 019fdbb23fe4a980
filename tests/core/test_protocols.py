"""Each source's test procedure, reimplemented here from its description, against the Predictor.

The references follow the public procedures step by step in plain numpy / OpenCV / PIL /
torch (not their code): semseg's ``tool/test.py`` (long-side resize of the float image,
mean padding to the crop, windows at stride ceil(2/3 crop), softmax per window averaged with
its mirror image, OpenCV resize of the probabilities back, mean over scales), mmseg's test
(keep-ratio OpenCV resize of the uint8 image, whole or slide inference averaging logits,
logits resized to the image, softmax, mirror image as its own pass) and CSAIL's ``eval.py``
(short-side PIL resize capped at a long side, rounded up to 8, logits upsampled straight to
the image, softmax, mean over sizes). Random tiny models, odd image sizes, several scales,
mirroring: the probabilities agree within 1e-3 and the labels wherever they are not a tie.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.config import ModelConfig
from core.inference import Predictor, TestProtocol
from core.model import PSPNet

K = 5


def tiny(**kw) -> PSPNet:
    torch.manual_seed(kw.pop("seed", 0))
    cfg = dict(depth=18, base_width=8, num_classes=K, head_channels=32, aux_channels=16)
    cfg.update(kw)
    model = PSPNet(ModelConfig(**cfg))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-20, 21, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def run(model: PSPNet, x: np.ndarray) -> torch.Tensor:
    """The network on a normalised (3, h, w) float array: logits at the input's size (PSPNet.forward)."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x))[None].float()).main[0]


def normalise(model: PSPNet, img: np.ndarray) -> np.ndarray:
    mean = np.array(model.cfg.mean, np.float32)
    std = np.array(model.cfg.std, np.float32)
    return ((img.astype(np.float32) - mean) / std).transpose(2, 0, 1)


# --- the references -------------------------------------------------------------------------------


def semseg_reference(model: PSPNet, image: np.ndarray, base: int, crop: int, scales, flip: bool) -> np.ndarray:
    h, w = image.shape[:2]
    img = image.astype(np.float32)
    total = np.zeros((h, w, K), np.float64)
    for s in scales:
        long = round(s * base)
        nh, nw = (long, round(long / float(h) * w)) if h > w else (round(long / float(w) * h), long)
        scaled = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        ph, pw = max(crop - nh, 0), max(crop - nw, 0)
        top, left = int(ph / 2), int(pw / 2)
        padded = cv2.copyMakeBorder(scaled, top, ph - top, left, pw - left, cv2.BORDER_CONSTANT,
                                    value=list(model.cfg.mean))
        H2, W2 = padded.shape[:2]
        stride = int(math.ceil(crop * 2 / 3))
        rows = int(math.ceil((H2 - crop) / stride)) + 1
        cols = int(math.ceil((W2 - crop) / stride)) + 1
        acc = np.zeros((H2, W2, K), np.float64)
        cnt = np.zeros((H2, W2), np.float64)
        for r in range(rows):
            for c in range(cols):
                y1 = min(r * stride + crop, H2)
                x1 = min(c * stride + crop, W2)
                y0, x0 = y1 - crop, x1 - crop
                x = normalise(model, padded[y0:y1, x0:x1])
                p = run(model, x).softmax(0)
                if flip:
                    q = run(model, x[:, :, ::-1]).softmax(0).flip(-1)
                    p = (p + q) / 2
                acc[y0:y1, x0:x1] += p.numpy().transpose(1, 2, 0)
                cnt[y0:y1, x0:x1] += 1
        acc /= cnt[..., None]
        acc = acc[top:top + nh, left:left + nw]
        total += cv2.resize(acc, (w, h), interpolation=cv2.INTER_LINEAR)
    return (total / len(scales)).transpose(2, 0, 1)


def mmseg_reference(model: PSPNet, image: np.ndarray, long: int, short: int, ratios, crop, stride,
                    flip: bool) -> np.ndarray:
    h, w = image.shape[:2]
    total = torch.zeros(K, h, w, dtype=torch.float64)
    n = 0
    for r in ratios:
        a, b = int(long * r), int(short * r)
        factor = min(max(a, b) / max(h, w), min(a, b) / min(h, w))
        nw, nh = int(w * factor + 0.5), int(h * factor + 0.5)
        scaled = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        for mirrored in ((False, True) if flip else (False,)):
            img = scaled[:, ::-1] if mirrored else scaled
            x = normalise(model, img)
            if crop is None:
                logits = run(model, x)
            else:
                logits = torch.zeros(K, nh, nw)
                count = torch.zeros(1, nh, nw)
                rows = max(nh - crop + stride - 1, 0) // stride + 1
                cols = max(nw - crop + stride - 1, 0) // stride + 1
                for i in range(rows):
                    for j in range(cols):
                        y1, x1 = i * stride, j * stride
                        y2, x2 = min(y1 + crop, nh), min(x1 + crop, nw)
                        y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                        logits[:, y1:y2, x1:x2] += run(model, x[:, y1:y2, x1:x2])
                        count[:, y1:y2, x1:x2] += 1
                logits = logits / count
            up = F.interpolate(logits[None], size=(h, w), mode="bilinear", align_corners=model.cfg.align_corners)[0]
            p = up.softmax(0)
            total += (p.flip(-1) if mirrored else p).double()
            n += 1
    return (total / n).numpy()


def csail_reference(model: PSPNet, image: np.ndarray, sizes, max_size: int) -> np.ndarray:
    h, w = image.shape[:2]
    total = torch.zeros(K, h, w, dtype=torch.float64)
    for short in sizes:
        scale = min(short / float(min(h, w)), max_size / float(max(h, w)))
        th, tw = int(h * scale), int(w * scale)
        th, tw = ((th - 1) // 8 + 1) * 8, ((tw - 1) // 8 + 1) * 8
        img = np.asarray(Image.fromarray(image).resize((tw, th), Image.BILINEAR))
        # CSAIL: 0..1, then mean / std on that scale (the same as ours on 0..255)
        x = torch.from_numpy((np.float32(img) / 255.0).transpose(2, 0, 1).copy())
        mean = torch.tensor(model.cfg.mean).view(3, 1, 1) / 255.0
        std = torch.tensor(model.cfg.std).view(3, 1, 1) / 255.0
        x = ((x - mean) / std)[None]
        with torch.no_grad():
            stages = model.backbone(x)
            logits = model.forward_heads(stages.layer3, stages.layer4, (h, w)).main[0]  # upsampled to the image
        total += logits.softmax(0).double() / len(sizes)
    return total.numpy()


def margin(p: np.ndarray) -> np.ndarray:
    top2 = np.sort(p, axis=0)[-2:]
    return top2[1] - top2[0]


def assert_same(ours: np.ndarray, ref: np.ndarray, labels: np.ndarray, tol: float = 1e-3) -> None:
    """Probabilities within ``tol``; the labels the argmax of both wherever the two best classes
    are further apart than the probabilities' difference (random models mirror-averaged give
    many near-even pixels, so that is checked to leave most pixels in)."""
    assert ours.shape == ref.shape
    err = float(np.abs(ours - ref).max())
    assert err < tol, f"probabilities differ by {err:.2e}"
    mine = margin(ours) > 1e-6  # the photo's labels are exactly the argmax of the photo-sized probabilities
    assert np.array_equal(labels[mine], ours.argmax(0)[mine])
    clear = margin(ref) > 4 * err + 1e-7
    assert np.array_equal(labels[clear], ref.argmax(0)[clear])
    assert clear.mean() > 0.75 and mine.mean() > 0.75


# --- the tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, base, crop, scales, flip", [
    ((75, 101), 96, 65, (1.0,), True),  # landscape: one row of two windows, height padded
    ((83, 59), 72, 49, (0.75, 1.0, 1.25), True),  # portrait, three scales: padded, one window, four windows
    ((61, 61), 80, 41, (1.0, 1.5), False),
])
def test_semseg_procedure(size, base, crop, scales, flip):
    model = tiny()  # semseg's layout: align_corners=True
    img = photo(*size, seed=1)
    protocol = TestProtocol.semseg("ade20k", base_size=base, crop=crop, scales=scales, flip=flip)
    pred = Predictor(model, protocol=protocol)
    ref = semseg_reference(model, img, base, crop, scales, flip)
    p = pred.predict(img)
    assert_same(pred.photo_probs(img), ref, p.labels)
    if len(scales) == 1:  # one pass: the kept working-resolution map is the procedure's, in float16
        assert np.abs(np.asarray(p.probs) - ref).max() < 1e-3


@pytest.mark.parametrize("size, crop, stride, ratios, flip", [
    ((70, 97), None, None, (1.0,), False),  # mmseg's ADE20K test: whole image
    ((77, 53), 41, 28, (1.0,), True),  # slide inference, mirrored image
    ((64, 90), 33, 22, (0.75, 1.25), True),  # several ratios (0.x MultiScaleFlipAug)
])
def test_mmseg_procedure(size, crop, stride, ratios, flip):
    model = tiny(align_corners=False, dilation="halved_first", basic_dilate_conv2=False, seed=1)
    img = photo(*size, seed=2)
    long, short = 160, 48
    protocol = TestProtocol.mmseg(short, long, crop=crop, stride=stride, scales=ratios, flip=flip)
    pred = Predictor(model, protocol=protocol)
    ref = mmseg_reference(model, img, long, short, ratios, crop, stride, flip)
    assert_same(pred.photo_probs(img), ref, pred.predict(img).labels)


@pytest.mark.parametrize("size", [(67, 93), (90, 47)])
def test_csail_procedure(size):
    model = tiny(align_corners=False, dilation="halved_first", seed=2)
    img = photo(*size, seed=3)
    sizes, max_size = (40, 50, 60), 90
    protocol = TestProtocol.csail(base_size=60, scales=tuple(s / 60 for s in sizes), max_long=max_size)
    pred = Predictor(model, protocol=protocol)
    ref = csail_reference(model, img, sizes, max_size)
    assert_same(pred.photo_probs(img), ref, pred.predict(img).labels)


def test_the_reference_tells_the_procedures_apart():
    """The comparisons above can fail: the same model under another procedure (or without the
    mirror) gives probabilities far outside the tolerance."""
    model = tiny()
    img = photo(75, 101, seed=1)
    ref = semseg_reference(model, img, 96, 65, (1.0,), True)
    other = Predictor(model, protocol=TestProtocol.semseg("ade20k", base_size=96, crop=65, flip=False))
    assert np.abs(other.photo_probs(img) - ref).max() > 1e-2
    mm = Predictor(model, protocol=TestProtocol.mmseg(64, 160, flip=True))
    assert np.abs(mm.photo_probs(img) - ref).max() > 1e-2


def test_sizes_follow_each_procedure_arithmetic():
    semseg = TestProtocol.semseg("ade20k")
    assert semseg.scaled_size(3000, 4000) == (384, 512)
    assert semseg.scaled_size(4000, 3000) == (512, 384)
    assert semseg.scaled_size(375, 500, 0.75) == (288, 384)  # round(384 / 500 * 375) = 288
    assert TestProtocol.semseg("cityscapes").scaled_size(1024, 2048) == (1024, 2048)
    mm = TestProtocol.mmseg(512, 2048)
    assert mm.scaled_size(3000, 4000) == (512, 683)  # short side 512 (int(4000 * 512 / 3000 + 0.5) = 683)
    assert mm.scaled_size(512, 4096) == (256, 2048)  # the long side caps it
    cs = TestProtocol.csail()
    assert cs.scaled_size(3000, 4000) == (600, 800)
    assert cs.scaled_size(375, 500, 0.5) == (304, 400)  # int(375 * 0.8) = 300 -> 304; 400
    assert cs.scaled_size(1000, 300) == (1000, 304)  # capped by the long side: 1000 / 1000; int(300) -> 304
    assert TestProtocol.native().scaled_size(37, 45) == (37, 45)
    assert semseg.stride == 316 and TestProtocol.mmseg(1024, 2048, crop=769, stride=513).stride == 513
