"""Customer features computed strictly before a cut-off: RFM, loyalty tiers, timing, promotion exposure.

Conventions
-----------
* **Window.** :mod:`helpers.features.windows` (``timestamp < as_of``, purchases have
  ``quantity > 0``). Dated events of ``customer_exposure`` (a calendar day, no time)
  count only when their whole day lies before ``as_of``: ``date < floor(as_of)``.
* **RFM.** ``recency_days`` = days (fractional) from the last purchase to
  ``as_of``; ``frequency`` = distinct baskets with a purchase; ``monetary`` = sum
  of ``sales_value`` over all the customer's lines in the window (net of
  returns). Scores 1-5 are quantile scores among the customers with history:
  ``score = ceil(5 * percentile_rank)`` with tied values sharing their average
  rank (so equal values get equal scores and qcut's duplicate-edge problem
  cannot occur). Recency is reversed: the most recent customers score 5.
* **Loyalty tiers.** ``rfm_score = r_score + f_score + m_score`` (3-15).
  Thresholds are the 50th, 80th and 95th percentiles of ``rfm_score`` over the
  customers with history *in the given window*: Bronze below the first, Silver
  from the first, Gold from the second, Platinum from the third (ties go up, so
  the shares are close to, not exactly, 50/30/15/5 %). The tier is a
  non-decreasing function of ``rfm_score``, hence monotone in each of R, F and
  M. Customers without history get tier ``"None"`` and scores 0.
* **Promotion exposure.** ``promo_share`` = share of purchase lines on
  promotion (NaN when the source has no promotion flag); ``campaigns_received``
  = distinct campaigns received, ``coupons_redeemed`` = coupon redemptions. The
  exposure score is the mean of the three percentile ranks among customers with
  history (NaN components skipped); bands are its terciles in the window:
  ``low`` below the first, ``medium`` below the second, ``high`` from the
  second. Customers without purchase history get band ``"none"``.

Sales over time and seasonality (:mod:`helpers.features.sales`), product features
(:mod:`helpers.features.products`) and the window helpers are re-exported here, where
the notebooks import them (``from helpers.features import customers as F``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.atomic import atomic_path
from helpers.data.star import write_parquet as write_row_groups
from helpers.features.products import (
    N_PRICE_BANDS,
    interaction_stats,
    popularity_curve,
    product_features,
    products_per_customer,
    top_share,
)
from helpers.features.sales import (
    department_seasonal_index,
    holiday_uplift,
    promotion_share,
    sales_over_time,
    weekday_profile,
)
from helpers.features.windows import (
    DAY,
    N_SCORES,
    as_of_time,
    distinct_per_group,
    promo_flag,
    purchases,
    quantile_band,
    quantile_scores,
    reference_time,
    window,
)

__all__ = [
    "CUSTOMER_FEATURES", "EXPOSURE_BANDS", "EXPOSURE_QUANTILES", "NO_HISTORY_BAND", "NO_HISTORY_TIER", "TIERS",
    "TIER_QUANTILES", "assign_loyalty_tiers", "basket_table", "customer_features", "loyalty_tiers",
    "promotion_exposure", "purchase_timing", "rfm", "write_parquet",
    # re-exported from their own modules
    "DAY", "N_PRICE_BANDS", "N_SCORES", "department_seasonal_index", "holiday_uplift", "interaction_stats",
    "popularity_curve", "product_features", "products_per_customer", "promotion_share", "purchases",
    "quantile_scores", "sales_over_time", "top_share", "weekday_profile", "window",
]

TIERS = ("Bronze", "Silver", "Gold", "Platinum")
NO_HISTORY_TIER = "None"
TIER_QUANTILES = (0.5, 0.8, 0.95)
EXPOSURE_BANDS = ("low", "medium", "high")
NO_HISTORY_BAND = "none"
EXPOSURE_QUANTILES = (1 / 3, 2 / 3)


def basket_table(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """One row per basket with a purchase: ``basket_id, customer_id, timestamp,
    n_items`` (distinct products), ``units`` and ``value`` (purchase lines)."""
    p = purchases(transactions, as_of)
    g = p.groupby("basket_id", sort=True)
    return pd.DataFrame(
        {
            "customer_id": g["customer_id"].first(),
            "timestamp": g["timestamp"].min(),
            "n_items": distinct_per_group(p, "basket_id", "product_id"),
            "units": g["quantity"].sum(),
            "value": g["sales_value"].sum(),
        }
    ).reset_index()


def _baskets(p: pd.DataFrame) -> pd.DataFrame:
    """``customer_id, timestamp`` of each basket of the purchase lines ``p``."""
    g = p.groupby("basket_id", sort=False)
    return pd.DataFrame({"customer_id": g["customer_id"].first(), "timestamp": g["timestamp"].min()})


def _rfm(w: pd.DataFrame, p: pd.DataFrame, baskets: pd.DataFrame, ref: pd.Timestamp) -> pd.DataFrame:
    g = baskets.groupby("customer_id", sort=True)
    last = g["timestamp"].max()
    out = pd.DataFrame(
        {
            "recency_days": (ref - last) / DAY,
            "frequency": g.size().astype(np.int64),
            "monetary": w.groupby("customer_id")["sales_value"].sum().reindex(last.index, fill_value=0.0),
        }
    )
    out["r_score"] = quantile_scores(out["recency_days"], higher_is_better=False)
    out["f_score"] = quantile_scores(out["frequency"])
    out["m_score"] = quantile_scores(out["monetary"])
    out["rfm_score"] = out["r_score"] + out["f_score"] + out["m_score"]
    out.index.name = "customer_id"
    return out


def rfm(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Recency, frequency, monetary and their 1-5 scores, one row per customer
    with history (sorted by ``customer_id``)."""
    w = window(transactions, as_of)
    p = w.loc[w["quantity"].to_numpy() > 0]
    return _rfm(w, p, _baskets(p), reference_time(transactions, as_of)).reset_index()


