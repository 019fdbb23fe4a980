"""Reading ``torch.save`` files that carry other libraries' objects, without running any code.

mmseg 1.x / mmengine Runner checkpoints hold, beside ``state_dict`` and ``meta``, the
``message_hub`` (``mmengine.logging.history_buffer.HistoryBuffer`` objects holding numpy
arrays), ``optimizer`` and ``param_schedulers`` state. ``torch.load(weights_only=True)`` refuses
them because their pickles name classes outside torch's allowlist. Plain ``pickle`` (or
``torch.load(weights_only=False)``) would import mmengine and run whatever the pickle asks for:
a checkpoint can ask for ``os.system``. The approach here keeps torch's own restricted
unpickler and only widens what it may *name*, never what it may *run*:

1. **Scan** the pickle's GLOBAL opcodes without executing it
   (``torch.serialization.get_unsafe_globals_in_checkpoint`` for zip files; for the legacy
   format, the names torch's unpickler reports one at a time).
2. **Refuse** at once any name from a module that runs code or touches the system (``os``,
   ``sys``, ``subprocess``, ``builtins`` such as ``eval`` / ``exec`` / ``getattr``, ``pickle``,
   ``importlib``, ``operator``, ``functools``, ``pathlib`` other than pure paths, torch functions
   torch does not allow ...): the payload never runs.
3. **Stand in** for every other name with an inert placeholder class created here, allowlisted
   for this one load through ``torch.serialization.safe_globals``. torch's unpickler then only
   ever does three things with it: ``NEWOBJ`` calls our ``__new__`` (records the arguments),
   ``BUILD`` calls our ``__setstate__`` (records the state), and ``REDUCE`` -- a *call* of the
   named function or class -- reaches the placeholder's metaclass ``__call__``, which refuses
   the file. So an object of a class we do not know becomes data; anything that would call a
   function we do not know stops the load. No module is imported, no name is looked up.
4. **numpy** arrays and scalars (``numpy._core.multiarray._reconstruct``, ``numpy.dtype``,
   ``...scalar``) are not given to numpy's own reconstructors either: stand-ins record shape,
   dtype string and raw bytes, and a pass after the load builds the arrays with
   ``np.frombuffer`` from validated plain values (plain numeric / bool / string dtypes; object
   arrays from the already-read list). Anything else numpy-shaped stays a placeholder.
5. A few pure value types are built for real: ``datetime`` values (from their byte strings)
   and pure paths (``pathlib.PosixPath`` / ``WindowsPath`` become ``PurePosixPath`` /
   ``PureWindowsPath``, which cannot touch the file system).

Everything torch's weights-only unpickler already forbids stays forbidden (``BUILD`` only on
allowlisted types, ``SETITEMS`` only on dicts, no ``INST`` / ``OBJ`` / ``STACK_GLOBAL``
opcodes, persistent ids only for storages). The safe-globals set is process-wide while a load
runs; the loads here are serialised by a lock, and anything another thread might load in that
window could only see inert placeholders.
"""

from __future__ import annotations

import datetime
import math
import pathlib
import pickle
import re
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import CheckpointError

_LOCK = threading.Lock()
_MAX_UNKNOWN = 200  # distinct unknown names in one file (a legacy file is scanned one name per pass)

# modules whose names are refused outright: they run code, import code or touch the system
_REFUSED_MODULES = (
    "builtins", "__builtin__", "os", "posix", "nt", "sys", "subprocess", "shutil", "importlib", "runpy", "pickle",
    "_pickle", "cPickle", "copyreg", "copy_reg", "marshal", "types", "code", "codeop", "ctypes", "_ctypes", "socket",
    "pty", "operator", "_operator", "functools", "_functools", "io", "_io", "multiprocessing", "signal", "webbrowser",
    "threading", "_thread", "asyncio", "inspect", "tempfile", "glob", "pkgutil", "site", "platform", "select",
    "posixpath", "ntpath", "sysconfig", "zipimport", "codecs", "_codecs", "torch", "pathlib", "numpy.lib",
    "numpy.load", "numpy.ctypeslib", "dill", "cloudpickle", "joblib", "yaml", "requests", "urllib", "http",
)

_PURE_PATHS = {f"{module}.{name}": pure
               for module in ("pathlib", "pathlib._local")  # Python 3.13 moved the classes
               for name, pure in (("PosixPath", pathlib.PurePosixPath), ("PurePosixPath", pathlib.PurePosixPath),
                                  ("WindowsPath", pathlib.PureWindowsPath),
                                  ("PureWindowsPath", pathlib.PureWindowsPath),
                                  ("Path", pathlib.PurePath), ("PurePath", pathlib.PurePath))}
_VALUES = {"datetime.datetime": datetime.datetime, "datetime.date": datetime.date, "datetime.time": datetime.time,
           "datetime.timedelta": datetime.timedelta, "datetime.timezone": datetime.timezone}


