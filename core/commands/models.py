"""``models``: the model zoo on the command line.

``models list [--json]``, ``models get NAME [--file PATH ...]``, ``models path NAME``. Files go
to the zoo cache, ``<app data>/models/<NAME>/`` (``PSPNET_STUDIO_HOME`` moves the app data).
"""

from __future__ import annotations

import argparse
import json
import sys

from core.cli import command


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="the pretrained models that can be fetched or given by hand",
                        description="The model zoo: source, data set, published mIoU, size, whether it is cached.")
    ls.add_argument("--json", action="store_true", help="a JSON list (name, url, source, dataset, results, files ...)")
    get = sub.add_parser("get", help="download a model into the cache (resumable, checked), or check and copy in "
                                     "files downloaded by hand",
                         description="Download NAME's files into the cache, resuming a partial download and "
                                     "checking each file against its published checksum (or, where none is "
                                     "published, that it reads as the expected architecture). With --file, check "
                                     "files downloaded by hand (e.g. on another machine) and copy them in.")
    get.add_argument("name", metavar="NAME")
    get.add_argument("--file", action="append", metavar="PATH",
                     help="a file of NAME downloaded by hand (twice for a CSAIL encoder + decoder)")
    get.add_argument("--retries", type=int, default=3, metavar="N",
                     help="retries after a dropped connection or a server error (default 3)")
    get.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    path = sub.add_parser("path", help="where a cached model's files are (one per line)",
                          description="Print the cached files of NAME, one per line (two for a CSAIL model); "
                                      "exit 1 when they are not in the cache yet.")
    path.add_argument("name", metavar="NAME")
    for sp in (ls, get, path):
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


@command("models", "list, download and locate pretrained PSPNets (mmsegmentation, CSAIL, semseg, torchvision)",
         _configure)
def run(args: argparse.Namespace) -> int:
    return {"list": _list, "get": _get, "path": _path}[args.action](args)


def _list(args: argparse.Namespace) -> int:
    from core import zoo

    table = zoo.entries()
    if args.json:
        print(json.dumps([e.to_json() for e in table], indent=2))
        return 0
    rows = [("NAME", "DATA SET", "mIoU ss / ms", "SIZE", "GET", "CACHED")]
    for e in table:
        rows.append((e.name, f"{e.dataset} ({e.num_classes})", _scores(e), zoo.describe_size(e),
                     "direct" if e.downloadable else "by hand", "yes" if zoo.cached_files(e) else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\ncache: {zoo.cache_dir()}\n"
          "mIoU in %, single-scale / multi-scale (+flip where the source flips), each on its source's protocol "
          "(`models list --json` gives it); ImageNet backbones show top-1 accuracy.\n"
          "'by hand': the files are on a file-sharing page (see --json 'page', 'how_to_get'); then "
          "`models get NAME --file FILE`.")
    return 0


def _scores(e) -> str:
    ss, ms = e.result("single"), e.result("multi")
    if ss is None and ms is None:
        top1 = next((r for r in e.results if r.metric.startswith("top-1")), None)
        return f"top-1 {top1.value:g}" if top1 else "-"
    return " / ".join(f"{r.value:.2f}" if r else "-" for r in (ss, ms))


def _get(args: argparse.Namespace) -> int:
    from core import zoo
    from core.download import drive

    e = zoo.entry(args.name)
    if args.file:
        steps = zoo.install(e, args.file)
        paths = drive(steps, quiet=args.quiet)
        missing = [f.file_name for f, p in zip(e.files, paths) if p is None]
        for p in paths:
            if p is not None:
                print(p)
        if missing:
            print(f"{e.name}: still missing {', '.join(missing)}: give it with --file too", file=sys.stderr)
            return 1
        return 0
    if args.retries < 0:
        raise ValueError(f"--retries {args.retries}: must be 0 or more")
    paths = drive(zoo.fetch(e, retries=args.retries), quiet=args.quiet)
    for p in paths:
        print(p)
    return 0


def _path(args: argparse.Namespace) -> int:
    from core import zoo

    e = zoo.entry(args.name)
    paths = zoo.cached_files(e)
    if paths is None:
        where = zoo.cache_dir() / e.name
        how = f"python main.py models get {e.name}" + ("" if e.downloadable else " --file FILE")
        print(f"error: {e.name} is not in the cache ({where}): run `{how}`", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0
