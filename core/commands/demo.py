"""``demo DIR``: write the synthetic demo data set (scenes where context decides the class)."""

from __future__ import annotations

import argparse

from core.cli import command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="folder to write (new, empty, or an earlier demo project)")
    p.add_argument("--train", type=int, default=48, metavar="N", help="training images (default 48)")
    p.add_argument("--val", type=int, default=16, metavar="N", help="validation images (default 16)")
    p.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"),
                   help="image size (default 128 128)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")


@command("demo", "write the synthetic demo data set (images, masks, classes, train/val lists)", _configure)
def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.data.synthetic import DEMO_MARKER, write_demo_project
    from core.project_lock import ProjectLock

    h, w = args.size
    # regenerating an earlier demo project writes into it: not while a program has it open
    lock = ProjectLock.acquire(args.dir) if (Path(args.dir) / DEMO_MARKER).is_file() else None
    try:
        root = write_demo_project(args.dir, n_train=args.train, n_val=args.val, size=(h, w), seed=args.seed)
    finally:
        if lock is not None:
            lock.release()
    print(f"wrote {args.train} training and {args.val} validation scenes of {h}x{w} to {root}")
    return 0
