"""Reading weight files safely: safetensors, or PyTorch files with ``weights_only=True`` only.

A file is recognised by its first bytes, never by its name: a text file, an empty file or a
truncated download gets a specific :class:`~core.errors.CheckpointError`, and a pickle that
would run code is refused before any of it runs. Objects of classes torch's allowlist does not
know (mmengine's ``HistoryBuffer`` in an mmseg 1.x checkpoint's ``message_hub``, numpy arrays)
are read as inert data by :mod:`core.weights.unpickle`; nothing in a file is ever called.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from torch import Tensor

from core.errors import CheckpointError
from core.weights.unpickle import InertObject, safe_load

ZIP_MAGIC = b"PK\x03\x04"  # torch.save since PyTorch 1.6
PICKLE_PROTO = b"\x80"  # the legacy torch.save format starts with a pickle protocol opcode


@dataclass
class WeightFile:
    """The tensors of one file and what came with them."""

    path: Path
    container: str  # "safetensors" or "torch"
    tensors: dict[str, Tensor]
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata
    extras: dict[str, Any] = field(default_factory=dict)  # a .pth's entries beside the state dict
    stripped_prefix: str = ""  # e.g. "module." (DataParallel) when every key had it


def read_weight_file(path: str | Path) -> WeightFile:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (an interrupted download or save?)")
    with path.open("rb") as f:
        head = f.read(9)
    if head[:4] == ZIP_MAGIC or head[:1] == PICKLE_PROTO:
        return _read_torch(path)
    if len(head) == 9 and head[8:9] == b"{":
        return _read_safetensors(path, size)
    raise CheckpointError(
        f"{path}: not a weight file: neither safetensors nor a PyTorch (torch.save) file "
        f"(it starts with {head[:8]!r})"
    )


def _read_safetensors(path: Path, size: int) -> WeightFile:
    (header_len,) = struct.unpack("<Q", path.open("rb").read(8))
    if header_len + 8 > size:
        raise CheckpointError(f"{path}: truncated safetensors file: its header alone claims {header_len} bytes "
                              f"but the file has {size}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file: {exc}") from exc
    return WeightFile(path, "safetensors", tensors, metadata=metadata)


def _read_torch(path: Path) -> WeightFile:
    try:
        obj = safe_load(path)  # torch.load(weights_only=True); unknown classes become inert placeholders
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "weights only" in text.lower() or "weightsunpickler" in text.lower():
            culprit = re.search(r"GLOBAL (\S+)", text)
            asks = f" (it asks for {culprit.group(1)})" if culprit else ""
            raise CheckpointError(
                f"{path}: refused as unsafe: loading this pickle would run code or build objects other than "
                f"tensors{asks}, so it was not loaded (torch.load with weights_only=True)"
            ) from None
        raise CheckpointError(f"{path}: corrupt PyTorch file: {text.splitlines()[0] if text else exc!r}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or truncated PyTorch file: {first}") from None
    tensors, extras = _split_state_dict(obj, path)
    tensors, prefix = _strip_common_prefix(tensors)
    return WeightFile(path, "torch", tensors, extras=extras, stripped_prefix=prefix)


def _split_state_dict(obj: Any, path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state dict of a bare ``{name: tensor}`` file or of ``{"state_dict": {...}, ...}``."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                _require_tensors(inner, path, f"its {key!r} entry")
                return dict(inner), {k: v for k, v in obj.items() if k != key}
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return dict(obj), {}
        if obj:
            _require_tensors(obj, path, "the file")
    raise CheckpointError(f"{path}: no state dict in it: expected a dict of tensors or a dict with a "
                          f"'state_dict' entry, found {_describe(obj)}")


def _require_tensors(d: Mapping, path: Path, where: str) -> None:
    bad = [str(k) for k, v in d.items() if not isinstance(v, Tensor)]
    if bad or not d:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise CheckpointError(f"{path}: no state dict in it: {where} is "
                              + (f"not all tensors (not tensors: {shown})" if bad else "empty"))


def _describe(obj: Any) -> str:
    if isinstance(obj, InertObject):
        return f"an object of class {obj.pickled_name}"
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:8]]
        return "an empty dict" if not keys else f"a dict with keys {', '.join(keys)}" + (" ..." if len(obj) > 8 else "")
    return f"a {type(obj).__name__}"


def _strip_common_prefix(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    prefix = "module."  # nn.DataParallel / DistributedDataParallel
    if tensors and all(k.startswith(prefix) for k in tensors):
        return {k[len(prefix):]: v for k, v in tensors.items()}, prefix
    return tensors, ""


def json_entry(wf: WeightFile, key: str) -> Any:
    """One JSON value of a safetensors file's metadata, with a clear error when missing or broken."""
    if key not in wf.metadata:
        raise CheckpointError(f"{wf.path}: PSPNet Studio checkpoint without its {key!r} metadata entry")
    try:
        return json.loads(wf.metadata[key])
    except ValueError as exc:
        raise CheckpointError(f"{wf.path}: PSPNet Studio checkpoint with a broken {key!r} entry: {exc}") from None


__all__ = ["WeightFile", "read_weight_file", "json_entry"]
