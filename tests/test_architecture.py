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


# the engine's internals for training, ranking and prediction: the app runs core's jobs
# (core/jobs/) instead, so that the app and the command line share one implementation
ENGINE_INTERNALS = {
    "train", "finetune", "TrainConfig", "fixed_val_split", "build_model", "open_dataset", "SegmentationDataset",
    "Predictor", "LevelSwitch", "uncertainty_map", "image_score", "uncertain_regions", "rank_images",
    "ConfusionMatrix", "pspnet_loss", "save_checkpoint", "write_demo_project",
}


def core_names_used(tree: ast.AST) -> set[str]:
    """Every ``core.NAME`` the module reads (and names imported with ``from core import ...``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "core":
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "core":
            names.update(a.name for a in node.names)
    return names


def test_no_app_module_calls_the_engines_training_or_ranking_internals():
    offenders = {}
    for p in (ROOT / "app").rglob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        used = {n for n in core_names_used(tree) & ENGINE_INTERNALS
                if not _only_in_annotations(tree, n)}
        if used:
            offenders[str(p.relative_to(ROOT))] = sorted(used)
    assert not offenders, f"app modules must run core's jobs (core/jobs/), not the engine's internals: {offenders}"


def _only_in_annotations(tree: ast.AST, name: str) -> bool:
    """``core.NAME`` appears only as a type (an annotation), never called or read as a value."""
    in_annotation = set()
    for node in ast.walk(tree):
        for ann in _annotations(node):
            for sub in ast.walk(ann):
                in_annotation.add(id(sub))
    uses = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == name
            and isinstance(node.value, ast.Name) and node.value.id == "core"]
    return bool(uses) and all(id(u) in in_annotation for u in uses)


def _annotations(node: ast.AST):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        for a in args.args + args.kwonlyargs + args.posonlyargs + [args.vararg, args.kwarg]:
            if a is not None and a.annotation is not None:
                yield a.annotation
        if node.returns is not None:
            yield node.returns
    elif isinstance(node, ast.AnnAssign):
        yield node.annotation


def test_the_check_above_can_fail():
    tree = ast.parse("import core\ndef f(x: core.Predictor) -> None:\n    core.finetune(x)\n")
    assert core_names_used(tree) & ENGINE_INTERNALS == {"finetune", "Predictor"}
    assert _only_in_annotations(tree, "Predictor") and not _only_in_annotations(tree, "finetune")


def test_core_type_checking_imports_mirror_its_exports():
    """core/__init__.py's TYPE_CHECKING block imports exactly the lazy ``_EXPORTS`` table, name for
    name from the same module, so the app's annotations (core.LoadedModel, ...) are real types."""
    tree = ast.parse((ROOT / "core" / "__init__.py").read_text(encoding="utf-8"))
    exports = next(ast.literal_eval(n.value) for n in tree.body
                   if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "_EXPORTS")
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    imported = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.dump(node)
        for a in node.names:
            assert a.asname == a.name, f"{a.name}: re-export it as itself (`{a.name} as {a.name}`)"
            imported[a.name] = node.module
    assert imported == exports
