"""Long jobs in core are generators: the one progress record they yield and the one cancel rule.

**The rule** (every job in core and in the app follows it; a runner such as app/workers.py
relies on it):

1. A job is a generator function ``job(..., *, cancel: Cancel = None)``. It *yields*
   :class:`Progress` records and *returns* its result (``return value``): callers get the
   value with ``result = yield from job(...)`` or :func:`run_to_end`.
2. Every record is a :class:`Progress` (``fraction`` of the job done, ``message``); a job whose
   steps carry data yields a subclass that adds fields (``core.TrainProgress`` for a training
   step, ``core.ScoredImage`` for a ranked image). A job's signature says which:
   ``Generator[TrainProgress, None, TrainResult]``.
3. ``cancel`` is a callable returning True, a ``threading.Event`` or None (:data:`Cancel`). A
   job checks it with :func:`check_cancel` at its cancel points: before every step or item,
   and before it returns. Every ``yield`` is a cancel point too (the runner may stop there).
4. Once it sees the flag set, a job **raises** :class:`~core.errors.Cancelled`; it never returns
   normally after a cancel, so a caller has one branch for it (``except Cancelled``). A job
   whose work so far is worth keeping puts it on the exception, ``Cancelled(text,
   partial=result)``: training hands over the weights of its last completed step that way
   (the command line's Ctrl-C saves them).
5. Work that must not be lost (saving the user's masks) does not check the flag.

Old-style progress (a bare float 0..1, or a string) is accepted where jobs are combined:
:func:`as_progress` turns it into a record.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Generator, TypeVar, Union

from core.errors import Cancelled

Y = TypeVar("Y")
R = TypeVar("R")
P = TypeVar("P")

#: What a job's ``cancel`` argument may be: a callable (True = stop), an Event, or None (never).
Cancel = Union[Callable[[], bool], threading.Event, None]


@dataclass(kw_only=True)
class Progress:
    """One report of a running job. Subclasses add what a step of their job carries."""

    fraction: float | None = None  # of the whole job done, 0..1; None when not known
    message: str = ""  # what the job is doing now, for a status line ("" = nothing to say)


def is_cancelled(cancel: Cancel) -> bool:
    """Whether the flag is set (None never is)."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def check_cancel(cancel: Cancel, what: str = "cancelled", partial: Any = None) -> None:
    """A cancel point: raise :class:`Cancelled` (with ``partial``) when the flag is set."""
    if is_cancelled(cancel):
        raise Cancelled(what, partial=partial)


def as_progress(item: Any) -> Progress:
    """A :class:`Progress` for what a job yielded (a record as it is; a number is a fraction, a string a message)."""
    if isinstance(item, Progress):
        return item
    if isinstance(item, str):
        return Progress(message=item)
    if isinstance(item, (int, float)):
        return Progress(fraction=float(item))
    raise TypeError(f"a job yielded {type(item).__name__}, not a core.Progress record")


def relay(gen: Generator[Any, Any, R], convert: Callable[[Any], P] = as_progress) -> Generator[P, None, R]:
    """Yield ``convert(item)`` for every item of ``gen``; return its return value."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        yield convert(item)


def run_to_end(gen: Generator[Y, Any, R], on_item: Callable[[Y], None] | None = None) -> R:
    """Drain ``gen``, passing every yielded item to ``on_item``; return the generator's return value.
    A cancelled job raises :class:`Cancelled` out of here (its ``partial`` result, if any, on it)."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_item is not None:
            on_item(item)


__all__ = ["Cancel", "Cancelled", "Progress", "is_cancelled", "check_cancel", "as_progress", "relay", "run_to_end"]
