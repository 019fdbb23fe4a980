"""The layering rule: core never imports Qt, pyqtgraph, superqt or app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "superqt", "qtpy", "app", "torchvision")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_core_module_imports_qt_pyqtgraph_app_or_torchvision():
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_modules(p) & set(FORBIDDEN))
        for p in (ROOT / "core").rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"core must not import these: {offenders}"


def test_importing_all_of_core_loads_no_qt():
    """Every public name resolved, then check sys.modules in a fresh interpreter."""
    code = (
        "import sys, core\n"
        "for n in core.__all__: getattr(core, n)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in %r]\n"
        "print(','.join(bad))\n" % (FORBIDDEN,)
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_import_linter_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_app_reaches_core_only_through_its_public_api():
    offenders = []
    for p in (ROOT / "app").rglob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core."):
                offenders.append(f"{p.relative_to(ROOT)}: from {node.module}")
            elif isinstance(node, ast.Import):
                offenders += [f"{p.relative_to(ROOT)}: import {a.name}" for a in node.names if a.name.startswith("core.")]
    assert not offenders, "app must use `core` (core/__init__.py) only:\n" + "\n".join(offenders)