def assign_loyalty_tiers(rfm_score: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Tier of each combined RFM score and the thresholds (learned on these scores)."""
    return quantile_band(rfm_score, TIER_QUANTILES, TIERS)


def loyalty_tiers(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """``customer_id, rfm_score, loyalty_tier`` for the customers with history.

    The thresholds are in ``.attrs["thresholds"]`` (Silver, Gold, Platinum)."""
    r = rfm(transactions, as_of)
    tier, thresholds = assign_loyalty_tiers(r["rfm_score"])
    out = r[["customer_id", "rfm_score"]].assign(loyalty_tier=tier.to_numpy())
    out.attrs["thresholds"] = dict(zip(TIERS[1:], thresholds.tolist()))
    return out


def _timing(baskets: pd.DataFrame, ref: pd.Timestamp) -> pd.DataFrame:
    g = baskets.groupby("customer_id", sort=True)["timestamp"]
    first, last, n = g.min(), g.max(), g.size()
    span = (last - first) / DAY
    out = pd.DataFrame(
        {
            "first_purchase": first,
            "last_purchase": last,
            "n_baskets": n.astype(np.int64),
            "recency_days": (ref - last) / DAY,
            "tenure_days": (ref - first) / DAY,
            "mean_interpurchase_days": (span / (n - 1)).where(n > 1),
        }
    )
    out.index.name = "customer_id"
    return out


def purchase_timing(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """``customer_id, first_purchase, last_purchase, n_baskets, recency_days,
    tenure_days, mean_interpurchase_days`` for the customers with history.

    The mean inter-purchase interval is the mean gap between consecutive
    baskets, i.e. ``(last - first) / (n_baskets - 1)`` days; NaN for one basket."""
    p = purchases(transactions, as_of)
    return _timing(_baskets(p), reference_time(transactions, as_of)).reset_index()


def _exposure(p: pd.DataFrame, as_of, exposure: pd.DataFrame | None) -> pd.DataFrame:
    flag = promo_flag(p)
    share = flag.groupby(p["customer_id"].to_numpy(), sort=True).mean()
    out = pd.DataFrame({"promo_share": share, "has_history": True})
    campaigns = coupons = pd.Series(dtype="int64")
    if exposure is not None and len(exposure):
        cut = as_of_time(as_of)
        ev = exposure if cut is None else exposure.loc[exposure["date"] < cut.floor("D")]
        rec = ev.loc[ev["event"] == "campaign_received"]
        campaigns = rec.groupby("customer_id")["campaign_id"].nunique()
        coupons = ev.loc[ev["event"] == "coupon_redeemed"].groupby("customer_id").size()
    idx = out.index.union(campaigns.index).union(coupons.index)
    out = out.reindex(idx)
    out["has_history"] = out["has_history"].notna()
    out["campaigns_received"] = campaigns.reindex(idx, fill_value=0).astype(np.int64)
    out["coupons_redeemed"] = coupons.reindex(idx, fill_value=0).astype(np.int64)
    hist = out.loc[out["has_history"], ["promo_share", "campaigns_received", "coupons_redeemed"]]
    score = hist.rank(method="average", pct=True).mean(axis=1, skipna=True)
    labels, thresholds = quantile_band(score, EXPOSURE_QUANTILES, EXPOSURE_BANDS)
    out["promo_exposure_score"] = score.reindex(idx)
    out["promo_band"] = labels.reindex(idx).fillna(NO_HISTORY_BAND).astype(object)
    out.index.name = "customer_id"
    out.attrs["thresholds"] = dict(zip(EXPOSURE_BANDS[1:], thresholds.tolist()))
    return out


def promotion_exposure(transactions: pd.DataFrame, as_of, exposure: pd.DataFrame | None = None) -> pd.DataFrame:
    """Promotion share, campaigns received, coupons redeemed, exposure score and band.

    One row per customer with history or with an exposure event before
    ``as_of`` (``exposure`` = the ``customer_exposure`` table); the band
    thresholds are in ``.attrs["thresholds"]``."""
    out = _exposure(purchases(transactions, as_of), as_of, exposure)
    attrs = dict(out.attrs)
    out = out.reset_index()
    out.attrs.update(attrs)
    return out


CUSTOMER_FEATURES = (
    "customer_id", "has_history", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
    "rfm_score", "loyalty_tier", "tenure_days", "mean_interpurchase_days", "n_products", "n_lines",
    "avg_basket_value", "promo_share", "campaigns_received", "coupons_redeemed", "promo_exposure_score",
    "promo_band",
)


def customer_features(tables: dict, as_of) -> pd.DataFrame:
    """One row per ``dim_customer`` customer (sorted by id) with every customer feature.

    Customers without history get ``recency_days``/``tenure_days``/intervals NaN,
    ``frequency``/``monetary``/counts 0, scores 0, tier ``"None"``, band
    ``"none"``. Uses ``fact_transactions``, ``dim_customer`` and (optionally)
    ``customer_exposure``. Tier and band thresholds are in ``.attrs``."""
    fact = tables["fact_transactions"]
    ids = pd.Index(np.sort(tables["dim_customer"]["customer_id"].to_numpy(np.int64)), name="customer_id")
    ref = reference_time(fact, as_of)
    w = window(fact, as_of)
    p = w.loc[w["quantity"].to_numpy() > 0]
    baskets = _baskets(p)
    r = _rfm(w, p, baskets, ref)
    tier, tier_thr = assign_loyalty_tiers(r["rfm_score"])
    timing = _timing(baskets, ref)
    promo = _exposure(p, as_of, tables.get("customer_exposure"))
    g = p.groupby("customer_id")
    out = pd.DataFrame(index=ids)
    out["has_history"] = ids.isin(r.index)
    out["recency_days"] = r["recency_days"].reindex(ids)
    out["frequency"] = r["frequency"].reindex(ids, fill_value=0).astype(np.int64)
    out["monetary"] = r["monetary"].reindex(ids, fill_value=0.0).astype(float)
    for c in ("r_score", "f_score", "m_score", "rfm_score"):
        out[c] = r[c].reindex(ids, fill_value=0).astype(np.int64)
    out["loyalty_tier"] = tier.reindex(ids).fillna(NO_HISTORY_TIER).astype(object)
    out["tenure_days"] = timing["tenure_days"].reindex(ids)
    out["mean_interpurchase_days"] = timing["mean_interpurchase_days"].reindex(ids)
    pairs = p[["customer_id", "product_id"]].drop_duplicates()
    out["n_products"] = pairs.groupby("customer_id").size().reindex(ids, fill_value=0).astype(np.int64)
    out["n_lines"] = g.size().reindex(ids, fill_value=0).astype(np.int64)
    out["avg_basket_value"] = (out["monetary"] / out["frequency"]).where(out["frequency"] > 0)
    for c in ("promo_share", "promo_exposure_score"):
        out[c] = promo[c].reindex(ids)
    for c in ("campaigns_received", "coupons_redeemed"):
        out[c] = promo[c].reindex(ids, fill_value=0).astype(np.int64)
    out["promo_band"] = promo["promo_band"].reindex(ids).fillna(NO_HISTORY_BAND).astype(object)
    out = out.reset_index()[list(CUSTOMER_FEATURES)]
    out.attrs["tier_thresholds"] = dict(zip(TIERS[1:], tier_thr.tolist()))
    out.attrs["band_thresholds"] = promo.attrs.get("thresholds", {})
    out.attrs["as_of"] = str(as_of)
    return out


def write_parquet(df: pd.DataFrame, path) -> Path:
    """Write ``df`` as Parquet atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        write_row_groups(df, tmp)
    return path
