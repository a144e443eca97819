"""Descriptive aggregates of the exploratory (01) and customer (02) chapters.

Each function takes frames already restricted to the window before the cut-off (the
outputs of :mod:`helpers.features.customers`) and returns plain numbers (a dict whose
keys are the chapters' glue names) or a small display frame. No plotting here: the
charts are drawn by ``helpers.report`` from the same frames. Shares are fractions in
[0, 1]; a statistic of an empty selection is NaN (shown as "n/a" by the report).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.features import customers as features
from helpers.features import segments as seg

NAN = float("nan")

#: The behaviours compared across segments (column -> label of the heatmap).
BEHAVIOURS = {"frequency": "Baskets", "monetary": "Spend", "avg_basket_value": "Basket\nvalue",
              "recency_days": "Recency", "n_products": "Distinct\nproducts", "promo_share": "Promotion\nshare"}


def _ratio(a, b) -> float:
    return float(a / b) if b else NAN


# ------------------------------------------------------------------ chapter 01
def weekly_summary(full_weeks: pd.DataFrame) -> dict:
    """Level and spread of the complete weeks of :func:`customers.sales_over_time`."""
    s = full_weeks["sales"]
    peak = full_weeks.loc[s.idxmax(), "period_start"] if len(s) else None
    return {"eda_n_weeks": len(full_weeks), "eda_weekly_mean": float(s.mean()), "eda_weekly_min": float(s.min()),
            "eda_weekly_max": float(s.max()), "eda_weekly_cv": _ratio(s.std(), s.mean()),
            "eda_weekly_peak": str(peak.date()) if peak is not None else "n/a",
            "eda_weekly_customers_mean": float(full_weeks["customers"].mean())}


def basket_summary(baskets: pd.DataFrame) -> dict:
    """Median and mean size and value of the baskets of :func:`customers.basket_table`."""
    return {"eda_basket_items_median": float(baskets["n_items"].median()),
            "eda_basket_items_mean": float(baskets["n_items"].mean()),
            "eda_basket_single_share": float((baskets["n_items"] == 1).mean()),
            "eda_basket_value_median": float(baskets["value"].median()),
            "eda_basket_value_mean": float(baskets["value"].mean()),
            "eda_baskets_per_customer": float(baskets.groupby("customer_id").size().median())}


def tail_summary(curve: pd.DataFrame, products: pd.DataFrame) -> dict:
    """Concentration of sales (top 1% / 20% of products) and buyers per product."""
    return {"eda_n_products_sold": len(curve), "eda_top1_share": features.top_share(curve, 0.01),
            "eda_top20_share": features.top_share(curve, 0.2),
            "eda_n_top1_products": max(1, int(np.ceil(0.01 * len(curve)))),
            "eda_single_buyer_share": float((products["n_buyers"] == 1).mean()),
            "eda_buyers_median": float(products["n_buyers"].median())}


def matrix_summary(inter: dict, per_customer: pd.Series) -> dict:
    """Size and density of the purchase matrix (:func:`customers.interaction_stats`)."""
    return {"eda_matrix_customers": inter["n_customers"], "eda_matrix_products": inter["n_products"],
            "eda_matrix_pairs": inter["n_pairs"], "eda_matrix_density": inter["density"],
            "eda_matrix_sparsity": 1 - inter["density"],
            "eda_products_per_customer_median": float(per_customer.median()),
            "eda_catalog_share_median": _ratio(per_customer.median(), inter["n_products"])}


def repeat_summary(inter: dict, products: pd.DataFrame, min_buyers: int) -> tuple[pd.DataFrame, dict]:
    """Products with at least ``min_buyers`` buyers and the repeat shares."""
    popular = products[products["n_buyers"] >= min_buyers]
    return popular, {"eda_repeat_pair_share": inter["repeat_pair_share"],
                     "eda_repeat_purchase_share": inter["repeat_purchase_share"],
                     "eda_min_buyers": int(min_buyers), "eda_n_popular_products": len(popular),
                     "eda_repeat_rate_median": float(popular["repeat_rate"].median()) if len(popular) else NAN}


def demographics_summary(customers: pd.DataFrame) -> dict:
    known = customers["has_demographics"]
    return {"eda_demo_customers": len(customers), "eda_demo_known": int(known.sum()),
            "eda_demo_known_share": float(known.mean()), "eda_demo_missing": int((~known).sum())}


def promotion_summary(promo: dict, full_weeks: pd.DataFrame) -> dict:
    share = full_weeks["promo_sales_share"]
    return {"eda_promo_line_share": promo["line_share"], "eda_promo_sales_share": promo["sales_share"],
            "eda_promo_weekly_min": float(share.min()), "eda_promo_weekly_max": float(share.max())}


def weekday_summary(weekday: pd.DataFrame, holiday: dict) -> dict:
    """Busiest and quietest day of the week and the holiday-period uplift."""
    busiest = weekday.loc[weekday["mean_daily_sales"].idxmax()]
    quietest = weekday.loc[weekday["mean_daily_sales"].idxmin()]
    return {"eda_busiest_day": busiest["day_name"], "eda_quietest_day": quietest["day_name"],
            "eda_busiest_day_ratio": _ratio(busiest["mean_daily_sales"], quietest["mean_daily_sales"]),
            "eda_holiday_days": holiday["n_holiday_days"], "eda_holiday_daily": holiday["holiday_daily_sales"],
            "eda_other_daily": holiday["other_daily_sales"], "eda_holiday_uplift": holiday["uplift"]}


def month_names(season: pd.DataFrame) -> pd.DataFrame:
    """The seasonal index with its month numbers (1-12) as short month names."""
    out = season.copy()
    out.columns = [pd.Timestamp(2000, int(m), 1).strftime("%b") for m in season.columns]
    return out


def season_summary(season: pd.DataFrame) -> dict:
    """The most seasonal department-month of a (named-month) seasonal-index frame."""
    stacked = season.stack()
    top = stacked.idxmax() if len(stacked) else ("n/a", "n/a")
    return {"eda_season_n_departments": len(season), "eda_season_max_department": str(top[0]),
            "eda_season_max_month": str(top[1]), "eda_season_max_index": float(stacked.max()),
            "eda_season_min_index": float(stacked.min())}


# ------------------------------------------------------------------ chapter 02
def rfm_summary(history: pd.DataFrame) -> dict:
    """Medians of recency, frequency, spend and purchase interval (customers with history)."""
    return {"fs_recency_median": float(history["recency_days"].median()),
            "fs_frequency_median": float(history["frequency"].median()),
            "fs_monetary_median": float(history["monetary"].median()),
            "fs_interval_median": float(history["mean_interpurchase_days"].median()),
            "fs_single_basket_share": float((history["frequency"] == 1).mean())}


def tier_order(history: pd.DataFrame) -> list[str]:
    """The loyalty tiers present, by rank (Bronze first)."""
    return [t for t in features.TIERS if t in set(history["loyalty_tier"])]


def tier_table(history: pd.DataFrame) -> pd.DataFrame:
    """Customers, medians and shares of customers and spend per loyalty tier, by rank."""
    by_tier = history.groupby("loyalty_tier").agg(
        customers=("customer_id", "size"), rfm_score=("rfm_score", "median"),
        recency_days=("recency_days", "median"), frequency=("frequency", "median"),
        monetary=("monetary", "median"), spend=("monetary", "sum")).reindex(tier_order(history))
    by_tier["customer_share"] = by_tier["customers"] / by_tier["customers"].sum()
    by_tier["spend_share"] = by_tier["spend"] / by_tier["spend"].sum()
    return by_tier


def tier_summary(by_tier: pd.DataFrame, thresholds: dict) -> dict:
    top = by_tier.index[-1]
    return {"fs_tier_silver_min": thresholds["Silver"], "fs_tier_gold_min": thresholds["Gold"],
            "fs_tier_platinum_min": thresholds["Platinum"], "fs_top_tier": top,
            "fs_top_tier_customer_share": float(by_tier.loc[top, "customer_share"]),
            "fs_top_tier_spend_share": float(by_tier.loc[top, "spend_share"]),
            "fs_bronze_customer_share": float(by_tier["customer_share"].iloc[0]),
            "fs_bronze_spend_share": float(by_tier["spend_share"].iloc[0])}


def segment_summary(segments: pd.DataFrame) -> dict:
    types = seg.segment_types(segments)
    w = seg.wide(segments)
    return {"fs_n_segment_types": len(types), "fs_segment_types": ", ".join(types),
            "fs_unknown_age_share": float((w["age_band"] == seg.UNKNOWN).mean()) if "age_band" in w else NAN,
            "fs_heavy_min_baskets": segments.attrs.get("heavy_min_baskets", NAN)}


def tier_age_spend(history: pd.DataFrame, segments: pd.DataFrame, min_customers: int) -> pd.DataFrame:
    """Mean spend per tier x age band cell (tiers by rank, ages in order, ``unknown`` last);
    cells with fewer than ``min_customers`` customers are NaN."""
    w = seg.wide(segments).loc[history["customer_id"]]
    cells = history.assign(tier=w["loyalty_tier"].to_numpy(), age=w["age_band"].to_numpy()).groupby(["tier", "age"])
    spend, count = cells["monetary"].mean().unstack(), cells.size().unstack()
    ages = seg.segment_order("age_band", spend.columns)
    return spend.where(count >= min_customers).reindex(index=tier_order(history), columns=ages)


def tier_age_summary(spend: pd.DataFrame, min_customers: int) -> dict:
    known = spend.drop(columns=[seg.UNKNOWN], errors="ignore")
    first = known.iloc[0] if len(known) else pd.Series(dtype=float)
    return {"fs_min_cell_customers": int(min_customers), "fs_n_blank_cells": int(spend.isna().to_numpy().sum()),
            "fs_tier_spend_ratio": _ratio(spend.iloc[-1].mean(), spend.iloc[0].mean()),
            "fs_age_spread_bronze": _ratio(first.max(), first.min()) if first.notna().any() else NAN}


def behaviour_ratios(history: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Mean behaviour of each segment / its mean over all customers with history; rows
    ``"<type>: <segment>"`` in display order, columns the labels of :data:`BEHAVIOURS`."""
    cols = list(BEHAVIOURS)
    means = segments.merge(history[["customer_id", *cols]], on="customer_id").groupby(
        ["segment_type", "segment"])[cols].mean()
    rows = [(t, s) for t in seg.segment_types(segments) if t in means.index.get_level_values(0)
            for s in seg.segment_order(t, means.loc[t].index)]
    ratio = (means / history[cols].mean()).reindex(rows).rename(columns=BEHAVIOURS)
    ratio.index = [f"{t}: {s}" for t, s in rows]
    return ratio


