"""Buy-again: recommend what the customer already buys, recent baskets first.

Conventions
-----------
* ``decay[u, i] = sum over the distinct baskets b of customer u containing
  product i (quantity > 0) of exp(-ln 2 * age_days(b) / half_life_days)``, with
  ``age_days = (as_of - basket timestamp)`` in fractional days: a basket bought
  ``half_life_days`` ago weighs 1/2. Computed in ``float64`` (sparse).
* Score = ``backfill_weight + decay * (1 + tie_break * popularity_prior)`` for
  products the customer bought in the fit window, ``backfill_weight *
  popularity_prior`` for the others
  (:func:`helpers.models.popularity.popularity_prior` is in ``[0, 1)``),
  so a backfilled product never outranks a history product. The multiplicative
  tie-break orders products of the same baskets (identical decays) by global
  popularity; it can only swap products whose decays differ by less than
  ``tie_break`` (relative). Cold-start rows and customers without history get
  the popularity backfill only.
* ``float32`` resolution: history products whose decays differ by less than
  about ``backfill_weight * 6e-8`` tie (broken by item index); with the defaults
  that is ages beyond ~1,000 days.
* ``repeat_beta`` (default 0: off) weighs each product by how habitual it is:
  ``decay[u, i] *= rate[i] ** repeat_beta`` with the product's *repeat rate*
  ``rate[i] = (baskets[i] - buyers[i] + s * m) / (baskets[i] + s)``, the share of
  its fit-window purchases that were a customer buying it again (``baskets``:
  distinct baskets with the product; ``buyers``: distinct customers), smoothed
  towards the catalog mean ``m`` with ``s = repeat_prior`` pseudo-baskets. Milk
  bought every week outranks a one-off purchase of the same age.
* Only meaningful under protocol ``"all"``: under ``"new"`` every history item
  is excluded and the model reduces to global popularity.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from helpers.models.base import FitData, Recommender
from helpers.models.fitdata import first_per_basket
from helpers.models.popularity import popularity_prior, repeat_rows


def basket_purchases(data: FitData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Catalog ``(row, column, age in days)`` of every distinct (customer, item, basket)
    purchase of the fit window (repeated lines of a basket count once), sorted by row
    and column. Computed once per fit window (kept in ``data.extras``): every half-life
    reuses it."""
    cached = data.extras.get("basket_purchases")
    if cached is not None:
        return cached
    tx = data.transactions
    buy = tx["quantity"].to_numpy() > 0  # column arrays, no frame of the lines: the window may be large
    rows = data.customer_rows(tx["customer_id"].to_numpy(np.int64)[buy])
    cols = data.item_columns(tx["product_id"].to_numpy(np.int64)[buy])
    ok = (rows >= 0) & (cols >= 0)
    pair = rows[ok] * np.int64(data.n_items) + cols[ok]  # (row, column) order
    del rows, cols
    pair, ts = first_per_basket(pair, tx["basket_id"].to_numpy(np.int64)[buy][ok], tx["timestamp"].to_numpy()[buy][ok])
    age_days = np.maximum((data.as_of.to_datetime64() - ts) / np.timedelta64(1, "D"), 0.0)
    rows, cols = np.divmod(pair, np.int64(max(data.n_items, 1)))
    out = (rows, cols, age_days)
    for a in out:
        a.flags.writeable = False  # shared by every fit of the window
    data.extras["basket_purchases"] = out
    return out


def decayed_history(data: FitData, half_life_days: float) -> sp.csr_matrix:
    """``float64`` CSR customers x catalog of exponentially decayed basket counts."""
    rows, cols, age_days = basket_purchases(data)
    weight = np.exp(-np.log(2.0) * age_days / float(half_life_days))
    m = sp.csr_matrix((weight, (rows, cols)), shape=(data.n_customers, data.n_items), dtype=np.float64)
    m.sum_duplicates()
    return m


def repeat_rate(user_items: sp.spmatrix, prior: float = 5.0) -> np.ndarray:
    """Per item: share of its baskets that were a repeat purchase, smoothed (see module doc).

    ``user_items`` holds distinct-basket counts per (customer, item). Always > 0.
    """
    x = sp.csc_matrix(user_items)
    baskets = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
    buyers = np.diff(x.indptr).astype(np.float64)
    total = baskets.sum()
    mean = (total - buyers.sum()) / total if total > 0 else 0.0
    rate = (baskets - buyers + prior * mean) / (baskets + prior) if prior > 0 else \
        np.divide(baskets - buyers, baskets, out=np.zeros_like(baskets), where=baskets > 0)
    return np.maximum(rate, 1e-6)


class BuyAgain(Recommender):
    """Time-decayed repeat-purchase scores with a popularity backfill (see module doc)."""

    name = "buy_again"

    def __init__(self, half_life_days: float = 30.0, backfill_weight: float = 1e-3, tie_break: float = 1e-3,
                 repeat_beta: float = 0.0, repeat_prior: float = 5.0):
        if half_life_days <= 0:
            raise ValueError("half_life_days must be > 0")
        if backfill_weight <= 0:
            raise ValueError("backfill_weight must be > 0 (it also marks history items)")
        self.half_life_days = half_life_days
        self.backfill_weight = backfill_weight
        self.tie_break = tie_break
        self.repeat_beta = repeat_beta
        self.repeat_prior = repeat_prior

    def fit(self, data: FitData) -> BuyAgain:
        self.data = data
        self.decay_ = decayed_history(data, self.half_life_days)
        if self.repeat_beta:
            self.repeat_rate_ = repeat_rate(data.user_items, self.repeat_prior)
            self.decay_.data *= np.power(self.repeat_rate_[self.decay_.indices], float(self.repeat_beta))
        prior = popularity_prior(data)
        self.tie_ = 1.0 + self.tie_break * prior  # float64, per item
        self.backfill_ = (self.backfill_weight * prior).astype(np.float32)
        return self

    def _history_scores(self, values: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return (self.backfill_weight + values * self.tie_[cols]).astype(np.float32)

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = repeat_rows(self.backfill_, len(rows))
        known = np.flatnonzero(rows >= 0)
        if len(known):
            sub = self.decay_[rows[known]].tocoo()
            out[known[sub.row], sub.col] = self._history_scores(sub.data, sub.col)
        return out

    def parts(self, rows: np.ndarray):
        """The backfill for every row, the history scores on each known row's history."""
        rows = np.asarray(rows, dtype=np.int64)
        known = rows >= 0
        sub = self.decay_[np.where(known, rows, 0)]
        counts = np.diff(sub.indptr) * known
        keep = np.repeat(known, np.diff(sub.indptr))
        cols = sub.indices[keep]
        boost = sp.csr_matrix((self._history_scores(sub.data[keep], cols), cols,
                               np.concatenate([[0], np.cumsum(counts)])), shape=(len(rows), sub.shape[1]))
        return self.backfill_[None, :], np.zeros(len(rows), dtype=np.int64), boost
