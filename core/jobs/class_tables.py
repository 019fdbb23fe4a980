"""Class tables for projects: the built-in ones, comparing a model's with a project's, the ids
the masks use, and a model's classifiers rebuilt for another table.

A project's masks hold class ids of the project's table; a model predicts the ids of its own.
When the two tables differ, a model's output must never be written into a mask as it is
(:func:`classes_differ`); :func:`adapt_model_job` makes a model for the project's table: a copy
whose main and auxiliary classifiers have one output per project class, keeping the trained
weights of every class the model already knows by name and starting the others new (PyTorch's
default initialisation, as ``core.load_model(classes=...)`` does for a new table). Fine-tuning
(``core.finetune_project``) then trains it on the project's masks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Generator

import numpy as np
import torch
from torch import nn

from core.classes import ClassTable, builtin_names
from core.data.io import read_label_ids
from core.errors import StudioError
from core.generators import Cancel, Progress, check_cancel
from core.jobs.models import copy_model
from core.project import CheckpointEntry, Project
from core.weights import LoadedModel

#: The built-in tables, in the order a chooser lists them, with their display names.
BUILTIN_TITLES = {"ade20k": "ADE20K", "voc": "PASCAL VOC", "cityscapes": "Cityscapes"}


def builtin_class_tables() -> list[tuple[str, str, ClassTable]]:
    """``(key, title, table)`` of every built-in class table (ADE20K-150, VOC-21, Cityscapes-19)."""
    keys = [k for k in BUILTIN_TITLES if k in builtin_names()] + sorted(set(builtin_names()) - set(BUILTIN_TITLES))
    return [(k, BUILTIN_TITLES.get(k, k), ClassTable.builtin(k)) for k in keys]


def classes_differ(a: ClassTable | None, b: ClassTable | None) -> bool:
    """Whether ids mean different classes in the two tables (names compared in order; colours
    do not matter). None (no table) differs from nothing."""
    if a is None or b is None:
        return False
    return tuple(a.names) != tuple(b.names)


def describe_difference(model: ClassTable, project: ClassTable) -> str:
    """One sentence on how a model's table differs from a project's."""
    shared = set(model.names) & set(project.names)
    if len(model) < len(project) and tuple(project.names[: len(model)]) == tuple(model.names):
        return (f"the project has {len(project) - len(model)} class(es) more than the model "
                f"({', '.join(project.names[len(model):][:5])})")
    if not shared:
        return f"the model predicts {len(model)} classes, none of which the project's {len(project)} has"
    return (f"the model predicts {len(model)} classes and the project has {len(project)}; "
            f"{len(shared)} name(s) in common, in another order or with others")


def highest_mask_id(root: str | Path, *, cancel: Cancel = None) -> Generator[Progress, None, int]:
    """The highest class id in the masks of the project folder ``root`` (255, ignore, not
    counted; -1 when no mask holds a class). A table for the project needs more classes than
    that. Masks that cannot be read are skipped."""
    masks = sorted((Path(root) / "masks").glob("*.png")) if (Path(root) / "masks").is_dir() else []
    top = -1
    for k, path in enumerate(masks):
        check_cancel(cancel)
        try:
            ids = read_label_ids(path)
        except StudioError:
            continue
        present = np.bincount(ids.ravel(), minlength=256)
        present[255] = 0
        nz = np.flatnonzero(present)
        if nz.size:
            top = max(top, int(nz[-1]))
        yield Progress(fraction=(k + 1) / len(masks), message=f"reading the masks ({k + 1}/{len(masks)})")
    return top


def _new_classifier(old: nn.Conv2d, n: int, rows: list[int | None]) -> nn.Conv2d:
    new = nn.Conv2d(old.in_channels, n, 1, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        for i, j in enumerate(rows):
            if j is not None:
                new.weight[i] = old.weight[j]
                if old.bias is not None:
                    new.bias[i] = old.bias[j]
    return new


def adapt_model(loaded: LoadedModel, classes: ClassTable) -> tuple[LoadedModel, list[str]]:
    """A copy of ``loaded`` that predicts ``classes``: its classifiers (main and auxiliary) get
    one output per class of ``classes``; a class the model knows by name keeps its trained
    weights, the others start new. The given model is not changed. Returns the new model and
    the names of the classes kept."""
    model = copy_model(loaded.model)
    known = {name: i for i, name in enumerate(loaded.classes.names)}
    rows = [known.get(name) for name in classes.names]
    for head in (model.head, model.aux_head):
        if head is not None:
            head.classifier = _new_classifier(head.classifier, len(classes), rows)
    model.cfg = dataclasses.replace(model.cfg, num_classes=len(classes))
    model.eval()
    kept = [classes.names[i] for i, j in enumerate(rows) if j is not None]
    sources = " + ".join(Path(s).name for s in (loaded.sources or [])) or str(loaded.provenance.get("source", "model"))
    note = (f"classifiers rebuilt for {len(classes)} classes from {sources}: {len(kept)} kept by name, "
            f"{len(classes) - len(kept)} new (untrained until fine-tuned)")
    provenance = {**loaded.provenance, "adapted_from": sources, "adapted_classes_kept": len(kept),
                  "adapted_classes_new": len(classes) - len(kept)}
    report = dataclasses.replace(loaded.report, notes=list(loaded.report.notes) + [note])
    out = LoadedModel(model=model, config=model.cfg, classes=classes, provenance=provenance, report=report,
                      sources=[])
    return out, kept


@dataclasses.dataclass
class AdaptedModel:
    """What :func:`adapt_model_job` returns."""

    loaded: LoadedModel  # the model for the project's classes (sources: its history file when recorded)
    kept: list[str]  # classes whose trained weights were kept
    entry: CheckpointEntry | None = None  # its place in the project's history (current), when recorded


def adapt_model_job(loaded: LoadedModel, project: Project, *, record: bool = True, cancel: Cancel = None
                    ) -> Generator[Progress, None, AdaptedModel]:
    """:func:`adapt_model` for ``project``'s class table; with ``record`` the new model joins the
    project's history as its current model (so that reopening the project loads it)."""
    yield Progress(fraction=0.0, message=f"rebuilding the classifiers for the project's {len(project.classes)} classes")
    new, kept = adapt_model(loaded, project.classes)
    check_cancel(cancel)
    out = AdaptedModel(new, kept)
    if record:
        yield Progress(fraction=0.5, message="saving the model in the project's history")
        note = new.report.notes[-1] if new.report.notes else "classifiers rebuilt for the project's classes"
        out.entry = project.add_checkpoint((new.model, project.classes), note=note)
        new.sources = [out.entry.path]
    return out


__all__ = ["BUILTIN_TITLES", "builtin_class_tables", "classes_differ", "describe_difference", "highest_mask_id",
           "adapt_model", "adapt_model_job", "AdaptedModel"]
