"""torchvision's ImageNet ResNet weights (no torchvision needed), fetched with core's downloader.

The file names, URLs and hash prefixes come from the model zoo table (``torchvision-resnetN``
entries of ``resources/models/zoo.json``). Files go to torch.hub's checkpoint folder (shared
with everything else that uses torch.hub) unless ``cache_dir`` is given; a copy already in the
zoo cache (``models get torchvision-resnet50``) is used as it is.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.download import DownloadError, download, drive
from core.errors import CheckpointError
from core.zoo import ZooError, cached_files, entries, entry

BASE_URL = "https://download.pytorch.org/models/"
BACKBONE_FILES = {f"resnet{e.architecture['depth']}": e.files[0].file_name
                  for e in entries() if e.source == "torchvision"}


def backbone_url(name: str) -> str:
    return BASE_URL + _file_name(name)


def fetch_backbone_weights(name: str, *, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The path of torchvision's ImageNet weights for ``name`` ("resnet18" ... "resnet152"),
    downloaded into torch.hub's checkpoint folder (or ``cache_dir``) unless already there; the
    download is resumable and checked against the file name's hash prefix. Offline, raises a
    :class:`CheckpointError` saying where to put the file by hand."""
    file_name = _file_name(name)
    e = entry(f"torchvision-{name.lower().strip()}")
    file = e.files[0]
    folder = Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    target = folder / file_name
    if target.is_file() and target.stat().st_size > 0:
        return target
    if cache_dir is None:
        try:
            cached = cached_files(e)
        except ZooError:
            cached = None
        if cached:
            return cached[0]
    url = file.url or BASE_URL + file_name
    hint = (f"Without internet, download that file on another machine and put it at {target} "
            "(or give that file's path to load_model directly)")
    try:
        steps = download(url, target, sha256=file.checksum, size=file.size, hint=hint)
        return drive(steps, desc=file_name, quiet=not progress)
    except DownloadError as exc:
        raise CheckpointError(f"could not download the ImageNet weights for {name}: {exc}") from None


def _file_name(name: str) -> str:
    key = name.lower().strip()
    if key not in BACKBONE_FILES:
        raise CheckpointError(f"no ImageNet weights known for {name!r}; known: {', '.join(BACKBONE_FILES)}")
    return BACKBONE_FILES[key]


__all__ = ["fetch_backbone_weights", "backbone_url", "BACKBONE_FILES"]
