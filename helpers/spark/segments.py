"""Customer features and segments on Spark: RFM loyalty tiers and the simple segment types.

The rules of :mod:`helpers.features.customers` and :mod:`helpers.features.segments`:

* **RFM** over the window ``timestamp < as_of``: ``recency_days`` from the last purchase
  basket (a basket's time: its earliest purchase line) to ``as_of``; ``frequency`` =
  distinct baskets with a purchase; ``monetary`` = ``sales_value`` summed over all the
  customer's lines of the window (returns included). Scores 1-5: ``ceil(5 * average rank /
  n)`` among customers with history (ties share their average rank; recency reversed).
* **Tiers**: thresholds = ``numpy.quantile`` (linear) of ``rfm_score`` at 50/80/95 % over
  the customers with history; ties go up. The thresholds are computed on the driver from
  the (at most 13-value) histogram of ``rfm_score``, so they are numpy's, bit for bit;
  the same for the ``history_length`` median of ``frequency`` (its histogram has one row
  per distinct basket count). Customers without history: tier ``"None"``, length ``new``.
* ``age_band``, ``gender`` (left out when the source has none), ``income_band`` (four wide
  bands by lower bound), as the local rules; missing -> ``unknown``.

* ``promo_exposure`` (:func:`promo_bands`): the exposure score of each customer with
  history is the mean of the average percentile ranks (``rank / n`` over the customers with
  a value) of ``promo_share`` (mean ``on_promotion`` of the purchase lines; left out where
  the source has no flag), ``campaigns_received`` (distinct campaigns of the
  ``customer_exposure`` events dated before ``floor(as_of)``) and ``coupons_redeemed``;
  bands at its terciles (``numpy.quantile`` on the driver over the collected scores, one
  number per customer); ``none`` without history.

Not here: the other customer features of the EDA.

The average ranks use a window over all customers with history (one partition: a column
of numbers per customer, fine up to tens of millions of customers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from helpers.features.customers import (
    EXPOSURE_BANDS,
    EXPOSURE_QUANTILES,
    N_SCORES,
    NO_HISTORY_BAND,
    NO_HISTORY_TIER,
    TIER_QUANTILES,
    TIERS,
)
from helpers.features.segments import INCOME_BANDS, INCOME_EDGES, UNKNOWN
from helpers.spark.split import MICROS_PER_DAY, select_window


def _count_all() -> F.Column:
    return F.count(F.lit(1)).over(Window.partitionBy(F.lit(1)))


def _average_rank(col: str, order: F.Column) -> F.Column:
    """1-based rank by ``order``, ties sharing their average rank (pandas ``method="average"``)."""
    ties = F.count(F.lit(1)).over(Window.partitionBy(col))
    return F.rank().over(Window.orderBy(order)) + (ties - 1) / 2.0


def quantile_scores(df: DataFrame, col: str, out: str, higher_is_better: bool = True) -> DataFrame:
    """``ceil(n_scores * average rank / n)`` clipped to 1..n_scores, as :func:`helpers.features.customers.quantile_scores`."""
    order = F.col(col).asc() if higher_is_better else F.col(col).desc()
    score = F.ceil(_average_rank(col, order) / _count_all() * N_SCORES)
    return df.withColumn(out, F.least(F.greatest(score, F.lit(1)), F.lit(N_SCORES)).cast("long"))


def _histogram_quantiles(df: DataFrame, col: str, qs) -> np.ndarray:
    hist = df.groupBy(col).count().orderBy(col).toPandas()
    if hist.empty:
        return np.full(len(qs), np.nan)
    values = np.repeat(hist[col].to_numpy(dtype=float), hist["count"].to_numpy())
    return np.quantile(values, qs)


def rfm(fact: DataFrame, as_of) -> DataFrame:
    """``customer_id, recency_days, frequency, monetary, r/f/m_score, rfm_score`` (customers with history)."""
    w = select_window(fact, None, as_of)
    p = w.filter(F.col("quantity") > 0)
    baskets = p.groupBy("basket_id").agg(F.first("customer_id").alias("customer_id"), F.min("timestamp").alias("ts"))
    as_of_us = int(pd.Timestamp(as_of).value // 1000)
    per = baskets.groupBy("customer_id").agg(F.max("ts").alias("last"), F.count(F.lit(1)).alias("frequency"))
    money = w.groupBy("customer_id").agg(F.sum("sales_value").alias("monetary"))
    out = (per.join(money, "customer_id", "left").fillna(0.0, subset=["monetary"])
           .withColumn("recency_days", (F.lit(as_of_us) - F.unix_micros("last")) / F.lit(float(MICROS_PER_DAY))))
    out = quantile_scores(out, "recency_days", "r_score", higher_is_better=False)
    out = quantile_scores(out, "frequency", "f_score")
    out = quantile_scores(out, "monetary", "m_score")
    return out.withColumn("rfm_score", F.col("r_score") + F.col("f_score") + F.col("m_score")).select(
        "customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_score")


def percentile_rank(df: DataFrame, col: str, out: str) -> DataFrame:
    """``df`` with ``out`` = average rank / count among the rows where ``col`` is not null (null
    elsewhere): ``pandas.Series.rank(method="average", pct=True)``."""
    valid = df.filter(F.col(col).isNotNull())
    ranked = valid.select("customer_id", (_average_rank(col, F.col(col).asc()) / _count_all()).alias(out))
    return df.join(ranked, "customer_id", "left")


def promo_bands(tables: dict, as_of) -> DataFrame:
    """``customer_id, promo_band`` of the customers with a purchase before ``as_of`` (see the module doc)."""
    fact = tables["fact_transactions"]
    p = select_window(fact, None, as_of).filter(F.col("quantity") > 0)
    flag = (F.col("on_promotion").cast("double") if "on_promotion" in fact.columns else F.lit(None).cast("double"))
    hist = p.groupBy("customer_id").agg(F.avg(flag).alias("promo_share"))
    campaigns = coupons = None
    ev = tables.get("customer_exposure")
    if ev is not None:
        cut = pd.Timestamp(as_of).floor("D").date()
        ev = ev.filter(F.col("date").cast("date") < F.lit(cut))
        campaigns = (ev.filter(F.col("event") == "campaign_received").groupBy("customer_id")
                     .agg(F.count_distinct("campaign_id").alias("campaigns_received")))
        coupons = (ev.filter(F.col("event") == "coupon_redeemed").groupBy("customer_id")
                   .agg(F.count(F.lit(1)).alias("coupons_redeemed")))
    for table, col in ((campaigns, "campaigns_received"), (coupons, "coupons_redeemed")):
        hist = (hist.join(table, "customer_id", "left").fillna(0, subset=[col]) if table is not None
                else hist.withColumn(col, F.lit(0)))
    cols = ("promo_share", "campaigns_received", "coupons_redeemed")
    for c in cols:
        hist = percentile_rank(hist, c, f"{c}_pct")
    total, count = F.lit(0.0), F.lit(0)
    for c in cols:  # pandas' row mean skipping NaN: the valid ranks summed in column order
        total = total + F.coalesce(F.col(f"{c}_pct"), F.lit(0.0))
        count = count + F.col(f"{c}_pct").isNotNull().cast("int")
    scored = hist.select("customer_id", (total / count).alias("score")).cache()
    values = scored.select("score").toPandas()["score"].to_numpy(float)
    thr = np.quantile(values, EXPOSURE_QUANTILES) if len(values) else np.full(len(EXPOSURE_QUANTILES), np.nan)
    return scored.select("customer_id", _band("score", thr, EXPOSURE_BANDS).alias("promo_band"))


def _band(col: str, thresholds, labels) -> F.Column:
    """``labels[#thresholds <= value]`` (ties go up), as ``searchsorted(side='right')``."""
    expr = F.lit(labels[-1])
    for thr, label in reversed(list(zip(thresholds, labels[:-1]))):
        expr = F.when(F.col(col) < F.lit(float(thr)), F.lit(label)).otherwise(expr)
    return expr


def _clean(col: str) -> F.Column:
    v = F.trim(F.col(col).cast("string"))
    return F.when(v.isNull() | (v == ""), F.lit(UNKNOWN)).otherwise(v)


def wide_income_band(col: str) -> F.Column:
    text = F.upper(F.trim(F.col(col).cast("string")))
    digits = F.regexp_extract(text, r"^(\d+)", 1)
    low = F.when(text.rlike(r"^(UNDER|<|BELOW|LESS)"), F.lit(0.0)).otherwise(
        F.when(digits != "", digits.cast("double")))
    expr = F.lit(INCOME_BANDS[-1])
    for edge, label in reversed(list(zip(INCOME_EDGES, INCOME_BANDS[:-1]))):
        expr = F.when(low < F.lit(float(edge)), F.lit(label)).otherwise(expr)
    return F.when(low.isNull(), F.lit(UNKNOWN)).otherwise(expr)


def compute_segments(tables: dict, as_of) -> tuple[DataFrame, dict]:
    """Long ``customer_id, segment_type, segment`` (one per type for every customer) and the
    learned thresholds (``tier_thresholds``, ``heavy_min_baskets``)."""
    cust = tables["dim_customer"]
    r = rfm(tables["fact_transactions"], as_of).cache()
    thr = _histogram_quantiles(r, "rfm_score", TIER_QUANTILES)
    median = float(_histogram_quantiles(r, "frequency", [0.5])[0])
    feats = cust.select("customer_id", *[c for c in ("age_band", "gender", "income_band") if c in cust.columns])
    feats = feats.join(r.select("customer_id", "rfm_score", "frequency"), "customer_id", "left")
    tier = F.when(F.col("rfm_score").isNull(), F.lit(NO_HISTORY_TIER)).otherwise(_band("rfm_score", thr, TIERS))
    length = (F.when(F.col("frequency").isNull(), F.lit("new"))
              .when(F.col("frequency") >= F.lit(median), F.lit("heavy")).otherwise(F.lit("light")))
    parts = {"loyalty_tier": tier,
             "age_band": _clean("age_band") if "age_band" in cust.columns else F.lit(UNKNOWN)}
    if "gender" in cust.columns and cust.filter(F.col("gender").isNotNull()).limit(1).count():
        parts["gender"] = _clean("gender")
    parts["income_band"] = wide_income_band("income_band") if "income_band" in cust.columns else F.lit(UNKNOWN)
    feats = feats.join(promo_bands(tables, as_of), "customer_id", "left")
    parts["promo_exposure"] = F.coalesce(F.col("promo_band"), F.lit(NO_HISTORY_BAND))
    parts["history_length"] = length
    wide = feats.select("customer_id", *[e.alias(n) for n, e in parts.items()])
    stack = F.explode(F.array(*[F.struct(F.lit(n).alias("segment_type"), F.col(n).alias("segment"))
                                for n in parts]))
    long = wide.select("customer_id", stack.alias("s")).select("customer_id", "s.segment_type", "s.segment")
    info = {"tier_thresholds": dict(zip(TIERS[1:], [float(t) for t in thr])), "heavy_min_baskets": median}
    return long, info
