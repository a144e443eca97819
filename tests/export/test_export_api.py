"""Batch export and recommendation API on a tiny synthetic dataset (fixed small parameters, no notebooks)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

jsonschema = pytest.importorskip("jsonschema")
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
pytest.importorskip("fastapi")

from helpers.export.versioned import publish, resolve  # noqa: E402
from tests.export_fixtures import COMPONENTS, TOP_N  # noqa: E402,F401


@pytest.fixture(scope="module")
def world(export_built):
    """Tiny star schema (plus two customers without purchases), the tuning files and one export."""
    w = export_built
    cust = pd.read_parquet(w["processed"] / "dim_customer.parquet")
    return w | {"common_age": cust.loc[cust["customer_id"] == w["cold_ids"][0], "age_band"].iloc[0]}


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{name}.parquet")


def _purchases(processed: Path) -> pd.DataFrame:
    fact = pd.read_parquet(processed / "fact_transactions.parquet", columns=["customer_id", "product_id", "quantity"])
    return fact.loc[fact["quantity"] > 0, ["customer_id", "product_id"]].drop_duplicates()


def test_every_customer_gets_n_ranked_distinct_rows(world):
    rec = _read(world["out"], "recommendations")
    customers = pd.read_parquet(world["processed"] / "dim_customer.parquet")["customer_id"]
    assert set(rec["customer_id"]) == set(customers)
    assert (rec.groupby("customer_id").size() == TOP_N).all()
    assert (rec.groupby("customer_id")["rank"].apply(lambda r: sorted(r) == list(range(1, TOP_N + 1)))).all()
    assert not rec.duplicated(["customer_id", "product_id"]).any()
    assert list(rec.columns) == ["customer_id", "rank", "product_id", "score", "reason", "reason_label",
                                 "description", "category", "brand", "model_version", "generated_at"]
    # scores descend within a customer, and CSV / JSON Lines hold the same rows
    assert (rec.groupby("customer_id")["score"].apply(lambda s: (np.diff(s.to_numpy()) <= 1e-12).all())).all()
    csv = pd.read_csv(world["out"] / "recommendations.csv")
    jsonl = pd.read_json(world["out"] / "recommendations.jsonl", lines=True)
    assert len(csv) == len(jsonl) == len(rec) == world["manifest"]["row_counts"]["recommendations"]
    assert (csv["product_id"].to_numpy() == rec["product_id"].to_numpy()).all()


def test_reasons_and_cold_start(world):
    rec = _read(world["out"], "recommendations")
    kinds = rec["reason"].str.split(":").str[0]
    assert set(kinds) <= {"buy_again", "similar_to", "popular_in_segment", "trending"}
    assert {"buy_again", "similar_to"} <= set(kinds)
    bought = _purchases(world["processed"])
    # buy_again only for products the customer bought; similar_to names one of the customer's past products
    ba = rec[rec["reason"] == "buy_again"].merge(bought, how="left", indicator=True)
    assert (ba["_merge"] == "both").all()
    sim = rec[kinds == "similar_to"].copy()
    sim["past"] = sim["reason"].str.split(":").str[1].astype(np.int64)
    hit = sim.merge(bought.rename(columns={"product_id": "past"}), how="left", indicator=True)
    assert (hit["_merge"] == "both").all()
    assert (sim["past"] != sim["product_id"]).all()
    assert rec.loc[kinds == "similar_to", "reason_label"].str.startswith("Because you bought ").all()
    seg_cust, anon_cust = world["cold_ids"]
    seg = rec[rec["customer_id"] == seg_cust]
    assert (seg["reason"] == f"popular_in_segment:age_band={world['common_age']}").all()
    assert (rec.loc[rec["customer_id"] == anon_cust, "reason"] == "trending").all()
    assert world["manifest"]["row_counts"]["cold_start_customers_all"] == 2


def test_exclude_purchased_variant(world):
    new = _read(world["out"], "recommendations_new")
    assert (new.groupby("customer_id").size() == TOP_N).all()
    overlap = new.merge(_purchases(world["processed"]), on=["customer_id", "product_id"])
    assert overlap.empty
    assert "buy_again" not in set(new["reason"])
    # diversity rule of the 'new' hybrid: at most 3 products of one category per customer (warm customers)
    warm = ~new["customer_id"].isin(world["cold_ids"])
    per_cat = new[warm].groupby(["customer_id", new["category"].fillna("(none)")]).size()
    assert per_cat.max() <= 3


def test_rows_validate_against_the_json_schemas(world):
    out = world["out"]
    for stem in ("recommendations", "similar_products"):
        schema = json.loads((out / f"{stem}.schema.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        with open(out / f"{stem}.jsonl") as f:
            rows = [json.loads(line) for line in f]
        assert rows
        errors = [e.message for row in rows for e in validator.iter_errors(row)]
        assert not errors, errors[:3]
    bad = {**rows[0], "rank": 0}
    assert not validator.is_valid(bad)


def test_similar_products(world):
    sim = _read(world["out"], "similar_products")
    products = pd.read_parquet(world["processed"] / "dim_product.parquet")["product_id"]
    assert set(sim["product_id"]) <= set(products)
    assert sim["product_id"].nunique() >= 0.9 * len(products)
    assert (sim["product_id"] != sim["similar_product_id"]).all()
    assert (sim.groupby("product_id")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1)))).all()
    assert sim.groupby("product_id").size().max() == 5
    assert sim["score"].between(0, 1).all()


def test_manifest_and_artifacts_carry_no_pickle(world):
    m = json.loads((world["out"] / "manifest.json").read_text())
    meta = json.loads((world["processed"] / "star_schema.json").read_text())
    assert m["data_fingerprint"] == meta["fingerprint"]
    assert len(m["model_version"]) == 12 and m["top_n"] == TOP_N
    assert m["row_counts"]["recommendations"] == TOP_N * m["row_counts"]["customers"]
    assert m["parameters"]["content"]["all"]["half_life_days"] is None  # NaN read back as None
    files = [p for p in (world["out"] / "model").rglob("*") if p.is_file()]
    assert files and {p.suffix for p in files} <= {".npy", ".npz", ".parquet", ".json"}
    for p in files:
        if p.suffix == ".npy":
            np.load(p, allow_pickle=False)
        elif p.suffix == ".npz":
            assert np.load(p, allow_pickle=False).files


def _tree(folder: Path) -> dict:
    """Every file of a folder with its bytes, every symlink with its target."""
    return {str(p.relative_to(folder)): os.readlink(p) if p.is_symlink() else p.read_bytes()
            for p in folder.rglob("*") if p.is_symlink() or p.is_file()}


def _strip_generated_at(path: Path) -> list:
    """Lines of a CSV (generated_at is the last column) or JSON Lines file without generated_at."""
    lines = path.read_text().splitlines()
    if path.suffix == ".csv":
        return [line.rsplit(",", 1)[0] if "generated_at" in lines[0] else line for line in lines]
    return [{k: v for k, v in json.loads(line).items() if k != "generated_at"} for line in lines]


def test_export_is_deterministic(world, tmp_path, monkeypatch):
    from helpers.export.production import export
    from helpers.models.als import ALS
    from helpers.models.itemknn import ItemKNN

    fits = []
    for cls in (ALS, ItemKNN):
        monkeypatch.setattr(cls, "fit", lambda self, data, cls=cls: fits.append(cls.__name__))
    second = tmp_path / "exports"
    res = export(world["processed"], world["tables"], second, top_n=TOP_N, n_similar=5, seed=0, api_top_n=30,
                 chunk_size=97)  # another chunking must not change anything
    # the first export stored its all-data fits in the model cache: this one loads them,
    # and files equal to the first export's show that a loaded fit is the fit
    assert fits == []
    a, b = world["out"], resolve(second)
    assert b == Path(res["path"]) and b.parent == second
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert names_a == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    for rel in names_a:
        pa_, pb = a / rel, b / rel
        if rel.endswith(".parquet"):
            da, db = pd.read_parquet(pa_), pd.read_parquet(pb)
            pd.testing.assert_frame_equal(da.drop(columns=["generated_at"], errors="ignore"),
                                          db.drop(columns=["generated_at"], errors="ignore"))
        elif rel == "manifest.json":
            ma, mb = json.loads(pa_.read_text()), json.loads(pb.read_text())
            ma.pop("generated_at"), mb.pop("generated_at")
            assert ma == mb
        elif rel.endswith((".csv", ".jsonl")):
            assert _strip_generated_at(pa_) == _strip_generated_at(pb), rel
        else:
            assert pa_.read_bytes() == pb.read_bytes(), rel


def test_failed_export_leaves_the_previous_one_intact(world, tmp_path, monkeypatch):
    import helpers.export.production as ex

    folder = tmp_path / "exports"
    shutil.copytree(world["out"], tmp_path / "v1")
    publish(tmp_path / "v1", folder)
    before = _tree(folder)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(ex, "_write_similar", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        ex.export(world["processed"], world["tables"], folder, top_n=TOP_N, n_similar=5, api_top_n=30)
    assert _tree(folder) == before  # versions and current
    assert [p.name for p in tmp_path.iterdir()] == ["exports"]  # no temporary folder left behind


# ---------------------------------------------------------------------- API
@pytest.fixture(scope="module")
def client(world):
    from fastapi.testclient import TestClient

    from helpers.serving.api import create_app

    with TestClient(create_app(world["out"])) as c:
        yield c


def _rows(df: pd.DataFrame) -> list[dict]:
    out = df.drop(columns=[]).to_dict("records")
    for r in out:
        for k, v in r.items():
            if isinstance(v, float) and math.isnan(v):
                r[k] = None
    return out


def test_health(client, world):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model_version"] == world["manifest"]["model_version"]
    assert h["loaded"]["customers"] == world["manifest"]["row_counts"]["customers"]
    assert h["loaded"]["products"] == world["manifest"]["row_counts"]["products"]


def test_known_customer_equals_the_export(client, world):
    rec = _read(world["out"], "recommendations")
    new = _read(world["out"], "recommendations_new")
    for cid in list(rec["customer_id"].unique()[:15]) + world["cold_ids"]:
        got = client.get(f"/customers/{cid}/recommendations", params={"k": TOP_N}).json()
        assert got["known_customer"] is True
        assert got["items"] == _rows(rec[rec["customer_id"] == cid])
        got = client.get(f"/customers/{cid}/recommendations", params={"k": TOP_N, "exclude_purchased": True})
        assert got.json()["items"] == _rows(new[new["customer_id"] == cid])
    cid = int(rec["customer_id"].iloc[0])
    deeper = client.get(f"/customers/{cid}/recommendations", params={"k": 25}).json()["items"]
    assert len(deeper) == 25 and deeper[:TOP_N] == _rows(rec[rec["customer_id"] == cid])
    three = client.get(f"/customers/{cid}/recommendations", params={"k": 3}).json()["items"]
    assert three == deeper[:3]


def test_unknown_customer_is_a_404_and_the_cold_start_list_has_its_own_endpoint(client, world):
    r = client.get("/customers/987654321/recommendations", params={"k": 7})
    assert r.status_code == 404 and "987654321" in r.text
    body = client.get("/recommendations/cold-start", params={"k": 7}).json()
    assert len(body["items"]) == 7 and all(i["reason"] == "trending" for i in body["items"])
    anon = _read(world["out"], "recommendations")
    anon = anon[anon["customer_id"] == world["cold_ids"][1]]  # no purchases, no segment: the same list
    assert [i["product_id"] for i in body["items"]] == anon["product_id"].tolist()[:7]


def test_validation_errors(client):
    assert client.get("/customers/1/recommendations", params={"k": 0}).status_code == 422
    assert client.get("/customers/1/recommendations", params={"k": 101}).status_code == 422
    assert client.get("/customers/abc/recommendations").status_code == 404  # ids are text: unknown, not malformed
    assert client.get("/products/1/similar", params={"k": 101}).status_code == 422
    for body in ({"k": 3}, {"product_ids": []}, {"product_ids": "x"}, {"product_ids": [1], "k": 0},
                 {"product_ids": [1], "k": 101}):
        assert client.post("/recommendations", json=body).status_code == 422, body
    r = client.post("/recommendations", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_similar_products_endpoint(client, world):
    sim = _read(world["out"], "similar_products")
    pid = int(sim["product_id"].iloc[0])
    body = client.get(f"/products/{pid}/similar", params={"k": 3}).json()
    assert [i["similar_product_id"] for i in body["items"]] == sim[sim["product_id"] == pid][
        "similar_product_id"].tolist()[:3]
    schema = json.loads((world["out"] / "similar_products.schema.json").read_text())
    for item in body["items"]:
        jsonschema.validate(item, schema, cls=jsonschema.Draft202012Validator)
    r = client.get("/products/424242/similar")
    assert r.status_code == 404 and "424242" in r.text


def test_basket_recommendations(client, world):
    rec = _read(world["out"], "recommendations")
    basket = rec["product_id"].drop_duplicates().tolist()[:3]
    r = client.post("/recommendations", json={"product_ids": basket, "k": 12})
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 12 and [i["rank"] for i in items] == list(range(1, 13))
    assert not {i["product_id"] for i in items} & set(basket)
    assert len({i["product_id"] for i in items}) == 12
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    schema = json.loads((world["out"] / "recommendations.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for item in items:
        assert not list(validator.iter_errors(item))
        if item["reason"].startswith("similar_to:"):
            assert int(item["reason"].split(":")[1]) in basket
    r = client.post("/recommendations", json={"product_ids": [basket[0], 31337, 424242]})
    assert r.status_code == 404 and "31337" in r.text and "424242" in r.text


def test_basket_components_match_the_library(world):
    """The API's basket scores reproduce the library's own basket methods (ALS fold-in, content)."""
    from helpers.data.star import load_tables
    from helpers.export.production import fit_production
    from helpers.serving.api import ExportStore
    from helpers.tuning.workflow import load_tuning

    tables = load_tables(world["processed"], names=("fact_transactions", "dim_customer", "dim_product",
                                                    "customer_exposure"))
    model = fit_production(tables, load_tuning(world["tables"]), tables_dir=world["tables"])
    comps = model.components("all")
    store = ExportStore(world["out"])
    basket = model.fit.item_ids[[0, 5, 9]].tolist()
    raw = store.basket.component_scores(basket)
    np.testing.assert_allclose(raw["als"], comps["als"].score_baskets([basket])[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(raw["content"], comps["content"].score_products(basket)[0], rtol=1e-5, atol=1e-6)
    # item-kNN and EASE of a one-basket history equal their scores of a customer with that history
    x = np.zeros((1, model.fit.n_items), dtype=np.float32)
    x[0, model.fit.item_columns(basket)] = 1.0
    knn = comps["itemknn"]
    np.testing.assert_allclose(raw["itemknn"], (x @ knn.similarity_.toarray())[0] + knn.backfill_, rtol=1e-5,
                               atol=1e-6)


def test_bench_api_smoke(world):
    from helpers.bench.api_load import run_benchmark

    res = run_benchmark(world["out"], n_requests=200, concurrency=2, warmup=10, max_seconds=60, log=None)
    assert res["errors"] == 0 and res["requests"] == 200 and res["p99_ms"] > 0


def test_answer_cache_is_bounded_and_transparent(world):
    from helpers.serving.api import ExportStore

    store = ExportStore(world["out"], cache_bytes=20_000)
    ids = pd.read_parquet(world["out"] / "recommendations.parquet", columns=["customer_id"])["customer_id"].unique()
    for cid in list(ids[:40]) * 2:
        cid = int(cid)
        assert json.loads(store.customer_json(cid, 10, False)) == store.customer(cid, 10, False)
        assert store._cache_bytes <= 20_000
    assert 0 < len(store._cache) < 40


def test_export_folder_is_not_private(world):
    assert world["out"].stat().st_mode & 0o055  # readable by the service account serving the API


def test_explainer_content_equals_brute_force(tiny_tables):
    """The past product that explains a recommended item by text: the brute-force
    argmax over the customer's ``max_history`` most weighted past products."""
    from helpers.export.production import Explainer
    from helpers.models.base import make_fit_data
    from helpers.models.content import ContentTFIDF

    fact = tiny_tables["fact_transactions"]
    fit = make_fit_data(fact, tiny_tables["dim_customer"], tiny_tables["dim_product"], fact["timestamp"].max())
    content = ContentTFIDF(min_df=1).fit(fit)
    ex = Explainer(fit, content, max_history=7)
    ex.CUSTOMER_BATCH = 5  # several batches
    rng = np.random.default_rng(0)
    rows = rng.integers(0, fit.n_customers, size=400)
    cols = rng.integers(0, fit.n_items, size=400)
    got = ex.content(rows, cols)
    w = content.weights.toarray()
    cos = (content.item_tfidf @ content.item_tfidf.T).toarray()
    for a, (r, c) in enumerate(zip(rows, cols)):
        past = sorted(np.flatnonzero(w[r]), key=lambda j: (-w[r, j], j))[:7]
        vals = {j: w[r, j] * cos[j, c] for j in past if j != c}
        vals = {j: v for j, v in vals.items() if v > 0}
        if not vals:
            assert got[a] == -1
            continue
        best = max(vals.values())
        near = [j for j, v in vals.items() if np.isclose(v, best, rtol=1e-5)]
        assert got[a] in near, (r, c, got[a], near)


