"""``export``: the model as an ONNX graph (see core.export for what the graph holds)."""

from __future__ import annotations

import argparse

from core.cli import command
from core.commands._common import load, say


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", required=True, metavar="CKPT", help="checkpoint (any importable format)")
    p.add_argument("--out", required=True, metavar="FILE.onnx")
    p.add_argument("--size", type=int, nargs=2, default=(473, 473), metavar=("H", "W"),
                   help="input size of the graph (default 473 473); the pooling regions are fixed for it unless "
                        "--dynamic")
    p.add_argument("--dynamic", action="store_true",
                   help="symbolic batch, height and width (>= 16): exact at every size (needs the dynamo exporter)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 18, core.export.DEFAULT_OPSET)")
    p.add_argument("--raw-input", action="store_true",
                   help="the graph takes the already normalised image ((x - mean) / std) instead of RGB 0..255")
    p.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                   help="dynamo (torch.export), torchscript (legacy, fixed size, quicker) or auto (default)")
    check = p.add_mutually_exclusive_group()
    check.add_argument("--check", action="store_true",
                       help="onnxruntime must agree with PyTorch (|diff| <= 1e-4 of max |logit|, same argmax), "
                            "else exit 1 (by default the check runs when onnxruntime is installed and only reports)")
    check.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")


@command("export", "export a model to ONNX (adaptive pyramid pooling included; needs the onnx extra)", _configure)
def run(args: argparse.Namespace) -> int:
    from core.export import DEFAULT_OPSET, export_onnx, require_onnx

    require_onnx()  # before the model is loaded: say at once what to install
    loaded = load(args.model)
    check = True if args.check else (False if args.no_check else None)
    report = export_onnx(loaded.model, args.out, size=args.size, dynamic=args.dynamic,
                         opset=args.opset or DEFAULT_OPSET,
                         normalize=not args.raw_input, classes=loaded.classes, check=check, strict=args.check,
                         exporter=args.exporter)
    print(report.summary())  # with --check a mismatch has already raised (exit 1, the lines above in the error)
    if not report.ok:
        say("warning: onnxruntime disagrees with PyTorch (see the check lines); --check makes this an error", err=True)
    return 0