def behaviour_summary(ratio: pd.DataFrame) -> dict:
    def cell(row, col):
        return float(ratio.loc[row, col]) if row in ratio.index else NAN
    return {"fs_heavy_frequency_ratio": cell("history_length: heavy", "Baskets"),
            "fs_high_promo_ratio": cell("promo_exposure: high", "Promotion\nshare")}


def promotion_bands(history: pd.DataFrame) -> pd.DataFrame:
    """Mean promotion share, campaigns and coupons per exposure band (low to high)."""
    bands = [b for b in features.EXPOSURE_BANDS if b in set(history["promo_band"])]
    return history.groupby("promo_band").agg(
        customers=("customer_id", "size"), promo_share=("promo_share", "mean"),
        campaigns=("campaigns_received", "mean"), coupons=("coupons_redeemed", "mean")).reindex(bands)


def promotion_band_summary(by_band: pd.DataFrame, history: pd.DataFrame) -> dict:
    return {"fs_promo_share_low": float(by_band["promo_share"].iloc[0]),
            "fs_promo_share_high": float(by_band["promo_share"].iloc[-1]),
            "fs_campaigns_low": float(by_band["campaigns"].iloc[0]),
            "fs_campaigns_high": float(by_band["campaigns"].iloc[-1]),
            "fs_coupons_high": float(by_band["coupons"].iloc[-1]),
            "fs_customers_with_campaign": float((history["campaigns_received"] > 0).mean())}


DEMOGRAPHIC_TYPES = ("age_band", "income_band", "gender")


def demographic_spend(history: pd.DataFrame, segments: pd.DataFrame) -> dict[str, pd.Series]:
    """Mean spend per segment of each demographic segment type present, in display order."""
    w = seg.wide(segments)
    out = {}
    for t in (t for t in DEMOGRAPHIC_TYPES if t in seg.segment_types(segments)):
        m = history.assign(seg=w.loc[history["customer_id"], t].to_numpy()).groupby("seg")["monetary"].mean()
        out[t] = m.reindex(seg.segment_order(t, m.index))
    return out


def gender_note(customers: pd.DataFrame, has_gender_segment: bool) -> str:
    """One sentence on whether the source records gender (glued into chapter 02)."""
    if has_gender_segment:
        return (f"Gender is known for {customers['gender'].notna().mean():.0%} of the customers of this source, so "
                "gender is a segment type (customers without a record form the unknown class) and the last panel "
                "shows spend by gender.")
    return (f"This source records no gender for any of its {len(customers):,} customers, so there is no gender "
            "segment and no gender panel: age and income bands are the only demographic segments.")