def test_explainer_knn_and_most_bought_equal_brute_force(tiny_tables):
    """The past product that explains an item by co-purchase: argmax over the customer's past
    products j (not the item) of x[u, j] * S[j, i]; the fallback, the most bought past product."""
    from helpers.export.production import Explainer
    from helpers.models.base import make_fit_data
    from helpers.models.content import ContentTFIDF
    from helpers.models.itemknn import ItemKNN

    fact = tiny_tables["fact_transactions"]
    fit = make_fit_data(fact, tiny_tables["dim_customer"], tiny_tables["dim_product"], fact["timestamp"].max())
    knn = ItemKNN(k_neighbors=10, weighting="none", similarity="cosine").fit(fit)
    ex = Explainer(fit, ContentTFIDF(min_df=1).fit(fit), knn)
    ex.PAIR_BATCH = 64  # several batches
    rng = np.random.default_rng(1)
    x = fit.user_items.toarray().astype(np.float64)
    rows = rng.integers(0, fit.n_customers, size=500)
    rows[:50] = int(np.argmax(x.sum(axis=1)))  # a heavy customer: many candidates per pair
    cols = rng.integers(0, fit.n_items, size=500)
    cols[:50] = np.flatnonzero(x[rows[0]])[:50] if (x[rows[0]] > 0).sum() >= 50 else cols[:50]
    s = knn.similarity_.toarray().astype(np.float64)
    got_knn, got_most = ex.knn(rows, cols), ex.most_bought(rows, cols)
    found = 0
    for a, (r, c) in enumerate(zip(rows, cols)):
        vals = x[r] * s[:, c]
        vals[c] = 0.0
        if vals.max() <= 0:
            assert got_knn[a] == -1
        else:
            found += 1
            near = np.flatnonzero(np.isclose(vals, vals.max(), rtol=1e-5))
            assert got_knn[a] in near, (r, c, got_knn[a], near)
        counts = x[r].copy()
        counts[c] = 0.0
        assert got_most[a] == (int(np.argmax(counts)) if counts.max() > 0 else -1)
    assert found > 50


def test_memoized_component_block_is_read_only_and_scored_once():
    from helpers.export.production import _Memo
    from helpers.models.hybrid import minmax_rows

    class Counting:
        name, data, calls = "counting", None, 0

        def score(self, rows):
            Counting.calls += 1
            return np.arange(len(rows) * 4, dtype=np.float32).reshape(len(rows), 4)

    memo = _Memo(Counting())
    first = memo.score(np.array([0, 1]))
    assert not first.flags.writeable and memo.score(np.array([0, 1])) is first and Counting.calls == 1
    normed = minmax_rows(first, inplace=True)  # the hybrid's normalization leaves the shared block intact
    assert normed is not first and first[1, 3] == 7.0
