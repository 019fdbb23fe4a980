"""Image and mask IO: conversions, a corpus of bad files, atomic mask writes."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from core.classes import ClassTable
from core.data import io as dio
from core.data.io import image_size, read_image, read_label_ids, read_mask, write_mask
from core.errors import ImageReadError, MaskError


def _pattern(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth, asymmetric RGB image (survives JPEG; every orientation looks different)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 60)], -1).astype(np.uint8)
    img[: h // 4, : w // 4] = (250, 250, 250)  # a bright top-left corner
    return img


def _save(path: Path, array: np.ndarray, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **kw)
    return path


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@pytest.fixture
def unchanged(tmp_path):
    """Asserts at the end of the test that nothing under tmp_path was created, changed or removed."""
    def check(before):
        assert _snapshot(tmp_path) == before, "a read changed files on disk"
    holder = {}
    yield holder
    if "before" in holder:
        check(holder["before"])


# ---- good files -----------------------------------------------------------------------------


def test_png_round_trip_is_exact_and_c_contiguous(tmp_path):
    img = _pattern()
    out = read_image(_save(tmp_path / "a.png", img))
    assert out.dtype == np.uint8 and out.shape == img.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, img)


def test_jpeg_is_rgb_not_bgr(tmp_path):
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = 220  # pure-ish red
    out = read_image(_save(tmp_path / "r.jpg", img, quality=95))
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 20


def test_non_ascii_path(tmp_path):
    folder = tmp_path / "bilder-ü-東京"
    img = _pattern()
    p = _save(folder / "straße.png", img)
    np.testing.assert_array_equal(read_image(p), img)
    assert image_size(p) == img.shape[:2]
    table = ClassTable.from_names(["a", "b", "c"])
    mask = (np.arange(48 * 64).reshape(48, 64) % 3).astype(np.uint8)
    write_mask(folder / "maske-ñ.png", mask, table)
    np.testing.assert_array_equal(read_mask(folder / "maske-ñ.png", table, shape=(48, 64)), mask)


def test_16bit_png_is_divided_by_257_rounded(tmp_path):
    v = np.array([[0, 257, 300, 385, 386, 65535, 128 * 257, 65534]], np.uint16)
    grey = np.repeat(v, 3, axis=0)
    ok, buf = cv2.imencode(".png", grey)
    p = tmp_path / "g16.png"
    p.write_bytes(buf.tobytes())
    out = read_image(p)
    assert out.shape == (3, 8, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 1, 1, 2, 255, 128, 255])
    # colour 16-bit: channel order is RGB after conversion
    rgb16 = np.zeros((2, 2, 3), np.uint16)
    rgb16[..., 0] = 200 * 257  # red in RGB order
    ok, buf = cv2.imencode(".png", rgb16[..., ::-1].copy())  # OpenCV writes BGR
    (tmp_path / "c16.png").write_bytes(buf.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "c16.png")[0, 0], [200, 0, 0])


def test_greyscale_becomes_rgb(tmp_path):
    g = np.arange(0, 240, 5, dtype=np.uint8).reshape(6, 8)
    out = read_image(_save(tmp_path / "g.png", g))
    assert out.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (10, 20, 200)
    rgba[0, 0, 3] = 255  # opaque: the colour
    rgba[0, 1, 3] = 0  # transparent: white, whatever the stored colour
    rgba[0, 2, 3] = 128  # half: halfway to white
    out = read_image(_save(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(out[0, 0], [10, 20, 200])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    expect = np.round(np.array([10, 20, 200]) * 128 / 255 + 255 * (1 - 128 / 255))
    np.testing.assert_allclose(out[0, 2], expect, atol=1)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_all_eight(tmp_path, orientation):
    img = _pattern(12, 20)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = _save(tmp_path / "o.png", img, exif=exif)
    with Image.open(p) as im:
        expect = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))  # Pillow as the reference
    out = read_image(p)
    np.testing.assert_array_equal(out, expect)
    assert out.flags.c_contiguous
    assert image_size(p) == expect.shape[:2]
    if orientation >= 5:
        assert out.shape[:2] == (20, 12)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_jpeg(tmp_path, orientation):
    img = _pattern(48, 80)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = _save(tmp_path / "o.jpg", img, exif=exif, quality=95)
    rotated = {3: np.rot90(img, 2), 6: np.rot90(img, -1), 8: np.rot90(img, 1)}[orientation]
    out = read_image(p)
    assert out.shape == rotated.shape
    assert np.abs(out.astype(int) - rotated).mean() < 4
    # the bright corner tells the rotation apart from the others
    corner = {3: out[-6:, -10:], 6: out[:10, -6:], 8: out[-10:, :6]}[orientation]
    assert corner.mean() > 230
    assert image_size(p) == rotated.shape[:2]


def test_jpeg_with_trailing_bytes_after_eoi_is_read(tmp_path):
    p = _save(tmp_path / "t.jpg", _pattern(), quality=95)
    clean = read_image(p)
    p.write_bytes(p.read_bytes() + b"\xff\xda trailer \x00\x01 more")  # like phones' appended data
    np.testing.assert_array_equal(read_image(p), clean)


def test_image_size_reads_headers(tmp_path):
    assert image_size(_save(tmp_path / "a.png", _pattern(30, 40))) == (30, 40)
    assert image_size(_save(tmp_path / "b.jpg", _pattern(30, 40))) == (30, 40)
    assert image_size(_save(tmp_path / "c.bmp", _pattern(30, 40))) == (30, 40)
    assert image_size(_save(tmp_path / "d.webp", _pattern(30, 40))) == (30, 40)


def test_other_formats(tmp_path):
    img = _pattern()
    np.testing.assert_array_equal(read_image(_save(tmp_path / "a.bmp", img)), img)
    np.testing.assert_array_equal(read_image(_save(tmp_path / "a.tif", img)), img)
    np.testing.assert_array_equal(read_image(_save(tmp_path / "a.webp", img, lossless=True)), img)


# ---- the bad-file corpus --------------------------------------------------------------------


def _bomb_png(path: Path, w: int = 50000, h: int = 50000) -> Path:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(dio._PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a phrase its error message must hold)."""
    good_jpg = _save(tmp_path / "src" / "good.jpg", _pattern(64, 96), quality=90).read_bytes()
    good_png = _save(tmp_path / "src" / "good.png", _pattern(64, 96)).read_bytes()
    d = tmp_path / "bad"
    d.mkdir()
    files = {
        "empty": (d / "empty.png", b"", "empty (0 bytes)"),
        "text": (d / "notes.png", b"hello, this is not an image\n", "not an image"),
        "trunc_jpg": (d / "cut.jpg", good_jpg[: len(good_jpg) * 6 // 10], "truncated JPEG"),
        "trunc_jpg_header": (d / "cut_head.jpg", good_jpg[:40], "JPEG ends"),
        "trunc_png": (d / "cut.png", good_png[: len(good_png) // 2], "truncated PNG"),
        "png_no_ihdr": (d / "sig.png", dio._PNG_SIGNATURE + b"\x00" * 4, "IHDR"),
    }
    corrupt = bytearray(good_png)
    i = corrupt.find(b"IDAT")
    corrupt[i + 40: i + 60] = b"\x00" * 20
    files["corrupt_png"] = (d / "corrupt.png", bytes(corrupt), "cannot decode")
    out = {}
    for name, (p, data, phrase) in files.items():
        p.write_bytes(data)
        out[name] = (p, phrase)
    out["bomb"] = (_bomb_png(d / "bomb.png"), "too large")
    out["missing"] = (d / "nope.jpg", "no such file")
    out["folder"] = (d, "folder")
    return out


def test_bad_files_raise_specific_errors_and_change_nothing(tmp_path, unchanged):
    bad = _bad_files(tmp_path)
    unchanged["before"] = _snapshot(tmp_path)
    for name, (path, phrase) in bad.items():
        with pytest.raises(ImageReadError) as err:
            read_image(path)
        msg = str(err.value)
        assert str(path) in msg, (name, msg)
        assert phrase in msg, (name, msg)


def test_truncated_jpeg_is_caught_even_if_the_decoder_fills_it(tmp_path, monkeypatch):
    """Some OpenCV builds return a grey-filled image for a truncated JPEG; do not depend on it."""
    data = _save(tmp_path / "g.jpg", _pattern(64, 96)).read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) * 7 // 10])
    monkeypatch.setattr(dio.cv2, "imdecode", lambda buf, flags: np.full((64, 96, 3), 128, np.uint8))
    with pytest.raises(ImageReadError, match="truncated JPEG"):
        read_image(p)


def test_decompression_bomb_fails_fast_without_decoding(tmp_path, monkeypatch):
    p = _bomb_png(tmp_path / "bomb.png")
    assert p.stat().st_size < 200
    assert image_size(p) == (50000, 50000)

    def no_decode(*a, **k):
        raise AssertionError("decoded a file that is over the pixel cap")

    monkeypatch.setattr(dio.cv2, "imdecode", no_decode)
    t = time.perf_counter()
    with pytest.raises(ImageReadError, match=r"50000x50000 = 2,500,000,000 pixels.*limit of 178,956,970"):
        read_image(p)
    assert time.perf_counter() - t < 1.0


def test_jpeg_bomb_and_max_pixels_parameter(tmp_path, monkeypatch):
    data = bytearray(_save(tmp_path / "s.jpg", _pattern(64, 96)).read_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", 60000, 60000)
    p = tmp_path / "huge.jpg"
    p.write_bytes(bytes(data))
    monkeypatch.setattr(dio.cv2, "imdecode", lambda *a: pytest.fail("decoded"))
    with pytest.raises(ImageReadError, match="too large"):
        read_image(p)
    monkeypatch.undo()
    small = tmp_path / "s.jpg"
    with pytest.raises(ImageReadError, match="64 = 6,144 pixels, more than the limit of 6,000"):
        read_image(small, max_pixels=6000)
    assert read_image(small, max_pixels=6144).shape == (64, 96, 3)


# ---- masks ----------------------------------------------------------------------------------

TABLE = ClassTable(("sky", "road", "car"), ((70, 130, 180), (128, 64, 128), (0, 0, 142)), "t3")


def _mask() -> np.ndarray:
    m = np.zeros((20, 30), np.uint8)
    m[5:10] = 1
    m[10:15, 3:9] = 2
    m[15:] = 255
    return m


def test_write_mask_is_indexed_png_with_palette_and_round_trips(tmp_path):
    p = tmp_path / "m.png"
    write_mask(p, _mask(), TABLE)
    with Image.open(p) as im:
        assert im.mode == "P"
        pal = np.array(im.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(np.asarray(im), _mask())
    np.testing.assert_array_equal(pal[:3], TABLE.colors)
    np.testing.assert_array_equal(pal[255], [0, 0, 0])
    np.testing.assert_array_equal(read_mask(p, TABLE, shape=(20, 30)), _mask())
    assert [q.name for q in tmp_path.iterdir()] == ["m.png"]  # no temp file left


def test_greyscale_mask_gives_ids(tmp_path):
    p = _save(tmp_path / "g.png", _mask())
    np.testing.assert_array_equal(read_mask(p, TABLE), _mask())
    np.testing.assert_array_equal(read_label_ids(p), _mask())


def test_colour_mask_maps_through_class_colours(tmp_path):
    rgb = np.array(TABLE.colors, np.uint8)[np.minimum(_mask(), 2)]
    rgb[_mask() == 255] = 0  # black: ignore, since no class is black
    p = _save(tmp_path / "c.png", rgb)
    np.testing.assert_array_equal(read_mask(p, TABLE), _mask())
    # with a black class (VOC's background) black is that class
    voc = ClassTable.builtin("voc")
    vm = np.zeros((4, 4), np.uint8)
    vm[1:3, 1:3] = 15
    p2 = _save(tmp_path / "v.png", np.array(voc.colors, np.uint8)[vm])
    np.testing.assert_array_equal(read_mask(p2, voc), vm)
    # RGBA: transparent pixels are ignore
    rgba = np.dstack([np.array(TABLE.colors, np.uint8)[np.minimum(_mask(), 2)], np.full((20, 30), 255, np.uint8)])
    rgba[_mask() == 255, 3] = 0
    np.testing.assert_array_equal(read_mask(_save(tmp_path / "a.png", rgba), TABLE), _mask())


def test_colour_mask_unknown_and_ambiguous_colours(tmp_path):
    rgb = np.array(TABLE.colors, np.uint8)[np.zeros((6, 7), np.uint8)]
    rgb[3, 4] = (1, 2, 3)
    with pytest.raises(MaskError, match=r"colour \(1, 2, 3\) at pixel \(row 3, column 4\)"):
        read_mask(_save(tmp_path / "u.png", rgb), TABLE)
    ade = ClassTable.builtin("ade20k")  # road and skyscraper share (140, 140, 140) in the standard palette
    grey = np.full((3, 3, 3), 140, np.uint8)
    with pytest.raises(MaskError, match="ambiguous: classes road, skyscraper"):
        read_mask(_save(tmp_path / "amb.png", grey), ade)


def test_mask_errors(tmp_path, unchanged):
    p_ok = tmp_path / "ok.png"
    write_mask(p_ok, _mask(), TABLE)
    bad_ids = _mask()
    bad_ids[0, 0], bad_ids[1, 1] = 3, 77
    p_ids = _save(tmp_path / "ids.png", bad_ids)
    big = np.full((4, 4), 300, np.uint16)
    ok, buf = cv2.imencode(".png", big)
    p16 = tmp_path / "m16.png"
    p16.write_bytes(buf.tobytes())
    p_cut = tmp_path / "cut.png"
    p_cut.write_bytes(p_ok.read_bytes()[:60])
    unchanged["before"] = _snapshot(tmp_path)
    with pytest.raises(MaskError, match=r"mask is 30x20 \(WxH\) but the image is 31x20"):
        read_mask(p_ok, TABLE, shape=(20, 31))
    with pytest.raises(MaskError, match=r"label ids 3, 77 are outside the class table \(0\.\.2"):
        read_mask(p_ids, TABLE)
    with pytest.raises(MaskError, match="300"):
        read_mask(p16, TABLE)
    with pytest.raises(MaskError, match="truncated PNG"):
        read_mask(p_cut, TABLE)
    with pytest.raises(MaskError, match="no such file"):
        read_mask(tmp_path / "none.png", TABLE)


def test_write_mask_validates_before_writing(tmp_path, unchanged):
    p = tmp_path / "m.png"
    write_mask(p, _mask(), TABLE)
    unchanged["before"] = _snapshot(tmp_path)
    bad = _mask()
    bad[2, 2] = 9
    with pytest.raises(MaskError, match="label ids 9 are outside"):
        write_mask(p, bad, TABLE)
    with pytest.raises(MaskError, match="2-D uint8"):
        write_mask(p, _mask().astype(np.int32), TABLE)
    with pytest.raises(MaskError, match="2-D uint8"):
        write_mask(p, np.zeros((4, 4, 3), np.uint8), TABLE)
    with pytest.raises(MaskError, match="2-D uint8"):
        write_mask(tmp_path / "new.png", [[0, 1]], TABLE)  # type: ignore[arg-type]


def test_write_mask_failure_midway_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "m.png"
    write_mask(p, _mask(), TABLE)
    before = _snapshot(tmp_path)
    real_save = Image.Image.save

    def half_save(self, fp, *a, **k):  # writes part of the file, then the "disk" fails
        buf = io.BytesIO()
        real_save(self, buf, *a, **k)
        fp.write(buf.getvalue()[:30])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_save)
    with pytest.raises(MaskError, match="No space left on device"):
        write_mask(p, np.ones((20, 30), np.uint8), TABLE)
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before  # same bytes and mtime, and no temp file

    def no_replace(*a, **k):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(MaskError, match="I/O error"):
        write_mask(p, np.ones((20, 30), np.uint8), TABLE)
    assert _snapshot(tmp_path) == before


def test_formats_opencv_lacks_are_decoded_by_pillow(tmp_path):
    img = _pattern(10, 14)
    p = _save(tmp_path / "a.tga", img)
    assert cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_UNCHANGED) is None  # really the fallback path
    np.testing.assert_array_equal(read_image(p), img)


# ---- damaged data that still decodes --------------------------------------------------------


def _photo_jpeg(path: Path, progressive: bool = False) -> bytes:
    """A noisy 240x320 photo-like JPEG (real entropy-coded data, so damage has somewhere to go)."""
    rng = np.random.default_rng(4)
    img = cv2.GaussianBlur(_pattern(240, 320), (0, 0), 2)
    img = np.clip(img.astype(np.int16) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    _save(path, img, "JPEG", quality=90, progressive=progressive)
    return path.read_bytes()


def _scan_start(data: bytes) -> int:
    sos = data.find(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")


def test_jpeg_damage_that_decodes_is_reported_not_silent(tmp_path, caplog):
    """The issue's cases: a JPEG cut in half with an end marker appended (libjpeg fills the rest
    with grey), extraneous bytes before the end marker, a progressive JPEG cut short; each one
    decodes, with a warning naming the file that says part of it may be missing."""
    from core.data.io import read_image_checked

    good = _photo_jpeg(tmp_path / "good.jpg")
    prog = _photo_jpeg(tmp_path / "prog.jpg", progressive=True)
    start = _scan_start(good)
    cases = {
        "half.jpg": (good[: start + (len(good) - start) // 2] + b"\xff\xd9", "premature end of data segment"),
        "extra.jpg": (good[:-2] + b"\x12\x34\x56" + b"\xff\xd9", "extraneous bytes before marker 0xd9"),
        "prog_half.jpg": (prog[: len(prog) // 2] + b"\xff\xd9", "premature end of data segment"),
    }
    for name in ("good.jpg", "prog.jpg"):
        clean = read_image_checked(tmp_path / name)
        assert clean.warnings == () and not clean.damaged and clean.image.shape == (240, 320, 3)
    for name, (data, phrase) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        image, warnings = read_image_checked(path)
        assert image.shape == (240, 320, 3) and image.dtype == np.uint8
        assert len(warnings) == 1, (name, warnings)
        assert str(path) in warnings[0] and phrase in warnings[0] and "may be missing" in warnings[0], warnings
        caplog.clear()
        np.testing.assert_array_equal(read_image(path), image)  # read_image keeps working, and logs it
        assert any(phrase in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    # the half JPEG really is damaged: its lower half is flat grey
    half = read_image_checked(tmp_path / "half.jpg").image
    assert half[-20:].std() < 1.0 and half[:20].std() > 5.0


def test_capturing_decoder_warnings_leaves_stderr_working(tmp_path, capfd):
    from core.data.io import read_image_checked

    good = _photo_jpeg(tmp_path / "good.jpg")
    (tmp_path / "half.jpg").write_bytes(good[: len(good) // 2] + b"\xff\xd9")
    capfd.readouterr()
    assert read_image_checked(tmp_path / "half.jpg").damaged
    os.write(2, b"after the decode\n")
    err = capfd.readouterr().err
    assert err == "after the decode\n"  # the decoder's warning was taken, fd 2 is back


def test_pillow_messages_name_the_file_not_a_bytesio(tmp_path):
    """Pillow says "cannot identify image file <_io.BytesIO object at 0x...>" for data it gets
    from memory; the message names the file instead."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    raw[29] ^= 0xFF  # the IHDR checksum: our header probe passes, Pillow refuses to identify it
    p = tmp_path / "bad_mask.png"
    p.write_bytes(bytes(raw))
    with pytest.raises(MaskError) as err:
        read_mask(p, ClassTable.from_names(["a"]))
    msg = str(err.value)
    assert "BytesIO" not in msg and "0x" not in msg and msg.count("bad_mask.png") == 2, msg


def test_predict_prints_a_warning_for_a_damaged_jpeg(tmp_path, capsys):
    import core
    from core.cli import main
    from core.config import ModelConfig
    from core.model import PSPNet

    table = ClassTable.from_names(["a", "b", "c"])
    ckpt = tmp_path / "tiny.safetensors"
    core.save_checkpoint(ckpt, PSPNet(ModelConfig(depth=18, base_width=8, num_classes=3, head_channels=32,
                                                  aux_channels=16, stem="deep")), table)
    good = _photo_jpeg(tmp_path / "in" / "good.jpg")
    (tmp_path / "in" / "half.jpg").write_bytes(good[: len(good) // 2] + b"\xff\xd9")
    capsys.readouterr()
    assert main(["predict", "--model", str(ckpt), str(tmp_path / "in"), "--out", str(tmp_path / "out"), "-q"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("warning: ") and "half.jpg" in err[0] and "damaged" in err[0]
    assert (tmp_path / "out" / "half.png").is_file() and (tmp_path / "out" / "good.png").is_file()


def test_a_jpeg_is_never_read_as_a_mask(tmp_path):
    """A grey JPEG would read as ids; saved as a mask .png it would be trusted. It is refused."""
    grey = np.zeros((24, 32), np.uint8)
    grey[:5] = 1
    p = tmp_path / "mask.png"
    p.write_bytes(cv2.imencode(".jpg", grey)[1].tobytes())
    for read in (lambda: read_mask(p, ClassTable.from_names(["a", "b"])), lambda: read_label_ids(p)):
        with pytest.raises(MaskError, match="mask.png: a JPEG file, not a PNG"):
            read()
