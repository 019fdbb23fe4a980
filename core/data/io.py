"""Reading images and label masks, writing masks.

Images are decoded by OpenCV from the file's bytes (``np.fromfile`` + ``cv2.imdecode``), so
paths with any characters work on every platform. Before anything is decoded the header is
read and the pixel count checked against a cap (decompression bombs), and JPEG / PNG files
are checked for their end marker: OpenCV versions differ in what they do with a truncated
file (some fill the missing part with grey), so truncation is detected here, not by them.

JPEG data can be damaged in ways that still decode: libjpeg then fills or guesses the missing
part and only prints a warning ("Corrupt JPEG data: premature end of data segment", "...
extraneous bytes before marker ...") to the C stderr, which OpenCV does not report. Those
warnings are captured here (stderr is redirected around the decode, under a lock, and anything
else written there meanwhile is passed on) and returned by :func:`read_image_checked`;
:func:`read_image` logs them.

Masks are read with Pillow, which hands back the indices of palette PNGs (OpenCV would
expand them to colours), and written as palette PNGs through :mod:`core.atomic`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import BinaryIO, NamedTuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from core.atomic import atomic_write
from core.classes import ClassTable
from core.errors import ImageReadError, MaskError, MaskWriteError

__all__ = ["MAX_PIXELS", "IMAGE_EXTENSIONS", "IGNORE", "read_image", "read_image_checked", "DecodedImage",
           "read_mask", "read_label_ids", "write_mask", "image_size", "image_info", "ImageInfo", "colors_to_ids"]

log = logging.getLogger(__name__)

MAX_PIXELS: int = 178_956_970  # the same as Pillow's hard limit (2 x Image.MAX_IMAGE_PIXELS)
from core.constants import IGNORE, IMAGE_EXTENSIONS  # noqa: E402 (single-sourced)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"  # the IEND chunk type and its (fixed) CRC
_JPEG_SOI = b"\xff\xd8"
# start-of-frame markers that carry the image size (not DHT C4, JPG C8, DAC CC)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_EXIF_ORIENTATION = 0x0112


# --------------------------------------------------------------------------------------------
# header probing
# --------------------------------------------------------------------------------------------


class _Header:
    __slots__ = ("format", "height", "width", "orientation")

    def __init__(self, fmt: str, height: int, width: int, orientation: int = 1) -> None:
        self.format, self.height, self.width, self.orientation = fmt, height, width, orientation


def _png_size(f: BinaryIO) -> tuple[int, int]:
    f.seek(8)
    head = f.read(25)  # length(4) "IHDR"(4) width(4) height(4) depth colour ... crc
    if len(head) < 16 or head[4:8] != b"IHDR":
        raise ValueError("PNG without an IHDR header (corrupt or truncated)")
    width, height = struct.unpack(">II", head[8:16])
    return height, width


def _jpeg_size(f: BinaryIO) -> tuple[int, int]:
    """Walk the marker segments up to the start-of-frame; reads only the headers."""
    f.seek(2)
    while True:
        byte = f.read(1)
        if not byte:
            raise ValueError("JPEG ends before its frame header (corrupt or truncated)")
        if byte != b"\xff":
            raise ValueError("JPEG with a corrupt marker structure")
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            raise ValueError("JPEG ends before its frame header (corrupt or truncated)")
        m = marker[0]
        if m == 0xD8 or 0xD0 <= m <= 0xD7 or m == 0x01:  # markers without a length
            continue
        if m in (0xD9, 0xDA):
            raise ValueError("JPEG without a frame header (corrupt)")
        seg = f.read(2)
        if len(seg) < 2:
            raise ValueError("JPEG ends inside a header (corrupt or truncated)")
        length = struct.unpack(">H", seg)[0]
        if m in _JPEG_SOF:
            data = f.read(5)
            if len(data) < 5:
                raise ValueError("JPEG ends inside its frame header (truncated)")
            height, width = struct.unpack(">HH", data[1:5])
            return height, width
        f.seek(length - 2, io.SEEK_CUR)


def _pillow_orientation(f: BinaryIO) -> int:
    """EXIF orientation (1..8) from the header via Pillow's lazy open; 1 when absent or unreadable."""
    f.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is not worth failing the image for
        return 1
    return value if 1 <= value <= 8 else 1


