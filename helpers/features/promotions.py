"""The promotion calendar and each customer's responsiveness to promotions.

Conventions
-----------
* A retailer plans mailers and displays weeks ahead, so the promotions whose period overlaps
  the window being recommended for are *known* at the cut-off: :func:`promoted_items` reads
  ``dim_promotion`` rows overlapping ``[start, end)`` (periods are half-open
  ``[start_date, end_date)`` as in the star schema) and nothing else of that window.
  Callers that want the stricter reading (nothing known about the target window) pass
  ``use_calendar=False``: every product is then "not promoted".
* ``promo_days`` is the share of the target window's days on which the product is promoted
  in at least one store (chain-wide rows have a null ``store_id`` and count everywhere).
* A customer's *responsiveness* is the share of their purchase lines of the fit window made
  on promotion (``on_promotion``), shrunk towards the population share with the weight of
  ``prior`` lines; ``nan`` for everyone when the source has no promotion flags.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PROMO_FEATURES = ("promoted", "promo_days")


def promoted_items(promotions: pd.DataFrame | None, item_ids: np.ndarray, start, end,
                   use_calendar: bool = True) -> dict[str, np.ndarray]:
    """:data:`PROMO_FEATURES` per catalog product (``item_ids`` sorted) for the window ``[start, end)``."""
    item_ids = np.asarray(item_ids, dtype=np.int64)
    n = len(item_ids)
    zeros = {"promoted": np.zeros(n), "promo_days": np.zeros(n)}
    if not use_calendar or promotions is None or len(promotions) == 0 or n == 0:
        return zeros
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    days = max(int((end - start) / pd.Timedelta(days=1)), 1)
    first = np.datetime64(start.date(), "D")
    s_ns, e_ns = np.datetime64(start.to_datetime64(), "ns"), np.datetime64(end.to_datetime64(), "ns")
    p_start = promotions["start_date"].to_numpy("datetime64[ns]")
    p_end = promotions["end_date"].to_numpy("datetime64[ns]")
    ok = (p_start < e_ns) & (p_end > s_ns)  # overlaps [start, end): the only rows read
    lo = np.maximum(p_start[ok], s_ns).astype("datetime64[D]")
    hi = np.minimum(p_end[ok], e_ns).astype("datetime64[D]")
    ids = promotions["product_id"].to_numpy(np.int64)[ok]
    pos = np.clip(np.searchsorted(item_ids, ids), 0, n - 1)
    known = (item_ids[pos] == ids) & (hi > lo)
    lo, hi, pos = lo[known], hi[known], pos[known]
    if len(pos) == 0:
        return zeros
    # days covered per product: union of its intervals, on a day grid of the target window
    a = ((lo - first) // np.timedelta64(1, "D")).astype(np.int64)
    b = ((hi - first) // np.timedelta64(1, "D")).astype(np.int64)
    grid = np.zeros((n, days + 1), dtype=np.int32)
    np.add.at(grid, (pos, a), 1)
    np.add.at(grid, (pos, b), -1)
    covered = (np.cumsum(grid, axis=1)[:, :days] > 0).sum(axis=1)
    return {"promoted": (covered > 0).astype(np.float64), "promo_days": covered / days}


def promotion_responsiveness(transactions: pd.DataFrame, as_of, customer_ids: np.ndarray,
                             prior: float = 20.0) -> np.ndarray:
    """``(len(customer_ids),)`` smoothed share of each customer's fit-window lines bought on promotion."""
    customer_ids = np.asarray(customer_ids, dtype=np.int64)
    out = np.full(len(customer_ids), np.nan)
    if "on_promotion" not in transactions:
        return out
    tx = transactions.loc[(transactions["timestamp"] < pd.Timestamp(as_of)).to_numpy()
                          & (transactions["quantity"].to_numpy() > 0)]
    flag = tx["on_promotion"]
    known = flag.notna().to_numpy()
    if not known.any():
        return out
    ids = tx["customer_id"].to_numpy(np.int64)[known]
    on = flag.to_numpy()[known].astype(np.float64)
    pos = np.clip(np.searchsorted(customer_ids, ids), 0, max(len(customer_ids) - 1, 0))
    ok = customer_ids[pos] == ids
    lines = np.bincount(pos[ok], minlength=len(customer_ids)).astype(np.float64)
    promo = np.bincount(pos[ok], weights=on[ok], minlength=len(customer_ids))
    base = promo.sum() / lines.sum() if lines.sum() else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return (promo + prior * base) / (lines + prior)
