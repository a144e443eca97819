"""The hybrid's business rules: availability, promotion boost, margin weight, diversity cap.

Each rule is a parameter of :class:`Rules` (its effect is measured, not assumed):

* ``availability_days``: products not sold (by anybody) in the last N days
  before ``as_of`` are never recommended (an availability proxy).
* ``promo_boost``: products with a promotion active on ``as_of`` (the start
  of the scoring window; promotions are planned ahead, so this is known at
  scoring time) get ``score * (1 + promo_boost)``.
* ``margin_weight``: where ``dim_product.margin`` exists, scores are
  multiplied by ``1 + margin_weight * margin`` (margin-aware re-ranking).
* ``max_per_category``: at most M products of the same category in the top
  K (diversity), applied by a vectorized greedy re-rank of the top candidates
  (:func:`diversify`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.models.fitdata import FitData
from helpers.models.ranking import top_k

__all__ = ["Rules", "category_codes", "diversify", "diversify_ranked", "item_attribute"]


@dataclass
class Rules:
    availability_days: int | None = None
    promo_boost: float = 0.0
    margin_weight: float = 0.0
    max_per_category: int | None = None

    def item_multiplier_and_mask(self, data: FitData) -> tuple[np.ndarray, np.ndarray]:
        """Per-item score multiplier and allowed mask over the catalog."""
        mult = np.ones(data.n_items, dtype=np.float32)
        allowed = np.ones(data.n_items, dtype=bool)
        tx = data.transactions
        if self.availability_days:
            recent = tx.loc[tx["timestamp"] >= data.as_of - pd.Timedelta(days=self.availability_days), "product_id"]
            cols = data.item_columns(recent.unique())
            allowed[:] = False
            allowed[cols[cols >= 0]] = True
        if self.promo_boost and data.promotions is not None and len(data.promotions):
            p = data.promotions
            day = data.as_of.normalize()
            active = p.loc[(p["start_date"] <= day) & (p["end_date"] > day), "product_id"].unique()
            cols = data.item_columns(active)
            mult[cols[cols >= 0]] *= 1.0 + self.promo_boost
        if self.margin_weight:
            margin = item_attribute(data, "margin").astype(np.float32)
            mult *= 1.0 + self.margin_weight * np.nan_to_num(margin, nan=0.0)
        return mult, allowed


def item_attribute(data: FitData, column: str) -> np.ndarray:
    """A dim_product column aligned with the catalog (NaN / None where unknown)."""
    prod = data.products.set_index("product_id")[column]
    return prod.reindex(data.item_ids).to_numpy()


def diversify(scores: np.ndarray, categories: np.ndarray, k: int, max_per_category: int,
              n_candidates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy re-rank: the best items in score order, at most M per category, K per row.

    ``categories`` holds an integer category code per catalog item. Vectorized:
    take the top candidates of each row, rank each candidate within its
    (row, category) group, drop those ranked >= M, keep the first K.
    """
    n, m = scores.shape
    n_candidates = min(m, n_candidates or max(k * 10, 50))
    cand, cand_scores = top_k(scores, n_candidates)
    pick, out_scores = diversify_ranked(cand_scores, categories[cand], k, max_per_category)
    return np.take_along_axis(cand, pick, axis=1), out_scores


def diversify_ranked(cand_scores: np.ndarray, cats: np.ndarray, k: int,
                     max_per_category: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into each row of ranked candidates) of the first K kept with at most M per category.

    ``cand_scores`` are sorted descending per row, ``cats`` their integer category
    codes (same shape). Returns ``(positions, scores)``; missing slots score -inf.
    """
    n, n_candidates = cand_scores.shape
    # rank within (row, category) in score order: stable sort by (row, cat), positions preserve score order
    row_idx = np.repeat(np.arange(n), n_candidates)
    flat_cat = cats.ravel()
    order = np.lexsort((np.tile(np.arange(n_candidates), n), flat_cat, row_idx))
    sorted_keys = row_idx[order] * (int(cats.max(initial=0)) + 2) + flat_cat[order]
    start = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    group_rank = np.arange(len(order)) - np.repeat(start, np.diff(np.r_[start, len(order)]))
    within = np.empty(len(order), dtype=np.int64)
    within[order] = group_rank
    keep = (within.reshape(n, n_candidates) < max_per_category) & np.isfinite(cand_scores)
    # first K kept per row, in score order
    pos = np.where(keep, np.arange(n_candidates)[None, :], n_candidates + np.arange(n_candidates)[None, :])
    pick = np.sort(pos, axis=1)[:, :k]
    valid = pick < n_candidates
    pick = np.where(valid, pick, 0)
    out_scores = np.where(valid, np.take_along_axis(cand_scores, pick, axis=1), -np.inf).astype(np.float32)
    return pick, out_scores


def category_codes(data: FitData) -> np.ndarray:
    """Integer code of each catalog item's category (missing categories share one code)."""
    cats = item_attribute(data, "category")
    return pd.factorize(pd.Series(cats).fillna("(none)"), sort=True)[0]
