"""``predict``: label masks (and overlays, probabilities) for images and folders of images.

Outputs in ``--out``, named by the image's stem:

- ``<stem>.png``: the labels as an indexed (palette) PNG in the class colours (read back with
  ``core.read_mask``);
- ``<stem>_overlay.png`` (``--overlay``): the photo blended with the class colours (``--alpha``);
- ``<stem>_aux.png`` (``--aux``): the auxiliary (layer3) head's labels, same format as the mask;
- ``<stem>_probs.npy`` (``--probs``): the main head's softmax as float16, shape (classes, h, w)
  at the working resolution the network saw (e.g. 512 x 384 for a 4:3 photo under semseg's
  ADE20K protocol); resize it to the photo to compare pixel by pixel.

The model's test protocol is used unless ``--base-size`` / ``--crop`` / ``--scales`` /
``--flip`` override it. An image that cannot be read, or cannot be predicted (not enough
memory: refused before the work, or run out of during it), gets one ``error:`` line and the
rest go on; the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from core.cli import command
from core.commands._common import (add_inference, add_model_source, add_quiet, load, predictor, progress,
                                   resolve_device, say)


def _configure(p: argparse.ArgumentParser) -> None:
    add_model_source(p)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders of images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (made if missing)")
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png (photo + class colours)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the class colours (default 0.5)")
    p.add_argument("--probs", action="store_true",
                   help="also write <stem>_probs.npy: float16 (classes, h, w) softmax at the working resolution")
    p.add_argument("--aux", action="store_true", help="also write <stem>_aux.png: the auxiliary head's labels")
    add_inference(p)
    add_quiet(p)


def _expand(inputs: list[str]) -> list[Path]:
    from core.data.io import IMAGE_EXTENSIONS

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"{p}: no images in this folder ({', '.join(IMAGE_EXTENSIONS)})")
            paths += found
        else:
            paths.append(p)  # a missing or unreadable file is reported when its turn comes
    return list(dict.fromkeys(paths))


def _outputs(path: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    names = [f"{path.stem}.png"]
    names += [f"{path.stem}_overlay.png"] * args.overlay + [f"{path.stem}_aux.png"] * args.aux
    names += [f"{path.stem}_probs.npy"] * args.probs
    return [out / n for n in names]


def _check_names(paths: list[Path], out: Path, args: argparse.Namespace) -> None:
    """Refuse before writing anything when two inputs would write the same file, or an output
    would overwrite an input."""
    owner: dict[Path, Path] = {}
    inputs = {p.resolve() for p in paths}
    for p in paths:
        for o in _outputs(p, out, args):
            key = o.resolve()
            if key in inputs:
                raise ValueError(f"the output {o} would overwrite an input image; choose another --out folder")
            if key in owner:
                raise ValueError(f"{owner[key]} and {p} would both write {o}; predict them into different folders")
            owner[key] = p


def _png(rgb) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB array
        raise OSError("OpenCV could not encode the overlay")
    return data.tobytes()


def _blend(image, lut, labels, alpha: float, rows: int = 256):
    """The photo blended with the class colours, in row bands (no photo-sized float arrays)."""
    import numpy as np

    out = np.empty_like(image)
    for y in range(0, image.shape[0], rows):
        band = (1 - alpha) * image[y:y + rows].astype(np.float32) + alpha * lut[labels[y:y + rows]].astype(np.float32)
        out[y:y + rows] = np.clip(band + 0.5, 0, 255).astype(np.uint8)
    return out


@command("predict", "segment images: indexed PNG masks, overlays, probabilities", _configure)
def run(args: argparse.Namespace) -> int:
    import numpy as np

    from core.atomic import atomic_write_bytes
    from core.data.io import read_image_checked, write_mask
    from core.errors import StudioError

    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], not {args.alpha}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    paths = _expand(args.inputs)
    _check_names(paths, out, args)
    loaded = load(args.model, device=resolve_device(args.device))
    pred = predictor(args, loaded, aux=args.aux)
    classes = loaded.classes
    lut = classes.palette()
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with progress(len(paths), "predict", quiet=args.quiet, unit="img") as bar:
        for path in paths:
            try:
                image, damage = read_image_checked(path)
                for warning in damage:  # decoded anyway: say that part of it may be missing
                    say(f"warning: {warning}", err=True)
            except (StudioError, OSError) as exc:
                failed += 1
                say(f"error: {exc}", err=True)
                bar.update(1)
                continue
            try:
                p = pred.predict(image)
            except StudioError as exc:
                failed += 1
                say(f"error: {path}: {exc}", err=True)
                bar.update(1)
                continue
            try:
                write_mask(out / f"{path.stem}.png", p.labels, classes)
                if args.overlay:
                    atomic_write_bytes(out / f"{path.stem}_overlay.png", _png(_blend(image, lut, p.labels, args.alpha)))
                if args.aux and p.aux_labels is not None:
                    write_mask(out / f"{path.stem}_aux.png", p.aux_labels, classes)
                if args.probs:
                    buf = io.BytesIO()
                    np.save(buf, p.work_probs, allow_pickle=False)
                    atomic_write_bytes(out / f"{path.stem}_probs.npy", buf.getvalue())
            except (StudioError, OSError) as exc:
                failed += 1
                say(f"error: {path}: {exc}", err=True)
            bar.update(1)
    done = len(paths) - failed
    extras = [w for w, on in (("overlays", args.overlay), ("aux masks", args.aux and loaded.model.aux_head is not None),
                               ("probabilities", args.probs)) if on]
    print(f"wrote {done} mask(s){' with ' + ', '.join(extras) if extras else ''} to {out}")
    if args.aux and loaded.model.aux_head is None:
        say("note: the model has no auxiliary head; no _aux.png written", err=True)
    if failed:
        say(f"error: {failed} of {len(paths)} image(s) failed", err=True)
        return 1
    return 0
