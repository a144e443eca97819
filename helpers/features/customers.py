"""Customer, product and calendar features computed strictly before a cut-off.

Conventions
-----------
* **Window.** Every function takes the ``fact_transactions`` frame and an
  ``as_of`` timestamp and uses only rows with ``timestamp < as_of`` (``None``
  means "all rows"). Appending rows at or after ``as_of`` never changes a
  result. Dated events of ``customer_exposure`` (a calendar day, no time) count
  only when their whole day lies before ``as_of``: ``date < floor(as_of)``.
* **Purchases.** A purchase line has ``quantity > 0`` (returns and zero-quantity
  price adjustments are not purchases), as in the evaluation. A customer *has
  history* when they have at least one purchase line in the window.
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
* **Seasonality.** Weekly periods start on Monday. The department seasonal
  index of month *m* is ``(department sales in m / department sales) /
  (all sales in m / all sales)``: 1 = the department follows the overall
  calendar, 2 = twice as concentrated in that month. Holiday uplift compares the
  mean daily sales (days without sales count as 0) of the holiday period (20
  November - 31 December, ``dim_date.is_holiday_period``) with the other days.
* **Products.** ``n_buyers`` = distinct customers; ``repeat_rate`` = share of
  buyers who bought the product in >= 2 distinct baskets; ``median_unit_price``
  = median of ``sales_value / quantity`` over purchase lines; ``price_band`` =
  quartile of that median among the products of the window (1 = cheapest, ties
  share a band); ``promo_rate`` = share of purchase lines on promotion.

All computations are vectorized group-bys: no Python loop over customers or
products.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.atomic import atomic_path
from helpers.data.schema import HOLIDAY_START
from helpers.data.star import write_parquet as write_row_groups

TIERS = ("Bronze", "Silver", "Gold", "Platinum")
NO_HISTORY_TIER = "None"
TIER_QUANTILES = (0.5, 0.8, 0.95)
EXPOSURE_BANDS = ("low", "medium", "high")
NO_HISTORY_BAND = "none"
EXPOSURE_QUANTILES = (1 / 3, 2 / 3)
N_SCORES = 5
N_PRICE_BANDS = 4
DAY = pd.Timedelta(days=1)


# ------------------------------------------------------------------ windows
def _as_of(as_of) -> pd.Timestamp | None:
    return None if as_of is None else pd.Timestamp(as_of)


def window(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Rows with ``timestamp < as_of`` (all rows when ``as_of`` is None)."""
    as_of = _as_of(as_of)
    if as_of is None:
        return transactions
    keep = transactions["timestamp"].to_numpy() < as_of.to_datetime64()
    return transactions if keep.all() else transactions.loc[keep]