class CallRefused(Exception):
    """The pickle would call a function or class we do not know: the load stops here."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class _InertMeta(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:  # a REDUCE of this name: a call
        raise CallRefused(getattr(cls, "pickled_name", cls.__name__))


class InertObject(metaclass=_InertMeta):
    """An object of a class this version does not know, read as data: the pickled class name,
    the arguments it was created with and the state it was given. It has no behaviour."""

    pickled_name = "?"

    def __new__(cls, *args: Any) -> "InertObject":
        obj = object.__new__(cls)
        obj.__dict__["args"] = args
        obj.__dict__["state"] = None
        return obj

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    @property
    def fields(self) -> dict[str, Any]:
        """The object's attributes when its state is a plain dict (the usual ``__dict__``)."""
        state = self.__dict__["state"]
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        return dict(state) if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


def placeholder_class(name: str) -> type:
    short = re.sub(r"\W", "_", name.rsplit(".", 1)[-1]) or "Unknown"
    return _InertMeta(short, (InertObject,), {"pickled_name": name, "__module__": __name__,
                                               "__qualname__": f"InertObject[{name}]"})


# --- numpy, as data --------------------------------------------------------------------------------


class _PendingDType:
    def __init__(self, spec: Any = None, align: Any = False, copy: Any = True):
        self.spec, self.state = spec, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _PendingArray:
    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _PendingScalar:
    def __init__(self, dtype: Any, data: Any = None) -> None:
        self.dtype, self.data = dtype, data


def _reconstruct(subtype: Any = None, shape: Any = None, dtype: Any = None) -> _PendingArray:
    return _PendingArray()


def _scalar(dtype: Any, data: Any = None) -> _PendingScalar:
    return _PendingScalar(dtype, data)


_NDARRAY = placeholder_class("numpy.ndarray")
_NUMPY = {}
for _np in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _NUMPY[f"{_np}._reconstruct"] = _reconstruct
    _NUMPY[f"{_np}.scalar"] = _scalar
_NUMPY["numpy.dtype"] = _PendingDType
_NUMPY["numpy.ndarray"] = _NDARRAY
_DTYPE_SPEC = re.compile(r"[biufc?]\d*|[US]\d+|O|O8|b1")  # plain numbers, bools, strings; objects


def _materialize(obj: Any) -> Any:
    """Replace the numpy stand-ins by real arrays / scalars, everywhere in the loaded tree."""
    memo: dict[int, Any] = {}

    def walk(x: Any, depth: int) -> Any:
        if depth > 2000:
            raise CheckpointError("the pickle nests deeper than 2000 levels")
        key = id(x)
        if key in memo:
            return memo[key]
        if isinstance(x, (_PendingArray, _PendingScalar, _PendingDType)):
            out = _numpy_value(x, lambda v: walk(v, depth + 1))
            memo[key] = out
            return out
        if isinstance(x, (torch.Tensor, str, bytes, int, float, complex, bool, type(None))):
            return x
        if isinstance(x, dict):  # dict, OrderedDict, Counter: fill in place (keeps shared references)
            memo[key] = x
            for k in list(x):
                x[k] = walk(x[k], depth + 1)
            return x
        if isinstance(x, list):
            memo[key] = x
            for i, v in enumerate(x):
                x[i] = walk(v, depth + 1)
            return x
        if isinstance(x, tuple):
            out = tuple(walk(v, depth + 1) for v in x)
            memo[key] = out
            return out
        if isinstance(x, set):
            out = {walk(v, depth + 1) for v in x}
            memo[key] = out
            return out
        if isinstance(x, InertObject):
            memo[key] = x
            x.__dict__["args"] = walk(x.__dict__["args"], depth + 1)
            x.__dict__["state"] = walk(x.__dict__["state"], depth + 1)
            return x
        return x

    return walk(obj, 0)


def _numpy_value(x: Any, walk) -> Any:
    if isinstance(x, _PendingDType):
        return _dtype(x) or _inert("numpy.dtype", (x.spec,), x.state)
    if isinstance(x, _PendingScalar):
        dt = _dtype(x.dtype) if isinstance(x.dtype, _PendingDType) else None
        if dt is None:
            return _inert("numpy scalar", (), None)
        if dt.kind == "O":
            return walk(x.data)
        if isinstance(x.data, bytes) and len(x.data) == dt.itemsize:
            return np.frombuffer(x.data, dtype=dt)[0]
        return _inert("numpy scalar", (), None)
    state = x.state  # (version, shape, dtype, is_fortran, rawdata) or the version-less 4-tuple
    if isinstance(state, tuple) and len(state) == 5:
        state = state[1:]
    if not (isinstance(state, tuple) and len(state) == 4):
        return _inert("numpy.ndarray", (), x.state)
    shape, dtype, fortran, raw = state
    dt = _dtype(dtype) if isinstance(dtype, _PendingDType) else None
    if dt is None or not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
        return _inert("numpy.ndarray", (), x.state)
    count = math.prod(shape)
    order = "F" if fortran else "C"
    if dt.kind == "O":
        items = walk(raw)
        if not isinstance(items, list) or len(items) != count:
            return _inert("numpy.ndarray", (), x.state)
        arr = np.empty(count, dtype=object)
        arr[:] = items
        return arr.reshape(shape, order=order)
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dt.itemsize:
        return _inert("numpy.ndarray", (), x.state)
    return np.frombuffer(bytes(raw), dtype=dt).reshape(shape, order=order).copy()


