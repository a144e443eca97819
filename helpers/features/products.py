"""Product features and the shape of the purchase matrix of a window.

Conventions (window: :mod:`helpers.features.windows`): ``n_buyers`` = distinct customers;
``repeat_rate`` = share of buyers who bought the product in >= 2 distinct baskets;
``median_unit_price`` = median of ``sales_value / quantity`` over purchase lines;
``price_band`` = quartile of that median among the products of the window (1 = cheapest,
ties share a band); ``promo_rate`` = share of purchase lines on promotion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.features.windows import distinct_per_group, promo_flag, purchases, quantile_scores

__all__ = ["N_PRICE_BANDS", "interaction_stats", "popularity_curve", "product_features", "products_per_customer",
           "top_share"]

N_PRICE_BANDS = 4


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
            "promo_rate": promo_flag(p).groupby(p["product_id"].to_numpy()).mean(),
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
    return distinct_per_group(p, "customer_id", "product_id")
