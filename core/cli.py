"""The command line: ``python main.py SUBCOMMAND ...``. With no subcommand the GUI opens.

Each subcommand is registered with :func:`command` (a small registry, not an if/elif chain).
Errors of ours print as one line and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

from core.errors import StudioError
from core.threads import apply_thread_settings


@dataclass
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = Command(name, help, configure, run)
        return run

    return register


def _gui_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint to open (ours or any importable format)", nargs="+")
    p.add_argument("--image", help="image to open")
    p.add_argument("--project", help="project folder to open (default: the built-in demo)")
    p.add_argument("--view", choices=["overlay", "pyramid", "heads"], default="overlay")
    p.add_argument("--screenshot", metavar="OUT.png", help="save the window once the prediction is shown, then exit")
    p.add_argument("--size", metavar="WxH|screen", default=None,
                   help="the window's size with --screenshot (default 1600x1000); 'screen': as it opens the first "
                        "time on this screen (maximised on a small one)")


@command("gui", "open the window (the default when no subcommand is given)", _gui_args)
def _gui_placeholder(args: argparse.Namespace) -> int:  # replaced by main.py's launcher
    raise StudioError("the GUI launcher is not available from core alone; run `python main.py`")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pspnet-studio",
        description="PSPNet Studio: pyramid scene parsing you can look inside, correct and retrain.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        # also accepted after the subcommand; SUPPRESS keeps the top-level value when absent here
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def _load_commands() -> None:
    """Import the modules that register subcommands (kept out of this file to keep it small)."""
    import importlib
    import pkgutil

    import core.commands as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")


def main(argv: list[str], gui: Callable[[argparse.Namespace], int] | None = None) -> int:
    _load_commands()
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--debug")):
        argv = ["gui", *argv]
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"] + (["--debug"] if args.debug else []))
    args.argv = list(argv)  # what was asked for, recorded in the provenance of what commands write
    run = gui if (args.command == "gui" and gui is not None) else COMMANDS[args.command].run
    try:
        if args.command not in ("models",):  # torch's CPU threads: one core left to the GUI (core/threads.py)
            apply_thread_settings(interactive=args.command == "gui")
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (StudioError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