def _dtype(d: _PendingDType) -> np.dtype | None:
    spec = d.spec
    if not isinstance(spec, str) or not _DTYPE_SPEC.fullmatch(spec):
        return None
    dt = np.dtype(spec)
    state = d.state
    if isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "="):
        if any(v is not None for v in state[2:5]):  # subarray, names, fields: not plain
            return None
        if state[1] in "<>" and dt.itemsize > 1:
            dt = dt.newbyteorder(state[1])
    return dt


def _inert(name: str, args: tuple, state: Any) -> InertObject:
    obj = InertObject.__new__(placeholder_class(name), *args)
    obj.__setstate__(state)
    return obj


# --- the load --------------------------------------------------------------------------------------


def refused_name(name: str) -> bool:
    if "." not in name:  # torch's messages print builtins.X as X
        return True
    if name in _PURE_PATHS or name in _VALUES or name in _NUMPY:
        return False
    return any(name == m or name.startswith(m + ".") for m in _REFUSED_MODULES)


def stand_in(name: str) -> Any:
    """What the unpickler gets for ``name``: a numpy stand-in, a pure value type or a placeholder."""
    return _NUMPY.get(name) or _PURE_PATHS.get(name) or _VALUES.get(name) or placeholder_class(name)


def safe_load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)``, with the file's unknown names read as inert
    stand-ins. Raises :class:`CheckpointError` ("refused as unsafe") when the file names code
    that runs, or would call something we do not know (its payload does not run); torch's own
    errors (a corrupt or truncated file, an opcode torch refuses) propagate unchanged."""
    path = Path(path)
    names = _scan(path)
    extra: dict[str, Any] = {}
    for _ in range(_MAX_UNKNOWN):
        for name in names:
            if refused_name(name):
                raise _refusal(path, f"it asks for {name}, which can run code")
            extra.setdefault(name, stand_in(name))
        try:
            with _LOCK:
                safe = [(v, k) for k, v in extra.items()] + [(c, f"{__name__}.{c.__name__}")
                                                             for c in (_PendingArray, _PendingDType, _PendingScalar)]
                with torch.serialization.safe_globals(safe):
                    obj = torch.load(path, map_location="cpu", weights_only=True)
        except CallRefused as exc:
            raise _refusal(path, f"loading it would call {exc.name}, which is not a known safe function") from None
        except pickle.UnpicklingError as exc:
            more = _reported_name(str(exc))
            if more is not None and more not in extra:  # a legacy-format file: names come one at a time
                names = [more]
                continue
            raise
        except (RuntimeError, EOFError, OSError, ValueError):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a stand-in given arguments it does not take
            raise _refusal(path, f"it could not be read as data ({type(exc).__name__}: {exc})") from None
        return _materialize(obj)
    raise _refusal(path, f"it names more than {_MAX_UNKNOWN} unknown classes")


def _scan(path: Path) -> list[str]:
    """The GLOBAL names of a zip-format file that torch does not allow, read without running it;
    [] for the legacy format (their names are collected as torch reports them) or when the
    pickle cannot be scanned (torch's own load then says why)."""
    try:
        if not zipfile.is_zipfile(path):
            return []
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - a damaged file: the load below reports it
        return []


def _reported_name(text: str) -> str | None:
    m = re.search(r"GLOBAL (\S+) was not an allowed global", text)
    if not m:
        return None
    name = m.group(1)
    return name if "." in name else f"builtins.{name}"


def _refusal(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: refused as unsafe: {why}, so nothing in it was loaded (read with "
                           "torch.load(weights_only=True); objects of unknown classes are read as inert "
                           "placeholders, but nothing in the file is ever called)")


def inert_names(obj: Any) -> list[str]:
    """The class names of the placeholders in a loaded tree (for reports)."""
    seen: set[str] = set()
    stack: list[Any] = [obj]
    visited: set[int] = set()
    while stack:
        x = stack.pop()
        if id(x) in visited:
            continue
        visited.add(id(x))
        if isinstance(x, InertObject):
            seen.add(x.pickled_name)
            stack.extend([x.__dict__["args"], x.__dict__["state"]])
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple, set)):
            stack.extend(x)
    return sorted(seen)


__all__ = ["InertObject", "CallRefused", "safe_load", "inert_names",
           "refused_name", "placeholder_class"]
