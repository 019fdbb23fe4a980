"""torchvision's ImageNet ResNet weights, through torch.hub's cache (no torchvision needed)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from core.errors import CheckpointError

BASE_URL = "https://download.pytorch.org/models/"
BACKBONE_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "resnet101": "resnet101-63fe2227.pth",
    "resnet152": "resnet152-394f9c45.pth",
}


def backbone_url(name: str) -> str:
    return BASE_URL + _file_name(name)


def fetch_backbone_weights(name: str, *, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The path of torchvision's ImageNet weights for ``name`` ("resnet18" ... "resnet152"),
    downloaded into torch.hub's checkpoint folder (or ``cache_dir``) unless already there.
    Offline, raises a :class:`CheckpointError` saying where to put the file by hand."""
    file_name = _file_name(name)
    folder = Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    target = folder / file_name
    if target.is_file() and target.stat().st_size > 0:
        return target
    url = BASE_URL + file_name
    hash_prefix = re.search(r"-([a-f0-9]+)\.pth$", file_name).group(1)  # type: ignore[union-attr]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # downloads to a temporary file and moves it in place only when complete and its hash checks
        torch.hub.download_url_to_file(url, str(target), hash_prefix=hash_prefix, progress=progress)
    except Exception as exc:  # URLError, HTTPError, timeouts, hash mismatch, full disk ...
        raise CheckpointError(
            f"could not download the ImageNet weights for {name} from {url} ({type(exc).__name__}: {exc}). "
            f"Without internet, download that file on another machine and put it at {target} "
            f"(or give that file's path to load_model directly)"
        ) from None
    return target


def _file_name(name: str) -> str:
    key = name.lower().strip()
    if key not in BACKBONE_FILES:
        raise CheckpointError(f"no ImageNet weights known for {name!r}; known: {', '.join(BACKBONE_FILES)}")
    return BACKBONE_FILES[key]


__all__ = ["fetch_backbone_weights", "backbone_url", "BACKBONE_FILES"]