def _probe(f: BinaryIO) -> _Header:
    """Format, size and EXIF orientation from the header only; ValueError when not an image.

    PNG and JPEG are parsed here (so that any size can be reported); other formats go through
    Pillow's lazy open, which reads the header and refuses sizes above its own bomb limit."""
    f.seek(0)
    magic = f.read(8)
    if magic.startswith(_PNG_SIGNATURE):
        h, w = _png_size(f)
        return _Header("PNG", h, w, _pillow_orientation(f))
    if magic.startswith(_JPEG_SOI):
        h, w = _jpeg_size(f)
        return _Header("JPEG", h, w, _pillow_orientation(f))
    f.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                fmt, (w, h) = str(im.format), im.size
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Image.DecompressionBombError as exc:
        raise _TooLarge(str(exc)) from exc
    except UnidentifiedImageError as exc:
        shown = magic[:8]
        raise ValueError(f"not an image, or a format this program does not read (it starts with {shown!r})") from exc
    except Exception as exc:  # noqa: BLE001 - any other failure here means a broken header
        raise ValueError(f"corrupt image header ({exc})") from exc
    return _Header(fmt, h, w, orientation if 1 <= orientation <= 8 else 1)


class _TooLarge(ValueError):
    pass


class ImageInfo(NamedTuple):
    format: str  # "PNG", "JPEG", or Pillow's name of the format ("TIFF", "WEBP", ...)
    height: int  # as read_image returns it (EXIF quarter turns applied)
    width: int


def image_info(path: str | Path) -> ImageInfo:
    """The format and size of an image, read from the header only; ImageReadError when it is
    not an image."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = _probe(f)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ImageReadError(f"{path}: {_named(exc, path)}") from exc
    h, w = (head.width, head.height) if head.orientation >= 5 else (head.height, head.width)
    return ImageInfo(head.format, h, w)


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image as :func:`read_image` would return it, read from the header only.

    EXIF orientations 5-8 (quarter turns) swap H and W."""
    info = image_info(path)
    return info.height, info.width


_FILE_OBJECT = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def _named(exc: BaseException, path: Path) -> str:
    """Pillow's message with the in-memory file object it was given replaced by the file's name."""
    return _FILE_OBJECT.sub(lambda _m: repr(str(path.name)), str(exc))


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


