"""The model zoo: pretrained PSPNets (and ImageNet backbones) people can fetch, and their cache.

The table is data, ``resources/models/zoo.json``: per entry its name, source, data set and
classes, architecture, published results with their protocol, files (URL, size, SHA-256 or the
published prefix, what the file must read as), licence and where each fact was taken from.
``null`` means the source publishes no such figure.

- :func:`entries` / :func:`entry`: the table.
- :func:`fetch`: a generator (progress records, cancel flag) that downloads an entry's files
  into the cache, resumable and checked, each moved in place only once it checks.
- :func:`install`: the same checks for files downloaded by hand (``models get NAME --file``),
  copied into the cache atomically.
- :func:`cached_files`: the entry's files when they are all in the cache (torchvision's also
  in torch.hub's own cache), else None.

What a file is checked against: its size when published, its SHA-256 (full or the published
prefix) when published, and otherwise what it must read as (``expect``: format, depth, class
count), read by the same safe reader as every checkpoint (:mod:`core.weights.files`). The cache
lives in ``<app data>/models/<entry name>/`` (:func:`core.paths.app_data_dir`, moved by
``PSPNET_STUDIO_HOME``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.download import (CancelFlag, DownloadError, DownloadProgress, _check_cancel, check_digest, download,
                           sha256_of, with_position)
from core.errors import StudioError
from core.paths import app_data_dir

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ZOO_FILE = RESOURCES / "models" / "zoo.json"
COPY_CHUNK = 1024 * 1024


class ZooError(StudioError):
    """An unknown zoo entry, one that cannot be fetched directly, or a file that is not the entry's."""


@dataclass(frozen=True)
class ZooFile:
    role: str  # "checkpoint", or "encoder" / "decoder" for CSAIL's pairs
    file_name: str
    url: str | None  # None: only on a file-sharing page (download "manual")
    size: int | None = None  # bytes, when the source publishes it
    size_mb: float | None = None  # the source's rounded figure
    sha256: str | None = None
    sha256_prefix: str | None = None
    expect: Mapping[str, Any] = field(default_factory=dict)  # what the file must read as
    path_on_page: str | None = None

    @property
    def checksum(self) -> str | None:
        """The full SHA-256, else the published prefix, else None."""
        return self.sha256 or self.sha256_prefix


@dataclass(frozen=True)
class Result:
    metric: str  # "mIoU", "top-1 accuracy"
    value: float
    protocol: str  # "single-scale", "multi-scale+flip", ...
    detail: str = ""


@dataclass(frozen=True)
class ZooEntry:
    name: str
    title: str
    source: str
    dataset: str
    num_classes: int
    class_table: str | None  # a built-in class table name (ade20k, voc, cityscapes) or None
    task: str  # "segmentation" or "backbone" (an ImageNet initialisation for training)
    architecture: Mapping[str, Any]
    results: tuple[Result, ...]
    files: tuple[ZooFile, ...]
    download: str  # "direct" or "manual"
    page: str | None
    licence: str
    how_to_get: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def downloadable(self) -> bool:
        return self.download == "direct" and all(f.url for f in self.files)

    @property
    def url(self) -> str | None:
        return self.files[0].url if self.files else None

    def result(self, protocol_prefix: str) -> Result | None:
        """The first result whose protocol starts with ``protocol_prefix`` ("single", "multi")."""
        return next((r for r in self.results if r.protocol.startswith(protocol_prefix)), None)

    @property
    def size(self) -> int | None:
        """Bytes of all files, when every size is published."""
        sizes = [f.size for f in self.files]
        return sum(sizes) if sizes and all(s is not None for s in sizes) else None  # type: ignore[misc]

    @property
    def size_mb(self) -> float | None:
        if self.size is not None:
            return self.size / 1e6
        sizes = [f.size_mb for f in self.files]
        return round(sum(sizes), 1) if sizes and all(s is not None for s in sizes) else None  # type: ignore[misc]

    def to_json(self, cache: Path | None = None) -> dict[str, Any]:
        """The table's record, plus ``url`` / ``urls`` and where the files are when cached."""
        paths = cached_files(self, cache)
        return {**self.raw, "url": self.url, "urls": [f.url for f in self.files],
                "cached": paths is not None, "paths": [str(p) for p in paths] if paths else None,
                "cache_paths": [str(p) for p in target_paths(self, cache)]}


# --- the table -------------------------------------------------------------------------------------


def entries(path: str | Path | None = None) -> list[ZooEntry]:
    """Every entry of the zoo table (``resources/models/zoo.json`` unless ``path``)."""
    return list(_load(str(Path(path) if path else ZOO_FILE)))


