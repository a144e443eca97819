"""Notebook kernels started ahead of the notebooks that will run in them.

Starting a notebook cold costs about 3.5 s of one core: the kernel process
(about 1 s) and its first cell's imports of pandas, scipy, scikit-learn,
``implicit``, matplotlib and the helpers (about 2.5 s). The pipeline's first
notebook (the star schema) keeps one core busy and leaves the other idle, so
:class:`WarmKernels` starts, on that core and one after another, the kernels of
the notebooks that follow, each with :data:`WARM_IMPORTS` already imported; a
notebook then starts at once in a ready kernel (:meth:`WarmKernels.take`).

A kernel serves one notebook only, so nothing carries over from one notebook to
another, and it is shut down when that notebook ends. Importing a module ahead
changes no result: the notebook's own imports find it loaded. A kernel that
fails to start or to take its set-up code is dropped, and the notebook starts
its own kernel as before.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

#: Imported in every warm kernel: what the notebooks import, and the libraries the
#: helpers import only when fitting (``implicit``, scikit-learn's text and ensemble models).
WARM_IMPORTS = ("helpers.data.star", "helpers.data.schema", "helpers.report.glue", "helpers.features.customers", "helpers.features.segments",
                "helpers.report.plotting", "helpers.evaluation.metrics", "helpers.tuning.workflow", "helpers.models.hybrid",
                "helpers.report.tables", "helpers.report.dashboard", "helpers.export.production", "implicit.als",
                "implicit.nearest_neighbours", "sklearn.feature_extraction.text", "sklearn.ensemble")

KERNEL_NAME = "python3"


def shutdown(km) -> None:
    """Stop a kernel at once (its notebook has ended, or it was never used)."""
    try:
        km.shutdown_kernel(now=True)
    except Exception:  # noqa: BLE001 - already gone
        pass


class WarmKernels:
    """Up to ``count`` kernels started one after another in a background thread.

    Each runs ``exec_lines`` (one line of Python, IPython's start-up lines) and then
    imports ``imports``, in working directory ``cwd``. :meth:`take` hands one out;
    :meth:`close` stops the thread and shuts down the kernels nobody took.
    """

    def __init__(self, count: int, exec_lines: str, cwd: Path | str, imports=WARM_IMPORTS,
                 start_timeout: float = 120.0):
        self.count = max(0, int(count))
        self.cwd = str(cwd)
        self.start_timeout = start_timeout
        self.line = "; ".join([exec_lines] * bool(exec_lines) + [f"import {m}" for m in imports])
        self.started = 0  # kernels made ready
        self.taken = 0
        self._ready: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._start_all, name="warm-kernels", daemon=True)
        if self.count:
            self._thread.start()

    def _start_one(self):
        from jupyter_client import KernelManager

        km = KernelManager(kernel_name=KERNEL_NAME)
        km.start_kernel(cwd=self.cwd, extra_arguments=[f"--IPKernelApp.exec_lines={self.line}"])
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=self.start_timeout)  # answers once the start-up lines have run
        except BaseException:
            shutdown(km)
            raise
        finally:
            kc.stop_channels()
        return km

    def _start_all(self) -> None:
        for _ in range(self.count):
            if self._closed.is_set():
                return
            try:
                km = self._start_one()
            except Exception:  # noqa: BLE001 - the notebooks start their own kernels
                return
            if self._closed.is_set():
                shutdown(km)
                return
            self.started += 1
            self._ready.put(km)

    def take(self, setup: str = ""):
        """A ready kernel that has run ``setup`` (silently, outside its history, so the
        notebook's cells are numbered from 1), or ``None`` when none is ready."""
        while True:
            try:
                km = self._ready.get_nowait()
            except queue.Empty:
                return None
            if self._prepare(km, setup):
                self.taken += 1
                return km
            shutdown(km)

    def _prepare(self, km, setup: str) -> bool:
        try:
            if not km.is_alive():
                return False
            if not setup:
                return True
            kc = km.client()
            kc.start_channels()
            try:
                reply = kc.execute_interactive(setup, silent=True, store_history=False, timeout=60)
            finally:
                kc.stop_channels()
            return reply["content"]["status"] == "ok"
        except Exception:  # noqa: BLE001 - dropped; the notebook starts its own kernel
            return False

    def close(self) -> None:
        """Stop starting kernels and shut down the ones not taken."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.start_timeout + 10)
        while True:
            try:
                shutdown(self._ready.get_nowait())
            except queue.Empty:
                return