def _read_bytes(path: Path, error: type[Exception]) -> np.ndarray:
    if not path.exists():
        raise error(f"{path}: no such file")
    if path.is_dir():
        raise error(f"{path}: is a folder, not an image file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise error(f"{path}: the file is empty (0 bytes)")
    return data


def _jpeg_complete(raw: bytes) -> bool:
    """Whether a JPEG reaches its end-of-image marker (EOI) through its own structure.

    Header segments are skipped by their lengths (so an EXIF thumbnail's EOI does not count);
    inside entropy-coded scans 0xFF is always followed by 0x00 (stuffing) or a restart marker,
    so the next real marker is found with one vectorised search. Bytes after EOI are allowed."""
    buf = np.frombuffer(raw, np.uint8)
    n = len(raw)
    nxt = buf[1:]
    is_marker = (buf[:-1] == 0xFF) & (nxt != 0x00) & (nxt != 0xFF) & ((nxt < 0xD0) | (nxt > 0xD7))
    markers = np.flatnonzero(is_marker)
    pos, in_scan = 2, False
    while pos + 1 < n:
        if in_scan:
            k = int(np.searchsorted(markers, pos))
            if k == len(markers):
                return False
            pos, in_scan = int(markers[k]), False
        if raw[pos] != 0xFF:
            return False
        m = raw[pos + 1]
        if m == 0xFF:
            pos += 1
        elif m == 0xD9:
            return True
        elif m in (0x01, 0xD8) or 0xD0 <= m <= 0xD7:
            pos += 2
        else:
            if pos + 4 > n:
                return False
            pos += 2 + ((raw[pos + 2] << 8) | raw[pos + 3])
            in_scan = m == 0xDA
    return False


def _truncation(fmt: str, raw: bytes) -> str | None:
    """Why the file looks cut short, or None. Trailing bytes after the end marker are allowed."""
    if fmt == "PNG" and raw.rfind(_PNG_IEND) < 0:
        return "truncated PNG (no IEND chunk at the end; the file was cut short)"
    if fmt == "JPEG" and not _jpeg_complete(raw):
        return "truncated JPEG (the image data stops before the end-of-image marker; the file was cut short)"
    return None


def _check_pixels(path: Path, head: _Header, max_pixels: int, error: type[Exception]) -> None:
    if head.height <= 0 or head.width <= 0:
        raise error(f"{path}: the {head.format} header gives an empty image ({head.width}x{head.height})")
    pixels = head.height * head.width
    if pixels > max_pixels:
        raise error(
            f"{path}: image too large: its header says {head.width}x{head.height} = {pixels:,} pixels, "
            f"more than the limit of {max_pixels:,} (a guard against decompression bombs; "
            f"raise max_pixels if the file is genuine)")


def _decode_checked(path: Path, data: np.ndarray, max_pixels: int, error: type[Exception]) -> tuple[_Header, bytes]:
    raw = data.tobytes()
    try:
        head = _probe(io.BytesIO(raw))
    except _TooLarge as exc:
        raise error(f"{path}: image too large: {exc}") from exc
    except ValueError as exc:
        raise error(f"{path}: {_named(exc, path)}") from exc
    _check_pixels(path, head, max_pixels, error)
    why = _truncation(head.format, raw)
    if why:
        raise error(f"{path}: {why}")
    return head, raw


def _to_uint8(a: np.ndarray, path: Path) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        # rounded v / 257 maps 0..65535 onto 0..255 exactly (v*257 -> v), unlike v >> 8's floor
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise ImageReadError(f"{path}: unsupported pixel type {a.dtype} (only 8- and 16-bit images are read)")


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (the TIFF/EXIF tag 274 convention)."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return a[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(a, 1)
    return a


def _to_rgb(a: np.ndarray, path: Path) -> np.ndarray:
    """OpenCV's BGR / BGRA / grey -> RGB uint8; alpha is composited onto white."""
    a = _to_uint8(a, path)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        return cv2.cvtColor(a.reshape(a.shape[:2]), cv2.COLOR_GRAY2RGB)
    if a.ndim == 3 and a.shape[2] == 3:
        return cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    if a.ndim == 3 and a.shape[2] == 4:
        alpha = a[:, :, 3:4].astype(np.float32) * (1.0 / 255.0)
        rgb = cv2.cvtColor(a[:, :, :3], cv2.COLOR_BGR2RGB).astype(np.float32)
        out = rgb * alpha + 255.0 * (1.0 - alpha)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    raise ImageReadError(f"{path}: unsupported channel layout {a.shape}")


def _decode_pillow(raw: bytes) -> np.ndarray:
    """Fallback for formats this OpenCV build cannot decode (e.g. GIF, ICO, TGA in some builds);
    returns an OpenCV-like array (BGR/BGRA/grey)."""
    with Image.open(io.BytesIO(raw)) as im:
        im.load()  # raises on truncated data (LOAD_TRUNCATED_IMAGES is left at its default)
        if im.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(im).astype(np.uint16)
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
        a = np.asarray(im)
    return cv2.cvtColor(a, cv2.COLOR_RGBA2BGRA if a.shape[2] == 4 else cv2.COLOR_RGB2BGR)


class DecodedImage(NamedTuple):
    """An image and what its decoder said about damage in it (:func:`read_image_checked`)."""

    image: np.ndarray  # HxWx3 uint8 RGB, as read_image returns it
    warnings: tuple[str, ...]  # one message per problem, naming the file; () for a clean decode

    @property
    def damaged(self) -> bool:
        return bool(self.warnings)


# libjpeg's warnings about the data itself (jerror.h JWRN_*): the decode went on and guessed
_JPEG_DAMAGE = re.compile(r"^(Corrupt JPEG data\b.*|Premature end of JPEG file|Inconsistent progression sequence\b.*"
                          r"|Invalid SOS parameters\b.*|Invalid JPEG file structure\b.*)$")
_stderr_lock = threading.Lock()


def _imdecode_capturing(data: np.ndarray) -> tuple[np.ndarray | None, str, list[str]]:
    """cv2.imdecode with the C stderr captured: (array or None, OpenCV's error, libjpeg's damage
    warnings). Other text written to stderr meanwhile (by any thread) is passed on afterwards."""
    def decode() -> tuple[np.ndarray | None, str]:
        try:
            return cv2.imdecode(data, cv2.IMREAD_UNCHANGED), "OpenCV could not decode it"  # depth, alpha kept
        except cv2.error as exc:
            text = str(exc).strip()
            return None, text.splitlines()[-1] if text else "error"

    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (a windowed program): nothing to capture
            a, msg = decode()
            return a, msg, []
        try:
            with tempfile.TemporaryFile() as tmp:
                if sys.stderr is not None:
                    try:
                        sys.stderr.flush()
                    except (OSError, ValueError):
                        pass
                os.dup2(tmp.fileno(), 2)
                try:
                    a, msg = decode()
                finally:
                    os.dup2(saved, 2)
                tmp.seek(0)
                captured = tmp.read(1 << 20).decode("utf-8", "replace")
        except OSError:  # no temporary file: decode without capturing
            a, msg = decode()
            captured = ""
        finally:
            os.close(saved)
    found, other = [], []
    for line in captured.splitlines(keepends=True):
        (found if _JPEG_DAMAGE.match(line.strip()) else other).append(line)
    if other:
        try:
            os.write(2, "".join(other).encode("utf-8", "replace"))
        except OSError:
            pass
    return a, msg, [f.strip() for f in found]


def read_image_checked(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """:func:`read_image`, and what the decoder reported about damaged data that it decoded
    anyway (a JPEG cut short with an end marker appended, bytes missing or extra in the middle
    ...): such an image is returned, but part of it may be grey, smeared or shifted, and
    ``warnings`` says so, naming the file. What no decoder notices cannot be reported (JPEG has
    no checksum: some bit flips decode silently to wrong colours)."""
    path = Path(path)
    data = _read_bytes(path, ImageReadError)
    head, raw = _decode_checked(path, data, max_pixels, ImageReadError)
    damage: list[str] = []
    if head.format == "JPEG":
        a, cv_msg, damage = _imdecode_capturing(data)
    else:
        try:
            a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # keeps depth and alpha; orientation is ours
        except cv2.error as exc:
            a = None
            cv_msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
        else:
            cv_msg = "OpenCV could not decode it"
    if a is None and head.format in ("PNG", "JPEG"):
        # no second opinion: Pillow skips PNG CRCs and tolerates broken JPEG data
        raise ImageReadError(f"{path}: cannot decode this {head.format} file: it is corrupt ({cv_msg})")
    if a is None:
        try:
            a = _decode_pillow(raw)
        except Exception as exc:  # noqa: BLE001 - both decoders refused; report both
            raise ImageReadError(
                f"{path}: cannot decode this {head.format} file: it is corrupt or an unsupported variant "
                f"({cv_msg}; Pillow: {_named(exc, path)})") from exc
    rgb = _orient(_to_rgb(a, path), head.orientation)
    warns = tuple(f"{path}: the image data is damaged ({w}); it was decoded anyway, so part of the picture may "
                  f"be missing or wrong" for w in dict.fromkeys(damage))
    return DecodedImage(np.ascontiguousarray(rgb), warns)


def read_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array (C-contiguous).

    - the EXIF orientation is applied (all 8 values; PNG's eXIf as well as JPEG's);
    - 16-bit images become 8-bit by rounded division by 257 (so 8-bit data stored as v*257
      comes back exactly); greyscale is repeated into RGB;
    - an alpha channel is composited onto white (what a viewer shows; the colour under fully
      transparent pixels is arbitrary and is never exposed);
    - the pixel count from the header is checked against ``max_pixels`` before decoding.

    Every failure (missing, empty, not an image, truncated, corrupt, unsupported, too large)
    raises :class:`ImageReadError` naming the file and the problem. Nothing is written. Damaged
    data that still decoded is logged as a warning; :func:`read_image_checked` returns it.
    """
    decoded = read_image_checked(path, max_pixels=max_pixels)
    for w in decoded.warnings:
        log.warning("%s", w)
    return decoded.image


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------


def _load_mask_array(path: Path) -> np.ndarray:
    """2-D uint8 ids (palette / grey / 16-bit grey PNG) or HxWx3 / HxWx4 uint8 colours."""
    data = _read_bytes(path, MaskError)
    head, raw = _decode_checked(path, data, MAX_PIXELS, MaskError)
    if head.format == "JPEG":  # whatever its name says: lossy compression changes label ids
        raise MaskError(f"{path}: a JPEG file, not a PNG: a mask must be a PNG (JPEG's lossy compression changes "
                        f"the label ids)")
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            mode = im.mode
            if mode in ("P", "L", "1"):
                return np.ascontiguousarray(np.asarray(im), dtype=np.uint8)
            if mode == "PA":
                return np.ascontiguousarray(np.asarray(im)[:, :, 0])
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                ids = np.asarray(im).astype(np.int64)
                big = np.unique(ids[(ids < 0) | (ids > 255)])
                if big.size:
                    raise MaskError(f"{path}: label ids {_list_ids(big)} do not fit a uint8 mask (0..254, 255 = ignore)")
                return ids.astype(np.uint8)
            if mode in ("RGB", "RGBA"):
                return np.ascontiguousarray(np.asarray(im))
            if mode == "LA":
                a = np.asarray(im)
                ids = a[:, :, 0].copy()
                ids[a[:, :, 1] == 0] = IGNORE
                return ids
    except MaskError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError/SyntaxError/... for broken data
        raise MaskError(f"{path}: cannot decode mask: {_named(exc, path)}") from exc
    raise MaskError(f"{path}: unsupported mask image mode {mode!r} (use a palette, greyscale or RGB PNG)")


def _list_ids(ids: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(v)) for v in ids[:limit])
    return shown + (f" ... ({len(ids)} in all)" if len(ids) > limit else "")


def colors_to_ids(rgb: np.ndarray, classes: ClassTable, *, source: str = "mask") -> np.ndarray:
    """Map an HxWx3 (or HxWx4) colour mask to class ids through the table's colours.

    Fully transparent pixels (alpha 0) are ignore (255). Black (0, 0, 0) is a class where the
    table has a class of that colour (VOC's background), and ignore otherwise (how the ignore
    label is drawn). An unknown colour, or a colour shared by several classes, is a MaskError
    naming the colour and the first pixel (row, column) where it occurs."""
    transparent = rgb[:, :, 3] == 0 if rgb.shape[2] == 4 else None
    rgb = rgb[:, :, :3].astype(np.uint32)
    packed = (rgb[:, :, 0] << 16) | (rgb[:, :, 1] << 8) | rgb[:, :, 2]
    if transparent is not None:
        packed[transparent] = 0xFFFFFFFF
    uniq, inverse = np.unique(packed, return_inverse=True)
    table: dict[int, list[int]] = {}
    for i, (r, g, b) in enumerate(classes.colors):
        table.setdefault((int(r) << 16) | (int(g) << 8) | int(b), []).append(i)
    lut = np.empty(len(uniq), np.uint8)
    for k, key in enumerate(uniq.tolist()):
        ids = table.get(key)
        if ids is None and key in (0, 0xFFFFFFFF):
            lut[k] = IGNORE
            continue
        if ids is None or len(ids) > 1:
            row, col = (int(v) for v in np.argwhere(packed == key)[0])
            colour = ((key >> 16) & 255, (key >> 8) & 255, key & 255)
            count = int(np.count_nonzero(packed == key))
            if ids is None:
                raise MaskError(f"{source}: colour {colour} at pixel (row {row}, column {col}) is not a colour "
                                f"of the class table ({count} pixels have it)")
            names = ", ".join(classes.names[i] for i in ids)
            raise MaskError(f"{source}: colour {colour} at pixel (row {row}, column {col}) is ambiguous: "
                            f"classes {names} share it")
        lut[k] = ids[0]
    return lut[inverse.reshape(packed.shape)]


def _check_shape(path: Path, mask: np.ndarray, shape: tuple[int, int] | None) -> None:
    if shape is not None and tuple(mask.shape[:2]) != tuple(shape):
        h, w = mask.shape[:2]
        raise MaskError(f"{path}: mask is {w}x{h} (WxH) but the image is {shape[1]}x{shape[0]}")


def _check_ids(mask: np.ndarray, n_classes: int, source: str) -> None:
    present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
    bad = present[(present >= n_classes) & (present != IGNORE)]
    if bad.size:
        raise MaskError(f"{source}: label ids {_list_ids(bad)} are outside the class table "
                        f"(0..{n_classes - 1}, 255 = ignore)")


def read_label_ids(path: str | Path, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The raw ids of an id-valued mask (palette or greyscale PNG), unchecked against any table.

    For data sets whose files hold their own id scheme (ADE20K 0..150, Cityscapes labelIds)."""
    path = Path(path)
    a = _load_mask_array(path)
    if a.ndim != 2:
        raise MaskError(f"{path}: expected a label-id image (palette or greyscale PNG), got a colour image")
    _check_shape(path, a, shape)
    return a


def read_mask(path: str | Path, classes: ClassTable, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label mask as HxW uint8 class ids, 255 = ignore.

    Palette and greyscale PNGs give the ids directly (the palette itself is not consulted);
    RGB(A) colour masks are mapped through the class colours (see :func:`colors_to_ids`).
    ``shape`` (H, W) is the image's size; a mask of another size is a MaskError naming both,
    as are ids outside 0..len(classes)-1 other than 255. EXIF orientation is not applied to
    masks (they are written by programs, not cameras)."""
    path = Path(path)
    a = _load_mask_array(path)
    if a.ndim == 3:
        _check_shape(path, a, shape)
        return colors_to_ids(a, classes, source=str(path))
    _check_shape(path, a, shape)
    _check_ids(a, len(classes), str(path))
    return a


def write_mask(path: str | Path, mask: np.ndarray, classes: ClassTable) -> None:
    """Write a mask as a palette PNG with the class colours (255 = ignore, drawn black).

    The mask is validated (2-D uint8, ids in range) before anything is written; the file is
    replaced atomically, so a failure at any point leaves the previous file as it was."""
    path = Path(path)
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.uint8:
        what = f"{mask.dtype} array of shape {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise MaskError(f"{path}: a mask must be a 2-D uint8 array, not a {what}; nothing was written")
    if mask.size == 0:
        raise MaskError(f"{path}: the mask is empty ({mask.shape}); nothing was written")
    _check_ids(mask, len(classes), f"{path} (nothing was written)")
    im = Image.fromarray(np.ascontiguousarray(mask))  # mode "L"
    im.putpalette(classes.palette().tobytes())  # -> mode "P"
    try:
        atomic_write(path, lambda f: im.save(f, format="PNG"))
    except OSError as exc:
        raise MaskWriteError(f"{path}: cannot write the mask: {exc.strerror or exc}; the previous file is unchanged",
                             path, exc.errno) from exc
