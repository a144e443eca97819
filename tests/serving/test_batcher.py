"""Micro-batches: what queues up while a batch runs is computed together; errors stay per item;
the API's concurrent baskets answer as each basket alone."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers.serving import api
from helpers.serving.batcher import MicroBatcher
from helpers.serving.store import ExportStore
from tests.serving.conftest import make_client

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


class Gate:
    """``fn`` of a batcher that records its batches and holds the first until released."""

    def __init__(self):
        self.batches, self.release, self.entered = [], threading.Event(), threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        self.entered.set()
        self.release.wait(10)
        if "bad" in items:
            raise ValueError("bad item")
        return [x * 10 for x in items]


def test_items_queued_during_a_batch_form_the_next_batches():
    gate = Gate()
    b = MicroBatcher(gate, max_batch=4)
    try:
        first = b.submit(0)
        assert gate.entered.wait(10)  # the worker holds item 0; the next ones queue up
        rest = [b.submit(i) for i in range(1, 11)]
        gate.release.set()
        assert [f.result(10) for f in [first, *rest]] == [10 * i for i in range(11)]
        assert gate.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
        assert (b.batches, b.items) == (4, 11)
        assert b.submit(7).result(10) == 70  # idle again: at once, alone
        assert gate.batches[-1] == [7]
    finally:
        b.close()


def test_a_failing_item_fails_only_its_own_future():
    gate = Gate()
    b = MicroBatcher(gate, max_batch=8)
    try:
        hold = b.submit(1)
        assert gate.entered.wait(10)
        futures = [b.submit(x) for x in (2, "bad", 3)]
        gate.release.set()
        assert hold.result(10) == 10
        assert futures[0].result(10) == 20 and futures[2].result(10) == 30
        with pytest.raises(ValueError, match="bad item"):
            futures[1].result(10)
        assert [2, "bad", 3] in gate.batches and [3] in gate.batches  # the batch, then each alone
    finally:
        b.close()


def test_a_cancelled_item_is_skipped_and_close_then_submit_restarts():
    gate = Gate()
    b = MicroBatcher(gate, max_batch=8)
    hold = b.submit(1)
    assert gate.entered.wait(10)
    dropped, kept = b.submit(2), b.submit(3)
    assert dropped.cancel()
    gate.release.set()
    assert kept.result(10) == 30 and hold.result(10) == 10
    assert [3] in gate.batches and not any(2 in x for x in gate.batches)
    b.close()
    assert b.submit(4).result(10) == 40  # a new worker
    b.close()
    with pytest.raises(ValueError):
        MicroBatcher(gate, max_batch=0)


def _strip(body: bytes) -> bytes:
    return re.sub(rb'"generated_at":"[^"]*"', b"", body)


class Limits:
    """Records the BLAS limits the app sets (``threadpool_limits``) and their restoration."""

    def __init__(self):
        self.calls = []

    def __call__(self, limits=None, user_api=None):
        self.calls.append(("limit", limits, user_api))
        return self

    def restore_original_limits(self):
        self.calls.append(("restore",))


def test_concurrent_baskets_answer_as_each_basket_alone(export_world, monkeypatch):
    alone = ExportStore(export_world["out"])
    rng = np.random.default_rng(7)
    ids = alone.products.values(alone.basket.item_pos)
    baskets = [[ids[j] for j in rng.choice(len(ids), int(rng.integers(1, 6)))] for _ in range(48)]
    ks = [int(k) for k in rng.choice([1, 5, 10, 40], len(baskets))]
    limits = Limits()
    monkeypatch.setattr(api, "threadpool_limits", limits)
    with make_client(export_world["out"], basket_batch=8) as client:
        assert limits.calls == [("limit", 1, "blas")]  # BLAS single-threaded while the app runs

        def post(i):
            r = client.post("/recommendations", json={"product_ids": baskets[i], "k": ks[i]})
            assert r.status_code == 200
            return r.content

        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(post, range(len(baskets))))
        batcher = client.app.state.baskets
        assert batcher.items == len(baskets) and batcher.batches <= len(baskets)
    assert limits.calls == [("limit", 1, "blas"), ("restore",)]  # and as before once it stopped
    for body, basket, k in zip(bodies, baskets, ks):
        assert _strip(body) == _strip(alone.basket_json(basket, k))
