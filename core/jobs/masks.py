"""The masks of a project as jobs: load one for editing, save one or many, recover a crashed
session's edits, make a new project. Run off the GUI thread (saving fsyncs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Mapping, Sequence

from core.classes import ClassTable
from core.errors import StudioError
from core.generators import Cancel, Progress
from core.journal import JournalStatus
from core.labels import LabelMask
from core.project import CheckpointEntry, Project


def load_mask_job(project: Project, name: str, *, cancel: Cancel = None) -> Generator[Progress, None, LabelMask]:
    """The editable, journalled mask of image ``name`` (``UnreadableMaskError`` when unusable)."""
    yield Progress(fraction=0.0, message=f"loading the mask of {name}")
    return project.load_mask(name)


def save_mask_job(project: Project, name: str, mask: LabelMask, *,
                  cancel: Cancel = None) -> Generator[Progress, None, tuple[str, int]]:
    """Save one mask; returns (name, the revision saved). Saves even when cancelled: it is the user's work."""
    yield Progress(fraction=0.0, message=f"saving the mask of {name}")
    project.save_mask(name, mask)
    return name, mask.saved_revision


@dataclass
class SavedMasks:
    saved: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> why
    # the crash journal of each failed one when it failed (None: it had none): are the edits on disk?
    journals: dict[str, JournalStatus | None] = field(default_factory=dict)


def save_masks_job(project: Project, masks: Mapping[str, LabelMask], close: bool = False, *,
                   cancel: Cancel = None) -> Generator[Progress, None, SavedMasks]:
    """Save every mask with unsaved changes (never skipped on cancel); ``close``: then let the
    project forget each saved one (leaving a project). A failure is reported, not raised: that
    mask stays dirty in memory (and in its crash journal, while the journal can be written:
    ``Project.journal_status``)."""
    out = SavedMasks()
    items = list(masks.items())
    for k, (name, mask) in enumerate(items):
        if mask.dirty:
            try:
                project.save_mask(name, mask)
            except (StudioError, OSError) as exc:
                out.failed[name] = str(exc)
                out.journals[name] = project.journal_status(name)
            else:
                out.saved.append(name)
        if close and name not in out.failed:
            project.close_mask(name)
        yield Progress(fraction=(k + 1) / len(items), message=f"saved the mask of {name}")
    return out


@dataclass
class Recovery:
    recovered: dict[str, LabelMask] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def recoverable_job(project: Project, *, cancel: Cancel = None) -> Generator[Progress, None, list[str]]:
    """The images whose crash journals hold edits their saved masks lack."""
    yield Progress(fraction=0.0, message="looking for unsaved edits of an earlier session")
    return project.recoverable()


def recover_job(project: Project, names: Sequence[str], recover: bool, *,
                cancel: Cancel = None) -> Generator[Progress, None, Recovery]:
    """Recover the journalled edits of ``names`` (they become unsaved edits), or with ``recover``
    False set their journals aside."""
    out = Recovery()
    for k, name in enumerate(names):
        if not recover:
            project.discard_journal(name)
        else:
            try:
                result = project.recover(name)
            except StudioError as exc:
                out.failed[name] = str(exc)
            else:
                out.recovered[name] = result.mask
                if result.note:
                    out.notes.append(result.note)
        yield Progress(fraction=(k + 1) / max(1, len(names)))
    return out


def create_project_job(root: Path, classes: ClassTable, images: Sequence[Path], *,
                       cancel: Cancel = None) -> Generator[Progress, None, Path]:
    """A new project folder holding copies of ``images`` (each is checked first; nothing is
    copied when one cannot be read), closed again (open it to work in it)."""
    yield Progress(fraction=0.0, message=f"making the project {Path(root).name}")
    project = Project.create(root, classes)
    try:
        if images:
            project.add_images(images)
    finally:
        project.close()  # the lock goes now, not when this object is collected: the caller opens it next
    return project.root


def close_project_job(project: Project, *, cancel: Cancel = None) -> Generator[Progress, None, None]:
    """Close a project (its journals are written out, its lock is given back): queue it after the
    project's last save. Never skipped on cancel."""
    yield Progress(fraction=0.0, message=f"closing the project {project.name}")
    project.close()


def restore_model_job(project: Project, entry_id: str, device: Any = None, *, cancel: Cancel = None
                      ) -> Generator[Progress, None, tuple[CheckpointEntry, Any]]:
    """Make an earlier model of the history the current one: ``Project.restore_model`` loads it
    (safely, checking it predicts the project's classes) before anything changes, so a damaged
    checkpoint raises CheckpointError and leaves the history as it was. Returns ``(entry,
    core.LoadedModel)``. Loads the model: run it in a worker."""
    yield Progress(fraction=0.0, message=f"loading model {entry_id} of the history")
    return project.restore_model(entry_id, device)
