"""Relevance sets, evaluated customers and P/R/NDCG/hit-rate@K on Spark, join-based.

The conventions are those of :mod:`helpers.evaluation.metrics`, exactly:

* relevant = distinct products bought (``quantity > 0``) in the evaluation window;
  ``n_relevant`` counts them all, products outside the fit catalog included (the recall
  and IDCG denominator);
* protocol ``all``: customers with a fit-window purchase and a relevant product; ``new``:
  fit-window purchases leave the relevant set (and ``n_relevant``), are excluded from the
  recommendations (:func:`evaluation_set` returns them), customers left with nothing drop;
* ``precision = hits@K / K``, ``recall = hits@K / n_relevant``, ``ndcg = DCG / IDCG`` with
  ``DCG = sum over hit ranks i of 1 / log2(i + 1)`` and IDCG over ``min(K, n_relevant)``
  ranks, ``hit_rate = 1[hits@K > 0]``; macro averages over the evaluated customers,
  overall and per segment.

Why joins and not ``RankingEvaluator`` for the reported numbers: the evaluator scores one
group per call (the by-segment table would be one job per segment), has no hit rate, and
computes its discounts with ``log(i + 2) / log(2)`` and its means in partition order, so
its NDCG differs from the local one in the last bits. Here the discounts and the ideal
DCG are the local ``numpy`` values (passed as literal arrays) and each customer's DCG
adds its hits in rank order, so the per-customer metrics are the local ones bit for bit;
only the macro means are summed in another order (about 1e-16 relative).
:func:`ranking_evaluator_metrics` computes precision, recall and NDCG with the evaluator
(labels = every relevant product, off-catalog ones included, so its recall denominator
is the project's): the tests check it against the join-based values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.ml.evaluation import RankingEvaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from helpers.evaluation.metrics import METRICS
from helpers.spark.split import FitWindow, purchases


def relevance(fact: DataFrame, eval_start, eval_end, customers: DataFrame) -> DataFrame:
    """Distinct relevant ``customer_id, product_id`` pairs of the window (dim_customer customers)."""
    return (purchases(fact, eval_start, eval_end).select("customer_id", "product_id").distinct()
            .join(customers.select("customer_id"), "customer_id", "left_semi"))


def evaluation_set(fw: FitWindow, rel: DataFrame, protocol: str) -> tuple[DataFrame, DataFrame, DataFrame | None]:
    """``(evaluated customer_id, n_relevant; relevant pairs; excluded pairs or None)``."""
    fit_pairs = fw.user_items.select("customer_id", "product_id")
    if protocol == "new":
        rel = rel.join(fit_pairs, ["customer_id", "product_id"], "left_anti")
    elif protocol != "all":
        raise ValueError(f"protocol must be 'all' or 'new', got {protocol!r}")
    active = fit_pairs.select("customer_id").distinct()
    n_rel = rel.groupBy("customer_id").agg(F.count(F.lit(1)).alias("n_relevant"))
    evaluated = n_rel.join(active, "customer_id", "left_semi")
    rel = rel.join(evaluated.select("customer_id"), "customer_id", "left_semi")
    excluded = fit_pairs.join(evaluated.select("customer_id"), "customer_id", "left_semi") \
        if protocol == "new" else None
    return evaluated, rel, excluded


def _literal_array(values) -> F.Column:
    return F.array(*[F.lit(float(v)) for v in values])


def per_customer_metrics(recs: DataFrame, evaluated: DataFrame, rel: DataFrame, ks=(5, 10)) -> DataFrame:
    """One row per evaluated customer: ``customer_id, n_relevant`` and ``<metric>@<k>``."""
    kmax = max(ks)
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    cum_disc = np.concatenate([[0.0], np.cumsum(disc)])
    hits = (recs.filter(F.col("rank") <= kmax).select("customer_id", "rank", "product_id")
            .join(rel.withColumn("_rel", F.lit(True)), ["customer_id", "product_id"], "inner")
            .join(evaluated.select("customer_id"), "customer_id", "left_semi")
            .withColumn("gain", F.element_at(_literal_array(disc), F.col("rank").cast("int"))))
    aggs = []
    for k in ks:
        at_k = F.col("rank") <= k
        aggs.append(F.sum(F.when(at_k, 1).otherwise(0)).alias(f"hits@{k}"))
        ranked = F.array_sort(F.collect_list(F.when(at_k, F.struct("rank", "gain"))))
        aggs.append(F.aggregate(ranked, F.lit(0.0), lambda acc, x: acc + x["gain"]).alias(f"dcg@{k}"))
    per = evaluated.join(hits.groupBy("customer_id").agg(*aggs), "customer_id", "left")
    per = per.fillna(0, subset=[f"hits@{k}" for k in ks]).fillna(0.0, subset=[f"dcg@{k}" for k in ks])
    cols = [F.col("customer_id"), F.col("n_relevant")]
    for k in ks:
        h = F.col(f"hits@{k}").cast("double")
        idcg = F.element_at(_literal_array(cum_disc), F.least(F.col("n_relevant"), F.lit(k)).cast("int") + 1)
        cols += [(h / F.lit(float(k))).alias(f"precision@{k}"),
                 (h / F.col("n_relevant").cast("double")).alias(f"recall@{k}"),
                 (F.col(f"dcg@{k}") / idcg).alias(f"ndcg@{k}"),
                 (h > 0).cast("double").alias(f"hit_rate@{k}")]
    return per.select(*cols)


def metric_columns(ks=(5, 10)) -> list[str]:
    return [f"{m}@{k}" for k in ks for m in METRICS]


def summarize(per_customer: DataFrame, segments: DataFrame | None, model: str, protocol: str, split: str,
              ks=(5, 10), min_segment: int = 30) -> pd.DataFrame:
    """Long table ``model, protocol, split, segment_type, segment, k, metric, value, n_customers,
    small_segment`` of macro averages, overall and per segment (no bootstrap CIs)."""
    cols = metric_columns(ks)
    means = [F.avg(c).alias(c) for c in cols] + [F.count(F.lit(1)).alias("n_customers")]
    overall = per_customer.agg(*means).withColumn("segment_type", F.lit("overall")).withColumn(
        "segment", F.lit("all"))
    frames = [overall]
    if segments is not None:
        seg = per_customer.join(segments.filter(F.col("segment").isNotNull()), "customer_id")
        frames.append(seg.groupBy("segment_type", "segment").agg(*means))
    wide = frames[0]
    for f in frames[1:]:
        wide = wide.unionByName(f)
    pdf = wide.toPandas()
    rows = []
    for _, r in pdf.iterrows():
        for c in cols:
            metric, k = c.split("@")
            n = int(r["n_customers"])
            rows.append((model, protocol, split, r["segment_type"], r["segment"], int(k), metric, float(r[c]), n,
                         n < min_segment))
    out = pd.DataFrame(rows, columns=["model", "protocol", "split", "segment_type", "segment", "k", "metric",
                                      "value", "n_customers", "small_segment"])
    return out.sort_values(["segment_type", "segment", "k", "metric"], kind="stable").reset_index(drop=True)


def ranking_evaluator_metrics(recs: DataFrame, evaluated: DataFrame, rel: DataFrame, k: int) -> dict:
    """``precisionAtK``, ``recallAtK``, ``ndcgAtK`` of MLlib's ``RankingEvaluator`` (see module doc)."""
    preds = (recs.filter(F.col("rank") <= k).groupBy("customer_id")
             .agg(F.array_sort(F.collect_list(F.struct("rank", F.col("product_id").cast("double").alias("p"))))
                  .alias("r"))
             .select("customer_id", F.col("r.p").alias("prediction")))
    labels = rel.groupBy("customer_id").agg(F.collect_list(F.col("product_id").cast("double")).alias("label"))
    data = (evaluated.select("customer_id").join(labels, "customer_id").join(preds, "customer_id", "left")
            .withColumn("prediction", F.coalesce(F.col("prediction"), F.array().cast("array<double>"))))
    out = {}
    for name in ("precisionAtK", "recallAtK", "ndcgAtK"):
        ev = RankingEvaluator(metricName=name, k=int(k), predictionCol="prediction", labelCol="label")
        out[name] = float(ev.evaluate(data))
    return out
