"""Model > Get a Pretrained Model...: the model zoo, downloads with progress and Cancel, then
the model in use.

The list is ``core.zoo_entries()``: each row a model with its data set and classes, published
mIoU (single-scale / multi-scale), size and whether it is in the cache; the details say what it
is for, its architecture, its results with their protocol, its licence and files. A model in
the cache loads at once; another one downloads first (``core.fetch_model`` on the
:class:`~app.controllers.model_fetch.ModelFetcher`'s runner: resumable, checked, nothing
partial under the final name), then loads through the controller (the inference runner). The
authors' semseg files sit on a file-sharing page: the details name the page and the file to
choose there, and "Choose downloaded file..." takes it (``core.install_model_files`` checks it
and copies it into the cache). Offline, or when the server fails, the dialog says what to do:
the URL, where to put the file, or pick a file downloaded elsewhere.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QLabel,
                               QProgressBar, QPushButton, QSplitter, QTextBrowser, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

import core
from app.controllers.model_fetch import ModelFetcher, progress_text, what_to_do
from app.workers import Task

MODEL_FILTER = "Checkpoints (*.pth *.pt *.safetensors *.bin *.ckpt *.tar);;All files (*)"
COLUMNS = ("Model", "Source", "Data set (classes)", "mIoU ss / ms", "Size", "Status")
SHOW = {"segmentation": "Segmentation models", "backbone": "ImageNet backbones (for training)", "all": "All"}
ERROR_STYLE = "color: #c5221f;"


def shown_path(p: Path | str) -> str:
    """A path as the dialog shows it: ~ for the home folder."""
    text, home = str(p), str(Path.home())
    return "~" + text[len(home):] if home not in ("", "/") and text.startswith(home + "/") else text


def short_title(e: core.ZooEntry) -> str:
    return e.title.split(",")[0]


def scores(e: core.ZooEntry) -> str:
    ss, ms = e.result("single"), e.result("multi")
    if ss is None and ms is None:
        top1 = next((r for r in e.results if r.metric.startswith("top-1")), None)
        return f"top-1 {top1.value:g}" if top1 else "–"
    return " / ".join(f"{r.value:.2f}" if r else "–" for r in (ss, ms))


def size_text(e: core.ZooEntry) -> str:
    mb = e.size_mb
    return "–" if mb is None else f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


def entry_table(e: core.ZooEntry) -> core.ClassTable | None:
    if not e.class_table:
        return None
    try:
        return core.ClassTable.builtin(e.class_table)
    except ValueError:
        return None


def purpose(e: core.ZooEntry) -> str:
    """What the model is for, in a sentence."""
    if e.task == "backbone":
        return ("An ImageNet classification backbone: an initialisation for training a PSPNet "
                "(<code>python main.py train --backbone-weights</code>); it does not segment by itself.")
    table = entry_table(e)
    names = f": {', '.join(table.names[:8])}, ..." if table is not None else ""
    return f"Segments photos into the {e.num_classes} classes of {html.escape(e.dataset)}{html.escape(names)}"


def details_html(e: core.ZooEntry, cached: list[Path] | None, targets: Sequence[Path]) -> str:
    esc = html.escape
    arch = e.architecture
    rows = [f"<h3 style='margin:0'>{esc(e.title)}</h3>",
            f"<p><code>{esc(e.name)}</code> &middot; {esc(e.source)}</p>",
            f"<p>{purpose(e)}</p>",
            f"<p><b>Architecture:</b> {esc(str(arch.get('backbone', '')))}"
            + (f"; {esc(str(arch['heads']))}" if arch.get("heads") else "") + "</p>"]
    if e.results:
        res = "".join(f"<li>{esc(r.metric)} {r.value:g} ({esc(r.protocol)})" + (f": {esc(r.detail)}" if r.detail else "")
                      + "</li>" for r in e.results)
        rows.append(f"<p><b>Published results</b> (the source's own protocol):</p><ul>{res}</ul>")
    rows.append(f"<p><b>Licence:</b> {esc(e.licence)}</p>")
    if e.page:
        rows.append(f"<p><b>Page:</b> <a href='{esc(e.page)}'>{esc(e.page)}</a></p>")
    files = []
    for f, t in zip(e.files, targets):
        where = (f"<a href='{esc(f.url)}'>{esc(f.url)}</a>" if f.url
                 else f"on the page, the file <b>{esc(f.path_on_page or f.file_name)}</b>")
        check = f", SHA-256 {esc(f.checksum)}..." if f.checksum else ""
        files.append(f"<li>{esc(f.role)}: {where}{check}<br>goes to {esc(shown_path(t))}</li>")
    rows.append(f"<p><b>Files:</b></p><ul>{''.join(files)}</ul>")
    if not e.downloadable and e.how_to_get:
        rows.append(f"<p><b>By hand:</b> {esc(e.how_to_get)}. Then choose the file here with "
                    "<i>Choose downloaded file...</i>: it is checked and copied into the cache.</p>")
    if cached:
        rows.append(f"<p><b>In the cache:</b> {esc(', '.join(shown_path(p) for p in cached))}</p>")
    return "".join(rows)


class ModelZooDialog(QDialog):
    """The zoo; ``modelInUse(paths)`` once a model from it is the model in use."""

    modelInUse = Signal(object)  # list[Path]

    def __init__(self, open_model: Callable[[list[Path]], Task], fetcher: ModelFetcher,
                 parent: QWidget | None = None, *, entries: Sequence[core.ZooEntry] | None = None,
                 project_classes: core.ClassTable | None = None, start_dir: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Get a pretrained model")
        self.open_model = open_model
        self.fetcher = fetcher
        self.entries = list(entries) if entries is not None else core.zoo_entries()
        self.project_classes = project_classes
        self.start_dir = start_dir
        self.task: Task | None = None  # the download / install running
        self.loading: Task | None = None  # the model being loaded
        self.last_error = ""

        intro = QLabel("Pretrained PSPNets from their authors, CSAIL and mmsegmentation, trained on real photos. "
                       f"Downloads go to {shown_path(core.model_cache_dir(fetcher.cache))}.")
        intro.setWordWrap(True)
        intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.show_box = QComboBox()
        for key, text in SHOW.items():
            self.show_box.addItem(text, key)
        self.show_box.currentIndexChanged.connect(lambda _: self.fill())
        top = QHBoxLayout()
        top.addWidget(intro, 1)
        top.addWidget(self.show_box)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.tree.currentItemChanged.connect(lambda *_: self._selected())
        self.tree.itemDoubleClicked.connect(lambda *_: self.get_button.isEnabled() and self.get())
        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(True)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tree)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.get_button = QPushButton("Download and use")
        self.get_button.setDefault(True)
        self.get_button.clicked.connect(self.get)
        self.file_button = QPushButton("Choose downloaded file...")
        self.file_button.setToolTip("A file of this model you downloaded yourself (e.g. on another computer): it is "
                                    "checked, then copied into the cache")
        self.file_button.clicked.connect(self.choose_and_install)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.get_button)
        buttons.addWidget(self.file_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addLayout(buttons)
        self.resize(940, 600)
        self.fill()

    # ---- the list ---------------------------------------------------------------------------
    def visible_entries(self) -> list[core.ZooEntry]:
        show = self.show_box.currentData()
        return [e for e in self.entries if show == "all" or e.task == show]

    def _matches_project(self, e: core.ZooEntry) -> bool:
        table = entry_table(e)
        return (self.project_classes is not None and table is not None
                and not core.classes_differ(table, self.project_classes))

    def status_of(self, e: core.ZooEntry) -> str:
        if self.fetcher.cached(e) is not None:
            return "in the cache"
        return "download" if e.downloadable else "by hand"

    def fill(self, keep: str | None = None) -> None:
        keep = keep or (self.current.name if self.current is not None else None)
        self.tree.clear()
        chosen = None
        for e in self.visible_entries():
            data = f"{e.dataset} ({e.num_classes})" + (" - the project's classes" if self._matches_project(e) else "")
            item = QTreeWidgetItem([short_title(e), e.source, data, scores(e), size_text(e), self.status_of(e)])
            item.setData(0, Qt.ItemDataRole.UserRole, e)
            item.setToolTip(0, f"{e.name}: {e.title}")
            item.setToolTip(2, data)
            self.tree.addTopLevelItem(item)
            if e.name == keep or (keep is None and chosen is None and self._matches_project(e)):
                chosen = item
        for col, width in enumerate((250, 150, 190, 100, 70, 90)):
            self.tree.setColumnWidth(col, width)
        if chosen is None and self.tree.topLevelItemCount():
            chosen = self.tree.topLevelItem(0)
        if chosen is not None:
            self.tree.setCurrentItem(chosen)
        self._selected()

    def item_of(self, name: str) -> QTreeWidgetItem:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole).name == name:
                return item
        raise KeyError(name)

    @property
    def current(self) -> core.ZooEntry | None:
        item = self.tree.currentItem() if hasattr(self, "tree") else None
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def _selected(self) -> None:
        e = self.current
        if e is None:
            self.details.setHtml("")
            self._buttons()
            return
        cached = self.fetcher.cached(e)
        targets = [core.model_cache_dir(self.fetcher.cache) / e.name / f.file_name for f in e.files]
        self.details.setHtml(details_html(e, cached, targets))
        if not self.busy:
            self._say("")
        self._buttons()

    def _buttons(self) -> None:
        e, busy = self.current, self.busy
        cached = self.fetcher.cached(e) is not None if e is not None else False
        if e is None:
            text, enabled = "Download and use", False
        elif cached:
            text, enabled = ("Use" if e.task == "segmentation" else "In the cache"), e.task == "segmentation"
        elif e.downloadable:
            text, enabled = ("Download and use" if e.task == "segmentation" else "Download"), True
        else:
            text, enabled = "Download", False
        self.get_button.setText(text)
        self.get_button.setEnabled(enabled and not busy)
        self.get_button.setToolTip("" if e is None or e.downloadable or cached else
                                   "This model's files are on a file-sharing page: download them by hand (see the "
                                   "details), then choose them with \"Choose downloaded file...\"")
        self.file_button.setEnabled(e is not None and not busy)
        self.cancel_button.setEnabled(self.task is not None and not self.task.is_finished)
        self.tree.setEnabled(not busy)
        self.show_box.setEnabled(not busy)

    @property
    def busy(self) -> bool:
        return any(t is not None and not t.is_finished for t in (getattr(self, "task", None),
                                                                  getattr(self, "loading", None)))

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setText(text)
        if error:
            self.last_error = text

    # ---- getting a model --------------------------------------------------------------------
    def get(self) -> None:
        """The main button: use the model in the cache, or download it first."""
        e = self.current
        if e is None or self.busy:
            return
        cached = self.fetcher.cached(e)
        if cached is not None:
            self._use(e, cached)
            return
        if not e.downloadable:
            self._say(f"{short_title(e)} cannot be downloaded directly: {e.how_to_get or 'see the details'}.", True)
            return
        self._run(e, self.fetcher.fetch(e), "Downloading")

    def choose_files(self) -> list[str]:
        """The files the user picks (tests replace this)."""
        e = self.current
        n = len(e.files) if e is not None else 1
        title = f"The file{'s' if n > 1 else ''} of {e.name if e else 'the model'}" + (
            f" ({' and '.join(f.file_name for f in e.files)})" if e is not None and n > 1 else "")
        paths, _ = QFileDialog.getOpenFileNames(self, title, self.start_dir, MODEL_FILTER)
        return paths

    def choose_and_install(self) -> None:
        e = self.current
        if e is None or self.busy:
            return
        files = self.choose_files()
        if files:
            self.install(e, files)

    def install(self, e: core.ZooEntry, files: Sequence[str | Path]) -> Task:
        return self._run(e, self.fetcher.install(e, files), "Checking")

    def _run(self, e: core.ZooEntry, task: Task, verb: str) -> Task:
        self.task = task
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._say(f"{verb} {short_title(e)} ...")
        task.progress.connect(self._progress)
        task.succeeded.connect(lambda paths: self._fetched(e, paths))
        task.failed.connect(lambda exc: self._failed(e, exc))
        task.cancelled.connect(lambda: self._cancelled(e))
        task.done.connect(self._buttons)
        self._buttons()
        return task

    def _progress(self, p: core.DownloadProgress) -> None:
        if p.total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * p.done / p.total))
            self.progress.setFormat(f"{100 * p.done / p.total:.0f} %")
        else:
            self.progress.setRange(0, 0)
        self._say(progress_text(p))

    def _fetched(self, e: core.ZooEntry, paths: list[Path | None]) -> None:
        self.progress.setVisible(False)
        self.fill(e.name)
        missing = [f.file_name for f, p in zip(e.files, paths) if p is None]
        if missing:
            self._say(f"Checked and in the cache; still missing: {', '.join(missing)}: choose "
                      f"{'it' if len(missing) == 1 else 'them'} too.", True)
            return
        if e.task != "segmentation":
            self._say(f"{short_title(e)} is in the cache: {', '.join(str(p) for p in paths)}. It is a backbone for "
                      "training (train --backbone-weights), not a model to segment with.")
            return
        self._use(e, [Path(p) for p in paths if p is not None])

    def _failed(self, e: core.ZooEntry, exc: BaseException) -> None:
        self.progress.setVisible(False)
        self.fill(e.name)
        self._say(what_to_do(e, exc, self.fetcher.cache), True)
        self.file_button.setDefault(True)

    def _cancelled(self, e: core.ZooEntry) -> None:
        self.progress.setVisible(False)
        self.fill(e.name)
        self._say("Download cancelled. What was downloaded is kept: Download again resumes it.")

    def cancel(self) -> None:
        if self.task is not None and not self.task.is_finished:
            self.task.cancel()

    def _use(self, e: core.ZooEntry, paths: list[Path]) -> None:
        self._say(f"Loading {short_title(e)} ...")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        task = self.open_model(paths)
        self.loading = task
        self._buttons()

        def loaded(_: object) -> None:
            self.progress.setVisible(False)
            self._say(f"{short_title(e)} is the model in use.")
            self._buttons()
            self.modelInUse.emit(paths)
            self.accept()

        def failed(exc: BaseException) -> None:
            self.progress.setVisible(False)
            self._say(f"{short_title(e)} is in the cache but could not be loaded: {exc}", True)
            self._buttons()

        task.succeeded.connect(loaded)
        task.failed.connect(failed)

    def reject(self) -> None:
        """Close: a download under way stops (what it has is kept for the next one)."""
        self.cancel()
        super().reject()
