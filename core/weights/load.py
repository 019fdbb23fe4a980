"""``load_model``: any supported weight file (or CSAIL pair) -> a ready model with its config,
class table and a report of what came from the file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from core.classes import ClassTable, distinct_colors
from core.errors import CheckpointError
from core.inference.protocol import TestProtocol
from core.model import PSPNet
from core.weights import arch
from core.weights.files import WeightFile, read_weight_file
from core.weights.formats import CSAIL, ForeignFormat, Mapped, detect, first, map_keys
from core.weights.ours import is_ours, now_iso, read_header, read_protocol
from core.weights.report import LoadedModel, LoadReport

DEFAULT_NUM_CLASSES = 150  # ADE20K, the paper's main benchmark: heads of a backbone-only file without num_classes
_BUILTIN_BY_COUNT = {150: "ade20k", 21: "voc", 19: "cityscapes"}  # what semseg / CSAIL models are trained on


def load_model(source: str | Path | Sequence[str | Path], *, num_classes: int | None = None,
               device: str | torch.device | None = None, classes: ClassTable | None = None) -> LoadedModel:
    """Read a checkpoint of any supported format and return the model in eval mode on ``device``
    (the CPU when None).

    ``source`` is one path, or two for a CSAIL encoder + decoder (either order). With
    ``num_classes`` (or ``classes``) differing from the file, the classifiers are new; for an
    ImageNet backbone file all heads are new, for ``num_classes`` classes (150 when not given).
    The test protocol (how to run the model on a photo) comes from the file: ours records it;
    a foreign file gets its source's own (by data set, as far as the file tells). It is on the
    result (``protocol``) and on the model (``model.test_protocol``, which copies keep).

    Raises :class:`CheckpointError` for anything it cannot read, before building anything."""
    paths = _as_paths(source)
    if classes is not None:
        if num_classes is None:
            num_classes = len(classes)
        elif num_classes != len(classes):
            raise CheckpointError(f"num_classes={num_classes} but the class table given has {len(classes)} classes")
    if num_classes is not None and num_classes < 1:
        raise CheckpointError(f"num_classes must be >= 1, not {num_classes}")
    files = [read_weight_file(p) for p in paths]
    where = _where(paths)
    if any(is_ours(f) for f in files):
        if len(files) > 1:
            raise CheckpointError(f"{where}: a PSPNet Studio checkpoint is a single file; give it alone")
        model, file_classes, provenance, report, protocol = _load_ours(files[0], num_classes)
    else:
        model, file_classes, provenance, report, protocol = _load_foreign(files, where, num_classes)
    table = _resolve_classes(classes, file_classes, model.cfg.num_classes, report.notes)
    model.to(torch.device(device) if device is not None else torch.device("cpu")).eval()
    model.test_protocol = protocol
    return LoadedModel(model, model.cfg, table, provenance, report, paths, protocol)


def load_backbone(model: PSPNet, source: str | Path | Sequence[str | Path]) -> LoadReport:
    """Fill only ``model.backbone`` from any supported file (an ImageNet ResNet, or the backbone
    of a full checkpoint), e.g. to start training a model built from a config. The pyramid and
    heads are left as they are. Refuses when the backbone's names or shapes do not fit."""
    paths = _as_paths(source)
    where = _where(paths)
    files = [read_weight_file(p) for p in paths]
    if any(is_ours(f) for f in files):
        if len(files) > 1:
            raise CheckpointError(f"{where}: a PSPNet Studio checkpoint is a single file; give it alone")
        tensors, name_of, fmt_name, dropped = files[0].tensors, str, "pspnet-studio", []
    else:
        mapped = _map_files(files, where)
        tensors, name_of, fmt_name, dropped = mapped.tensors, _namer(mapped), mapped.fmt.name, mapped.dropped
    prefix = "backbone."
    backbone = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not backbone:
        raise CheckpointError(f"{where}: no backbone weights in this {fmt_name} file")
    problems = arch.fit_problems(model.backbone.state_dict(), backbone, name_of=lambda k: name_of(prefix + k))
    if problems:
        raise CheckpointError(f"{where}: the {fmt_name} backbone does not fit this model's "
                              f"({arch.describe(model.cfg)}): " + "; ".join(problems))
    with torch.no_grad():
        model.backbone.load_state_dict(backbone, strict=False)
    notes = ["only the backbone was taken; the pyramid and the heads keep their weights"]
    if dropped:
        notes.append(f"not used: {first(dropped)}")
    return LoadReport(fmt_name, [prefix + k for k in backbone], [], notes)


