"""Popularity, segment popularity and buy-again as aggregations, with the local scores.

Each function returns the :class:`~helpers.spark.topn.Parts` of the local model of the same
name, computed with the local formulas in ``float64`` and the local operation order, then
rounded to ``float32`` (so the rankings, ties included, are the local ones):

* :func:`global_popularity`: :class:`helpers.models.popularity.GlobalPopularity`:
  ``buyers + 0.5 * prior``, the buyers counted over the last ``window_days`` before
  ``as_of`` (None: the whole fit window; :func:`window_pairs`), the prior over the whole window.
* :func:`segmented_popularity`: :class:`helpers.models.popularity.SegmentedPopularity`:
  per large segment ``(1 - blend) * share_s + blend * share``, the global ``share`` for
  everyone else, plus ``0.5 * prior / n_active`` (shares, sizes and ``n_active`` over the
  same window of ``window_days``).
* :func:`buy_again`: :class:`helpers.models.buy_again.BuyAgain`: boost
  ``backfill + decay * rate ** repeat_beta * (1 + tie_break * prior)`` on the customer's
  history, ``backfill * prior`` elsewhere (``rate``: :func:`repeat_rate`, left out when
  ``repeat_beta = 0``). The decay sums the baskets'
  weights in ascending ``basket_id`` order (``aggregate`` over a sorted array: the order of
  the local sparse sum), so the sums do not depend on the partitioning.
* :func:`popularity_rank_scores`: the ALS cold-start scores of
  :func:`helpers.models.als.global_popularity` (dense rank of (buyers, baskets) / ranks).
"""

from __future__ import annotations

import math

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from helpers.models.popularity import TIE_BREAK, no_window
from helpers.spark.split import MICROS_PER_DAY, FitWindow, ts_literal
from helpers.spark.topn import Parts

LN2 = math.log(2.0)


def window_pairs(fw: FitWindow, window_days: float | None = None) -> DataFrame:
    """Distinct ``customer_id, product_id`` purchases in ``[as_of - window_days, as_of)``
    (the whole fit window when ``window_days`` is None or NaN), as
    :func:`helpers.models.popularity.window_user_items`."""
    if no_window(window_days):
        return fw.user_items.select("customer_id", "product_id")
    start = fw.as_of - pd.Timedelta(days=float(window_days))
    return (fw.lines.filter(F.col("timestamp") >= ts_literal(start))
            .select("customer_id", "product_id").distinct())


def window_buyers(fw: FitWindow, pairs: DataFrame) -> DataFrame:
    """``product_id, buyers, prior`` of every catalog product: distinct buyers among ``pairs``
    (0 where none; double), the whole-window prior."""
    buyers = pairs.groupBy("product_id").agg(F.count(F.lit(1)).cast("double").alias("buyers"))
    return (fw.catalog.select("product_id", "prior").join(buyers, "product_id", "left")
            .fillna(0.0, subset=["buyers"]))


def global_popularity(fw: FitWindow, window_days: float | None = None) -> Parts:
    cat = fw.catalog if no_window(window_days) else window_buyers(fw, window_pairs(fw, window_days))
    table = cat.select(F.lit(0).alias("group"), "product_id",
                       (F.col("buyers") + F.lit(TIE_BREAK) * F.col("prior")).cast("float").alias("score"))
    return Parts(table)


def popularity_rank_scores(fw: FitWindow) -> Parts:
    """``dense_rank(buyers, baskets) / max rank`` as ``float32`` (ALS's cold-start order)."""
    w = Window.orderBy("buyers", "baskets")
    ranked = fw.catalog.withColumn("r", F.dense_rank().over(w))
    top = ranked.agg(F.max("r").alias("m"))
    table = ranked.crossJoin(top).select(F.lit(0).alias("group"), "product_id",
                                         (F.col("r") / F.col("m")).cast("float").alias("score"))
    return Parts(table)


