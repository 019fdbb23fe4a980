"""How many threads torch uses on the CPU, for the app and for the command line.

PyTorch's CPU kernels run on an OpenMP pool (GNU libgomp) whose threads wait for each other at
the end of every parallel operation, spinning before they sleep. When the pool has as many
threads as the machine has cores and anything else wants a core (the GUI thread drawing, another
program, a second job), one of them is descheduled and the others spin until it comes back: on
the 2-core development machine a training step took 2.0 s with 2 threads against 0.1 s with 1
while another process used the CPU, and small operations (a level switch's head-only re-run)
suffer most. Big convolutions gain from a second thread only when it has a core to itself.

:func:`recommended_threads` therefore leaves one core free in the app (its GUI thread needs one
to stay responsive while a prediction runs) and uses every core this process may run on for
batch work on the command line. ``PSPNET_THREADS=N`` overrides both; a set ``OMP_NUM_THREADS``
is respected as the user's choice. Figures: README, "Performance" (``tests/benchmarks/cpu_inference.py``).
"""

from __future__ import annotations

import os

from core.errors import StudioError

ENV = "PSPNET_THREADS"


class ThreadSettingError(StudioError, ValueError):
    """``PSPNET_THREADS`` / ``OMP_NUM_THREADS`` is not a positive whole number."""


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask: what a container or ``taskset`` allows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _from_env(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ThreadSettingError(f"{name}={raw!r}: the number of threads must be a positive whole number")
    return n


def recommended_threads(*, interactive: bool, cores: int | None = None) -> int:
    """Torch intra-op threads for this process.

    ``interactive`` (the app): every core but one, at least 1, so that the GUI thread keeps a
    core while a prediction or a fine-tuning step runs; on 2 cores that is 1 thread. Otherwise
    (the command line): every available core. ``PSPNET_THREADS`` wins over both, then
    ``OMP_NUM_THREADS``. ``cores`` defaults to :func:`available_cores`."""
    for name in (ENV, "OMP_NUM_THREADS"):
        n = _from_env(name)
        if n is not None:
            return n
    cores = available_cores() if cores is None else max(1, int(cores))
    return max(1, cores - 1) if interactive else cores


def apply_thread_settings(*, interactive: bool, threads: int | None = None) -> int:
    """Set torch's intra-op thread count (``threads``, or :func:`recommended_threads`); returns it.

    Call it once at start-up, before the first model runs (torch may be changed later too, but
    the inter-op pool is fixed at its first use and is left alone here)."""
    import torch

    n = recommended_threads(interactive=interactive) if threads is None else int(threads)
    if n < 1:
        raise ThreadSettingError(f"the number of threads must be positive, not {n}")
    torch.set_num_threads(n)
    return n


__all__ = ["recommended_threads", "apply_thread_settings", "available_cores", "ThreadSettingError", "ENV"]
