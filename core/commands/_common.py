"""Pieces the subcommands share: model loading, inference options, class tables, progress bars.

Heavy imports (torch, the model) happen inside the functions, so ``python main.py --help``
stays quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from core.classes import ClassTable
    from core.weights import LoadedModel


def add_model_source(p: argparse.ArgumentParser, *, required: bool = True, help: str | None = None) -> None:
    p.add_argument("--model", action="append", metavar="CKPT", required=required,
                   help=(help or "checkpoint: ours (.safetensors) or any importable file (semseg, mmseg, ...)") +
                   "; a CSAIL encoder + decoder: --model ENC --model DEC")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_inference(p: argparse.ArgumentParser) -> None:
    """Options of core.Predictor."""
    g = p.add_argument_group("inference")
    g.add_argument("--scales", nargs="+", type=float, metavar="S",
                   help="test scales, e.g. 0.5 0.75 1 1.25 1.5 1.75 (default: 1)")
    g.add_argument("--ms", action="store_true", help="the paper's multi-scale set 0.5 .. 1.75 (with --flip: the "
                                                     "authors' test protocol)")
    g.add_argument("--flip", action="store_true", help="also predict the mirrored image and average")
    g.add_argument("--crop", type=int, metavar="N",
                   help="sliding window of N x N (stride 2/3 N) for images larger than N (default: whole image)")
    g.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    add_device(p)


def resolve_device(name: str | None) -> str:
    import torch

    if name:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: CUDA is not available on this machine")
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def load(sources: list[str], *, device: str | None = None, num_classes: int | None = None,
         classes: "ClassTable | None" = None) -> "LoadedModel":
    from core.weights import load_model

    return load_model(sources[0] if len(sources) == 1 else sources, num_classes=num_classes, device=device,
                      classes=classes)


def predictor(args: argparse.Namespace, loaded: "LoadedModel") -> Any:
    from core.infer import MULTI_SCALES, Predictor

    if args.ms and args.scales:
        raise ValueError("give either --ms or --scales, not both")
    scales = MULTI_SCALES if args.ms else (tuple(args.scales) if args.scales else (1.0,))
    return Predictor.from_loaded(loaded, device=resolve_device(args.device), scales=scales, flip=args.flip,
                                 crop=args.crop, amp=not args.no_amp)


def class_table(spec: str) -> "ClassTable":
    """A built-in table by name (ade20k, voc, cityscapes) or a class table JSON file."""
    from core.classes import ClassTable, builtin_names

    if Path(spec).suffix.lower() == ".json" or Path(spec).is_file():
        return ClassTable.load(spec)
    if spec.lower() in builtin_names():
        return ClassTable.builtin(spec)
    raise ValueError(f"--classes {spec!r}: neither a class table file nor a built-in table "
                     f"({', '.join(sorted(builtin_names()))})")


def progress(total: float | None, desc: str, *, quiet: bool = False, unit: str = "it", initial: int = 0) -> Any:
    """A tqdm bar on stderr."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=quiet, file=sys.stderr,
                dynamic_ncols=True, leave=True)


def say(text: str, *, err: bool = False) -> None:
    """Print a line without tearing an active tqdm bar."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr if err else sys.stdout)


def command_line(args: argparse.Namespace) -> str:
    """The command as it was given (recorded in the provenance of what a command writes)."""
    import shlex

    return shlex.join(["pspnet-studio", *getattr(args, "argv", sys.argv[1:])])


def pct(v: float | None) -> str:
    return "   -  " if v is None or v != v else f"{100 * v:6.2f}"


def metrics_table(metrics: Any, names: Iterable[str]) -> str:
    """Per-class IoU and accuracy, then the means, as an aligned plain-text table."""
    names = list(names)
    width = max([len(n) for n in names] + [12])
    lines = [f"{'class':<{width}}    IoU %    acc %", "-" * (width + 19)]
    for i, name in enumerate(names):
        lines.append(f"{name:<{width}}   {pct(metrics.per_class_iou[i])}   {pct(metrics.per_class_acc[i])}")
    lines.append("-" * (width + 19))
    lines.append(f"{'mean':<{width}}   {pct(metrics.miou)}   {pct(metrics.mean_acc)}")
    lines.append(f"pixel accuracy {pct(metrics.pixel_acc).strip()} % over {metrics.pixels} labelled pixels")
    if metrics.absent:
        listed = ", ".join(names[i] for i in metrics.absent)
        lines.append(f"absent from labels and prediction (left out of the mean IoU): {listed}")
    return "\n".join(lines)
