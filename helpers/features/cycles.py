"""Repeat cycles: where a customer stands in their cycle for a product, and what is bought only once.

Conventions (all from :class:`~helpers.features.events.PurchaseEvents`, so from the fit window only)
-----------------------------------------------------------------------------------------------
* A *gap* is the number of days between two consecutive purchase occasions of one customer
  and one product. ``own_gap`` is the median of the pair's gaps (``nan`` with fewer than two
  occasions). ``product_gap`` is the median of every customer's gaps of that product; a
  product with fewer than ``min_gaps`` gaps takes the median gap of its product group (the
  ``item_groups`` the caller passes, e.g. ``product_type``), and ``nan`` when that is empty too.
* ``expected_gap`` is ``own_gap`` where the pair has one, else ``product_gap``;
  ``cycle_ratio = days_since_last / expected_gap``: about 1 when the product is due, below 1
  just after a purchase, well above 1 when overdue (``nan`` where either is unknown).
  ``gap_ratio = own_gap / product_gap`` says whether this customer runs faster or slower
  than the population.
* ``repeat_propensity`` of a product is the share of its buyers with two or more occasions,
  shrunk towards its group's share (then the overall share) with the weight of ``prior``
  buyers: ``(repeaters + prior * group_share) / (buyers + prior)``. Consumables are high,
  durables (a grill, a transmitter) low.
* A product is *durable* when its repeat propensity is below ``durable_share``; a group is
  durable when the share of its buyers who buy in it again (on another day, any product of the
  group: a second grill of another brand) is below ``durable_share``, shrunk the same way
  towards the overall share. :meth:`RepeatCycles.owned_durable` suppresses a durable product the
  customer owns, and every product of a durable group the customer owns a product of.
* Undefined values are ``nan``; counts are ``0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.arrays import unique
from helpers.features.events import PurchaseEvents, group_codes, group_median, group_starts

#: columns of :meth:`RepeatCycles.features`, in order
CYCLE_FEATURES = ("n_occasions", "days_since_last", "own_gap", "product_gap", "expected_gap", "cycle_ratio",
                  "gap_ratio", "repeat_propensity")


@dataclass(frozen=True)
class RepeatCycles:
    n_items: int
    pair_keys: np.ndarray  # sorted row * n_items + col of every bought pair
    pair_n: np.ndarray  # occasions per pair
    pair_last_age: np.ndarray  # days from the last occasion to as_of
    pair_gap: np.ndarray  # own median gap (nan: one occasion)
    item_gap: np.ndarray  # (n_items,) product gap, group fallback applied
    item_repeat: np.ndarray  # (n_items,) smoothed repeat propensity
    item_buyers: np.ndarray  # (n_items,) distinct buyers
    item_groups: np.ndarray  # (n_items,) group code, -1 unknown
    group_keys: np.ndarray  # sorted row * n_groups + group of every (customer, group) bought
    group_repeat: np.ndarray  # (n_groups,) smoothed share of group buyers who buy in it again
    n_groups: int

    @classmethod
    def from_events(cls, ev: PurchaseEvents, item_groups: np.ndarray | None = None, min_gaps: int = 5,
                    prior: float = 5.0) -> RepeatCycles:
        n = ev.n_items
        groups, n_groups = group_codes(item_groups, n)
        keys = ev.pair_keys
        starts = group_starts(keys)
        ends = np.r_[starts[1:], len(keys)]
        pair_keys = keys[starts]
        pair_n = (ends - starts).astype(np.int64)
        pair_last_age = ev.age[ends - 1] if len(keys) else np.zeros(0, dtype=np.int64)  # youngest is last
        # gaps between consecutive occasions of the same pair (events sorted oldest first within a pair)
        same = np.zeros(len(keys), dtype=bool)
        same[1:] = keys[1:] == keys[:-1]
        gaps = (ev.age[:-1] - ev.age[1:])[same[1:]] if len(keys) > 1 else np.zeros(0, dtype=np.int64)
        gap_pair = np.searchsorted(pair_keys, keys[1:][same[1:]]) if len(keys) > 1 else np.zeros(0, dtype=np.int64)
        pair_gap = group_median(gap_pair, gaps, len(pair_keys))
        gap_item = pair_keys[gap_pair] % n if n else gap_pair
        item_gap = group_median(gap_item, gaps, n)
        n_gaps = np.bincount(gap_item, minlength=n)
        if n_groups:
            g = groups[gap_item]
            group_gap = group_median(g[g >= 0], gaps[g >= 0], n_groups)
            fallback = np.where(groups >= 0, group_gap[np.maximum(groups, 0)], np.nan)
            item_gap = np.where(n_gaps >= min_gaps, item_gap, fallback)
        else:
            item_gap = np.where(n_gaps >= min_gaps, item_gap, np.nan)
        pair_item = pair_keys % n if n else pair_keys
        buyers = np.bincount(pair_item, minlength=n).astype(np.float64)
        repeaters = np.bincount(pair_item, weights=(pair_n >= 2).astype(np.float64), minlength=n)
        overall = repeaters.sum() / buyers.sum() if buyers.sum() else 0.0
        base = np.full(n, overall)
        if n_groups:
            gb = np.bincount(groups[groups >= 0], weights=buyers[groups >= 0], minlength=n_groups)
            gr = np.bincount(groups[groups >= 0], weights=repeaters[groups >= 0], minlength=n_groups)
            group_share = (gr + prior * overall) / (gb + prior)
            base = np.where(groups >= 0, group_share[np.maximum(groups, 0)], overall)
        item_repeat = (repeaters + prior * base) / (buyers + prior)
        group_keys, group_repeat = np.zeros(0, dtype=np.int64), np.zeros(0)
        if n_groups:
            eg = groups[ev.cols]
            known = eg >= 0
            span = np.int64(ev.span_days + 1)
            occ = unique((ev.rows[known] * np.int64(n_groups) + eg[known]) * span + ev.age[known])
            gkey = occ // span  # (customer, group) of each distinct (customer, group, day)
            starts_g = group_starts(gkey)
            group_keys = gkey[starts_g]
            g_occ = np.diff(np.r_[starts_g, len(gkey)])
            g_of = group_keys % n_groups
            g_buyers = np.bincount(g_of, minlength=n_groups).astype(np.float64)
            g_rep = np.bincount(g_of, weights=(g_occ >= 2).astype(np.float64), minlength=n_groups)
            group_repeat = (g_rep + prior * overall) / (g_buyers + prior)
        return cls(n, pair_keys, pair_n, pair_last_age, pair_gap, item_gap, item_repeat, buyers, groups,
                   group_keys, group_repeat, n_groups)

    def _pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Position of each (row, col) among the bought pairs, ``-1`` when never bought."""
        q = np.asarray(rows, dtype=np.int64) * np.int64(self.n_items) + np.asarray(cols, dtype=np.int64)
        if len(self.pair_keys) == 0:
            return np.full(q.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.pair_keys, q), 0, len(self.pair_keys) - 1)
        return np.where(self.pair_keys[pos] == q, pos, -1)

    def features(self, rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
        """:data:`CYCLE_FEATURES` of each (customer row, product column) pair (same shapes as ``cols``)."""
        rows, cols = np.broadcast_arrays(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))
        pos = self._pairs(rows, cols)
        bought = pos >= 0
        p = np.maximum(pos, 0)
        n_occ = np.where(bought, self.pair_n[p] if len(self.pair_n) else 0, 0)
        since = np.where(bought, self.pair_last_age[p] if len(self.pair_n) else 0, np.nan).astype(np.float64)
        own = np.where(bought, self.pair_gap[p] if len(self.pair_n) else np.nan, np.nan)
        prod = self.item_gap[cols]
        expected = np.where(np.isnan(own), prod, own)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(expected > 0, since / expected, np.nan)
            gap_ratio = np.where(prod > 0, own / prod, np.nan)
        return {"n_occasions": n_occ.astype(np.float64), "days_since_last": since, "own_gap": own,
                "product_gap": prod, "expected_gap": expected, "cycle_ratio": ratio, "gap_ratio": gap_ratio,
                "repeat_propensity": self.item_repeat[cols]}

    def durable(self, durable_share: float = 0.1) -> np.ndarray:
        """``(n_items,)`` products bought again by fewer than ``durable_share`` of their buyers."""
        return self.item_repeat < durable_share

    def owned_durable(self, rows: np.ndarray, cols: np.ndarray, durable_share: float = 0.1) -> np.ndarray:
        """Pairs to suppress: a durable product the customer owns, or a product of a durable group
        the customer owns a product of (see module conventions)."""
        rows, cols = np.broadcast_arrays(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))
        out = self.durable(durable_share)[cols] & (self._pairs(rows, cols) >= 0)
        if self.n_groups and len(self.group_keys):
            g = self.item_groups[cols]
            q = rows * np.int64(self.n_groups) + np.maximum(g, 0)
            pos = np.clip(np.searchsorted(self.group_keys, q), 0, len(self.group_keys) - 1)
            owned_group = (g >= 0) & (self.group_keys[pos] == q)
            out |= owned_group & (self.group_repeat[np.maximum(g, 0)] < durable_share)
        return out
