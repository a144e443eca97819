"""Popularity baselines: global (optionally recent) and per-segment.

Conventions
-----------
* **Popularity** of a product = number of *distinct customers* who bought it
  (``quantity > 0``) in the window; repeat baskets of one customer count once.
* **Determinism.** Every score carries a tie-break term below one unit of
  popularity, :func:`popularity_prior`, which orders products lexicographically
  by (distinct buyers, distinct baskets) over the whole fit window; remaining
  ties fall to the lower item index (``top_k``).
* :func:`popularity_prior` (in ``[0, 1)``) is also the backfill the other
  baselines add with a small weight, and the score every model gives cold-start
  rows (``-1``).
* Scores are ``float32`` (the interface); they are computed in ``float64`` first.
* ``window_days`` None (or NaN, as a grid-search table stores None) means the
  whole fit window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.models.base import FitData, Recommender

TIE_BREAK = 0.5  # weight of the prior in the popularity scores: < 1 buyer, never reorders counts


def distinct_buyers(user_items: sp.spmatrix) -> np.ndarray:
    """Distinct customers per item (non-zeros per column) of a customers x items matrix."""
    m = sp.csc_matrix(user_items)
    m.eliminate_zeros()
    return np.diff(m.indptr).astype(np.float64)


def popularity_prior(data: FitData) -> np.ndarray:
    """Global popularity rescaled to ``[0, 1)``, strictly ordered by (buyers, baskets).

    ``prior = (buyers + baskets / (max_baskets + 1)) / (max_buyers + 1)`` where
    ``buyers`` are the distinct customers and ``baskets`` the distinct baskets of
    each item over the whole fit window (``data.user_items``). Cached in
    ``data.extras["popularity_prior"]``.
    """
    cached = data.extras.get("popularity_prior")
    if cached is not None and len(cached) == data.n_items:
        return cached
    buyers = distinct_buyers(data.user_items)
    baskets = np.asarray(data.user_items.sum(axis=0), dtype=np.float64).ravel()
    prior = (buyers + baskets / (baskets.max(initial=0.0) + 1.0)) / (buyers.max(initial=0.0) + 1.0)
    data.extras["popularity_prior"] = prior
    return prior


def no_window(window_days) -> bool:
    """True for ``None`` and NaN (how a grid-search table stores None)."""
    return window_days is None or (isinstance(window_days, float) and np.isnan(window_days))


def window_user_items(data: FitData, window_days: float | None) -> sp.csr_matrix:
    """Binary customers x catalog matrix of purchases in ``[as_of - window_days, as_of)``
    (the whole fit window when ``window_days`` is None or NaN)."""
    if no_window(window_days):
        ui = sp.csr_matrix(data.user_items, copy=True)
        ui.data = (ui.data > 0).astype(np.float32)
        return ui
    tx = data.transactions
    start = data.as_of - pd.Timedelta(days=float(window_days))
    keep = (tx["timestamp"].to_numpy() >= start.to_datetime64()) & (tx["quantity"].to_numpy() > 0)
    rows = data.customer_rows(tx["customer_id"].to_numpy(np.int64)[keep])
    cols = data.item_columns(tx["product_id"].to_numpy(np.int64)[keep])
    ok = (rows >= 0) & (cols >= 0)
    ui = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (rows[ok], cols[ok])),
                       shape=(data.n_customers, data.n_items))
    ui.sum_duplicates()
    ui.data[:] = 1.0
    return ui


def repeat_rows(vector: np.ndarray, n: int) -> np.ndarray:
    """``(n, len(vector))`` float32 array of one score vector (a fresh, writable copy)."""
    return np.repeat(np.asarray(vector, dtype=np.float32)[None, :], n, axis=0)


class GlobalPopularity(Recommender):
    """Everyone gets the same ranking: products by distinct buyers.

    ``window_days=None`` counts buyers over the whole fit window; a number counts
    them over the last ``window_days`` days before ``as_of`` only (the "recent
    popularity" variant). Score = ``buyers_in_window + 0.5 * popularity_prior``
    (whole-window prior, so products unsold in a short window are still ordered).
    History is ignored, cold-start rows get the same scores.
    """

    name = "global_popularity"

    def __init__(self, window_days: float | None = None):
        self.window_days = None if no_window(window_days) else window_days

    def fit(self, data: FitData) -> GlobalPopularity:
        self.data = data
        buyers = distinct_buyers(window_user_items(data, self.window_days))
        self.buyers_ = buyers
        self.scores_ = (buyers + TIE_BREAK * popularity_prior(data)).astype(np.float32)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return repeat_rows(self.scores_, len(np.asarray(rows)))

    def parts(self, rows: np.ndarray):
        return self.scores_[None, :], np.zeros(len(np.asarray(rows)), dtype=np.int64), None


class SegmentedPopularity(Recommender):
    """Popularity within the customer's segment, global popularity as fallback.

    For ``segment_type`` (a value of ``data.segments["segment_type"]``), each
    segment ``s`` gets ``share_s = distinct buyers in s / customers of s with a
    purchase``; the global ``share`` divides by every customer with a purchase.
    Purchases are counted in the last ``window_days`` before ``as_of`` (the whole
    fit window when None), segment membership and sizes too. A customer of a *large* segment (at least ``min_segment_size``
    customers with a purchase) scores ``(1 - blend) * share_s + blend * share``;
    customers of smaller segments, of the segment ``"unknown"`` (or a null one),
    customers without a segment row, cold-start rows (``-1``) and every customer
    when ``data.segments`` is None get the global ``share``. Every score adds the
    tie-break ``popularity_prior * 0.5 / n_buyers`` (below one buyer of the global
    share). ``blend`` must be in ``[0, 1]``.
    """

    name = "segmented_popularity"

    def __init__(self, segment_type: str = "loyalty_tier", min_segment_size: int = 30, blend: float = 0.0,
                 window_days: float | None = None):
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1], got {blend}")
        self.segment_type = segment_type
        self.min_segment_size = min_segment_size
        self.blend = blend
        self.window_days = None if no_window(window_days) else window_days

    def fit(self, data: FitData) -> SegmentedPopularity:
        self.data = data
        self.segment_sizes_: dict[str, int] = {}  # customers with a purchase, per segment
        ui = window_user_items(data, self.window_days)
        active = np.diff(ui.indptr) > 0
        n_active = max(int(active.sum()), 1)
        buyers = distinct_buyers(ui)
        tie = TIE_BREAK * popularity_prior(data) / n_active
        global_share = buyers / n_active
        code = np.full(data.n_customers, -1, dtype=np.int64)  # -1: global fallback
        names: list[str] = []
        tables = []
        seg = data.segments
        if seg is not None and len(seg):
            seg = seg.loc[seg["segment_type"] == self.segment_type, ["customer_id", "segment"]]
            seg = seg.dropna(subset=["segment"])
            seg = seg.loc[seg["segment"].astype(str) != "unknown"].drop_duplicates("customer_id")
            rows = data.customer_rows(seg["customer_id"].to_numpy(np.int64))
            seg = seg.loc[rows >= 0]
            rows = rows[rows >= 0]
            labels, uniques = pd.factorize(seg["segment"].astype(str), sort=True)
            if len(uniques):
                member = sp.csr_matrix(
                    (active[rows].astype(np.float64), (labels, rows)),
                    shape=(len(uniques), data.n_customers),
                )
                sizes = np.asarray(member.sum(axis=1)).ravel()
                counts = (member @ ui).toarray()  # segments x items, distinct buyers
                big = sizes >= self.min_segment_size
                seg_code = np.where(big, np.cumsum(big) - 1, -1)
                code[rows] = seg_code[labels]
                names = [str(u) for u, b in zip(uniques, big) if b]
                share = counts[big] / sizes[big][:, None]
                tables = [(1.0 - self.blend) * share + self.blend * global_share[None, :]]
                self.segment_sizes_ = dict(zip((str(u) for u in uniques), sizes.astype(int).tolist()))
        table = np.vstack(tables + [global_share[None, :]]) + tie[None, :]
        self.segments_ = names  # segments with their own row; the last table row is global
        self.table_ = table.astype(np.float32)
        self.code_ = np.where(code >= 0, code, len(names))
        return self

    def _codes(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        return np.where(rows >= 0, self.code_[np.maximum(rows, 0)], len(self.segments_))

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.table_[self._codes(rows)]

    def parts(self, rows: np.ndarray):
        return self.table_, self._codes(rows), None