def purchases(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Purchase lines (``quantity > 0``) before ``as_of``."""
    w = window(transactions, as_of)
    return w.loc[w["quantity"].to_numpy() > 0]


def _reference(transactions: pd.DataFrame, as_of) -> pd.Timestamp:
    """``as_of``, or (when None) the midnight after the last transaction."""
    as_of = _as_of(as_of)
    if as_of is not None:
        return as_of
    return transactions["timestamp"].max().normalize() + DAY


def _promo_flag(lines: pd.DataFrame) -> pd.Series:
    """``on_promotion`` as float (1/0, NaN when unknown or absent)."""
    if "on_promotion" not in lines:
        return pd.Series(np.nan, index=lines.index, dtype="float64")
    return lines["on_promotion"].astype("float64")


def quantile_scores(values: pd.Series, n: int = N_SCORES, higher_is_better: bool = True) -> pd.Series:
    """Scores ``1..n`` from average percentile ranks (ties share a score)."""
    if len(values) == 0:
        return pd.Series(np.zeros(0, dtype=np.int64), index=values.index)
    pct = values.rank(method="average", pct=True, ascending=higher_is_better)
    return np.ceil(pct * n).clip(1, n).astype(np.int64)


def _band(score: pd.Series, quantiles, labels) -> tuple[pd.Series, np.ndarray]:
    """Label by the thresholds ``quantile(score, q)``: ties with a threshold go up."""
    thresholds = np.quantile(score.to_numpy(float), quantiles) if len(score) else np.full(len(quantiles), np.nan)
    idx = np.searchsorted(thresholds, score.to_numpy(float), side="right")
    return pd.Series(np.asarray(labels, dtype=object)[idx], index=score.index), thresholds


# ---------------------------------------------------------------------- RFM
def basket_table(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """One row per basket with a purchase: ``basket_id, customer_id, timestamp,
    n_items`` (distinct products), ``units`` and ``value`` (purchase lines)."""
    p = purchases(transactions, as_of)
    g = p.groupby("basket_id", sort=True)
    return pd.DataFrame(
        {
            "customer_id": g["customer_id"].first(),
            "timestamp": g["timestamp"].min(),
            "n_items": _distinct_per_group(p, "basket_id", "product_id"),
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
    return _rfm(w, p, _baskets(p), _reference(transactions, as_of)).reset_index()


def assign_loyalty_tiers(rfm_score: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Tier of each combined RFM score and the thresholds (learned on these scores)."""
    return _band(rfm_score, TIER_QUANTILES, TIERS)


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
    return _timing(_baskets(p), _reference(transactions, as_of)).reset_index()


# --------------------------------------------------------------- promotions
def _exposure(p: pd.DataFrame, as_of, exposure: pd.DataFrame | None) -> pd.DataFrame:
    flag = _promo_flag(p)
    share = flag.groupby(p["customer_id"].to_numpy(), sort=True).mean()
    out = pd.DataFrame({"promo_share": share, "has_history": True})
    campaigns = coupons = pd.Series(dtype="int64")
    if exposure is not None and len(exposure):
        cut = _as_of(as_of)
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
    band, thresholds = _band(score, EXPOSURE_QUANTILES, EXPOSURE_BANDS)
    out["promo_exposure_score"] = score.reindex(idx)
    out["promo_band"] = band.reindex(idx).fillna(NO_HISTORY_BAND).astype(object)
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


def promotion_share(transactions: pd.DataFrame, as_of) -> dict:
    """Share of purchase lines and of sales on promotion (NaN without a promotion flag)."""
    p = purchases(transactions, as_of)
    flag = _promo_flag(p)
    known = flag.notna()
    sales = p["sales_value"].where(known)
    total = float(sales.sum())
    return {
        "line_share": float(flag.mean()) if known.any() else float("nan"),
        "sales_share": float((sales * flag).sum() / total) if known.any() and total else float("nan"),
    }


# ------------------------------------------------------------------ calendar
def _days(w: pd.DataFrame) -> pd.DatetimeIndex:
    """Every calendar day from the first to the last transaction day of the window ``w``."""
    if not len(w):
        return pd.DatetimeIndex([])
    return pd.date_range(w["timestamp"].min().normalize(), w["timestamp"].max().normalize(), freq="D")


def _period_start(ts, freq: str) -> np.ndarray:
    """Start (midnight) of the day, week (from Monday) or month of each timestamp."""
    days = np.asarray(ts, dtype="datetime64[ns]").astype("datetime64[D]")
    if freq == "D":
        out = days
    elif freq == "W":  # 1970-01-01 was a Thursday: (day number + 3) % 7 == 0 on Mondays
        out = days - ((days.astype(np.int64) + 3) % 7).astype("timedelta64[D]")
    elif freq == "M":
        out = days.astype("datetime64[M]").astype("datetime64[D]")
    else:
        raise ValueError(f"freq must be 'D', 'W' (weeks from Monday) or 'M', got {freq!r}")
    return out.astype("datetime64[ns]")


def _distinct_per_group(df: pd.DataFrame, group: str, value: str) -> pd.Series:
    """Distinct ``value`` per ``group`` (faster than ``groupby().nunique()``)."""
    return df[[group, value]].drop_duplicates().groupby(group, sort=True).size()


def sales_over_time(transactions: pd.DataFrame, as_of, freq: str = "W") -> pd.DataFrame:
    """Sales per day, week (from Monday) or calendar month.

    Columns: ``period_start, sales, promo_sales_share, baskets, customers, lines,
    n_days`` (days of the period inside the window's day range) and
    ``complete`` (the period lies entirely inside it)."""
    w = window(transactions, as_of)
    days = _days(w)
    cols = ["period_start", "sales", "promo_sales_share", "baskets", "customers", "lines", "n_days", "complete"]
    if not len(days):
        return pd.DataFrame(columns=cols)
    start = _period_start(w["timestamp"], freq)
    flag = _promo_flag(w)
    keyed = pd.DataFrame({"_p": start, "sales_value": w["sales_value"].to_numpy(),
                          "_ps": (w["sales_value"] * flag).to_numpy(),
                          "basket_id": w["basket_id"].to_numpy(), "customer_id": w["customer_id"].to_numpy()})
    g = keyed.groupby("_p", sort=True)
    out = pd.DataFrame(
        {
            "sales": g["sales_value"].sum(),
            "promo_sales_share": g["_ps"].sum(min_count=1) / g["sales_value"].sum(),
            "baskets": _distinct_per_group(keyed, "_p", "basket_id"),
            "customers": _distinct_per_group(keyed, "_p", "customer_id"),
            "lines": g.size(),
        }
    )
    cal = pd.Series(1, index=days).groupby(_period_start(days, freq)).size()
    out = out.reindex(cal.index, fill_value=0)
    out["n_days"] = cal.astype(np.int64)
    ends = cal.index + (pd.offsets.MonthBegin(1) if freq == "M" else pd.Timedelta(days=7 if freq == "W" else 1))
    out["complete"] = ((ends - cal.index) / DAY).astype(int) == out["n_days"]
    out.index.name = "period_start"
    return out.reset_index()[cols]


def weekday_profile(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Mean daily sales and share of sales per day of week (0 = Monday)."""
    daily = sales_over_time(transactions, as_of, "D")
    names = pd.Series(pd.date_range("2024-01-01", periods=7).day_name(), index=range(7))
    if not len(daily):
        return pd.DataFrame({"day_of_week": [], "day_name": [], "mean_daily_sales": [], "sales_share": []})
    dow = daily["period_start"].dt.dayofweek
    g = daily.groupby(dow.to_numpy())["sales"]
    out = pd.DataFrame({"mean_daily_sales": g.mean(), "sales_share": g.sum() / daily["sales"].sum()})
    out = out.reindex(range(7))
    out.insert(0, "day_name", names)
    out.index.name = "day_of_week"
    return out.reset_index()


def department_seasonal_index(transactions: pd.DataFrame, products: pd.DataFrame, as_of,
                              min_share: float = 0.0) -> pd.DataFrame:
    """Departments x calendar month (1-12) seasonal index (see the module doc).

    Departments with less than ``min_share`` of the window's sales are dropped;
    rows are ordered by sales, largest first; products without a department
    count as ``"unknown"``."""
    p = purchases(transactions, as_of)
    dept = p["product_id"].map(products.set_index("product_id")["department"]).fillna("unknown")
    month = p["timestamp"].dt.month
    sales = p["sales_value"].groupby([dept.to_numpy(), month.to_numpy()]).sum().unstack(fill_value=0.0)
    if sales.empty:
        return sales
    overall = sales.sum(axis=0) / sales.to_numpy().sum()
    dept_total = sales.sum(axis=1)
    keep = dept_total / dept_total.sum() >= min_share
    share = sales.div(dept_total.where(dept_total != 0), axis=0)
    index = share.div(overall.where(overall != 0), axis=1).loc[keep]
    index = index.loc[dept_total[keep].sort_values(ascending=False).index]
    index.index.name, index.columns.name = "department", "month"
    return index


def holiday_uplift(transactions: pd.DataFrame, as_of, dates: pd.DataFrame | None = None) -> dict:
    """Mean daily sales in the holiday period vs the other days of the window.

    ``uplift`` = holiday mean / other mean - 1 (NaN when either period has no
    day). The holiday flag comes from ``dates.is_holiday_period`` when given,
    else from the same rule (20 November - 31 December)."""
    daily = sales_over_time(transactions, as_of, "D").set_index("period_start")["sales"]
    if dates is not None:
        flag = dates.set_index("date")["is_holiday_period"].reindex(daily.index).fillna(False).astype(bool)
    else:
        m, d = daily.index.month, daily.index.day
        hm, hd = HOLIDAY_START
        flag = pd.Series((m == 12) | ((m == hm) & (d >= hd)), index=daily.index)
    hol, rest = daily[flag.to_numpy()], daily[~flag.to_numpy()]
    h = float(hol.mean()) if len(hol) else float("nan")
    r = float(rest.mean()) if len(rest) else float("nan")
    return {
        "holiday_daily_sales": h,
        "other_daily_sales": r,
        "uplift": h / r - 1 if len(hol) and len(rest) and r else float("nan"),
        "n_holiday_days": int(len(hol)),
        "n_other_days": int(len(rest)),
    }


# ------------------------------------------------------------------ products
def product_features(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Popularity, repeat rate, price and promotion frequency per product bought
    in the window (sorted by ``product_id``)."""
    p = purchases(transactions, as_of)
    pcb = p[["product_id", "customer_id", "basket_id"]].drop_duplicates()
    baskets_per_pair = pcb.groupby(["product_id", "customer_id"], sort=True).size()
    n_buyers = baskets_per_pair.groupby(level="product_id").size()
    unit_price = (p["sales_value"] / p["quantity"]).groupby(p["product_id"].to_numpy()).median()
    g = p.groupby("product_id", sort=True)
    out = pd.DataFrame(
        {
            "n_buyers": n_buyers.astype(np.int64),
            "n_baskets": pcb.groupby("product_id").size().astype(np.int64),
            "repeat_rate": (baskets_per_pair >= 2).groupby(level="product_id").sum() / n_buyers,
            "units": g["quantity"].sum(),
            "sales": g["sales_value"].sum(),
            "median_unit_price": unit_price,
            "promo_rate": _promo_flag(p).groupby(p["product_id"].to_numpy()).mean(),
        }
    )
    out["price_band"] = quantile_scores(out["median_unit_price"], N_PRICE_BANDS)
    out.index.name = "product_id"
    return out.reset_index()


def popularity_curve(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Products ranked by sales: ``rank, product_share`` (share of products up to
    this rank) and ``cumulative_sales_share`` (share of sales)."""
    p = purchases(transactions, as_of)
    sales = p.groupby("product_id")["sales_value"].sum().clip(lower=0).sort_values(ascending=False)
    n = len(sales)
    total = float(sales.sum())
    return pd.DataFrame(
        {
            "product_id": sales.index.to_numpy(),
            "rank": np.arange(1, n + 1),
            "product_share": np.arange(1, n + 1) / max(n, 1),
            "cumulative_sales_share": sales.cumsum().to_numpy() / total if total else np.zeros(n),
        }
    )


def top_share(curve: pd.DataFrame, top: float = 0.01) -> float:
    """Share of sales of the top ``top`` fraction of products (at least one product)."""
    if not len(curve):
        return float("nan")
    k = max(1, int(np.ceil(top * len(curve))))
    return float(curve["cumulative_sales_share"].iloc[k - 1])


# ----------------------------------------------------------------- matrices
def interaction_stats(transactions: pd.DataFrame, as_of) -> dict:
    """Size and density of the customer x product purchase matrix, and repeat shares.

    ``density`` = distinct (customer, product) pairs / (customers x products), both
    counted over the purchase lines of the window. ``repeat_pair_share`` = share
    of pairs bought in >= 2 distinct baskets; ``repeat_purchase_share`` = share of
    (customer, product, basket) purchases that repeat an earlier basket's."""
    p = purchases(transactions, as_of)
    pcb = p[["customer_id", "product_id", "basket_id"]].drop_duplicates()
    per_pair = pcb.groupby(["customer_id", "product_id"]).size()
    n_c, n_p = int(p["customer_id"].nunique()), int(p["product_id"].nunique())
    n_pairs, n_occ = int(len(per_pair)), int(len(pcb))
    return {
        "n_customers": n_c,
        "n_products": n_p,
        "n_pairs": n_pairs,
        "density": n_pairs / (n_c * n_p) if n_c and n_p else float("nan"),
        "repeat_pair_share": float((per_pair >= 2).mean()) if n_pairs else float("nan"),
        "repeat_purchase_share": (n_occ - n_pairs) / n_occ if n_occ else float("nan"),
    }


def products_per_customer(transactions: pd.DataFrame, as_of) -> pd.Series:
    """Distinct products bought per customer with history."""
    p = purchases(transactions, as_of)
    return _distinct_per_group(p, "customer_id", "product_id")


# ----------------------------------------------------------------- customers
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
    ref = _reference(fact, as_of)
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


# ---------------------------------------------------------------------- I/O
def write_parquet(df: pd.DataFrame, path) -> Path:
    """Write ``df`` as Parquet atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        write_row_groups(df, tmp)
    return path
