"""Purchase events of one fit window, the common input of the timing and sequence signals.

Conventions
-----------
* Only lines strictly before ``as_of`` (and at or after ``start`` when given) with a
  positive quantity count: returns and zero-quantity adjustments are no purchase. So no
  signal built on :class:`PurchaseEvents` can read the window being predicted.
* An event is a distinct (customer, product, day): several lines or baskets of one
  product on one day are one purchase occasion. Repeat cycles are measured in days
  between occasions.
* ``rows`` / ``cols`` are positions in the sorted ``customer_ids`` / ``item_ids`` the
  caller passes (the fit window's catalog, as every model scores it); products or
  customers outside them are dropped.
* ``age`` is the number of whole days from the occasion to ``as_of`` (``>= 1`` for a
  purchase the day before the cut-off); larger is older.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class PurchaseEvents:
    """Distinct (customer, product, day) purchase occasions, sorted by customer, product, age descending."""

    rows: np.ndarray  # int64 customer positions
    cols: np.ndarray  # int64 product positions
    age: np.ndarray  # int64 days before as_of (>= 1)
    n_customers: int
    n_items: int
    as_of: pd.Timestamp
    span_days: int  # days of history the window holds (first occasion to as_of), 0 when empty

    @classmethod
    def from_window(cls, transactions: pd.DataFrame, as_of, customer_ids: np.ndarray, item_ids: np.ndarray,
                    start=None) -> PurchaseEvents:
        as_of = pd.Timestamp(as_of).normalize()
        ts = transactions["timestamp"]
        keep = (ts < as_of).to_numpy() & (transactions["quantity"].to_numpy() > 0)
        if start is not None:
            keep &= (ts >= pd.Timestamp(start)).to_numpy()
        tx = transactions.loc[keep]
        customer_ids = np.asarray(customer_ids, dtype=np.int64)
        item_ids = np.asarray(item_ids, dtype=np.int64)
        r = _positions(customer_ids, tx["customer_id"].to_numpy(np.int64))
        c = _positions(item_ids, tx["product_id"].to_numpy(np.int64))
        days = tx["timestamp"].to_numpy("datetime64[ns]").astype("datetime64[D]")
        age = ((np.datetime64(as_of.date(), "D") - days) // DAY).astype(np.int64)
        ok = (r >= 0) & (c >= 0)
        r, c, age = r[ok], c[ok], age[ok]
        order = np.lexsort((-age, c, r))
        r, c, age = r[order], c[order], age[order]
        first = np.ones(len(r), dtype=bool)
        first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1]) | (age[1:] != age[:-1])
        r, c, age = r[first], c[first], age[first]
        span = int(age.max()) if len(age) else 0
        return cls(r, c, age, len(customer_ids), len(item_ids), as_of, span)

    @property
    def pair_keys(self) -> np.ndarray:
        """``row * n_items + col`` of every event (non-decreasing)."""
        return self.rows * np.int64(self.n_items) + self.cols


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Position of each id in ``sorted_ids``, ``-1`` when absent."""
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1).astype(np.int64)


def group_starts(keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted ``keys`` array."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def group_median(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per integer group ``0..n_groups-1`` (``nan`` for an empty group).

    Vectorized: sort by (group, value), then average the one or two middle elements of each run.
    """
    out = np.full(n_groups, np.nan)
    if len(values) == 0:
        return out
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order].astype(np.float64)
    starts = group_starts(g)
    counts = np.diff(np.r_[starts, len(g)])
    lo = starts + (counts - 1) // 2
    hi = starts + counts // 2
    out[g[starts]] = (v[lo] + v[hi]) / 2.0
    return out


def group_codes(item_groups: np.ndarray | None, n_items: int) -> tuple[np.ndarray, int]:
    """``(codes, n_groups)``: each product's group code (``-1`` unknown; all ``-1`` when ``item_groups``
    is None) and the number of groups."""
    groups = np.full(n_items, -1, dtype=np.int64) if item_groups is None else np.asarray(item_groups, dtype=np.int64)
    return groups, (int(groups.max()) + 1 if len(groups) and groups.max() >= 0 else 0)
