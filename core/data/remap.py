"""Class remapping: merge or drop the classes of one table into another.

A remap file is JSON::

    {
      "name": "ade20k_to_25",
      "source": "ade20k",                      # a built-in table's name, or an inline class table
      "target": {"name": ..., "classes": [...]},   # an inline class table, or a built-in name
      "mapping": {"wall": "wall", "house": "building", "12": 5, "sky": null, ...},
      "unmapped": "error"                      # optional: "error" (default) or "ignore"
    }

Keys of ``mapping`` are source class names or their ids written as strings; values are target
class names, target ids, or ``null`` / ``"ignore"`` / 255 to drop the class (it becomes the
ignore label 255). With ``"unmapped": "error"`` every source class must be listed, so that a
typo cannot silently drop a class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from core.atomic import atomic_write_text
from core.classes import RESOURCES, ClassTable
from core.constants import IGNORE
from core.errors import DatasetError

__all__ = ["ClassRemap", "BUILTIN_REMAP_DIR"]

BUILTIN_REMAP_DIR = RESOURCES / "remap"
_DROP_WORDS = ("ignore", "drop")


@dataclass(frozen=True, eq=False)
class ClassRemap:
    """source id -> target id through a 256-entry lookup table (255 stays 255)."""

    lut: np.ndarray  # (256,) uint8
    target: ClassTable
    source: ClassTable | None = None
    name: str = ""
    _matrix: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lut = np.asarray(self.lut)
        if lut.shape != (256,) or not np.issubdtype(lut.dtype, np.integer):
            raise ValueError(f"a remap table is a (256,) integer array, not {lut.dtype} {lut.shape}")
        bad = np.unique(lut[(lut >= len(self.target)) & (lut != IGNORE)])
        if bad.size:
            raise ValueError(f"remap {self.name!r} maps to ids {bad.tolist()} outside the target table (0..{len(self.target) - 1})")
        lut = lut.astype(np.uint8)
        lut[IGNORE] = IGNORE
        lut.setflags(write=False)
        object.__setattr__(self, "lut", lut)
        n_src = self.n_source
        m = np.zeros((len(self.target), n_src), np.float32)
        src = np.arange(n_src)
        keep = lut[:n_src] != IGNORE
        m[lut[:n_src][keep], src[keep]] = 1.0
        m.setflags(write=False)
        object.__setattr__(self, "_matrix", m)

    @property
    def n_source(self) -> int:
        """Number of source classes (from the source table; else up to the last mapped id)."""
        if self.source is not None:
            return len(self.source)
        mapped = np.flatnonzero(self.lut[:IGNORE] != IGNORE)
        return int(mapped[-1]) + 1 if mapped.size else 0

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, source: ClassTable, target: ClassTable, mapping: Mapping[str | int, str | int | None],
                     *, unmapped: str = "error", name: str = "", where: str = "") -> "ClassRemap":
        """Build from ``{source name or id: target name or id or None}`` (see the module docstring).

        ``where`` (e.g. the file) starts every error message."""
        where = where or (f"remap {name!r}" if name else "remap")
        if unmapped not in ("error", "ignore"):
            raise DatasetError(f"{where}: 'unmapped' must be 'error' or 'ignore', not {unmapped!r}")
        src_ids = {n: i for i, n in enumerate(source.names)}
        tgt_ids = {n: i for i, n in enumerate(target.names)}
        lut = np.full(256, IGNORE, np.uint8)
        seen: set[int] = set()
        for key, value in mapping.items():
            s = _resolve(key, src_ids, len(source), f"{where}: source class")
            if s is None:
                raise DatasetError(f"{where}: the ignore label cannot be remapped (key {key!r})")
            if s in seen:
                raise DatasetError(f"{where}: source class {source.names[s]!r} is mapped twice")
            seen.add(s)
            t = _resolve(value, tgt_ids, len(target), f"{where}: target class")
            lut[s] = IGNORE if t is None else t
        missing = [source.names[i] for i in range(len(source)) if i not in seen]
        if missing and unmapped == "error":
            shown = ", ".join(repr(n) for n in missing[:10]) + (f" ... ({len(missing)} in all)" if len(missing) > 10 else "")
            raise DatasetError(f"{where}: source classes {shown} are not mapped "
                               "(map them, to null to drop them, or set \"unmapped\": \"ignore\")")
        return cls(lut, target, source, name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "remap") -> "ClassRemap":
        try:
            source = _table(data["source"], f"{where}: source")
            target = _table(data["target"], f"{where}: target")
            mapping = data["mapping"]
        except KeyError as exc:
            raise DatasetError(f"{where}: missing key {exc} (a remap needs 'source', 'target' and 'mapping')") from None
        if not isinstance(mapping, Mapping):
            raise DatasetError(f"{where}: 'mapping' must be an object {{source class: target class}}")
        return cls.from_mapping(source, target, mapping, unmapped=str(data.get("unmapped", "error")),
                                name=str(data.get("name", "")), where=where)

    @classmethod
    def load(cls, path: str | Path) -> "ClassRemap":
        """Read a remap JSON file (format in the module docstring); DatasetError names the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read remap file: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise DatasetError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise DatasetError(f"{path}: a remap file holds a JSON object")
        remap = cls.from_dict(data, where=str(path))
        if not remap.name:
            object.__setattr__(remap, "name", path.stem)
        return remap

    @classmethod
    def builtin(cls, name: str) -> "ClassRemap":
        """A shipped remap, e.g. ``"ade20k_to_25"`` (``resources/remap/<name>.json``)."""
        path = BUILTIN_REMAP_DIR / f"{name}.json"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in BUILTIN_REMAP_DIR.glob("*.json"))) or "none"
            raise DatasetError(f"no built-in remap {name!r} (known: {known})")
        return cls.load(path)

    def to_dict(self) -> dict[str, Any]:
        """By name where the source table is known, else by id."""
        if self.source is None or len(set(self.source.names)) != len(self.source.names):
            mapping: dict[str, Any] = {str(i): _out(self.lut[i], self.target) for i in range(self.n_source)}
            source: Any = self.source.to_dict() if self.source is not None else None
        else:
            mapping = {n: _out(self.lut[i], self.target) for i, n in enumerate(self.source.names)}
            source = self.source.name if self.source.name and _is_builtin(self.source) else self.source.to_dict()
        return {"name": self.name, "source": source, "target": self.target.to_dict(), "mapping": mapping}

    def save(self, path: str | Path) -> None:
        if self.source is None:
            raise DatasetError(f"{path}: a remap without a source class table cannot be saved")
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    # ---- application -----------------------------------------------------------------------

    def matrix(self) -> np.ndarray:
        """(C_target, C_source) float32 0/1 matrix: row t sums the source classes merged into t."""
        return self._matrix

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """Remap a uint8 mask (any shape) through the lookup table; 255 stays 255."""
        mask = np.asarray(mask)
        if mask.dtype != np.uint8:
            raise TypeError(f"apply() takes a uint8 mask, not {mask.dtype}; use apply_labels for other integer types")
        return self.lut[mask]

    def apply_labels(self, labels: Any) -> Any:
        """Remap a label map of any integer type (numpy array or torch tensor, e.g. an argmax).

        Values must lie in 0..255; the result has the input's type (uint8 for numpy, the
        same dtype and device for torch). Dropped source classes become 255. Note that
        ``argmax(apply_probs(p))`` is the better-founded prediction: it adds up the merged
        classes' probabilities instead of taking the single strongest source class."""
        if isinstance(labels, np.ndarray):
            if not np.issubdtype(labels.dtype, np.integer):
                raise TypeError(f"labels must be integers, not {labels.dtype}")
            if labels.size and (labels.min() < 0 or labels.max() > 255):
                raise ValueError(f"labels outside 0..255 ({labels.min()}..{labels.max()})")
            return self.lut[labels]
        import torch

        if not isinstance(labels, torch.Tensor):
            return self.apply_labels(np.asarray(labels))
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 255):
            raise ValueError(f"labels outside 0..255 ({int(labels.min())}..{int(labels.max())})")
        lut = torch.from_numpy(self.lut.astype(np.int64)).to(labels.device)
        return lut[labels.long()].to(labels.dtype)

    def apply_probs(self, probs: Any, *, renormalize: bool = False) -> Any:
        """(..., C_source, H, W) probabilities -> (..., C_target, H, W), summing merged classes.

        Works on numpy arrays and torch tensors. The mass of dropped classes is lost (the
        result sums to less than 1 there) unless ``renormalize`` rescales each pixel to 1."""
        c_src = self._matrix.shape[1]
        if probs.shape[-3] != c_src:
            raise ValueError(f"probabilities have {probs.shape[-3]} classes on axis -3 but the remap's source has {c_src}")
        if isinstance(probs, np.ndarray):
            m = self._matrix.astype(probs.dtype if np.issubdtype(probs.dtype, np.floating) else np.float32)
            out = np.einsum("ts,...shw->...thw", m, probs)
            if renormalize:
                out = out / np.maximum(out.sum(axis=-3, keepdims=True), np.finfo(out.dtype).tiny)
            return out
        import torch

        m = torch.from_numpy(np.array(self._matrix)).to(device=probs.device, dtype=probs.dtype)
        out = torch.einsum("ts,...shw->...thw", m, probs)
        if renormalize:
            out = out / out.sum(dim=-3, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
        return out

    def __repr__(self) -> str:
        return f"ClassRemap({self.name or 'unnamed'}: {self.n_source} -> {len(self.target)} classes)"


def _resolve(value: Any, ids: dict[str, int], n: int, what: str) -> int | None:
    """A class name or id -> id; None means dropped (ignore)."""
    if value is None or (isinstance(value, str) and value.lower() in _DROP_WORDS):
        return None
    if isinstance(value, bool):
        raise DatasetError(f"{what} {value!r} is neither a name nor an id")
    if isinstance(value, str) and value in ids:
        return ids[value]
    try:
        i = int(value)
    except (TypeError, ValueError):
        close = [n_ for n_ in ids if n_.lower() == str(value).lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DatasetError(f"{what} {value!r} is not in the table{hint}") from None
    if i == IGNORE:
        return None
    if not 0 <= i < n:
        raise DatasetError(f"{what} id {i} is outside 0..{n - 1}")
    return i


def _table(value: Any, where: str) -> ClassTable:
    try:
        if isinstance(value, str):
            return ClassTable.builtin(value)
        if isinstance(value, Mapping):
            return ClassTable.from_dict(dict(value))
    except ValueError as exc:
        raise DatasetError(f"{where}: {exc}") from exc
    raise DatasetError(f"{where}: expected a built-in table name or a class table object, not {type(value).__name__}")


def _out(t: int, target: ClassTable) -> str | None:
    return None if int(t) == IGNORE else target.names[int(t)]


def _is_builtin(table: ClassTable) -> bool:
    try:
        return ClassTable.builtin(table.name) == table
    except ValueError:
        return False