# --- the two kinds of file -------------------------------------------------------------------------


def _load_ours(wf: WeightFile, num_classes: int | None):
    cfg, file_classes, provenance = read_header(wf)
    notes: list[str] = []
    fresh: Callable[[str], bool] = lambda k: False
    if num_classes is not None and num_classes != cfg.num_classes:
        notes.append(f"the file has {cfg.num_classes} classes; its classifiers were replaced by new ones for "
                     f"{num_classes}")
        cfg = dataclasses.replace(cfg, num_classes=num_classes)
        fresh = arch.CLASSIFIERS.__contains__
    asm = arch.assemble(cfg, wf.tensors, where=str(wf.path), fmt="pspnet-studio", fresh=fresh)
    _note_counters(asm, notes)
    protocol = read_protocol(wf)
    if protocol is None:
        protocol, note = _older_protocol(provenance, cfg.num_classes)
        notes.append(note)
    report = LoadReport("pspnet-studio", asm.loaded, asm.reinitialised, notes)
    return asm.model, file_classes, provenance, report, protocol


def _load_foreign(files: list[WeightFile], where: str, num_classes: int | None):
    mapped = _map_files(files, where)
    fmt = mapped.fmt
    name_of = _namer(mapped)
    extras: dict[str, Any] = {}
    for wf in files:
        extras.update(wf.extras)
    told = fmt.config_fields(extras)  # what the file's own metadata says over the format's assumption
    defaults = {**fmt.defaults, **told[0]} if told else fmt.defaults
    cfg = arch.infer_config(mapped.tensors, defaults, where=where, fmt=fmt.name, name_of=name_of,
                            backbone_only=fmt.backbone_only, depths=fmt.depths)
    notes = [fmt.assumption] + ([told[1]] if told else [])
    for wf in files:
        if wf.stripped_prefix:
            notes.append(f"{wf.path.name}: removed the {wf.stripped_prefix!r} prefix of every key "
                         "(saved from a DataParallel model)")
    if mapped.dropped:
        notes.append(f"not used: {first(mapped.dropped)}" + (" (the ImageNet classifier)"
                                                              if all(k.startswith("fc.") for k in mapped.dropped)
                                                              else ""))
    ignored = sorted(k for k in extras if k != "meta")
    if ignored:
        notes.append(f"ignored the file's {', '.join(map(str, ignored))} entries (training state, not weights)")
    file_n = cfg.num_classes
    if fmt.backbone_only:
        n = num_classes if num_classes is not None else DEFAULT_NUM_CLASSES
        if num_classes is None:
            notes.append(f"an ImageNet backbone has no segmentation heads: built them new for {n} classes "
                         f"(pass num_classes to choose)")
        if not any(k.startswith("fc.") for k in mapped.dropped) and fmt.name == "semseg-resnet-init":
            notes.append("the file has no ImageNet classifier (fc): if it is a CSAIL encoder, pass its decoder too "
                         "to load the trained heads")
        cfg = dataclasses.replace(cfg, num_classes=n)
        fresh: Callable[[str], bool] = lambda k: not k.startswith("backbone.")
    elif num_classes is not None and num_classes != file_n:
        notes.append(f"the file has {file_n} classes; its classifiers were replaced by new ones for {num_classes}")
        cfg = dataclasses.replace(cfg, num_classes=num_classes)
        fresh = arch.CLASSIFIERS.__contains__
    else:
        fresh = lambda k: False
    asm = arch.assemble(cfg, mapped.tensors, where=where, fmt=fmt.name, name_of=name_of, fresh=fresh)
    _note_counters(asm, notes)
    keeps_classes = not fmt.backbone_only and cfg.num_classes == file_n
    file_classes = _foreign_classes(fmt, extras, file_n, notes) if keeps_classes else None
    provenance: dict[str, Any] = {"source": where, "imported_from": fmt.name, "imported": now_iso()}
    if isinstance(extras.get("epoch"), int):
        provenance["epoch"] = extras["epoch"]
    protocol, note = fmt.protocol(extras, file_n)
    notes.append(note)
    return (asm.model, file_classes, provenance, LoadReport(fmt.name, asm.loaded, asm.reinitialised, notes),
            protocol)


