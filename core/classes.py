"""The class table: names and RGB colours, stored as one JSON file.

Built-in tables (ADE20K-150, VOC-21, Cityscapes-19) live in ``resources/classes/``.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
BUILTIN_DIR = RESOURCES / "classes"
IGNORE_COLOR = (0, 0, 0)  # how the ignore label (255) is drawn in palettes


@dataclass(frozen=True)
class ClassTable:
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    name: str = ""  # e.g. "ade20k"; empty for a custom table

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ValueError(f"class table has {len(self.names)} names but {len(self.colors)} colours")
        if not 1 <= len(self.names) <= 255:
            raise ValueError(f"a class table needs 1..255 classes (255 is the ignore label), not {len(self.names)}")
        for c in self.colors:
            if len(c) != 3 or any(not 0 <= int(v) <= 255 for v in c):
                raise ValueError(f"class colour {c} is not an RGB triple in 0..255")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_names(cls, names: Sequence[str], name: str = "") -> "ClassTable":
        """A table with distinct generated colours."""
        return cls(tuple(names), tuple(distinct_colors(len(names))), name)

    @classmethod
    def default(cls, n: int) -> "ClassTable":
        return cls.from_names([f"class {i}" for i in range(n)])

    @classmethod
    def builtin(cls, name: str) -> "ClassTable":
        path = BUILTIN_DIR / f"{name.lower()}.json"
        if not path.is_file():
            known = ", ".join(sorted(builtin_names())) or "none"
            raise ValueError(f"no built-in class table {name!r} (known: {known})")
        return cls.load(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClassTable":
        try:
            classes = data["classes"]
            names = tuple(str(c["name"]) for c in classes)
            colors = tuple(tuple(int(v) for v in c["color"]) for c in classes)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a class table (expected {{'classes': [{{'name', 'color'}}...]}}): {exc}") from exc
        return cls(names, colors, str(data.get("name", "")))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name,
                "classes": [{"id": i, "name": n, "color": list(c)} for i, (n, c) in enumerate(zip(self.names, self.colors))]}

    @classmethod
    def load(cls, path: str | Path) -> "ClassTable":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read class table: {exc}") from exc
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write the table atomically; :class:`~core.errors.WriteError` naming the file when the
        disk refuses (the previous file is unchanged)."""
        from core.atomic import atomic_save

        atomic_save(path, json.dumps(self.to_dict(), indent=1) + "\n", what="the class table")

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 lookup table: class colours, black elsewhere (255 = ignore)."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: len(self)] = np.asarray(self.colors, np.uint8)
        lut[255] = IGNORE_COLOR
        return lut


def builtin_names() -> list[str]:
    return [p.stem for p in BUILTIN_DIR.glob("*.json")] if BUILTIN_DIR.is_dir() else []


def distinct_colors(n: int) -> list[tuple[int, int, int]]:
    """Well separated colours (golden-ratio hues, alternating brightness), deterministic."""
    out = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        v = 0.95 if i % 2 == 0 else 0.7
        s = 0.75 if i % 3 else 0.55
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out
