"""The retail signals of one fit window, by group, as columns for the learned re-ranker.

Groups (each a module of this package; every column is computed from the fit window, except
the promotion calendar, which reads only the promotions planned for the target window):

* ``cycles``: where the customer stands in their repeat cycle for the product
  (:mod:`helpers.features.cycles`);
* ``season``: trend before the cut-off and the same weeks a year earlier
  (:mod:`helpers.features.seasonality`; absent, not wrong, on a history under a year);
* ``sequences``: directional "bought A, then B" lifts raised by recent purchases
  (:mod:`helpers.features.sequences`);
* ``calendar``: the promotions planned for the target window ``[as_of, as_of + horizon_days)``
  (:mod:`helpers.features.promotions`; leave the group out for the stricter reading in which
  nothing of the target window is known);
* ``responsiveness``: the customer's share of purchases made on promotion;
* ``ownership``: a durable the customer already owns (or a product of a durable group).

Missing inputs disable a group's columns instead of failing: no ``product_type`` means no
group fallbacks, no promotion table means "not promoted" (calendar), no ``on_promotion`` flags means an
unknown responsiveness. Undefined values are ``nan`` (the re-ranker maps them to -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.features.cycles import CYCLE_FEATURES, RepeatCycles
from helpers.features.events import PurchaseEvents
from helpers.features.promotions import PROMO_FEATURES, promoted_items, promotion_responsiveness
from helpers.features.seasonality import SEASON_FEATURES, Seasonality
from helpers.features.sequences import SEQUENCE_FEATURES, Sequences

#: signal group -> its columns, in order
SIGNAL_GROUPS: dict[str, tuple[str, ...]] = {
    "cycles": CYCLE_FEATURES,
    "season": SEASON_FEATURES,
    "sequences": SEQUENCE_FEATURES,
    "calendar": PROMO_FEATURES,
    "responsiveness": ("responsiveness",),
    "ownership": ("owned_durable",),
}


def item_groups(products: pd.DataFrame, item_ids: np.ndarray, column: str = "product_type") -> np.ndarray:
    """Integer code of each catalog product's ``column`` (``-1`` where unknown or absent)."""
    if column not in products:
        return np.full(len(item_ids), -1, dtype=np.int64)
    values = products.drop_duplicates("product_id").set_index("product_id")[column].reindex(item_ids)
    return pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)


@dataclass
class RetailSignals:
    groups: tuple[str, ...]
    cycles: RepeatCycles | None
    seasonality: Seasonality | None
    sequences: Sequences | None
    promoted: dict[str, np.ndarray] | None
    responsiveness: np.ndarray | None

    @classmethod
    def from_window(cls, transactions: pd.DataFrame, products: pd.DataFrame, promotions: pd.DataFrame | None,
                    as_of, customer_ids: np.ndarray, item_ids: np.ndarray, groups=tuple(SIGNAL_GROUPS),
                    horizon_days: int = 28) -> RetailSignals:
        unknown = set(groups) - set(SIGNAL_GROUPS)
        if unknown:
            raise ValueError(f"unknown signal groups {sorted(unknown)}; known: {list(SIGNAL_GROUPS)}")
        groups = tuple(g for g in SIGNAL_GROUPS if g in groups)  # a fixed column order
        ev = PurchaseEvents.from_window(transactions, as_of, customer_ids, item_ids)
        codes = item_groups(products, item_ids)
        cycles = RepeatCycles.from_events(ev, codes) if {"cycles", "ownership"} & set(groups) else None
        season = Seasonality.from_events(ev, codes, horizon_days=horizon_days) if "season" in groups else None
        seq = Sequences.from_events(ev, codes) if "sequences" in groups else None
        promoted = resp = None
        if "calendar" in groups:
            start = pd.Timestamp(as_of).normalize()
            promoted = promoted_items(promotions, item_ids, start, start + pd.Timedelta(days=horizon_days))
        if "responsiveness" in groups:
            resp = promotion_responsiveness(transactions, as_of, customer_ids)
        return cls(groups, cycles, season, seq, promoted, resp)

    @property
    def columns(self) -> list[str]:
        return [c for g in self.groups for c in SIGNAL_GROUPS[g]]

    def matrix(self, rows: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """``(rows x candidates, len(columns))`` float32 signals of every (row, candidate) slot, row-major.

        ``rows`` index the fit customers (``-1``: unknown customer, treated as one with no history).
        """
        rows = np.asarray(rows, dtype=np.int64)
        cands = np.asarray(cands, dtype=np.int64).reshape(len(rows), -1)
        known = rows >= 0
        r = np.maximum(rows, 0)
        flat_r = np.repeat(r, cands.shape[1])
        flat_known = np.repeat(known, cands.shape[1])
        cols = cands.ravel()
        out: dict[str, np.ndarray] = {}
        if "cycles" in self.groups:
            f = self.cycles.features(flat_r, cols)
            for k, v in f.items():  # an unknown customer has no history: pair values are undefined / zero
                if k in ("n_occasions",):
                    v = np.where(flat_known, v, 0.0)
                elif k in ("days_since_last", "own_gap", "cycle_ratio", "gap_ratio"):
                    v = np.where(flat_known, v, np.nan)
                elif k == "expected_gap":
                    v = np.where(flat_known, v, f["product_gap"])
                out[k] = v
        if "season" in self.groups:
            out |= self.seasonality.features(cols)
        if "sequences" in self.groups:
            f = self.sequences.features(r, cands)
            out |= {k: np.where(flat_known, v.ravel(), 0.0) for k, v in f.items()}
        if "calendar" in self.groups:
            out |= {k: v[cols] for k, v in self.promoted.items()}
        if "responsiveness" in self.groups:
            out["responsiveness"] = np.where(flat_known, self.responsiveness[flat_r], np.nan)
        if "ownership" in self.groups:
            out["owned_durable"] = (self.cycles.owned_durable(flat_r, cols) & flat_known).astype(np.float64)
        if not out:
            return np.zeros((len(cols), 0), dtype=np.float32)
        return np.column_stack([out[c] for c in self.columns]).astype(np.float32)
