"""PSPNet Studio's entry point: the GUI by default; subcommands go to core.cli."""

from __future__ import annotations

import sys


def _run_gui(args) -> int:
    # before Qt is imported: a platform plugin that cannot load makes Qt abort the process
    from app.platform_check import gui_problem

    problem = gui_problem(screenshot=bool(getattr(args, "screenshot", None)))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    from app.launch import run_gui  # Qt is imported only when the GUI is asked for

    return run_gui(args)


def _is_gui(argv: list[str]) -> bool:
    return not argv or argv[0] == "gui" or (argv[0].startswith("-") and argv[0] not in ("-h", "--help"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if _is_gui(argv):  # before torch loads: its threads then sleep when they wait (core/threads.py)
        from core.threads import prefer_passive_waiting

        prefer_passive_waiting()
    from core.cli import main as cli_main

    return cli_main(argv, gui=_run_gui)


if __name__ == "__main__":
    sys.exit(main())
