"""The basket fast path answers what the FastAPI route answers, and only plain requests."""

from __future__ import annotations

import re

import orjson
import pytest

from helpers.serving import fastpath
from helpers.serving.fastpath import plain_basket
from tests.serving.conftest import make_client

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

ROUTE_ONLY = "application/vnd.basket+json"  # JSON to FastAPI, not plain to the fast path


def test_plain_bodies():
    assert plain_basket(b'{"product_ids": [1, "A-2"], "k": 7}', 1000, 200, 100) == ([1, "A-2"], 7)
    assert plain_basket(b'{"product_ids": [3]}', 1000, 200, 100) == ([3], 10)
    for body in (b"[1]", b'{"product_ids": []}', b'{"product_ids": [1], "x": 0}', b'{"product_ids": [1.0]}',
                 b'{"product_ids": [true]}', b'{"product_ids": [""]}', b'{"product_ids": ["abc"]}',
                 b'{"product_ids": [1], "k": 0}', b'{"product_ids": [1], "k": 101}', b'{"product_ids": [1], "k": "5"}',
                 b'{"product_ids": [1], "k": true}', b'{"product_ids": [1], "k": null}', b'{"k": 5}', b"{",
                 b'{"product_ids": [1, 2]}', b'{"product_ids": [123456789012345678901234567890]}'):
        limits = (1, 2, 100) if body == b'{"product_ids": [1, 2]}' or b"abc" in body else (1000, 200, 100)
        assert plain_basket(body, *limits) is None, body


def _strip(body: bytes) -> bytes:
    return re.sub(rb'"generated_at":"[^"]*"', b"", body)


def test_fast_path_answers_as_the_route(export_world, monkeypatch):
    calls = []

    def spy(*args):
        calls.append(plain_basket(*args))
        return calls[-1]

    monkeypatch.setattr(fastpath, "plain_basket", spy)
    with make_client(export_world["out"]) as client:
        ids = client.app.state.holder.store.products.values(client.app.state.holder.store.basket.item_pos[:6])
        bodies = [{"product_ids": ids[:3], "k": 5}, {"product_ids": [str(ids[0]), ids[4]]},
                  {"product_ids": ids[:2], "k": 100}, {"product_ids": [ids[0], 424242]}, {"product_ids": []},
                  {"product_ids": [ids[0]], "k": "5"}, {"product_ids": [ids[0]], "k": 0},
                  {"product_ids": [ids[0]], "extra": 1}, {"product_ids": [ids[0] + 0.5]}, [ids[0]]]
        for body in bodies:
            data = orjson.dumps(body)
            fast = client.post("/recommendations", content=data, headers={"content-type": "application/json"})
            route = client.post("/recommendations", content=data, headers={"content-type": ROUTE_ONLY})
            assert fast.status_code == route.status_code, body
            assert _strip(fast.content) == _strip(route.content), body
            assert fast.headers["content-type"] == route.headers["content-type"] == "application/json"
            assert fast.headers["content-length"] == str(len(fast.content))
    assert len(calls) == len(bodies)  # every application/json request, none of the others
    served = [c for c in calls if c is not None]
    assert [s[0] for s in served] == [b["product_ids"] for b in bodies[:4]]  # the plain ones (the 4th: 404 by the route)
