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

from helpers.evaluation.metrics import summarize
from helpers.spark import agreement, engine
from helpers.spark.agreement import EXACT, PROTOCOLS
from helpers.spark.evaluate import evaluation_set, ranking_evaluator_metrics

PARAMS = {"factors": 32, "iterations": 10, "regularization": 10.0, "seed": 0}


@pytest.fixture(scope="module")
def local(small_tables):
    return agreement.local_results(small_tables, PARAMS)


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


@pytest.mark.parametrize("segment_type", ["loyalty_tier", "history_length", "income_band", "age_band",
                                          "promo_exposure"])
def test_segments_are_the_local_ones(local, remote, segment_type):
    seg = local["segments"]
    want = seg.loc[seg["segment_type"] == segment_type].set_index("customer_id")["segment"].sort_index()
    got = (remote["segments"].filter(f"segment_type = '{segment_type}'").toPandas()
           .set_index("customer_id")["segment"].sort_index())
    pd.testing.assert_series_equal(got, want, check_names=False, check_dtype=False)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", EXACT)
def test_top_n_lists_are_the_local_ones(local, remote, name, protocol):
    res = local["results"][(name, protocol)]
    ids, scores = agreement.spark_lists(remote, name, protocol, res["customers"], res["ids"].shape[1])
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


def test_compare_reports_every_model_in_agreement(local, remote):
    table = agreement.compare(local, remote)
    assert len(table) == 8 and table["agree"].all(), table.to_string()
    assert table.loc[table["model"] != "als", "lists_equal"].all()
