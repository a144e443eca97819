"""Micro-batches: requests that arrive while a batch is being computed are computed together next.

The basket endpoint's cost is dominated by work a batch shares (:meth:`BasketScorer.recommend_many
<helpers.serving.basket.BasketScorer.recommend_many>` reads the ALS factors from memory once per
batch instead of once per basket). A :class:`MicroBatcher` has one worker thread and a queue:
:meth:`~MicroBatcher.submit` queues an item and returns a :class:`concurrent.futures.Future`;
the worker takes everything queued (at most ``max_batch`` items), computes it with one call of
``fn(items) -> results`` and resolves the futures. Nothing waits for a batch to fill: an item
submitted to an idle worker is computed at once (a batch of one); under load, the items that
queued up during a batch form the next one, so the batch size follows the load by itself.

If ``fn`` raises, each item of the batch is computed alone, so that one failing item fails only
its own future. The worker is a daemon thread started by the first :meth:`~MicroBatcher.submit`
(after :meth:`~MicroBatcher.close` too), so an app that is never started holds no thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

MAX_BATCH = 16


class MicroBatcher:
    """Computes ``fn(items) -> results`` (one result per item, in order) over batches of submitted items."""

    def __init__(self, fn: Callable[[list], list], max_batch: int = MAX_BATCH, name: str = "micro-batcher"):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn, self.max_batch, self.name = fn, int(max_batch), name
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue | None = None  # the running worker's queue
        self._thread: threading.Thread | None = None
        self.batches = 0  # calls of fn that succeeded, and the items they computed
        self.items = 0

    def submit(self, item) -> Future:
        """Queue ``item``; the future resolves to its result (or raises its error)."""
        future: Future = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._run, args=(self._queue,), name=self.name,
                                                daemon=True)
                self._thread.start()
            self._queue.put((item, future))
        return future

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the worker once the items queued before are computed (a later submit starts another)."""
        with self._lock:
            q, thread = self._queue, self._thread
            self._queue = self._thread = None
            if q is not None:
                q.put(None)
        if thread is not None:
            thread.join(timeout)

    def _run(self, q: queue.SimpleQueue) -> None:
        stop = False
        while not stop:
            first = q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._compute([(item, f) for item, f in batch if f.set_running_or_notify_cancel()])

    def _compute(self, batch: list) -> None:
        if not batch:
            return
        try:
            results = list(self.fn([item for item, _f in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
            else:
                for one in batch:  # alone, so that a failing item fails only its own future
                    self._compute([one])
            return
        self.batches += 1  # only the worker thread writes them
        self.items += len(batch)
        for (_item, f), result in zip(batch, results):
            f.set_result(result)
