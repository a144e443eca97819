"""Season and trend: product demand just before the cut-off and in the same weeks a year earlier.

Conventions (purchase occasions of :class:`~helpers.features.events.PurchaseEvents`: fit window only)
---------------------------------------------------------------------------------------------
* Demand of a product in a period is its number of distinct buyers there; a product's
  *share* is that count over the sum of every product's count in the period, so the
  signals do not move with the overall traffic.
* ``trend`` = share over the last ``recent_days`` before ``as_of`` / share over the whole
  window, smoothed with ``prior`` pseudo-buyers at the window share (1 = steady, above 1 rising).
* ``season`` = share in the year-earlier period ``[as_of - 364 d, as_of - 364 d + horizon_days)``
  (52 weeks back, so weekdays line up) / share over the whole window, same smoothing. It needs
  the window to reach back to ``as_of - 364 d``; otherwise the feature is *absent*: ``nan``
  everywhere and :attr:`Seasonality.has_season` is ``False`` (a short history disables it,
  it never guesses).
* The same two ratios are computed per product group (``item_groups``, e.g. product type),
  for products too rare to have their own signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.arrays import unique
from helpers.features.events import PurchaseEvents, group_codes

YEAR_DAYS = 364
SEASON_FEATURES = ("trend", "season", "group_trend", "group_season")


def _buyers(ev: PurchaseEvents, mask: np.ndarray, keys: np.ndarray, n: int) -> np.ndarray:
    """Distinct customers per key (product or group) among the events in ``mask``."""
    if not mask.any():
        return np.zeros(n)
    pairs = unique(ev.rows[mask] * np.int64(max(n, 1)) + keys[mask])
    return np.bincount(pairs % max(n, 1), minlength=n).astype(np.float64)


def _ratio(part: np.ndarray, whole: np.ndarray, prior: float) -> np.ndarray:
    """``share_part / share_whole``, where ``share_part = (part + prior * share_whole) / (sum(part) + prior)``
    (``prior`` pseudo-buyers spread like the whole window, so a product seen by few buyers stays near 1)."""
    if whole.sum() == 0:
        return np.full(len(whole), np.nan)
    w = whole / whole.sum()
    total = part.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (part + prior * w) / (total + prior)
        return np.where(w > 0, share / w, np.nan)


@dataclass(frozen=True)
class Seasonality:
    trend: np.ndarray  # (n_items,)
    season: np.ndarray  # (n_items,) nan when absent
    group_trend: np.ndarray
    group_season: np.ndarray
    has_season: bool

    @classmethod
    def from_events(cls, ev: PurchaseEvents, item_groups: np.ndarray | None = None, recent_days: int = 28,
                    horizon_days: int = 28, prior: float = 10.0) -> Seasonality:
        n = ev.n_items
        groups, n_groups = group_codes(item_groups, n)
        recent = ev.age <= recent_days
        back = (ev.age > YEAR_DAYS - horizon_days) & (ev.age <= YEAR_DAYS)
        has_season = ev.span_days >= YEAR_DAYS
        everything = np.ones(len(ev.age), dtype=bool)
        whole = _buyers(ev, everything, ev.cols, n)
        trend = _ratio(_buyers(ev, recent, ev.cols, n), whole, prior)
        season = _ratio(_buyers(ev, back, ev.cols, n), whole, prior) if has_season else np.full(n, np.nan)
        g_trend = g_season = np.full(n, np.nan)
        if n_groups:
            eg = groups[ev.cols]
            known = eg >= 0
            gk = np.maximum(eg, 0)
            g_whole = _buyers(ev, known, gk, n_groups)
            gt = _ratio(_buyers(ev, known & recent, gk, n_groups), g_whole, prior)
            g_trend = np.where(groups >= 0, gt[np.maximum(groups, 0)], np.nan)
            if has_season:
                gs = _ratio(_buyers(ev, known & back, gk, n_groups), g_whole, prior)
                g_season = np.where(groups >= 0, gs[np.maximum(groups, 0)], np.nan)
        return cls(trend, season, g_trend, g_season, bool(has_season))

    def features(self, cols: np.ndarray) -> dict[str, np.ndarray]:
        """:data:`SEASON_FEATURES` of each product column."""
        cols = np.asarray(cols, dtype=np.int64)
        return {"trend": self.trend[cols], "season": self.season[cols], "group_trend": self.group_trend[cols],
                "group_season": self.group_season[cols]}
