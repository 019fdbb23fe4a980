"""Run core's generator jobs off the GUI thread: progress, result, error, cancel.

A :class:`TaskRunner` is a serial queue: it runs one job at a time on its own thread pool (one
thread), so that inference jobs never compete with each other for the CPU and the model is
never used by two threads at once. Each job is a superqt ``GeneratorWorker``: every ``yield`` of
the generator is a progress report and a cancel point; the generator also gets a ``cancel``
callable (core's generators check it between stages) so that a long step can stop early.

A :class:`Chain` runs jobs one after another, each on its own runner, as one task (save the
masks, then copy the model, then fine-tune the copy): nothing waits on the GUI thread between
them. Jobs follow core/generators.py's rule: they yield ``core.Progress`` and raise
``core.Cancelled``.

Widgets are touched only from the signals of :class:`Task` and :class:`Chain`, which live on
the GUI thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Generator, Sequence

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from superqt.utils import GeneratorWorker

import core

JobFn = Callable[..., Generator[Any, Any, Any]]


class Task(QObject):
    """One submitted job, seen from the GUI thread.

    ``progress`` carries what the generator yields (a ``core.Progress``, or a subclass such as
    ``core.TrainProgress``); exactly one of ``succeeded`` / ``failed`` / ``cancelled`` follows, then
    ``done``."""

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)  # the exception
    cancelled = Signal()
    done = Signal()

    def __init__(self, name: str, fn: JobFn, args: tuple, kwargs: dict):
        super().__init__()  # no Qt parent: the runner holds it from Python and lets it go when done
        self.name = name
        self._cancel = threading.Event()
        self._finished = False
        self.started_at: float | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.worker = GeneratorWorker(fn, *args, cancel=self._cancel.is_set, **kwargs)
        self.worker.started.connect(self._on_started)
        self.worker.yielded.connect(self._on_yielded)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_errored)
        self.worker.finished.connect(self._on_finished)

    # --- control (GUI thread) ---
    def cancel(self) -> None:
        """Ask the job to stop; ``cancelled`` is emitted when it has."""
        self._cancel.set()
        self.worker.quit()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def is_finished(self) -> bool:
        return self._finished

    # --- worker signals, delivered on the GUI thread ---
    @Slot()
    def _on_started(self) -> None:
        self.started_at = time.perf_counter()

    @Slot(object)
    def _on_yielded(self, value: Any) -> None:
        if not self._cancel.is_set():
            self.progress.emit(value)

    @Slot(object)
    def _on_returned(self, value: Any) -> None:
        self.result = value

    @Slot(object)
    def _on_errored(self, exc: BaseException) -> None:
        self.error = exc

    @Slot()
    def _on_finished(self) -> None:
        self._finished = True
        if self._cancel.is_set() or isinstance(self.error, core.Cancelled):
            self.cancelled.emit()
        elif self.error is not None:
            self.failed.emit(self.error)
        else:
            self.succeeded.emit(self.result)
        self.done.emit()


class TaskRunner(QObject):
    """A serial queue of generator jobs on one background thread."""

    busyChanged = Signal(bool)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._pool.setExpiryTimeout(-1)  # keep the thread: starting one per job costs time
        self._tasks: list[Task] = []
        self._retired: list[Task] = []  # the last finished task, released one round later (not inside its own signal)

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def submit(self, name: str, fn: JobFn, *args: Any, **kwargs: Any) -> Task:
        """Queue ``fn(*args, cancel=..., **kwargs)`` (a generator function); returns its Task.

        The job may start at once, but its signals are queued to the GUI thread, so connecting
        to them right after this call misses nothing."""
        task = Task(name, fn, args, kwargs)
        was_busy = self.busy
        self._tasks.append(task)
        task.done.connect(self._forget_sender)
        self._pool.start(task.worker)
        if not was_busy:
            self.busyChanged.emit(True)
        return task

    def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()

    @Slot()
    def _forget_sender(self) -> None:
        task = self.sender()
        if task in self._tasks:
            self._tasks.remove(task)
            # the tasks retired before this one have surely left the pool thread (it is serial)
            self._retired = [task]
            if not self._tasks:
                self.busyChanged.emit(False)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel everything and wait for the thread to finish (call before the window closes).

        Returns False if a job did not stop within the timeout (it is then still running)."""
        self.cancel_all()  # queued jobs then stop before their first step
        return self._pool.waitForDone(timeout_ms)

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until the queue is empty: for shutdown, tests and scripts, never the GUI's handlers."""
        return self._pool.waitForDone(timeout_ms)


Step = Callable[[Any], "Task | Any"]


class Chain(QObject):
    """Steps run one after another as one task. Each step is called (on the GUI thread) with the
    previous step's result and returns a :class:`Task` it submitted (its result goes on) or a
    plain value (goes on at once); an exception in a step fails the chain. Connect to the
    signals, then :meth:`start`. ``progress`` relays every task's progress. Keep a reference while
    it runs (give it no Qt parent: it goes, with what its steps held, when the reference does)."""

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)  # the exception
    cancelled = Signal()
    done = Signal()

    def __init__(self, name: str, steps: Sequence[Step], parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self._steps = list(steps)
        self._next = 0
        self._cancelled = False
        self._finished = False
        self.current: Task | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    @property
    def is_finished(self) -> bool:
        return self._finished

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled

    def start(self, value: Any = None) -> "Chain":
        self._advance(value)
        return self

    def cancel(self) -> None:
        """Stop: the running step is cancelled and no further step starts."""
        if self._finished:
            return
        self._cancelled = True
        if self.current is not None and not self.current.is_finished:
            self.current.cancel()
        else:
            self._finish()

    def _advance(self, value: Any) -> None:
        while not self._finished:
            if self._cancelled:
                return self._finish()
            if self._next >= len(self._steps):
                self.result = value
                return self._finish()
            step = self._steps[self._next]
            self._next += 1
            try:
                out = step(value)
            except Exception as exc:  # noqa: BLE001 - reported through ``failed``
                self.error = exc
                return self._finish()
            if not isinstance(out, Task):
                value = out
                continue
            self.current = out
            out.progress.connect(self._relay)
            out.succeeded.connect(self._advance)
            out.failed.connect(self._fail)
            out.cancelled.connect(self._stopped)
            return

    def _relay(self, rec: Any) -> None:
        if not self._cancelled:
            self.progress.emit(rec)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self._finish()

    def _stopped(self) -> None:
        self._cancelled = True
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._steps = []  # let go of what the steps hold (models, data) as soon as the chain is done
        self.current = None
        if self._cancelled or isinstance(self.error, core.Cancelled):
            self.cancelled.emit()
        elif self.error is not None:
            self.failed.emit(self.error)
        else:
            self.succeeded.emit(self.result)
        self.done.emit()
