"""The thread budget of this process, and block-parallel loops that do not depend on it.

Two kinds of pools, one rule each:

- The project's own pools (:func:`map_blocks`, the weight search, the hybrid's component
  threads): :func:`n_threads` is the requested count when positive, else the integer in
  ``RECBOOK_THREADS``, else every core. These are plain threads that take turns on a busy
  core at no cost, so the pipeline gives every kernel every core: a notebook running alone
  (00, 06, the tail of 07/08) uses the whole machine, and two side by side share it.
- Native pools that wait for each other at barriers (implicit's OpenMP solvers, BLAS):
  :func:`native_threads` is the requested count, else ``RECBOOK_NATIVE_THREADS``, else
  :func:`n_threads`. A barrier stalls when one of its threads is descheduled, so the
  pipeline sets it to the fair share ``cores // jobs`` when notebooks overlap (measured on
  Complete Journey: ALS fitted on every core beside notebook 05 took 148 s, on its share 90 s).
  BLAS pools are limited through ``threadpoolctl`` (:func:`blas_limits`).

Every parallel loop writes disjoint outputs in a fixed order, so results never depend on the
thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_limits

__all__ = ["NATIVE_THREADS_ENV", "THREADS_ENV", "blas_limits", "map_blocks", "n_threads", "native_threads"]

#: Environment variable with the thread budget of this process; unset, empty or 0: every core.
THREADS_ENV = "RECBOOK_THREADS"
#: Environment variable with the thread budget of native (OpenMP, BLAS) pools; unset: :func:`n_threads`.
NATIVE_THREADS_ENV = "RECBOOK_NATIVE_THREADS"


def _env_threads(name: str) -> int:
    env = os.environ.get(name, "").strip()
    try:
        return max(0, int(env)) if env else 0
    except ValueError:
        raise ValueError(f"{name}={env!r} is not an integer number of threads") from None


def n_threads(requested: int = 0) -> int:
    """Threads for parallel work (block scoring, weight search, implicit's solvers, BLAS):
    ``requested`` if > 0, else the integer in ``RECBOOK_THREADS`` if set (and > 0), else
    ``os.cpu_count()``. At least 1."""
    if requested and int(requested) > 0:
        return int(requested)
    return _env_threads(THREADS_ENV) or max(1, os.cpu_count() or 1)


def native_threads(requested: int = 0) -> int:
    """Threads for native pools (implicit's OpenMP solvers, BLAS): ``requested`` if > 0, else
    the integer in ``RECBOOK_NATIVE_THREADS`` if set (and > 0), else :func:`n_threads`."""
    if requested and int(requested) > 0:
        return int(requested)
    return _env_threads(NATIVE_THREADS_ENV) or n_threads()


def blas_limits(requested: int = 0) -> threadpool_limits:
    """A ``threadpoolctl`` context limiting the BLAS pools to :func:`native_threads` ``(requested)``."""
    return threadpool_limits(limits=native_threads(requested), user_api="blas")


def map_blocks(fn, n: int, block: int, threads: int = 0) -> None:
    """Call ``fn(a, b)`` for consecutive row blocks ``[a, b)`` of ``block`` rows out of ``n``.

    Blocks run on :func:`n_threads` ``(threads)`` threads: SciPy's sparse products and
    NumPy's large-array kernels release the GIL. ``fn`` must only write its own
    rows of its outputs, so the result is the same as a serial loop whatever the
    thread count.
    """
    bounds = [(a, min(a + block, n)) for a in range(0, n, block)]
    workers = min(n_threads(threads), len(bounds))
    if workers <= 1:
        for a, b in bounds:
            fn(a, b)
        return
    with ThreadPoolExecutor(workers) as ex:
        for f in [ex.submit(fn, a, b) for a, b in bounds]:
            f.result()  # re-raises a block's error
