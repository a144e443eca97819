"""The thread budget of this process, and block-parallel loops that do not depend on it.

One computed setting: :func:`n_threads` is the requested count when positive, else the
integer in the environment variable ``RECBOOK_THREADS`` (the pipeline sets it per
notebook kernel, so that notebooks running at once share the cores), else every core.
Native BLAS pools are limited through ``threadpoolctl`` (:func:`blas_limits`) where
the models limit them. Every parallel loop writes disjoint outputs in a fixed order,
so results never depend on the thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_limits

__all__ = ["THREADS_ENV", "blas_limits", "map_blocks", "n_threads"]

#: Environment variable with the thread budget of this process; unset, empty or 0: every core.
THREADS_ENV = "RECBOOK_THREADS"


def n_threads(requested: int = 0) -> int:
    """Threads for parallel work (block scoring, weight search, implicit's solvers, BLAS):
    ``requested`` if > 0, else the integer in ``RECBOOK_THREADS`` if set (and > 0), else
    ``os.cpu_count()``. At least 1."""
    if requested and int(requested) > 0:
        return int(requested)
    env = os.environ.get(THREADS_ENV, "").strip()
    try:
        budget = int(env) if env else 0
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={env!r} is not an integer number of threads") from None
    return budget if budget > 0 else max(1, os.cpu_count() or 1)


def blas_limits(requested: int = 0) -> threadpool_limits:
    """A ``threadpoolctl`` context limiting the BLAS pools to :func:`n_threads` ``(requested)``."""
    return threadpool_limits(limits=n_threads(requested), user_api="blas")


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
