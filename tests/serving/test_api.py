"""The API over integer-id and text-id exports: same lists, unknown ids 404, guards."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from tests.serving.conftest import TOP_N, customer_text, make_client, product_text

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def client(export_world):
    with make_client(export_world["out"]) as c:
        yield c


@pytest.fixture(scope="module")
def text_client(export_world):
    with make_client(export_world["text"]) as c:
        yield c


def _export(world, name="recommendations") -> pd.DataFrame:
    return pd.read_parquet(world["out"] / f"{name}.parquet")


def test_unknown_and_huge_ids_are_404_naming_the_id(client):
    for cid in ("987654321", "abc", str(2 ** 63), "-1", "1.5", "C00001"):
        r = client.get(f"/customers/{cid}/recommendations")
        assert r.status_code == 404 and cid in r.json()["detail"]["message"], cid
        assert r.json()["detail"]["unknown_customer_ids"] == [cid]
    for pid in (str(2 ** 63), "424242", "HBZ-1-BL", str(10 ** 40)):
        r = client.get(f"/products/{pid}/similar")
        assert r.status_code == 404 and pid in r.text, pid
    known = int(_export_products(client)[0])
    r = client.post("/recommendations", json={"product_ids": [known, 2 ** 63, "x-1", 10 ** 30]})
    assert r.status_code == 404
    assert r.json()["detail"]["unknown_product_ids"] == [2 ** 63, "x-1", 10 ** 30]


def _export_products(client) -> list:
    return client.app.state.holder.store.products.values(range(3))


def test_ids_as_text_or_numbers_on_an_integer_export(client, export_world):
    rec = _export(export_world)
    cid = int(rec["customer_id"].iloc[0])
    a = client.get(f"/customers/{cid}/recommendations").json()
    assert a["customer_id"] == cid and a["items"][0]["customer_id"] == cid  # the export's type: an integer
    assert client.get(f"/customers/0{cid}/recommendations").json()["items"] == a["items"]
    basket = rec["product_id"].drop_duplicates().tolist()[:3]
    as_ints = client.post("/recommendations", json={"product_ids": basket, "k": 5}).json()
    as_text = client.post("/recommendations", json={"product_ids": [str(p) for p in basket], "k": 5}).json()
    assert as_ints["product_ids"] == as_text["product_ids"] == basket
    assert [i["product_id"] for i in as_ints["items"]] == [i["product_id"] for i in as_text["items"]]


def test_text_export_answers_equal_the_integer_export_relabelled(client, text_client, export_world):
    rec = _export(export_world)
    for cid in list(rec["customer_id"].unique()[:8]) + export_world["cold_ids"]:
        a = client.get(f"/customers/{cid}/recommendations", params={"k": 25}).json()
        b = text_client.get(f"/customers/{customer_text(cid)}/recommendations", params={"k": 25}).json()
        assert b["customer_id"] == customer_text(cid)
        assert [i["product_id"] for i in b["items"]] == [product_text(i["product_id"]) for i in a["items"]]
        assert [i["score"] for i in b["items"]] == [i["score"] for i in a["items"]]
        assert [i["reason_label"] for i in b["items"]] == [i["reason_label"] for i in a["items"]]
        assert [i["reason"] for i in b["items"]] == [
            "similar_to:" + product_text(i["reason"].split(":")[1]) if i["reason"].startswith("similar_to:")
            else i["reason"] for i in a["items"]]
    pid = int(pd.read_parquet(export_world["out"] / "similar_products.parquet")["product_id"].iloc[0])
    a = client.get(f"/products/{pid}/similar").json()
    b = text_client.get(f"/products/{product_text(pid)}/similar").json()
    assert [product_text(i["similar_product_id"]) for i in a["items"]] == [i["similar_product_id"] for i in b["items"]]
    basket = rec["product_id"].drop_duplicates().tolist()[:4]
    a = client.post("/recommendations", json={"product_ids": basket, "k": 8}).json()
    b = text_client.post("/recommendations", json={"product_ids": [product_text(p) for p in basket], "k": 8}).json()
    assert [product_text(i["product_id"]) for i in a["items"]] == [i["product_id"] for i in b["items"]]
    assert b["product_ids"] == [product_text(p) for p in basket]
    assert text_client.get("/health").json()["id_types"] == {"customer_id": "string", "product_id": "string"}
    r = text_client.get(f"/customers/{int(rec['customer_id'].iloc[0])}/recommendations")  # the integer: unknown
    assert r.status_code == 404


def test_cold_start_list_is_the_global_list_of_the_export(client, export_world):
    rec = _export(export_world)
    anon = rec[rec["customer_id"] == export_world["cold_ids"][1]]  # no purchases, no segment: the global list
    body = client.get("/recommendations/cold-start", params={"k": 7}).json()
    assert [i["product_id"] for i in body["items"]] == anon["product_id"].tolist()[:7]
    assert all(i["reason"] == "trending" and i["customer_id"] is None for i in body["items"])
    segments = client.get("/health").json()["loaded"]["cold_start_segments"]
    assert segments
    seg = client.get("/recommendations/cold-start", params={"segment": segments[0]}).json()
    assert seg["segment"] == segments[0] and len(seg["items"]) == TOP_N
    assert client.get("/recommendations/cold-start", params={"segment": "no-such"}).status_code == 404


def test_body_cap_rejects_before_reading(export_world):
    with make_client(export_world["out"], max_body_bytes=1000) as c:
        big = b'{"product_ids": [' + b"1," * 5_000_000 + b"1]}"  # 10 MB
        t0 = time.perf_counter()
        r = c.post("/recommendations", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["detail"]["max_body_bytes"] == 1000
        assert time.perf_counter() - t0 < 2.0

        def chunks():  # no Content-Length: counted while read
            for _ in range(100):
                yield b" " * 100

        r = c.post("/recommendations", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert c.get("/health").status_code == 200  # the server is still answering
        rec = _export(export_world)
        ok = c.post("/recommendations", json={"product_ids": rec["product_id"].tolist()[:2]})
        assert ok.status_code == 200
    with make_client(export_world["out"]) as c:  # the 1,000-id cap stays (a 422, under the default body cap)
        assert c.post("/recommendations", json={"product_ids": [1] * 1001}).status_code == 422


def test_api_key_when_set(export_world):
    cid = int(_export(export_world)["customer_id"].iloc[0])
    with make_client(export_world["out"], api_key="s3cret") as c:
        assert c.get("/health").status_code == 200  # open: for load balancers
        assert c.get(f"/customers/{cid}/recommendations").status_code == 401
        assert c.get(f"/customers/{cid}/recommendations", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get(f"/customers/{cid}/recommendations", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/admin/reload").status_code == 401
        assert c.post("/admin/reload", headers={"X-API-Key": "s3cret"}).status_code == 200
        basket = {"product_ids": _export(export_world)["product_id"].tolist()[:2]}  # the fast path: behind the key too
        assert c.post("/recommendations", json=basket).status_code == 401
        assert c.post("/recommendations", json=basket, headers={"X-API-Key": "s3cret"}).status_code == 200
    with make_client(export_world["out"]) as c:  # off by default
        assert c.get(f"/customers/{cid}/recommendations").status_code == 200


def test_rate_limit_when_set(export_world):
    cid = int(_export(export_world)["customer_id"].iloc[0])
    with make_client(export_world["out"], rate_per_second=0.5, burst=3) as c:
        codes = [c.get(f"/customers/{cid}/recommendations").status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = c.get(f"/customers/{cid}/recommendations")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/health").status_code == 200


def test_token_buckets_refill_at_the_rate():
    from helpers.serving.guards import TokenBuckets

    now = [0.0]
    b = TokenBuckets(rate=2.0, burst=2.0, max_keys=2, clock=lambda: now[0])
    assert [b.take("a"), b.take("a")] == [0.0, 0.0]
    assert b.take("a") == pytest.approx(0.5)  # one token in half a second
    now[0] = 0.5
    assert b.take("a") == 0.0 and b.take("b") == 0.0
    b.take("c")  # a third client: the least recently seen ("a") is dropped and starts full again
    assert "a" not in b._buckets and b.take("a") == 0.0
