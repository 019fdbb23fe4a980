"""How many threads torch uses on the CPU, for the app and for the command line.

PyTorch's CPU kernels run on an OpenMP pool (GNU libgomp) whose threads, by default, spin for a
while at the end of every parallel operation before they sleep. When the pool has as many
threads as the machine has cores and anything else wants a core (the GUI thread drawing,
another program, a second job), one of them is descheduled and the others spin until it comes
back: small operations (a level switch's head-only re-run, a fine-tuning step of the demo
model) suffer most, and the GUI thread has to fight the spinning threads for its core.

So the app starts with ``OMP_WAIT_POLICY=PASSIVE`` (:func:`prefer_passive_waiting`, called by
``main.py`` before torch is imported; a value the user set is kept): threads that wait sleep at
once and hand the core back. With that, :func:`recommended_threads` gives the app every core
(on the 2-core development machine a 4000x3000 photo's first overlay came after 5.4 s with 2
threads against 8.4 s with 1, and the GUI thread's longest stall was the same, 37-38 ms); with
spinning threads it leaves one core to the GUI. Batch work on the command line uses every core
this process may run on. ``PSPNET_THREADS=N`` overrides both; a set ``OMP_NUM_THREADS`` is
respected as the user's choice. Figures: README, "Performance"
(``tests/benchmarks/cpu_inference.py``, ``tests/benchmarks/gui_latency.py``).
"""

from __future__ import annotations

import os
import sys

from core.errors import StudioError

ENV = "PSPNET_THREADS"
WAIT_POLICY = "OMP_WAIT_POLICY"


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


def prefer_passive_waiting() -> bool:
    """Ask OpenMP's threads to sleep when they wait (``OMP_WAIT_POLICY=PASSIVE``) unless the
    user chose a policy; True when the policy in force is passive. It only takes effect before
    torch (and its OpenMP runtime) is loaded: call it first thing in an interactive process."""
    if "torch" not in sys.modules:
        os.environ.setdefault(WAIT_POLICY, "PASSIVE")
    return passive_waiting()


def passive_waiting() -> bool:
    """Whether OpenMP's threads are asked to sleep when they wait."""
    return os.environ.get(WAIT_POLICY, "").strip().upper() == "PASSIVE"


def recommended_threads(*, interactive: bool, cores: int | None = None, passive: bool | None = None) -> int:
    """Torch intra-op threads for this process.

    ``interactive`` (the app): every core when OpenMP's threads wait passively (``passive``,
    default :func:`passive_waiting`), else every core but one, at least 1, so that the GUI
    thread keeps a core while a prediction or a fine-tuning step runs. Otherwise (the command
    line): every available core. ``PSPNET_THREADS`` wins over both, then ``OMP_NUM_THREADS``.
    ``cores`` defaults to :func:`available_cores`."""
    for name in (ENV, "OMP_NUM_THREADS"):
        n = _from_env(name)
        if n is not None:
            return n
    cores = available_cores() if cores is None else max(1, int(cores))
    if not interactive:
        return cores
    passive = passive_waiting() if passive is None else passive
    return cores if passive else max(1, cores - 1)


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


__all__ = ["recommended_threads", "apply_thread_settings", "available_cores", "prefer_passive_waiting",
           "passive_waiting", "ThreadSettingError", "ENV", "WAIT_POLICY"]
