"""``convert``: any importable checkpoint (semseg, CSAIL, mmseg, torchvision ResNet, ours) to ours."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import command
from core.commands._common import class_table, command_line, load


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="SRC", help="the weight file (two for a CSAIL encoder + decoder)")
    p.add_argument("--out", required=True, metavar="CKPT", help="our checkpoint to write (.safetensors)")
    p.add_argument("--num-classes", type=int, metavar="N",
                   help="classes of the result (new classifiers when the file has another count)")
    p.add_argument("--classes", metavar="ade20k|voc|cityscapes|FILE.json", help="the class table to record")


@command("convert", "convert any importable checkpoint to a PSPNet Studio checkpoint", _configure)
def run(args: argparse.Namespace) -> int:
    from core.weights import save_checkpoint

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out}: is a folder; give the checkpoint file's name")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {out.parent} does not exist")
    classes = class_table(args.classes) if args.classes else None
    loaded = load(args.sources, num_classes=args.num_classes, classes=classes)
    print(loaded.report.summary())
    provenance = {**loaded.provenance, "converted_from": [str(s) for s in loaded.sources],
                  "converted_format": loaded.report.format, "command": command_line(args)}
    save_checkpoint(out, loaded.model, loaded.classes, provenance, protocol=loaded.protocol)
    cfg = loaded.config
    print(f"wrote {out}: resnet{cfg.depth} ({cfg.stem} stem), bins {list(cfg.bins) if cfg.use_ppm else 'none'}, "
          f"{cfg.num_classes} classes" + (f" ({loaded.classes.name})" if loaded.classes.name else ""))
    if loaded.protocol is not None:
        print(f"test protocol: {loaded.protocol.describe()}")
    return 0
