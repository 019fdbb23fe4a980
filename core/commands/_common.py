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
    """Options of core.Predictor: the model's test protocol, and overrides of its fields."""
    g = p.add_argument_group("test protocol (default: the model's own, recorded in the checkpoint; these override it)")
    g.add_argument("--base-size", metavar="N|native",
                   help="the side the photo is resized to at scale 1 (the long side for semseg's and our protocol, "
                        "the short side for mmseg's / CSAIL's), or 'native' to keep its own size")
    g.add_argument("--crop", metavar="N|none",
                   help="window side: the scaled photo is cut into N x N windows (stride --stride-ratio x N); "
                        "'none' runs it whole")
    g.add_argument("--stride-ratio", type=float, metavar="R", help="window stride as a fraction of --crop (2/3)")
    g.add_argument("--scales", nargs="+", type=float, metavar="S",
                   help="scales relative to the base size, averaged, e.g. 0.5 0.75 1 1.25 1.5 1.75")
    g.add_argument("--ms", action="store_true", help="shorthand for --scales 0.5 0.75 1 1.25 1.5 1.75 (the paper's "
                                                     "multi-scale test)")
    g.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="also predict the mirror image and average (--no-flip: do not)")
    g.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    add_device(p)


def protocol_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The --base-size / --crop / --stride-ratio / --scales / --ms / --flip given, as Predictor keywords."""
    from core.inference.protocol import MULTI_SCALES, parse_size

    if args.ms and args.scales:
        raise ValueError("give either --ms or --scales, not both")
    kw: dict[str, Any] = {}
    if args.base_size is not None:
        kw["base_size"] = parse_size(args.base_size, "--base-size", none_words=("native",))
    if args.crop is not None:
        kw["crop"] = parse_size(args.crop, "--crop", none_words=("none", "whole"))
    if args.stride_ratio is not None:
        if not 0 < args.stride_ratio <= 1:
            raise ValueError(f"--stride-ratio must be in (0, 1], not {args.stride_ratio}")
        kw["stride_ratio"] = args.stride_ratio
    if args.ms:
        kw["scales"] = MULTI_SCALES
    elif args.scales:
        if any(not s > 0 for s in args.scales):
            raise ValueError(f"--scales must be positive, not {args.scales}")
        kw["scales"] = tuple(args.scales)
    if args.flip is not None:
        kw["flip"] = args.flip
    return kw


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


def predictor(args: argparse.Namespace, loaded: "LoadedModel", *, aux: bool = True) -> Any:
    """A Predictor with the model's test protocol and the command line's overrides; says which."""
    from core.inference import Predictor
    from core.model.inference import optimize_for_inference

    device = resolve_device(args.device)
    loaded.model.to(device).eval()  # the command's own model: what it runs is an inference copy of it
    module = optimize_for_inference(loaded.model, aux=aux)
    pred = Predictor.from_loaded(loaded, device=device, amp=not args.no_amp, aux=aux, module=module,
                                 **protocol_overrides(args))
    if not getattr(args, "quiet", False) and not getattr(args, "json", False):
        say(f"test protocol: {pred.protocol.describe()} [{pred.protocol.source or 'recorded in the checkpoint'}]",
            err=True)
    return pred


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
        how = ("counted as 0 in the mean IoU, the source's convention" if getattr(metrics, "mean_over", "") == "all"
               else "left out of the mean IoU")
        lines.append(f"absent from labels and prediction ({how}): {listed}")
    return "\n".join(lines)