def _map_files(files: list[WeightFile], where: str) -> Mapped:
    merged: dict[str, torch.Tensor] = {}
    for wf in files:
        for key, value in wf.tensors.items():
            if key in merged:
                raise CheckpointError(f"{where}: {key} is in more than one of the files: give one checkpoint, or a "
                                      "CSAIL encoder and its decoder")
            merged[key] = value
    fmt = detect(merged, where)
    if len(files) > 2 or (len(files) == 2 and fmt is not CSAIL):
        raise CheckpointError(f"{where}: {len(files)} files were given and they hold a {fmt.name} checkpoint; "
                              "only CSAIL's encoder + decoder come as two files, anything else as one")
    return map_keys(fmt, merged, where)


# --- helpers ---------------------------------------------------------------------------------------


def _older_protocol(provenance: dict[str, Any], num_classes: int) -> tuple[TestProtocol, str]:
    """A protocol for one of our files written before protocols were recorded."""
    from core.weights.formats import FORMATS

    imported = provenance.get("imported_from") or provenance.get("converted_format")
    fmt = next((f for f in FORMATS if f.name == imported), None)
    if fmt is not None:
        protocol, how = fmt.protocol({}, num_classes)
        return protocol, f"the file records no test protocol (an older file); it was imported from {imported}: {how}"
    train = provenance.get("train_config")
    crop = train.get("crop") if isinstance(train, dict) else None
    if isinstance(crop, int) and crop > 0:
        return (TestProtocol.for_training(crop, None, flip=bool(train.get("flip", True))),
                f"the file records no test protocol (an older file): used its training's crop {crop} on the image at "
                "its own size")
    return (TestProtocol.native(), "the file records no test protocol (an older file): the image at its own size, "
                                   "whole, one scale")


def _foreign_classes(fmt: ForeignFormat, extras: dict[str, Any], n: int, notes: list[str]) -> ClassTable | None:
    named = fmt.class_names(extras)
    if named is not None:
        names, palette = named
        if len(names) == n:
            colors = _palette(palette, n) or distinct_colors(n)
            return ClassTable(tuple(names), tuple(colors))
        notes.append(f"the file's meta names {len(names)} classes but its classifier has {n}; names not used")
    builtin = _BUILTIN_BY_COUNT.get(n)
    if builtin is not None:
        try:
            table = ClassTable.builtin(builtin)
        except ValueError:
            return None
        if len(table) == n:
            notes.append(f"the file has no class names; {n} classes taken to be {builtin} (pass classes= otherwise)")
            return table
    return None


def _palette(palette: Any, n: int) -> list[tuple[int, int, int]] | None:
    try:
        colors = [tuple(int(v) for v in c) for c in palette]
    except (TypeError, ValueError):
        return None
    ok = len(colors) == n and all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in colors)
    return colors if ok else None  # type: ignore[return-value]


def _resolve_classes(given: ClassTable | None, from_file: ClassTable | None, n: int, notes: list[str]) -> ClassTable:
    if given is not None:
        return given
    if from_file is not None and len(from_file) == n:
        return from_file
    if from_file is not None:
        notes.append(f"the file's class table has {len(from_file)} classes and the model now {n}: named them "
                     f"'class 0' .. 'class {n - 1}' (pass classes= to name them)")
    return ClassTable.default(n)


def _note_counters(asm: arch.Assembly, notes: list[str]) -> None:
    if asm.missing_counters:
        notes.append(f"the file has no BatchNorm num_batches_tracked counters ({len(asm.missing_counters)}); "
                     "set to 0 (they do not affect the outputs)")


def _namer(mapped: Mapped) -> Callable[[str], str]:
    return lambda k: mapped.origin.get(k, k)


def _as_paths(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        return [Path(source)]
    paths = [Path(s) for s in source]
    if not paths:
        raise CheckpointError("no checkpoint file given")
    return paths


def _where(paths: list[Path]) -> str:
    return " + ".join(str(p) for p in paths)


__all__ = ["load_model", "load_backbone", "DEFAULT_NUM_CLASSES"]
