"""PSPNet Studio's own checkpoint: a safetensors file whose metadata holds, as JSON strings,
the model config, the class table, the test protocol and the provenance. Nothing in it is
executable. Files written before the protocol was recorded have no ``protocol`` entry; the
loader then chooses one from the provenance and says so."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from safetensors.torch import save as safetensors_bytes

from core.atomic import atomic_save
from core.classes import ClassTable
from core.config import ModelConfig
from core.errors import CheckpointError
from core.inference.protocol import TestProtocol
from core.model import PSPNet
from core.weights.files import WeightFile, json_entry

FORMAT = "pspnet-studio"
FORMAT_VERSION = "1"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def save_checkpoint(path: str | Path, model: PSPNet, classes: ClassTable,
                    provenance: dict[str, Any] | None = None, protocol: TestProtocol | None = None) -> None:
    """Write ``model`` with its config, ``classes``, test ``protocol`` and ``provenance``
    (source, imported_from, training run ...; ``created`` is set to now) atomically to ``path``.

    ``protocol`` defaults to the one the model was loaded or trained with (``model.test_protocol``,
    which a copy of the model keeps), else the photo at its own size."""
    cfg: ModelConfig = model.cfg
    if protocol is None:
        protocol = getattr(model, "test_protocol", None) or TestProtocol.native()
    if len(classes) != cfg.num_classes:
        raise CheckpointError(f"{path}: not saved: the class table has {len(classes)} classes but the model "
                              f"{cfg.num_classes}")
    prov = {"source": "pspnet-studio", **(provenance or {}), "created": now_iso()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(cfg.to_dict()),
        "classes": json.dumps(classes.to_dict()),
        "protocol": json.dumps(protocol.to_dict()),
        "provenance": json.dumps(prov, default=str),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_save(path, safetensors_bytes(tensors, metadata=metadata), what="the checkpoint")  # WriteError names it


def is_ours(wf: WeightFile) -> bool:
    return wf.container == "safetensors" and wf.metadata.get("format") == FORMAT


def read_header(wf: WeightFile) -> tuple[ModelConfig, ClassTable, dict[str, Any]]:
    """The config, class table and provenance (the protocol: :func:`read_protocol`)."""
    version = wf.metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{wf.path}: PSPNet Studio checkpoint of format_version {version!r}; this version "
                              f"reads format_version {FORMAT_VERSION}")
    try:
        cfg = ModelConfig.from_dict(json_entry(wf, "config"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{wf.path}: PSPNet Studio checkpoint with an invalid config: {exc}") from None
    try:
        classes = ClassTable.from_dict(json_entry(wf, "classes"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{wf.path}: PSPNet Studio checkpoint with an invalid class table: {exc}") from None
    if len(classes) != cfg.num_classes:
        raise CheckpointError(f"{wf.path}: its class table has {len(classes)} classes but its config "
                              f"{cfg.num_classes}")
    provenance = json_entry(wf, "provenance") if "provenance" in wf.metadata else {}
    if not isinstance(provenance, dict):
        provenance = {"provenance": provenance}
    return cfg, classes, provenance


def read_protocol(wf: WeightFile) -> TestProtocol | None:
    """The recorded test protocol, or None for a file written before it was recorded."""
    if "protocol" not in wf.metadata:
        return None
    try:
        return TestProtocol.from_dict(json_entry(wf, "protocol"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{wf.path}: PSPNet Studio checkpoint with an invalid test protocol: {exc}") from None


__all__ = ["save_checkpoint", "is_ours", "read_header", "read_protocol", "FORMAT", "FORMAT_VERSION", "now_iso"]
