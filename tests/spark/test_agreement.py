"""Agreement of the Spark engine with the local engine on the same small synthetic data.

Popularity, segment popularity and buy-again: the same top-N lists (ids and float32
scores) and the same per-customer metrics, bit for bit; the macro means to 1e-12 (Spark
sums them in another order). ALS (MLlib against ``implicit``, different solvers and
confidence models): NDCG@5 within 0.01. Both engines use 32 factors and 10 iterations
here to keep the suite short.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.evaluation.metrics import evaluate_model, relevance_matrix, select_window, summarize, temporal_split
from helpers.features.segments import compute_segments
from helpers.models.als import ALS
from helpers.models.base import make_fit_data
from helpers.models.buy_again import BuyAgain
from helpers.models.popularity import GlobalPopularity, SegmentedPopularity
from helpers.spark import engine
from helpers.spark.evaluate import evaluation_set, ranking_evaluator_metrics

PARAMS = {"factors": 32, "iterations": 10, "regularization": 10.0, "seed": 0}
KS = (5, 10)
EXACT = ("global_popularity", "segmented_popularity", "buy_again")
PROTOCOLS = ("all", "new")


@pytest.fixture(scope="module")
def local(small_tables):
    fact = small_tables["fact_transactions"]
    split = temporal_split(fact)
    fit_end, start, end = split.windows("test")
    segments = compute_segments(small_tables, fit_end)
    fit = make_fit_data(fact, small_tables["dim_customer"], small_tables["dim_product"], fit_end, segments=segments)
    rel = relevance_matrix(select_window(fact, start, end), fit.customer_ids, fit.item_ids)
    models = {"global_popularity": GlobalPopularity(), "segmented_popularity": SegmentedPopularity(),
              "buy_again": BuyAgain(),
              "als": ALS(factors=PARAMS["factors"], iterations=PARAMS["iterations"],
                         regularization=PARAMS["regularization"], random_state=PARAMS["seed"])}
    out = {}
    for name, model in models.items():
        model.fit(fit)
        for protocol in PROTOCOLS:
            per, ids, scores, customers = evaluate_model(model, fit, rel, protocol, ks=KS, top_n=10)
            out[(name, protocol)] = {"per": per, "ids": ids, "scores": scores, "customers": customers}
    return {"split": split, "segments": segments, "fit": fit, "results": out}


@pytest.fixture(scope="module")
def remote(spark, spark_tables):
    return engine.evaluate_models(spark, spark_tables, PARAMS)


def test_split_is_the_local_one(local, remote):
    assert remote["split"] == local["split"]


def test_catalog_and_user_items_are_the_local_ones(local, remote):
    fit = local["fit"]
    ui = remote["fit"].user_items.toPandas().sort_values(["customer_id", "product_id"])
    coo = fit.user_items.tocoo()
    expected = pd.DataFrame({"customer_id": fit.customer_ids[coo.row], "product_id": fit.item_ids[coo.col],
                             "baskets": coo.data.astype(np.int64)}).sort_values(["customer_id", "product_id"])
    np.testing.assert_array_equal(ui.to_numpy(np.int64), expected.to_numpy(np.int64))
    cat = remote["fit"].catalog.select("product_id").toPandas()["product_id"].sort_values().to_numpy()
    np.testing.assert_array_equal(cat, fit.item_ids)


@pytest.mark.parametrize("segment_type", ["loyalty_tier", "history_length", "income_band", "age_band"])
def test_segments_are_the_local_ones(local, remote, segment_type):
    seg = local["segments"]
    want = seg.loc[seg["segment_type"] == segment_type].set_index("customer_id")["segment"].sort_index()
    got = (remote["segments"].filter(f"segment_type = '{segment_type}'").toPandas()
           .set_index("customer_id")["segment"].sort_index())
    pd.testing.assert_series_equal(got, want, check_names=False, check_dtype=False)


def _spark_lists(remote, name, protocol, customers, width):
    recs = remote["recs"][(name, protocol)].toPandas()
    ids = np.full((len(customers), width), -1, dtype=np.int64)
    scores = np.full((len(customers), width), -np.inf, dtype=np.float32)
    row = pd.Index(customers).get_indexer(recs["customer_id"])
    assert (row >= 0).all(), "Spark recommended for a customer the local engine does not evaluate"
    ids[row, recs["rank"] - 1] = recs["product_id"]
    scores[row, recs["rank"] - 1] = recs["score"]
    return ids, scores


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", EXACT)
def test_top_n_lists_are_the_local_ones(local, remote, name, protocol):
    res = local["results"][(name, protocol)]
    ids, scores = _spark_lists(remote, name, protocol, res["customers"], res["ids"].shape[1])
    np.testing.assert_array_equal(ids, res["ids"])
    filled = res["ids"] >= 0
    np.testing.assert_array_equal(scores[filled], res["scores"][filled])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", EXACT)
def test_metrics_are_the_local_ones(local, remote, name, protocol):
    res = local["results"][(name, protocol)]
    per = remote["per_customer"][(name, protocol)].toPandas().set_index("customer_id").loc[res["customers"]]
    for (metric, k), values in res["per"].items():
        np.testing.assert_array_equal(per[f"{metric}@{k}"].to_numpy(), values, err_msg=f"{metric}@{k}")
    want = summarize(res["per"], res["customers"], local["segments"], name, protocol, "test", n_boot=10)
    got = remote["metrics"].query("model == @name and protocol == @protocol")
    want = want.loc[want["segment_type"].isin(set(got["segment_type"]))]  # promo_exposure: local only
    key = ["segment_type", "segment", "k", "metric"]
    merged = want.merge(got, on=key, suffixes=("_local", "_spark"), validate="one_to_one")
    assert len(merged) == len(want) == len(got)
    np.testing.assert_allclose(merged["value_spark"], merged["value_local"], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(merged["n_customers_spark"], merged["n_customers_local"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_als_ndcg_is_close_to_the_local_als(local, remote, protocol):
    res = local["results"][("als", protocol)]
    local_ndcg = float(np.mean(res["per"][("ndcg", 5)]))
    got = remote["metrics"].query("model == 'als' and protocol == @protocol and segment_type == 'overall' "
                                  "and metric == 'ndcg' and k == 5")["value"].item()
    assert abs(got - local_ndcg) <= 0.01, f"Spark ALS NDCG@5 {got:.4f} vs local {local_ndcg:.4f}"


def test_ranking_evaluator_agrees_with_the_join_based_metrics(spark, remote):
    name, protocol, k = "buy_again", "all", 5
    fw = remote["fit"]
    per = remote["per_customer"][(name, protocol)]
    evaluated = per.select("customer_id", "n_relevant")
    rel_all = remote["relevance"]
    _, rel, _ = evaluation_set(fw, rel_all, protocol)
    got = ranking_evaluator_metrics(remote["recs"][(name, protocol)], evaluated, rel, k)
    row = remote["metrics"].query("model == @name and protocol == @protocol and segment_type == 'overall' "
                                  "and k == @k").set_index("metric")["value"]
    assert got["precisionAtK"] == pytest.approx(row["precision"], abs=1e-12)
    assert got["recallAtK"] == pytest.approx(row["recall"], abs=1e-12)
    assert got["ndcgAtK"] == pytest.approx(row["ndcg"], abs=1e-12)
