"""A second program for the tests of one writer per project: a Python script run as a child
process that answers on its stdout, one line per step."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spawn(tmp_path: Path, code: str, *args: str, name: str | None = None) -> subprocess.Popen:
    """Run ``code`` (dedented) as a script in ``tmp_path`` with the repository importable."""
    script = tmp_path / (name or f"child_{abs(hash(code))}.py")
    script.write_text(textwrap.dedent(code))
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def read_line(proc: subprocess.Popen, timeout: float = 60) -> str:
    """The child's next line on stdout (an AssertionError with its stderr if it ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            return line.strip()
        if proc.poll() is not None:
            raise AssertionError(f"the child ended: {proc.stderr.read()}")
    raise AssertionError("no answer from the child")
