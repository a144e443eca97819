"""Chapter 02 (customer features and segments): load and write the features, then one
function per section that draws its chart (``fs_fig_*``), glues its numbers (``fs_*``,
computed by :mod:`helpers.features.describe`) and returns the table to show, if any."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from helpers.config import processed_dir as processed_path
from helpers.data.star import load_tables
from helpers.evaluation.metrics import temporal_split
from helpers.features import customers as F
from helpers.features import describe
from helpers.features import segments as S
from helpers.report import display, palette
from helpers.report import plotting as P
from helpers.report.glue import glue_all, report_dirs

FACT_COLUMNS = ["basket_id", "customer_id", "product_id", "timestamp", "quantity", "sales_value", "on_promotion"]


@dataclass
class CustomerData:
    tables: dict
    features: pd.DataFrame
    history: pd.DataFrame  # customers with a purchase before the cut-off
    segments: pd.DataFrame
    currency: str
    reports_dir: object


def load(processed_dir=None, reports_dir=None, as_of=None, test_days: int = 28, valid_days: int = 28,
         currency: str = "$") -> CustomerData:
    """Features and segments before the cut-off, written as ``customer_features.parquet`` and
    ``segments.parquet`` next to the star schema; the window's counts glued."""
    P.set_style()
    tables = load_tables(processed_dir, names=("fact_transactions", "dim_customer", "customer_exposure"),
                         columns={"fact_transactions": FACT_COLUMNS})
    split = temporal_split(tables["fact_transactions"], test_days=test_days, valid_days=valid_days)
    cutoff = pd.Timestamp(as_of) if as_of is not None else split.test_start
    feats = F.customer_features(tables, cutoff)
    segments = S.segments_from_features(tables["dim_customer"], feats)
    out_dir = processed_path(processed_dir)
    F.write_parquet(feats, out_dir / "customer_features.parquet")
    F.write_parquet(segments, out_dir / "segments.parquet")
    hist = feats[feats["has_history"]]
    glue_all({"fs_cutoff": str(cutoff.date()), "fs_window_start": str(split.start.date()),
              "fs_n_customers": len(feats), "fs_n_history": len(hist), "fs_n_new": int((~feats["has_history"]).sum())})
    return CustomerData(tables, feats, hist, segments, currency, reports_dir)


def rfm(d: CustomerData) -> None:
    h = d.history
    fig, axes = P.new_figure(1, 3, figsize=(12, 3.8))
    P.hist_chart(h["recency_days"], bins=40, ax=axes[0], log_y=True, title="Recency",
                 xlabel="Days since the last purchase (days)", ylabel="Customers (count, log scale)")
    P.hist_chart(h["frequency"], bins=40, ax=axes[1], log_x=True, title="Frequency",
                 xlabel="Baskets in the window (count, log scale)", ylabel="Customers (count)")
    P.hist_chart(h["monetary"].clip(lower=0), bins=40, ax=axes[2], log_x=True, title="Monetary value",
                 xlabel=f"Net spend in the window ({d.currency}, log scale)", ylabel="Customers (count)")
    P.save_figure(fig, "fs_fig_rfm", d.reports_dir)
    glue_all(describe.rfm_summary(h))


def tiers(d: CustomerData):
    """Customer and spend shares per loyalty tier (chart) and the tier table."""
    by_tier = describe.tier_table(d.history)
    fig, (a1, a2) = P.new_figure(1, 2, figsize=(10, 4))
    P.bar_chart(by_tier.index, by_tier["customer_share"], ax=a1, annotate="{:.1%}", title="Customers per tier",
                xlabel="Loyalty tier", ylabel="Share of customers with history (%)")
    P.bar_chart(by_tier.index, by_tier["spend_share"], ax=a2, annotate="{:.1%}", color=palette.SECOND,
                title="Spend per tier", xlabel="Loyalty tier", ylabel="Share of net spend (%)")
    for ax in (a1, a2):
        P.format_axis(ax, "y", "percent")
    P.save_figure(fig, "fs_fig_tiers", d.reports_dir)
    glue_all(describe.tier_summary(by_tier, d.features.attrs["tier_thresholds"]))
    shown = by_tier.drop(columns=["spend"]).rename_axis("loyalty tier").rename(columns=lambda c: c.replace("_", " "))
    return display.table(shown, index=True, formats={
        "customers": "{:,}", "rfm score": "{:.0f}", "recency days": "{:.1f}", "frequency": "{:,.0f}",
        "monetary": "{:,.2f}", "customer share": "{:.1%}", "spend share": "{:.1%}"})


