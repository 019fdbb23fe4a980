"""``eval``: mIoU, mean accuracy and pixel accuracy of a model on a data set split.

By default the model's own test protocol and its source's metric convention: a semseg
checkpoint is evaluated as semseg's ``tool/test.py`` does (its resize, windows, mirror; mIoU
over all classes), an mmseg one as mmsegmentation's test does, a CSAIL one as CSAIL's
``eval.py``. ``--base-size`` / ``--crop`` / ``--scales`` / ``--flip`` override the protocol.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli import command
from core.commands._common import (add_inference, add_model_source, add_quiet, load, metrics_table, predictor,
                                   progress, resolve_device, say)


def _configure(p: argparse.ArgumentParser) -> None:
    add_model_source(p)
    p.add_argument("--data", required=True, metavar="DIR", help="data set folder (ours, VOC, ADE20K, Cityscapes)")
    p.add_argument("--split", default="val", help="val (default), train or all")
    p.add_argument("--layout", default="auto", help="auto (default), ours, voc, ade20k, cityscapes")
    p.add_argument("--remap", metavar="NAME|FILE", help="class remap applied to every mask")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (miou, mean_acc, pixel_acc, per_class_iou, per_class_acc, "
                        "class_names, absent, ...) instead of the table")
    p.add_argument("--save-confusion", metavar="FILE", help="write the confusion matrix (.npy or .csv; rows = truth)")
    add_inference(p)
    add_quiet(p)


@command("eval", "evaluate a model on a data set split (mIoU, accuracies, per class)", _configure)
def run(args: argparse.Namespace) -> int:
    from core.data.datasets import open_dataset
    from core.metrics import ConfusionMatrix

    if args.save_confusion and Path(args.save_confusion).suffix.lower() not in (".npy", ".csv"):
        raise ValueError(f"--save-confusion {args.save_confusion}: use a .npy or .csv file name")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, not {args.limit}")
    dataset = open_dataset(args.data, args.split, layout=args.layout, remap=args.remap)
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    if n == 0:
        raise ValueError(f"{args.data}: the {args.split!r} split has no images")
    loaded = load(args.model, device=resolve_device(args.device))
    k, data_classes = loaded.config.num_classes, dataset.classes
    if k != len(data_classes):
        raise ValueError(f"the model predicts {k} classes but the data set has {len(data_classes)}"
                         " (a --remap can map the data set's classes onto the model's)")
    if tuple(loaded.classes.names) != tuple(data_classes.names):
        say(f"note: the model's class names differ from the data set's; classes are compared by id and reported "
            f"with the data set's names", err=True)
    pred = predictor(args, loaded, aux=False)
    cm = ConfusionMatrix(k)
    with progress(n, "eval", quiet=args.quiet, unit="img") as bar:
        for i in range(n):
            image, mask = dataset[i]
            cm.update(pred.predict(image).labels, mask)
            bar.update(1)
    metrics = cm.compute(pred.protocol.miou)
    if args.save_confusion:
        cm.save(args.save_confusion)
    names = list(data_classes.names)
    if args.json:
        d = metrics.to_dict(names)
        out = {
            "miou": d["miou"], "mean_acc": d["mean_acc"], "pixel_acc": d["pixel_acc"],
            "per_class_iou": metrics.per_class_iou, "per_class_acc": metrics.per_class_acc,
            "class_names": names, "absent": metrics.absent, "absent_names": [names[i] for i in metrics.absent],
            "note": d["note"], "pixels": metrics.pixels, "images": n,
            "model": [str(s) for s in loaded.sources], "data": str(args.data), "split": args.split,
            "scales": list(pred.scales), "flip": pred.flip, "crop": pred.crop,
            "protocol": pred.protocol.to_dict(), "mean_over": metrics.mean_over,
        }
        print(json.dumps(out, allow_nan=False))
    else:
        print(f"{' + '.join(str(s) for s in loaded.sources)} on {args.data} ({args.split}, {n} images; "
              f"{pred.protocol.describe()})")
        print(metrics_table(metrics, names))
    if args.save_confusion:
        say(f"wrote the confusion matrix to {args.save_confusion}", err=True)
    return 0
