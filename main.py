"""PSPNet Studio's entry point: the GUI by default; subcommands go to core.cli."""

from __future__ import annotations

import sys


def _run_gui(args) -> int:
    from app.launch import run_gui  # Qt is imported only when the GUI is asked for

    return run_gui(args)


def main(argv: list[str] | None = None) -> int:
    from core.cli import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv, gui=_run_gui)


if __name__ == "__main__":
    sys.exit(main())
