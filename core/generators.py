"""Long jobs in core are generators that yield progress and *return* their result; this runs one."""

from __future__ import annotations

from typing import Any, Callable, Generator, TypeVar

Y = TypeVar("Y")
R = TypeVar("R")


def run_to_end(gen: Generator[Y, Any, R], on_item: Callable[[Y], None] | None = None) -> R:
    """Drain ``gen``, passing every yielded item to ``on_item``; return the generator's return value."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_item is not None:
            on_item(item)
