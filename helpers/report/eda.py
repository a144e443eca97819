"""Chapter 01 (exploratory analysis): one function per section, each drawing its chart,
saving it (``eda_fig_*``) and gluing its numbers (``eda_*``, computed by
:mod:`helpers.features.describe`). Everything uses the transactions before the cut-off only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.data.star import load_tables
from helpers.evaluation.metrics import temporal_split
from helpers.features import customers as F
from helpers.features import describe
from helpers.features.segments import demographics_coverage
from helpers.report import palette
from helpers.report import plotting as P
from helpers.report.glue import glue_all

FACT_COLUMNS = ["basket_id", "customer_id", "product_id", "timestamp", "quantity", "sales_value", "on_promotion"]


@dataclass
class EdaData:
    tables: dict
    fact: pd.DataFrame
    cutoff: pd.Timestamp
    weeks: pd.DataFrame  # complete weeks before the cut-off
    currency: str
    reports_dir: object


def load(processed_dir=None, reports_dir=None, as_of=None, test_days: int = 28, valid_days: int = 28,
         currency: str = "$") -> EdaData:
    """The star schema, the cut-off (``as_of`` or the test window's start) and the window's size (glued)."""
    P.set_style()
    tables = load_tables(processed_dir, names=("fact_transactions", "dim_customer", "dim_product", "dim_date"),
                         columns={"fact_transactions": FACT_COLUMNS})
    fact = tables["fact_transactions"]
    split = temporal_split(fact, test_days=test_days, valid_days=valid_days)
    cutoff = pd.Timestamp(as_of) if as_of is not None else split.test_start
    window, buys = F.window(fact, cutoff), F.purchases(fact, cutoff)
    glue_all({"eda_cutoff": str(cutoff.date()), "eda_first_date": str(window["timestamp"].min().date()),
              "eda_last_date": str(window["timestamp"].max().date()), "eda_n_lines": len(window),
              "eda_n_purchase_lines": len(buys), "eda_window_share": len(window) / len(fact),
              "eda_n_baskets": buys["basket_id"].nunique(), "eda_n_customers_active": buys["customer_id"].nunique(),
              "eda_total_sales": float(window["sales_value"].sum())})
    weekly = F.sales_over_time(fact, cutoff, "W")
    return EdaData(tables, fact, cutoff, weekly[weekly["complete"]], currency, reports_dir)


def weekly_sales(d: EdaData) -> None:
    fig = P.line_chart(d.weeks["period_start"], d.weeks["sales"], dates=True, title="Weekly sales",
                       xlabel="Week (starting Monday)", ylabel=f"Sales ({d.currency} per week)")
    P.format_axis(fig.axes[0], "y", "thousands")
    P.save_figure(fig, "eda_fig_weekly_sales", d.reports_dir)
    glue_all(describe.weekly_summary(d.weeks))


def basket_sizes(d: EdaData) -> None:
    baskets = F.basket_table(d.fact, d.cutoff)
    fig, (a1, a2) = P.new_figure(1, 2, figsize=(10, 4))
    cap = int(np.ceil(baskets["n_items"].quantile(0.99)))
    P.hist_chart(baskets["n_items"].clip(upper=cap), bins=np.arange(0.5, cap + 1.5, 1), ax=a1,
                 title="Products per basket", xlabel=f"Distinct products per basket (count, capped at {cap})",
                 ylabel="Baskets (count)")
    P.hist_chart(baskets["value"].clip(lower=0, upper=float(baskets["value"].quantile(0.99))), bins=50, ax=a2,
                 title="Basket value", xlabel=f"Basket value ({d.currency}, capped at the 99th percentile)",
                 ylabel="Baskets (count)")
    for ax in (a1, a2):
        P.format_axis(ax, "y", "thousands")
    P.save_figure(fig, "eda_fig_basket_size", d.reports_dir)
    glue_all(describe.basket_summary(baskets))


def long_tail(d: EdaData) -> None:
    curve, prods = F.popularity_curve(d.fact, d.cutoff), F.product_features(d.fact, d.cutoff)
    fig, (a1, a2) = P.new_figure(1, 2, figsize=(10, 4))
    step = max(1, len(curve) // 2000)  # at most ~2,000 points per curve
    P.line_chart(curve["product_share"].iloc[::step], curve["cumulative_sales_share"].iloc[::step], ax=a1, marker="",
                 title="Concentration of sales", xlabel="Products ranked by sales (cumulative share, %)",
                 ylabel="Cumulative share of sales (%)", color=palette.ACCENT)
    for top in (0.01, 0.2):
        a1.axvline(top, color="grey", linestyle="--", linewidth=1)
    P.format_axis(a1, "x", "percent")
    P.format_axis(a1, "y", "percent")
    buyers = np.sort(prods["n_buyers"].to_numpy())[::-1]
    ranks = np.unique(np.geomspace(1, len(buyers), 2000).astype(int))
    P.line_chart(ranks, buyers[ranks - 1], ax=a2, marker="", title="Buyers per product", color=palette.ACCENT,
                 xlabel="Product popularity rank (log scale)", ylabel="Distinct buyers (count, log scale)")
    a2.set_xscale("log")
    a2.set_yscale("log")
    P.save_figure(fig, "eda_fig_long_tail", d.reports_dir)
    glue_all(describe.tail_summary(curve, prods))


def sparsity(d: EdaData) -> None:
    inter, per_customer = F.interaction_stats(d.fact, d.cutoff), F.products_per_customer(d.fact, d.cutoff)
    fig = P.hist_chart(per_customer, bins=40, log_x=True, title="Distinct products per customer",
                       xlabel="Distinct products bought (count, log scale)", ylabel="Customers (count)")
    P.save_figure(fig, "eda_fig_products_per_customer", d.reports_dir)
    glue_all(describe.matrix_summary(inter, per_customer))


def repeat_purchases(d: EdaData, min_buyers: int) -> None:
    inter, prods = F.interaction_stats(d.fact, d.cutoff), F.product_features(d.fact, d.cutoff)
    popular, values = describe.repeat_summary(inter, prods, min_buyers)
    fig = P.hist_chart(popular["repeat_rate"], bins=np.linspace(0, 1, 26),
                       title=f"Repeat-purchase rate of products with at least {min_buyers} buyers",
                       xlabel="Share of buyers who bought it in two or more baskets (%)", ylabel="Products (count)")
    P.format_axis(fig.axes[0], "x", "percent")
    P.save_figure(fig, "eda_fig_repeat_rate", d.reports_dir)
    glue_all(values)


def demographics(d: EdaData) -> None:
    cust = d.tables["dim_customer"]
    cov = demographics_coverage(cust)
    fig = P.bar_chart(cov["attribute"], cov["known_share"], horizontal=True, annotate="{:.0%}",
                      title="Customers with a known demographic attribute",
                      xlabel="Share of customers with a known value (%)", ylabel="Attribute")
    P.format_axis(fig.axes[0], "x", "percent")
    fig.axes[0].set_xlim(0, 1.1)
    P.save_figure(fig, "eda_fig_demographics", d.reports_dir)
    glue_all(describe.demographics_summary(cust))


def promotions(d: EdaData) -> None:
    fig = P.line_chart(d.weeks["period_start"], d.weeks["promo_sales_share"], dates=True, color=palette.ACCENT,
                       title="Share of weekly sales on promotion", xlabel="Week (starting Monday)",
                       ylabel="Sales on display or in a mailer (% of weekly sales)")
    P.format_axis(fig.axes[0], "y", "percent")
    if d.weeks["promo_sales_share"].isna().all():
        fig.axes[0].text(0.5, 0.5, "this source has no promotion flag", transform=fig.axes[0].transAxes,
                         ha="center")
    P.save_figure(fig, "eda_fig_promotion_share", d.reports_dir)
    glue_all(describe.promotion_summary(F.promotion_share(d.fact, d.cutoff), d.weeks))


def seasonality(d: EdaData) -> None:
    monthly, weekday = F.sales_over_time(d.fact, d.cutoff, "M"), F.weekday_profile(d.fact, d.cutoff)
    fig, (a1, a2) = P.new_figure(1, 2, figsize=(10, 4))
    P.bar_chart(monthly["period_start"].dt.strftime("%b %y"), monthly["sales"] / monthly["n_days"], ax=a1,
                title="Mean daily sales by month", xlabel="Month", ylabel=f"Sales ({d.currency} per day)")
    a1.tick_params(axis="x", rotation=60)
    P.bar_chart(weekday["day_name"].str[:3], weekday["mean_daily_sales"], ax=a2, color=palette.SECOND,
                title="Mean daily sales by day of week", xlabel="Day of week", ylabel=f"Sales ({d.currency} per day)")
    for ax in (a1, a2):
        P.format_axis(ax, "y", "thousands")
    P.save_figure(fig, "eda_fig_seasonality", d.reports_dir)
    glue_all(describe.weekday_summary(weekday, F.holiday_uplift(d.fact, d.cutoff, d.tables["dim_date"])))


def department_season(d: EdaData, top_departments: int) -> None:
    season = describe.month_names(
        F.department_seasonal_index(d.fact, d.tables["dim_product"], d.cutoff).head(top_departments))
    fig = P.heatmap_chart(season, fmt=".2f", cmap=P.DIVERGING, center=1.0, figsize=(10, 0.45 * len(season) + 1.8),
                          title=f"Seasonal index of the {len(season)} largest departments",
                          xlabel="Calendar month", ylabel="Department",
                          cbar_label="Seasonal index (month share / overall month share)")
    P.save_figure(fig, "eda_fig_department_season", d.reports_dir)
    glue_all(describe.season_summary(season))
