"""Batch top-N for every customer from scores given in parts, as DataFrame joins.

A model's scores are given as :class:`Parts` (the Spark form of
:func:`helpers.models.base.top_k_parts`): customer ``u`` of group ``g(u)`` scores
``boost[u, i]`` on its boosted pairs and ``table[g(u), i]`` on every other catalog product;
the excluded pairs are never recommended. Outside its boosted and excluded pairs a customer
ranks as its group's order, so its top ``k`` lie among the first ``k + n_skip(u)`` products
of that order (``n_skip``: its boosted or excluded pairs) and its allowed boosted pairs:
:func:`recommend` generates exactly those candidates (``explode(sequence)`` joined with the
ranked table on its position, ``U * k + nnz`` rows: linear) and ranks them.

Ranking convention (the local one): descending ``float32`` score, ties to the lower
product id (the catalog is sorted by id, so "lower item index" locally). Fewer than ``k``
allowed products give a shorter list (the local engine's empty slots).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def ranking() -> list:
    """Descending score, ties to the lower product id (columns need an active session)."""
    return [F.col("score").desc(), F.col("product_id").asc()]


@dataclass
class Parts:
    """``table``: group, product_id, score (float); ``groups``: customer_id, group (None: every
    customer in group 0); ``boost``: customer_id, product_id, score (or None)."""

    table: DataFrame
    groups: DataFrame | None = None
    boost: DataFrame | None = None


def rank_within(df: DataFrame, key: str, k: int | None = None) -> DataFrame:
    """``df`` with ``rank`` (1-based) within ``key`` by :func:`ranking`, keeping ranks <= ``k``."""
    ranked = df.withColumn("rank", F.row_number().over(Window.partitionBy(key).orderBy(*ranking())))
    return ranked.filter(F.col("rank") <= k) if k is not None else ranked


def recommend(parts: Parts, customers: DataFrame, k: int, excluded: DataFrame | None = None) -> DataFrame:
    """``customer_id, rank, product_id, score`` (rank 1..k) for every row of ``customers``."""
    ordered = parts.table.withColumn(
        "pos", F.row_number().over(Window.partitionBy("group").orderBy(*ranking())))
    who = customers.select("customer_id").distinct()
    if parts.groups is not None:
        who = who.join(parts.groups, "customer_id", "left")
        who = who.withColumn("group", F.coalesce(F.col("group"), F.lit(-1)))
        fallback_group = parts.table.agg(F.max("group")).first()[0]
        who = who.withColumn("group", F.when(F.col("group") < 0, F.lit(fallback_group)).otherwise(F.col("group")))
    else:
        who = who.withColumn("group", F.lit(0))
    skip_parts = [d.select("customer_id", "product_id") for d in (parts.boost, excluded) if d is not None]
    if skip_parts:
        skip = skip_parts[0]
        for d in skip_parts[1:]:
            skip = skip.unionByName(d)
        skip = skip.distinct().join(who.select("customer_id"), "customer_id", "left_semi")
        n_skip = skip.groupBy("customer_id").agg(F.count(F.lit(1)).alias("n_skip"))
        who = who.join(n_skip, "customer_id", "left")
    else:
        skip = None
        who = who.withColumn("n_skip", F.lit(0))
    width = F.lit(int(k)) + F.coalesce(F.col("n_skip"), F.lit(0))
    cand = (who.select("customer_id", "group", F.explode(F.sequence(F.lit(1), width)).alias("pos"))
            .join(F.broadcast(ordered), ["group", "pos"])
            .select("customer_id", "product_id", "score"))
    if skip is not None:
        cand = cand.join(skip, ["customer_id", "product_id"], "left_anti")
    if parts.boost is not None:
        boost = parts.boost.join(who.select("customer_id"), "customer_id", "left_semi")
        if excluded is not None:
            boost = boost.join(excluded, ["customer_id", "product_id"], "left_anti")
        cand = cand.unionByName(boost.select("customer_id", "product_id", "score"))
    return rank_within(cand, "customer_id", k).select("customer_id", "rank", "product_id", "score")