def segmented_popularity(fw: FitWindow, segments: DataFrame, segment_type: str = "loyalty_tier",
                         min_segment_size: int = 30, blend: float = 0.0,
                         window_days: float | None = None) -> tuple[Parts, DataFrame]:
    """Parts and ``segment, group, size`` of the segments with their own row (the last
    group is the global fallback)."""
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"blend must be in [0, 1], got {blend}")
    pairs = window_pairs(fw, window_days)
    active = pairs.select("customer_id").distinct()
    n_active = max(active.count(), 1)
    seg = (segments.filter((F.col("segment_type") == segment_type) & F.col("segment").isNotNull()
                           & (F.col("segment") != "unknown"))
           .select("customer_id", "segment").dropDuplicates(["customer_id"])
           .join(fw.customers, "customer_id", "left_semi"))
    sizes = seg.join(active, "customer_id", "left_semi").groupBy("segment").agg(F.count(F.lit(1)).alias("size"))
    big = sizes.filter(F.col("size") >= min_segment_size)
    big = big.withColumn("group", F.row_number().over(Window.orderBy("segment")) - 1)
    n_big = big.count()
    counts = (pairs.join(seg, "customer_id").join(F.broadcast(big), "segment")
              .groupBy("group", "product_id").agg(F.count(F.lit(1)).cast("double").alias("n")))
    cat = (fw.catalog if no_window(window_days) else window_buyers(fw, pairs)).select("product_id", (F.col("buyers") / F.lit(float(n_active))).alias("share_g"),
                            (F.lit(TIE_BREAK) * F.col("prior") / F.lit(float(n_active))).alias("tie"))
    grid = (F.broadcast(big.select("group", "size")).crossJoin(cat)
            .join(counts, ["group", "product_id"], "left").fillna(0.0, subset=["n"]))
    share = F.col("n") / F.col("size").cast("double")
    seg_rows = grid.select("group", "product_id",
                           ((F.lit(1.0 - blend) * share + F.lit(float(blend)) * F.col("share_g"))
                            + F.col("tie")).cast("float").alias("score"))
    glob = cat.select(F.lit(n_big).alias("group"), "product_id",
                      (F.col("share_g") + F.col("tie")).cast("float").alias("score"))
    groups = seg.join(F.broadcast(big), "segment").select("customer_id", "group")
    return Parts(seg_rows.unionByName(glob), groups), big.select("segment", "group", "size")


def basket_decay(fw: FitWindow, half_life_days: float) -> DataFrame:
    """``customer_id, product_id, decay``: summed ``exp(-ln 2 * age_days / half_life)`` of the
    distinct baskets (age from ``as_of``, floored at 0), in ascending basket order."""
    as_of_us = int(fw.as_of.value // 1000)
    per_basket = (fw.lines.groupBy("customer_id", "product_id", "basket_id")
                  .agg(F.min("timestamp").alias("ts")))
    age = F.greatest((F.lit(as_of_us) - F.unix_micros("ts")) / F.lit(float(MICROS_PER_DAY)), F.lit(0.0))
    weight = F.exp(F.lit(-LN2) * age / F.lit(float(half_life_days)))
    per_basket = per_basket.select("customer_id", "product_id", F.struct("basket_id", weight.alias("w")).alias("b"))
    return (per_basket.groupBy("customer_id", "product_id")
            .agg(F.array_sort(F.collect_list("b")).alias("bs"))
            .select("customer_id", "product_id",
                    F.aggregate("bs", F.lit(0.0), lambda acc, x: acc + x["w"]).alias("decay")))


def repeat_rate(fw: FitWindow, prior: float = 5.0) -> DataFrame:
    """``product_id, rate``: :func:`helpers.models.buy_again.repeat_rate` (the share of an
    item's baskets that were a repeat purchase, smoothed towards the catalog's share by
    ``prior`` baskets; at least 1e-6)."""
    cat = fw.catalog
    tot = cat.agg(F.sum("baskets").alias("total"), F.sum("buyers").alias("n_buyers")).first()
    total = float(tot["total"] or 0.0)
    mean = (total - float(tot["n_buyers"] or 0.0)) / total if total > 0 else 0.0
    b, n = F.col("baskets"), F.col("buyers")
    if prior > 0:
        rate = (b - n + F.lit(float(prior) * mean)) / (b + F.lit(float(prior)))
    else:
        rate = F.when(b > 0, (b - n) / b).otherwise(F.lit(0.0))
    return cat.select("product_id", F.greatest(rate, F.lit(1e-6)).alias("rate"))


def buy_again(fw: FitWindow, half_life_days: float = 30.0, backfill_weight: float = 1e-3,
              tie_break: float = 1e-3, repeat_beta: float = 0.0, repeat_prior: float = 5.0) -> Parts:
    if half_life_days <= 0:
        raise ValueError("half_life_days must be > 0")
    if backfill_weight <= 0:
        raise ValueError("backfill_weight must be > 0 (it also marks history items)")
    prior = fw.catalog.select("product_id", "prior")
    table = prior.select(F.lit(0).alias("group"), "product_id",
                         (F.lit(float(backfill_weight)) * F.col("prior")).cast("float").alias("score"))
    decay = basket_decay(fw, half_life_days)
    if repeat_beta:
        rate = repeat_rate(fw, repeat_prior)
        decay = decay.join(rate, "product_id").select(
            "customer_id", "product_id", (F.col("decay") * F.pow("rate", F.lit(float(repeat_beta)))).alias("decay"))
    boost = (decay.join(prior, "product_id")
             .select("customer_id", "product_id",
                     (F.lit(float(backfill_weight)) + F.col("decay") * (F.lit(1.0) + F.lit(float(tie_break))
                                                                        * F.col("prior"))).cast("float")
                     .alias("score")))
    return Parts(table, None, boost)
