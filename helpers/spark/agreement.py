"""Agreement of the Spark engine with the local engine on one star schema.

:func:`local_results` runs the local engine's models with the Spark engine's parameters and
conventions (the same temporal split, segments of the fit window, test stage, both
protocols); :func:`compare` sets them against :func:`helpers.spark.engine.evaluate_models`:

* global popularity, segment popularity, buy-again (:data:`EXACT`): the same top-N lists
  (ids and float32 scores) and the same per-customer metrics, bit for bit; the segment
  means within 1e-12 (Spark sums them in another order);
* ALS (MLlib against ``implicit``: different solvers and confidence models): NDCG@5
  within :data:`ALS_TOLERANCE`.

Used by the Spark test suite (small synthetic data) and by the benchmark (Complete Journey).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.evaluation.metrics import evaluate_model, relevance_matrix, select_window, summarize, temporal_split
from helpers.features.segments import compute_segments
from helpers.models.als import ALS
from helpers.models.base import make_fit_data
from helpers.models.buy_again import BuyAgain
from helpers.models.popularity import GlobalPopularity, SegmentedPopularity
from helpers.spark.engine import params_with_defaults

EXACT = ("global_popularity", "segmented_popularity", "buy_again")
PROTOCOLS = ("all", "new")
ALS_TOLERANCE = 0.01
__all__ = ["ALS_TOLERANCE", "EXACT", "PROTOCOLS", "compare", "local_results", "spark_lists"]


def local_results(tables: dict, params: dict | None = None, models=(*EXACT, "als")) -> dict:
    """The local engine on ``tables`` (pandas star schema) with the Spark engine's parameters:
    ``split``, ``segments``, ``fit`` and ``results[(model, protocol)]`` = ``per`` (per-customer
    metrics), ``ids``, ``scores`` (top-N) and ``customers`` (evaluated, in order)."""
    p = params_with_defaults(params)
    fact = tables["fact_transactions"]
    split = temporal_split(fact, test_days=p["test_days"], valid_days=p["valid_days"])
    fit_end, start, end = split.windows(p["stage"])
    segments = compute_segments(tables, fit_end)
    fit = make_fit_data(fact, tables["dim_customer"], tables["dim_product"], fit_end, segments=segments)
    rel = relevance_matrix(select_window(fact, start, end), fit.customer_ids, fit.item_ids)
    factories = {"global_popularity": GlobalPopularity, "segmented_popularity": SegmentedPopularity,
                 "buy_again": lambda: BuyAgain(p["half_life_days"], p["backfill_weight"], p["tie_break"]),
                 "als": lambda: ALS(factors=p["factors"], iterations=p["iterations"],
                                    regularization=p["regularization"], random_state=p["seed"])}
    ks = tuple(p["ks"])
    out = {}
    for name in models:
        model = factories[name]().fit(fit)
        for protocol in PROTOCOLS:
            per, ids, scores, customers = evaluate_model(model, fit, rel, protocol, ks=ks, top_n=p["top_n"])
            out[(name, protocol)] = {"per": per, "ids": ids, "scores": scores, "customers": customers}
    return {"split": split, "segments": segments, "fit": fit, "results": out, "params": p}


def spark_lists(remote: dict, name: str, protocol: str, customers: np.ndarray, width: int):
    """The Spark engine's top-N of ``(name, protocol)`` as local-style ``(ids, scores)`` arrays,
    one row per customer of ``customers`` (``-1`` / ``-inf`` where a list is shorter)."""
    recs = remote["recs"][(name, protocol)].toPandas()
    ids = np.full((len(customers), width), -1, dtype=np.int64)
    scores = np.full((len(customers), width), -np.inf, dtype=np.float32)
    row = pd.Index(customers).get_indexer(recs["customer_id"])
    if (row < 0).any():
        raise ValueError(f"Spark recommended {name} ({protocol}) for customers the local engine does not evaluate")
    ids[row, recs["rank"] - 1] = recs["product_id"]
    scores[row, recs["rank"] - 1] = recs["score"]
    return ids, scores


def compare(local: dict, remote: dict) -> pd.DataFrame:
    """One row per (model, protocol): ``lists_equal`` (ids and scores, exact models),
    ``per_customer_equal``, ``max_mean_diff`` (largest difference of a segment mean),
    ``ndcg5_local``, ``ndcg5_spark`` and ``agree`` (exact models: all equal and the means
    within 1e-12; ALS: NDCG@5 within :data:`ALS_TOLERANCE`)."""
    rows = []
    key = ["segment_type", "segment", "k", "metric"]
    for (name, protocol), res in local["results"].items():
        got = remote["metrics"].query("model == @name and protocol == @protocol")
        want = summarize(res["per"], res["customers"], local["segments"], name, protocol, local["params"]["stage"],
                         n_boot=10)
        merged = want.merge(got, on=key, suffixes=("_local", "_spark"), validate="one_to_one")
        ndcg = merged.query("segment_type == 'overall' and metric == 'ndcg' and k == 5")
        row = {"model": name, "protocol": protocol, "customers": int(len(res["customers"])),
               "ndcg5_local": float(ndcg["value_local"].iloc[0]), "ndcg5_spark": float(ndcg["value_spark"].iloc[0]),
               "max_mean_diff": float((merged["value_spark"] - merged["value_local"]).abs().max()),
               "segment_rows_matched": bool(len(merged) == len(want) == len(got)
                                            and (merged["n_customers_spark"] == merged["n_customers_local"]).all())}
        if name in EXACT:
            ids, scores = spark_lists(remote, name, protocol, res["customers"], res["ids"].shape[1])
            filled = res["ids"] >= 0
            per = remote["per_customer"][(name, protocol)].toPandas().set_index("customer_id").loc[res["customers"]]
            row["lists_equal"] = bool(np.array_equal(ids, res["ids"]) and np.array_equal(scores[filled],
                                                                                           res["scores"][filled]))
            row["per_customer_equal"] = all(np.array_equal(per[f"{m}@{k}"].to_numpy(), v)
                                            for (m, k), v in res["per"].items())
            row["agree"] = (row["lists_equal"] and row["per_customer_equal"] and row["segment_rows_matched"]
                            and row["max_mean_diff"] <= 1e-12)
        else:
            row["agree"] = abs(row["ndcg5_spark"] - row["ndcg5_local"]) <= ALS_TOLERANCE
        rows.append(row)
    return pd.DataFrame(rows)