def segment_sizes(d: CustomerData):
    """Customers per segment (also written to ``tables/segment_sizes.csv``)."""
    sizes = S.segment_sizes(d.segments)
    sizes.to_csv(report_dirs(d.reports_dir)["tables"] / "segment_sizes.csv", index=False)
    glue_all(describe.segment_summary(d.segments))
    return display.table(sizes.rename(columns={"segment_type": "segment type"}), formats={"share": "{:.1%}"})


def tier_age_spend(d: CustomerData, min_cell_customers: int) -> None:
    spend = describe.tier_age_spend(d.history, d.segments, min_cell_customers)
    fig = P.heatmap_chart(spend, fmt=",.0f", figsize=(9, 3.8), cbar_format="{x:,.0f}",
                          title="Mean spend per customer by loyalty tier and age band",
                          xlabel="Age band of the head of household", ylabel="Loyalty tier",
                          cbar_label=f"Mean net spend per customer ({d.currency})")
    P.save_figure(fig, "fs_fig_tier_age_spend", d.reports_dir)
    glue_all(describe.tier_age_summary(spend, min_cell_customers))


def behaviour(d: CustomerData) -> None:
    ratio = describe.behaviour_ratios(d.history, d.segments)
    fig = P.heatmap_chart(ratio, fmt=".2f", cmap=P.DIVERGING, center=1.0, figsize=(10, 0.32 * len(ratio) + 1.8),
                          title="Behaviour of each segment relative to all customers",
                          xlabel="Behaviour (segment mean / overall mean)", ylabel="Segment type: segment",
                          cbar_label="Ratio to the overall mean (1 = average)")
    P.save_figure(fig, "fs_fig_segment_behaviour", d.reports_dir)
    glue_all(describe.behaviour_summary(ratio))


def promotion_bands(d: CustomerData) -> None:
    by_band = describe.promotion_bands(d.history)
    fig, axes = P.new_figure(1, 3, figsize=(12, 3.8))
    panels = (("promo_share", "{:.1%}", "Lines on promotion", "Mean share of purchase lines (%)", palette.ACCENT),
              ("campaigns", "{:.1f}", "Campaigns received", "Mean campaigns per customer (count)", palette.SECOND),
              ("coupons", "{:.1f}", "Coupons redeemed", "Mean coupons per customer (count)", palette.THIRD))
    for ax, (col, fmt, title, ylabel, color) in zip(axes, panels):
        P.bar_chart(by_band.index, by_band[col], ax=ax, annotate=fmt, color=color, title=title,
                    xlabel="Promotion-exposure band", ylabel=ylabel)
    P.format_axis(axes[0], "y", "percent")
    P.save_figure(fig, "fs_fig_promo_bands", d.reports_dir)
    glue_all(describe.promotion_band_summary(by_band, d.history))


def demographic_spend(d: CustomerData) -> None:
    spend = describe.demographic_spend(d.history, d.segments)
    fig, axes = P.new_figure(1, len(spend), figsize=(4 * len(spend), 3.8), squeeze=False)
    for ax, (t, m) in zip(axes[0], spend.items()):
        P.bar_chart(m.index, m.to_numpy(), ax=ax, color=palette.ACCENT, title=f"Spend by {t.replace('_', ' ')}",
                    xlabel=t.replace("_", " ").capitalize(), ylabel=f"Mean net spend per customer ({d.currency})")
        ax.tick_params(axis="x", rotation=45)
        P.format_axis(ax, "y", "thousands")
    P.save_figure(fig, "fs_fig_demographic_spend", d.reports_dir)
    glue_all({"fs_gender_note": describe.gender_note(d.tables["dim_customer"], "gender" in spend),
              "fs_n_demographic_types": len(spend)})
