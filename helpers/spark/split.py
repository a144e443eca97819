"""The temporal split and the fit window on Spark, with the conventions of
:mod:`helpers.evaluation.metrics` and :mod:`helpers.models.base`.

* :func:`temporal_split` returns the local :class:`~helpers.evaluation.metrics.Split`
  (half-open windows of midnights: ``end`` = midnight after the last transaction's day,
  test = the last ``test_days``, validation the ``valid_days`` before).
* :func:`fit_window` is the local ``make_fit_data`` as DataFrames: the *catalog* is the
  products bought (``quantity > 0``) in ``[start, as_of)``; ``user_items`` holds, per
  (customer, product), the number of distinct baskets with a purchase (repeated lines of a
  basket count once); every customer of ``dim_customer`` is a customer of the window.
* :func:`popularity_stats` is :func:`helpers.models.popularity.popularity_prior` and the
  distinct buyers / baskets per catalog product, in ``float64`` with the local operation
  order (so the ``float32`` scores built on them are the local ones, bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from helpers.evaluation.metrics import Split

MICROS_PER_DAY = 86_400_000_000


def temporal_split(fact: DataFrame, test_days: int = 28, valid_days: int = 28) -> Split:
    """:func:`helpers.evaluation.metrics.temporal_split` on a Spark fact table."""
    row = fact.agg(F.min("timestamp").alias("lo"), F.max("timestamp").alias("hi")).first()
    if row["lo"] is None:
        raise ValueError("no transactions to split")
    start = pd.Timestamp(row["lo"]).floor("D")
    end = pd.Timestamp(row["hi"]).normalize() + pd.Timedelta(days=1)
    test_start = end - pd.Timedelta(days=test_days)
    valid_start = test_start - pd.Timedelta(days=valid_days)
    if valid_start <= start:
        raise ValueError(f"no training days left: data starts {start.date()}, validation {valid_start.date()}")
    return Split(start, valid_start, test_start, end)


def ts_literal(ts) -> F.Column:
    """A naive timestamp as a Spark literal (session time zone UTC)."""
    return F.lit(pd.Timestamp(ts).to_pydatetime()).cast("timestamp")


def select_window(fact: DataFrame, start, end) -> DataFrame:
    """Rows with ``start <= timestamp < end`` (either bound None: open)."""
    cond = F.lit(True)
    if start is not None:
        cond = cond & (F.col("timestamp") >= ts_literal(start))
    if end is not None:
        cond = cond & (F.col("timestamp") < ts_literal(end))
    return fact.filter(cond)


def purchases(fact: DataFrame, start, end) -> DataFrame:
    """Purchase lines (``quantity > 0``) of a window."""
    return select_window(fact, start, end).filter(F.col("quantity") > 0)


@dataclass
class FitWindow:
    """The Spark counterpart of :class:`helpers.models.base.FitData`."""

    as_of: pd.Timestamp
    customers: DataFrame  # customer_id: every customer of dim_customer
    lines: DataFrame  # purchase lines of the window: customer_id, product_id, basket_id, timestamp
    user_items: DataFrame  # customer_id, product_id, baskets (distinct baskets, >= 1)
    catalog: DataFrame  # product_id, buyers, baskets, prior (popularity_stats)


def fit_window(fact: DataFrame, customers: DataFrame, as_of, start=None) -> FitWindow:
    lines = purchases(fact, start, as_of).select("customer_id", "product_id", "basket_id", "timestamp")
    ui = lines.groupBy("customer_id", "product_id").agg(F.count_distinct("basket_id").alias("baskets"))
    return FitWindow(pd.Timestamp(as_of), customers.select("customer_id"), lines, ui, popularity_stats(ui))


def popularity_stats(user_items: DataFrame) -> DataFrame:
    """``product_id, buyers, baskets, prior`` with
    ``prior = (buyers + baskets / (max_baskets + 1)) / (max_buyers + 1)`` (float64)."""
    per = user_items.groupBy("product_id").agg(F.count(F.lit(1)).cast("double").alias("buyers"),
                                                F.sum("baskets").cast("double").alias("baskets"))
    top = per.agg(F.max("buyers").alias("max_buyers"), F.max("baskets").alias("max_baskets"))
    return (per.crossJoin(F.broadcast(top))
            .withColumn("prior", (F.col("buyers") + F.col("baskets") / (F.col("max_baskets") + 1.0))
                        / (F.col("max_buyers") + 1.0))
            .drop("max_buyers", "max_baskets"))
