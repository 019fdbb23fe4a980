"""Tensors derived from a parameter (a reordered or regrouped weight), cached beside its module.

A derived tensor is made once and reused while its source parameter is the same tensor with the
same contents: a parameter replaced, moved (``.to()``, which swaps ``.data``) or modified in place
(its version counter) makes it again. The cache holds modules weakly, so a module that goes away
takes its derived tensors with it, and a copy of a module (``copy.deepcopy``) starts empty.
"""

from __future__ import annotations

import threading
import weakref
from typing import Callable

from torch import Tensor, nn

_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict[str, tuple]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def derived(module: nn.Module, slot: str, source: Tensor, make: Callable[[Tensor], Tensor]) -> Tensor:
    """``make(source)``, cached under (``module``, ``slot``) while ``source`` is unchanged."""
    key = (source.data_ptr(), source._version, source.dtype, source.device)
    entry = _CACHE.get(module, {}).get(slot)
    if entry is not None and entry[0]() is source and entry[1] == key:
        return entry[2]
    value = make(source)
    with _LOCK:  # two threads may both make it; either result is right
        _CACHE.setdefault(module, {})[slot] = (weakref.ref(source), key, value)
    return value


def cached_bytes(module: nn.Module) -> int:
    """Bytes held for ``module``'s subtree in this cache (dense equivalents for opaque tensors)."""
    total = 0
    for m in module.modules():
        for _, _, value in _CACHE.get(m, {}).values():
            total += value.numel() * value.element_size()
    return total


__all__ = ["derived", "cached_bytes"]