def entry(name: str | ZooEntry, path: str | Path | None = None) -> ZooEntry:
    """The entry called ``name``; an unknown name names the closest ones."""
    if isinstance(name, ZooEntry):
        return name
    table = entries(path)
    for e in table:
        if e.name == name.strip().lower():
            return e
    names = [e.name for e in table]
    close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else "see `python main.py models list`"
    raise ZooError(f"no model {name!r} in the zoo: {hint}")


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[ZooEntry, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return tuple(_parse(m) for m in data["models"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ZooError(f"{path}: the model zoo table is unreadable: {type(exc).__name__}: {exc}") from None


def _parse(m: Mapping[str, Any]) -> ZooEntry:
    files = tuple(ZooFile(role=f["role"], file_name=f["file_name"], url=f.get("url"), size=f.get("size"),
                          size_mb=f.get("size_mb"), sha256=f.get("sha256"), sha256_prefix=f.get("sha256_prefix"),
                          expect=dict(f.get("expect") or {}), path_on_page=f.get("path_on_page"))
                  for f in m["files"])
    results = tuple(Result(r["metric"], float(r["value"]), r["protocol"], r.get("detail", ""))
                    for r in m.get("results", []))
    classes = m["classes"]
    return ZooEntry(name=m["name"], title=m["title"], source=m["source"], dataset=m["dataset"],
                    num_classes=int(classes["count"]), class_table=classes.get("table"), task=m["task"],
                    architecture=dict(m["architecture"]), results=results, files=files, download=m["download"],
                    page=m.get("page"), licence=m["licence"], how_to_get=m.get("how_to_get"), raw=dict(m))


# --- the cache -------------------------------------------------------------------------------------


def cache_dir(cache: str | Path | None = None) -> Path:
    """Where fetched models live: ``<app data>/models`` (or ``cache``)."""
    return Path(cache) if cache is not None else app_data_dir() / "models"


def target_paths(e: ZooEntry | str, cache: str | Path | None = None) -> list[Path]:
    """Where the entry's files go in the cache (whether or not they are there)."""
    e = entry(e)
    return [cache_dir(cache) / e.name / f.file_name for f in e.files]


def cached_files(e: ZooEntry | str, cache: str | Path | None = None) -> list[Path] | None:
    """The entry's files when all of them are cached, else None. torchvision's ImageNet files
    also count when torch.hub already has them (same file names, same checks)."""
    e = entry(e)
    found = []
    for f, target in zip(e.files, target_paths(e, cache)):
        if _nonempty(target):
            found.append(target)
        elif (hub := _torch_hub_file(e, f)) is not None:
            found.append(hub)
        else:
            return None
    return found


def _nonempty(p: Path) -> bool:
    try:
        return p.is_file() and p.stat().st_size > 0
    except OSError:
        return False


def _torch_hub_file(e: ZooEntry, f: ZooFile) -> Path | None:
    if e.source != "torchvision":
        return None
    try:
        import torch.hub

        p = Path(torch.hub.get_dir()) / "checkpoints" / f.file_name
    except Exception:  # noqa: BLE001 - torch's hub folder is only a second place to look
        return None
    return p if _nonempty(p) else None


# --- fetching --------------------------------------------------------------------------------------


def fetch(name: ZooEntry | str, *, cache: str | Path | None = None, cancel: CancelFlag = None, retries: int = 3,
          backoff: float = 1.0, timeout: float = 30.0) -> Generator[DownloadProgress, None, list[Path]]:
    """Download the entry's files into the cache (those already there are checked, not fetched
    again); yields :class:`~core.download.DownloadProgress`, returns the files' paths.
    Raises :class:`ZooError` for an entry that cannot be fetched directly and
    :class:`~core.download.DownloadError` (one line: the URL and where to put the file by hand)."""
    e = entry(name)
    if not e.downloadable and cached_files(e, cache) is None:
        raise ZooError(f"{e.name}: {_manual_sentence(e)}")
    out: list[Path] = []
    for i, (f, target) in enumerate(zip(e.files, target_paths(e, cache))):
        existing = target if _nonempty(target) else _torch_hub_file(e, f)
        if existing is not None:
            yield with_position(DownloadProgress(f.url or "", existing, existing.stat().st_size, None,
                                                 stage="verify"), i, len(e.files), e.name)
            try:
                verify(e, f, existing, cancel=cancel)
            except StudioError as exc:
                raise ZooError(f"{exc} (it was found at {existing}; delete it to download the published file)") from None
            out.append(existing)
            continue
        assert f.url is not None
        check = None if f.checksum else (lambda p, f=f: check_contents(e, f, p))
        steps = download(f.url, target, sha256=f.checksum, size=f.size, check=check, cancel=cancel,
                         retries=retries, backoff=backoff, timeout=timeout, hint=_offline_hint(e, f, target))
        path = yield from _numbered(steps, i, len(e.files), e.name)
        out.append(path)
    return out


def install(name: ZooEntry | str, sources: Sequence[str | Path], *, cache: str | Path | None = None,
            cancel: CancelFlag = None) -> Generator[DownloadProgress, None, list[Path]]:
    """Check files downloaded by hand and copy them into the cache (atomically: a temp file
    in the cache folder, checked, then moved in place). Each source is matched to one of the
    entry's files by name, else by what it reads as. A file that does not check is refused and
    nothing changes. Returns the entry's cached files (None where one is still missing)."""
    e = entry(name)
    given = [Path(s).expanduser() for s in sources]
    for s in given:
        if not s.is_file():
            raise ZooError(f"{s}: no such file")
    if len(given) > len(e.files):
        raise ZooError(f"{e.name} has {len(e.files)} file(s) ({', '.join(f.file_name for f in e.files)}); "
                       f"{len(given)} were given")
    pairs = _match_files(e, given, cancel)
    targets = dict(zip((f.file_name for f in e.files), target_paths(e, cache)))
    for n, (f, source) in enumerate(pairs):
        target = targets[f.file_name]
        total = source.stat().st_size
        if target.exists() and _same_file(source, target):
            yield with_position(DownloadProgress(str(source), target, total, total, stage="verify"), n, len(pairs),
                                e.name)
            verify(e, f, target, cancel=cancel)
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ZooError(f"cannot create the folder {target.parent}: {exc.strerror or exc}") from None
        yield from _copy_checked(e, f, source, target, cancel, n, len(pairs))
    return [t if _nonempty(t) else None for t in target_paths(e, cache)]  # type: ignore[misc]


def _copy_checked(e: ZooEntry, f: ZooFile, source: Path, target: Path, cancel: CancelFlag, n: int, count: int
                  ) -> Generator[DownloadProgress, None, None]:
    total = source.stat().st_size
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        done = 0
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            while chunk := src.read(COPY_CHUNK):
                _check_cancel(cancel)
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                yield with_position(DownloadProgress(str(source), target, done, total), n, count, e.name)
            out.flush()
            os.fsync(out.fileno())
        yield with_position(DownloadProgress(str(source), target, done, total, stage="verify"), n, count, e.name)
        _check_size(f, done, str(source))
        check_digest(h.hexdigest(), f.checksum, str(source))
        if not f.checksum:
            check_contents(e, f, tmp, where=str(source))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    yield with_position(DownloadProgress(str(source), target, done, total, stage="done"), n, count, e.name)


def _match_files(e: ZooEntry, given: list[Path], cancel: CancelFlag) -> list[tuple[ZooFile, Path]]:
    """Pair each given file with one of the entry's files: same name, else the only file, else
    the one whose checks it passes."""
    free = list(e.files)
    pairs: list[tuple[ZooFile, Path]] = []
    unnamed = []
    for s in given:
        named = next((f for f in free if f.file_name == s.name), None)
        if named is not None:
            free.remove(named)
            pairs.append((named, s))
        else:
            unnamed.append(s)
    for s in unnamed:
        if len(free) == 1 and len(e.files) == 1:
            pairs.append((free.pop(), s))
            continue
        fits = []
        for f in free:
            try:
                verify(e, f, s, cancel=cancel)
                fits.append(f)
            except StudioError:
                continue
        if not fits:
            raise ZooError(f"{s}: it is none of {e.name}'s files ({', '.join(f.file_name for f in free)})")
        free.remove(fits[0])
        pairs.append((fits[0], s))
    return pairs


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _numbered(steps: Generator[DownloadProgress, None, Path], i: int, n: int, name: str
              ) -> Generator[DownloadProgress, None, Path]:
    while True:
        try:
            p = next(steps)
        except StopIteration as stop:
            return stop.value
        yield with_position(p, i, n, name)


# --- checks ----------------------------------------------------------------------------------------


def verify(e: ZooEntry | str, f: ZooFile, path: str | Path, *, cancel: CancelFlag = None) -> None:
    """Check a file against the entry's published size and checksum, or, without a checksum,
    against what it must read as. Raises a :class:`StudioError` naming the file and the problem."""
    e, path = entry(e), Path(path)
    _check_size(f, path.stat().st_size, str(path))
    if f.checksum:
        check_digest(sha256_of(path, cancel=cancel), f.checksum, str(path))
    else:
        check_contents(e, f, path)


def _check_size(f: ZooFile, size: int, where: str) -> None:
    if f.size is not None and size != f.size:
        raise DownloadError(f"{where}: not the published file: {size} bytes, the published file has {f.size}")


def check_contents(e: ZooEntry | str, f: ZooFile, path: str | Path, *, where: str | None = None) -> None:
    """Read the file (safely) and check it is what ``f.expect`` says: its format (as
    :mod:`core.weights.formats` detects it), depth and class count."""
    from core.errors import CheckpointError
    from core.weights import arch
    from core.weights.files import read_weight_file
    from core.weights.formats import detect, map_keys

    e, path = entry(e), Path(path)
    where = where or str(path)
    expect = dict(f.expect)
    want_format = expect.get("format")
    try:
        wf = read_weight_file(path)
    except CheckpointError as exc:
        raise ZooError(f"not {e.name}'s {f.role} file: {_strip_path(str(exc), path, where)}") from None
    if want_format == "csail-decoder":
        _check_csail_decoder(e, f, wf.tensors, where)
        return
    try:
        fmt = detect(wf.tensors, where)
        if fmt.name != want_format:
            raise ZooError(f"{where}: not {e.name}'s {f.role} file: it reads as a {fmt.name} checkpoint, "
                           f"{e.name} is a {want_format} one")
        mapped = map_keys(fmt, wf.tensors, where)
        cfg = arch.infer_config(mapped.tensors, fmt.defaults, where=where, fmt=fmt.name,
                                backbone_only=fmt.backbone_only, depths=fmt.depths)
    except CheckpointError as exc:
        raise ZooError(f"not {e.name}'s {f.role} file: {_strip_path(str(exc), path, where)}") from None
    problems = []
    if "depth" in expect and cfg.depth != expect["depth"]:
        problems.append(f"a ResNet-{cfg.depth}, not the expected ResNet-{expect['depth']}")
    if "num_classes" in expect and not fmt.backbone_only and cfg.num_classes != expect["num_classes"]:
        problems.append(f"{cfg.num_classes} classes, not the expected {expect['num_classes']}")
    if problems:
        raise ZooError(f"{where}: not {e.name}'s {f.role} file: it holds " + " and ".join(problems))


def _check_csail_decoder(e: ZooEntry, f: ZooFile, t: Mapping[str, Any], where: str) -> None:
    expect = f.expect
    if any(k.startswith(("layer1.", "layer4.", "conv1.")) for k in t) or "conv_last.4.weight" not in t:
        raise ZooError(f"{where}: not {e.name}'s decoder file: no CSAIL ppm_deepsup decoder in it "
                       "(expected conv_last.*, cbr_deepsup.*, ppm.*)")
    n = int(t["conv_last.4.weight"].shape[0])
    c = int(t["ppm.0.1.weight"].shape[1]) if "ppm.0.1.weight" in t else None
    head = int(t["conv_last.0.weight"].shape[0]) if "conv_last.0.weight" in t else None
    problems = []
    if "num_classes" in expect and n != expect["num_classes"]:
        problems.append(f"{n} classes, not the expected {expect['num_classes']}")
    # the encoder's width (fc_dim) relative to the 512-channel head tells an R-18 decoder from an R-50/101 one
    if "in_channels" in expect and (c is None or head is None or c * 512 != expect["in_channels"] * head):
        problems.append(f"a pyramid on {c} channels for a head of {head}, where this model has "
                        f"{expect['in_channels']} for 512")
    if problems:
        raise ZooError(f"{where}: not {e.name}'s decoder file: it holds " + " and ".join(problems))


def _strip_path(text: str, path: Path, where: str) -> str:
    return text.replace(str(path), where)


# --- words -----------------------------------------------------------------------------------------


def _manual_sentence(e: ZooEntry) -> str:
    how = e.how_to_get or f"download its files from {e.page} and give them to `models get {e.name} --file FILE`"
    return f"its files are on a file-sharing page and cannot be fetched directly: {how} (page: {e.page})"


def _offline_hint(e: ZooEntry, f: ZooFile, target: Path) -> str:
    files = " ".join(f"--file {x.file_name}" for x in e.files)
    return (f"Without internet: download that file on a machine that has it and put it at {target}, or run "
            f"`python main.py models get {e.name} {files}`, which checks it and copies it there")


def describe_size(e: ZooEntry) -> str:
    if e.size is not None:
        return f"{e.size / 1e6:.1f} MB"
    mb = e.size_mb
    return "not published" if mb is None else f"{mb:g} MB"


# the names core/__init__.py exports (``core.zoo_entries()`` reads better than ``core.entries()``)
zoo_entries, zoo_entry, fetch_model, install_model_files = entries, entry, fetch, install
cached_model_files, model_cache_dir = cached_files, cache_dir

__all__ = ["ZooEntry", "ZooFile", "Result", "ZooError", "entries", "entry", "cache_dir", "target_paths",
           "cached_files", "fetch", "install", "verify", "check_contents", "describe_size",
           "zoo_entries", "zoo_entry", "fetch_model", "install_model_files", "cached_model_files", "model_cache_dir"]
