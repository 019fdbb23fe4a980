"""Getting a pretrained model from the zoo into the cache, off the GUI thread.

:class:`ModelFetcher` runs ``core.fetch_model`` (a download: resumable, checked, atomic) and
``core.install_model_files`` (files the user downloaded by hand: checked, then copied into the
cache) on a runner of its own, so that a download never waits behind a retrain. Each is one
:class:`~app.workers.Task` at a time: ``progress`` carries ``core.DownloadProgress``, the task's
result is the cached files. :func:`what_to_do` turns a failure into words a user can act on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PySide6.QtCore import QObject

import core
from app.workers import Task, TaskRunner

ADVICE_MARK = ". Without internet"  # where core's download errors start their advice for the command line


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def progress_text(p: core.DownloadProgress) -> str:
    """'file 1 of 2, encoder_epoch_20.pth: 12.3 of 45.6 MB' and the like."""
    which = f"file {p.index + 1} of {p.count}, " if p.count > 1 else ""
    name = Path(p.target).name
    if p.stage == "verify":
        return f"{which}{name}: checking ..."
    if p.stage == "done":
        return f"{which}{name}: done"
    if p.total:
        return f"{which}{name}: {_mb(p.done)} of {_mb(p.total)}"
    return f"{which}{name}: {_mb(p.done)}" if p.done else f"{which}{name}: connecting ..."


def what_to_do(entry: core.ZooEntry, exc: BaseException, cache: Path | None = None) -> str:
    """A failed download (offline, a server error, a wrong file) in words: what happened, then
    the URL(s) to download elsewhere, where the files go, and that a downloaded file can be
    picked here."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, core.DownloadError) and ADVICE_MARK in text:
        text = text.split(ADVICE_MARK, 1)[0]
    targets = [str(core.model_cache_dir(cache) / entry.name / f.file_name) for f in entry.files]
    urls = [f.url for f in entry.files if f.url]
    if urls:
        where = " and ".join(urls)
        how = (f"On a computer with internet, download {where}; then choose the file{'s' if len(urls) > 1 else ''} "
               f"here with \"Choose downloaded file...\" (checked, then copied into the cache), or put "
               f"{'them' if len(urls) > 1 else 'it'} at {' and '.join(targets)}.")
    else:
        how = (f"Download it from {entry.page} by hand ({entry.how_to_get or 'see the details'}), then choose it "
               "here with \"Choose downloaded file...\".")
    return f"{text.rstrip('.')}.\n\n{how}"


class ModelFetcher(QObject):
    """Downloads and installs zoo models into the cache, one at a time, on its own thread."""

    #: keyword arguments of core.fetch_model (tests shorten the retries' back-off)
    options: dict[str, Any] = {"retries": 3, "backoff": 1.0, "timeout": 30.0}

    def __init__(self, parent: QObject | None = None, cache: Path | None = None):
        super().__init__(parent)
        self.runner = TaskRunner("downloads", self)
        self.cache = cache
        self.task: Task | None = None

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.is_finished

    def cached(self, entry: core.ZooEntry) -> list[Path] | None:
        return core.cached_model_files(entry, self.cache)

    def fetch(self, entry: core.ZooEntry) -> Task:
        """Download ``entry``'s files (those in the cache are checked, not downloaded again)."""
        self.task = self.runner.submit(f"download {entry.name}", core.fetch_model, entry, cache=self.cache,
                                       **self.options)
        return self.task

    def install(self, entry: core.ZooEntry, files: Sequence[str | Path]) -> Task:
        """Check files downloaded by hand and copy them into the cache."""
        self.task = self.runner.submit(f"install {entry.name}", core.install_model_files, entry,
                                       [Path(f) for f in files], cache=self.cache)
        return self.task

    def cancel(self) -> None:
        if self.busy:
            self.task.cancel()

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        self.cancel()
        return self.runner.shutdown(timeout_ms)
