"""The schema of a project's files: project.json and the class table (classes.json).

One check each, run when a project is opened: every damage becomes one
:class:`~core.errors.ProjectFileError` (or :class:`~core.errors.ClassTableError`) naming the
file and the field (``history[2].file``, ``classes[4].color``, ...), never a KeyError or a
TypeError from deep inside. Unknown keys are kept (a newer program may have written them).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from core.classes import ClassTable
from core.errors import ClassTableError, ProjectFileError

FORMAT = "pspnet-studio-project"
FORMAT_VERSION = 1
_REPAIR = "repair or restore the file to open the project"


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _fail(path: Path, field: str, problem: str, error: type[ProjectFileError] = ProjectFileError) -> ProjectFileError:
    where = f"field \"{field}\"" if field else "the file"
    return error(f"{path}: {where} {problem}; {_REPAIR}", path, field)


def _want(value: Any, types: type | tuple[type, ...], path: Path, field: str, what: str) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _fail(path, field, f"is {_shown(value)}, not {what}")
    if not isinstance(value, types):
        raise _fail(path, field, f"is {_kind(value)} ({_shown(value)}), not {what}")
    return value


def safe_relative(name: str) -> bool:
    """Whether ``name`` is a relative path that stays inside its folder (no "..", no drive, no
    absolute path, on any platform)."""
    if not name or "\x00" in name:
        return False
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            return False
    return True


def validate_project(meta: Any, path: Path, default_name: str) -> dict[str, Any]:
    """The project.json content, checked and completed with defaults (a new dict)."""
    if not isinstance(meta, dict):
        raise _fail(path, "", f"holds {_kind(meta)}, not a project (a JSON object)")
    if meta.get("format") != FORMAT:
        raise ProjectFileError(f"{path}: not a PSPNet Studio project file (no \"format\": \"{FORMAT}\")", path, "format")
    version = meta.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(path, "version", f"is {_shown(version)}, not a format version (a whole number from 1)")
    if version > FORMAT_VERSION:
        raise ProjectFileError(f"{path}: project format version {version} is newer than this program reads "
                               f"({FORMAT_VERSION})", path, "version")
    out = copy.deepcopy(meta)
    out.setdefault("name", default_name)
    _want(out["name"], str, path, "name", "a string")
    out.setdefault("classes", "classes.json")
    _want(out["classes"], str, path, "classes", "a file name")
    if not safe_relative(out["classes"]):
        raise _fail(path, "classes", f"is {_shown(out['classes'])}: the class table must be a file inside the project")
    out.setdefault("created", "")
    _want(out["created"], str, path, "created", "a date (a string)")
    out.setdefault("settings", {})
    _want(out["settings"], dict, path, "settings", "an object")
    out.setdefault("history", [])
    history = _want(out["history"], list, path, "history", "a list of models")
    seen: set[str] = set()
    for i, entry in enumerate(history):
        _check_entry(entry, path, f"history[{i}]", seen)
    out.setdefault("current_model", None)
    current = out["current_model"]
    if current is not None:
        _want(current, str, path, "current_model", "a model id (a string) or null")
        if current not in seen:
            raise _fail(path, "current_model", f"is {_shown(current)}, which is not in the history")
    return out


def _check_entry(entry: Any, path: Path, field: str, seen: set[str]) -> None:
    _want(entry, dict, path, field, "a model entry (an object)")
    for key in ("id", "file"):
        if key not in entry:
            raise _fail(path, f"{field}.{key}", "is missing (each model of the history has an id and a file)")
    ident = _want(entry["id"], str, path, f"{field}.id", "a model id (a string)")
    if not ident:
        raise _fail(path, f"{field}.id", "is empty")
    if ident in seen:
        raise _fail(path, f"{field}.id", f"repeats the id {_shown(ident)} of an earlier model")
    seen.add(ident)
    name = _want(entry["file"], str, path, f"{field}.file", "a file name")
    if not safe_relative(name):
        raise _fail(path, f"{field}.file", f"is {_shown(name)}: checkpoints must be files inside the project's "
                                           f"checkpoints/ folder")
    for key, types, what in (("metrics", dict, "an object"), ("time", str, "a string"), ("note", str, "a string"),
                             ("parent", (str, type(None)), "a model id or null")):
        if key in entry:
            _want(entry[key], types, path, f"{field}.{key}", what)


def read_project_file(path: Path, default_name: str) -> dict[str, Any]:
    """Read and check project.json (:func:`validate_project`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProjectFileError(f"{path}: not a readable project file: {exc.strerror or exc}", path) from exc
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProjectFileError(f"{path}: not a readable project file: {exc}", path) from exc
    return validate_project(meta, path, default_name)


def validate_classes(data: Any, path: Path) -> ClassTable:
    """A class table from parsed classes.json content, every damage a :class:`ClassTableError`."""
    def fail(field: str, problem: str) -> ClassTableError:
        where = f"field \"{field}\"" if field else "the file"
        return ClassTableError(f"{path}: {where} {problem}; choose a class table to open the project, or repair "
                               f"the file", path, field)

    if not isinstance(data, dict):
        raise fail("", f"holds {_kind(data)}, not a class table (an object with \"classes\")")
    if "classes" not in data:
        raise fail("classes", "is missing")
    classes = data["classes"]
    if not isinstance(classes, list):
        raise fail("classes", f"is {_kind(classes)}, not a list of classes")
    if not 1 <= len(classes) <= 255:
        raise fail("classes", f"has {len(classes)} classes; a class table has 1 to 255 (255 is the ignore label)")
    names, colors = [], []
    for i, c in enumerate(classes):
        if not isinstance(c, dict):
            raise fail(f"classes[{i}]", f"is {_kind(c)}, not a class (an object with \"name\" and \"color\")")
        if not isinstance(c.get("name"), str):
            raise fail(f"classes[{i}].name", "is missing" if "name" not in c else f"is {_kind(c['name'])}, not a string")
        color = c.get("color")
        if (not isinstance(color, list) or len(color) != 3
                or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255 for v in color)):
            raise fail(f"classes[{i}].color", "is missing" if "color" not in c
                       else f"is {_shown(color)}, not an RGB triple [r, g, b] of 0..255")
        names.append(c["name"])
        colors.append(tuple(color))
    name = data.get("name", "")
    if not isinstance(name, str):
        raise fail("name", f"is {_kind(name)}, not a string")
    try:
        return ClassTable(tuple(names), tuple(colors), name)  # type: ignore[arg-type]
    except ValueError as exc:  # pragma: no cover - every rule of ClassTable is checked above
        raise fail("classes", str(exc)) from exc


def read_classes_file(path: Path) -> ClassTable:
    """Read and check a project's class table; :class:`ClassTableError` when missing or damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ClassTableError(f"{path}: the project's class table is missing; choose a class table to open the "
                              f"project, or put its {path.name} back (the masks are kept as they are)", path,
                              "") from None
    except IsADirectoryError:
        raise ClassTableError(f"{path}: is a folder, not the project's class table", path, "") from None
    except OSError as exc:
        raise ClassTableError(f"{path}: cannot read the project's class table: {exc.strerror or exc}", path) from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ClassTableError(f"{path}: the project's class table is not readable JSON ({exc}); choose a class "
                              f"table to open the project, or repair the file", path, "") from exc
    return validate_classes(data, path)


__all__ = ["FORMAT", "FORMAT_VERSION", "validate_project", "validate_classes", "read_project_file",
           "read_classes_file", "safe_relative"]
