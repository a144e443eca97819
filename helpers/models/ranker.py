"""Learned re-ranker of the hybrid's candidates (gradient-boosted trees on repurchase features).

The weighted blend can only add component scores. Repeat purchases depend on
*timing* (milk is due every week, a cleaning product every two months), which no
single score holds; this model learns it from earlier windows.

Conventions
-----------
* Candidates of a customer: the union of each component's top ``pool_size``
  products by row-normalized score (:func:`candidates`, shared with the weight
  search's :class:`~helpers.tuning.weights.CandidatePool`).
* Features of a (customer, candidate) pair, all computed from the fit window
  (nothing at or after ``as_of``), in the order of :data:`FEATURES`:

  - repurchase timing of the pair: distinct baskets of the customer holding the
    product, days since its last purchase, mean days between its purchases
    (``(first - last) / (n - 1)``, ``n >= 2``), days since / mean interval (how
    *due* it is), share of the customer's baskets holding it, and the customer's
    baskets since its last purchase;
  - the customer: baskets, days since the last basket, mean days between baskets;
  - the product: ``log(1 + distinct buyers)``, the same over the last
    ``recent_days``, and its smoothed repeat rate
    (:func:`~helpers.models.buy_again.repeat_rate`);
  - with ``signal_groups``, the retail signals of those groups
    (:class:`~helpers.features.signals.RetailSignals`: repeat cycles, season and trend,
    sequences, the promotion calendar of the next ``horizon_days``, promotion responsiveness,
    ownership of durables);
  - then each component's row-normalized score (the blend's own inputs).

  Undefined values (a product the customer never bought, a single basket) are -1.
* Label: the candidate is bought in the stage's evaluation window.
* Model: scikit-learn ``HistGradientBoostingClassifier`` (log loss), fixed
  ``random_state``, no early stopping (no random validation split); negatives
  may be subsampled (``negative_rate``, fixed seed; positives always kept).
  It is trained on validation windows only, never on test.
* Score: the predicted probability of purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.arrays import unique
from helpers.features.signals import RetailSignals
from helpers.models.base import FitData, top_k
from helpers.models.buy_again import repeat_rate

DAY = np.timedelta64(1, "D")
#: spacing of customers in the basket-time keys (days); any history is shorter
_KEY_SPAN = 1e6

FEATURES = ("item_baskets", "item_days_since", "item_interval_days", "item_due", "item_basket_share",
            "baskets_since_item", "customer_baskets", "customer_days_since", "customer_interval_days",
            "log_buyers", "log_recent_buyers", "repeat_rate")


def candidates(normed: list[np.ndarray], pool_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Union of each normalized score matrix's top ``pool_size`` columns per row.

    Returns ``cands`` (rows x m * pool_size, sorted per row) and ``stacked``
    (rows x candidates x components: each component's score there). A column
    listed by several components appears once: its repeats get ``-inf`` in
    every component (a sentinel the callers mask).
    """
    cands = np.concatenate([top_k(s, pool_size)[0] for s in normed], axis=1)
    cands = np.sort(cands, axis=1)
    dup = np.zeros_like(cands, dtype=bool)
    dup[:, 1:] = cands[:, 1:] == cands[:, :-1]
    stacked = np.stack([np.take_along_axis(s, cands, axis=1) for s in normed], axis=2)
    stacked[dup] = -np.inf
    return cands, stacked


@dataclass
class PairHistory:
    """Per-customer, per-product and per-pair purchase statistics of one fit window (see module doc)."""

    n_items: int
    customer_baskets: np.ndarray  # (n_customers,) distinct baskets
    customer_first: np.ndarray  # age in days of the first / last basket (nan: none)
    customer_last: np.ndarray
    pair_keys: np.ndarray  # sorted row * n_items + col of every bought pair
    pair_baskets: np.ndarray
    pair_first: np.ndarray  # age in days of the pair's first / last basket
    pair_last: np.ndarray
    basket_keys: np.ndarray  # sorted row * _KEY_SPAN - basket age: each customer's baskets in time order
    repeat_rate: np.ndarray  # (n_items,)
    buyers: np.ndarray
    recent_buyers: np.ndarray
    signals: RetailSignals | None = None

    @classmethod
    def from_fit(cls, data: FitData, recent_days: int = 28, signal_groups=(), horizon_days: int = 28) -> PairHistory:
        signals = None
        if signal_groups:
            signals = RetailSignals.from_window(data.transactions, data.products, data.promotions, data.as_of,
                                                data.customer_ids, data.item_ids, signal_groups, horizon_days)
        tx = data.transactions
        buys = tx.loc[tx["quantity"].to_numpy() > 0, ["customer_id", "product_id", "basket_id", "timestamp"]]
        rows = data.customer_rows(buys["customer_id"].to_numpy(np.int64))
        cols = data.item_columns(buys["product_id"].to_numpy(np.int64))
        ok = (rows >= 0) & (cols >= 0)
        age = np.maximum((data.as_of.to_datetime64() - buys["timestamp"].to_numpy()[ok]) / DAY, 0.0)
        rows, cols = rows[ok].astype(np.int64), cols[ok].astype(np.int64)
        basket = buys["basket_id"].to_numpy(np.int64)[ok]
        n = data.n_customers
        # one age per (customer, basket) and per (pair, basket): a basket's lines count once
        b = pd.DataFrame({"r": rows, "b": basket, "age": age}).groupby(["r", "b"], sort=True)["age"].min()
        b_rows = b.index.get_level_values("r").to_numpy(np.int64)
        b_age = b.to_numpy(np.float64)
        cust = pd.Series(b_age).groupby(b_rows).agg(["max", "min"])
        first, last = np.full(n, np.nan), np.full(n, np.nan)
        idx = cust.index.to_numpy(np.int64)
        first[idx], last[idx] = cust["max"].to_numpy(), cust["min"].to_numpy()
        key = rows * data.n_items + cols
        p = pd.DataFrame({"k": key, "b": basket, "age": age}).groupby(["k", "b"], sort=True)["age"].min()
        pg = pd.Series(p.to_numpy(np.float64)).groupby(p.index.get_level_values("k").to_numpy(np.int64))
        pairs = pd.DataFrame({"n": pg.size(), "first": pg.max(), "last": pg.min()})  # sorted by key
        recent = age < recent_days
        recent_pairs = unique(key[recent])
        return cls(
            n_items=data.n_items,
            customer_baskets=np.bincount(b_rows, minlength=n).astype(np.float64),
            customer_first=first, customer_last=last,
            pair_keys=pairs.index.to_numpy(np.int64), pair_baskets=pairs["n"].to_numpy(np.float64),
            pair_first=pairs["first"].to_numpy(np.float64), pair_last=pairs["last"].to_numpy(np.float64),
            basket_keys=np.sort(b_rows * _KEY_SPAN - b_age),
            repeat_rate=repeat_rate(data.user_items),
            buyers=np.diff(sp.csc_matrix(data.user_items).indptr).astype(np.float64),
            recent_buyers=np.bincount(recent_pairs % data.n_items, minlength=data.n_items).astype(np.float64),
            signals=signals,
        )

    def features(self, rows: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """``(len(rows) * n_candidates, len(FEATURES))`` float32 features of every (row, candidate) pair.

        ``rows`` index the fit customers (-1: unknown customer, no history).
        """
        c = cands.shape[1]
        r = np.repeat(np.asarray(rows, dtype=np.int64), c)
        known = r >= 0
        rk = np.maximum(r, 0)
        col = np.asarray(cands, dtype=np.int64).ravel()
        key = rk * self.n_items + col
        if len(self.pair_keys):
            pos = np.minimum(np.searchsorted(self.pair_keys, key), len(self.pair_keys) - 1)
            hit = known & (self.pair_keys[pos] == key)
        else:
            pos, hit = np.zeros(len(key), dtype=np.int64), np.zeros(len(key), dtype=bool)
        n_b = np.where(hit, self.pair_baskets[pos] if len(pos) else 0.0, 0.0)
        last = np.where(hit, self.pair_last[pos] if len(pos) else np.nan, np.nan)
        first = np.where(hit, self.pair_first[pos] if len(pos) else np.nan, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            interval = np.where(n_b >= 2, (first - last) / np.maximum(n_b - 1, 1), np.nan)
            due = last / interval
            cb = np.where(known, self.customer_baskets[rk], 0.0)
            c_gap = np.where(cb >= 2, (self.customer_first[rk] - self.customer_last[rk]) / np.maximum(cb - 1, 1),
                             np.nan)
            share = n_b / np.maximum(cb, 1.0)
        # the customer's baskets after the item's last one: keys in (r * span - last, r * span]
        end = np.searchsorted(self.basket_keys, rk * _KEY_SPAN, side="right")
        after = np.searchsorted(self.basket_keys, rk * _KEY_SPAN - np.nan_to_num(last, nan=0.0), side="right")
        since = np.where(hit, end - after, np.nan)
        x = np.column_stack([
            n_b, last, interval, due, share, since,
            cb, np.where(known, self.customer_last[rk], np.nan), c_gap,
            np.log1p(self.buyers[col]), np.log1p(self.recent_buyers[col]), self.repeat_rate[col],
        ])
        if self.signals is not None:
            x = np.hstack([x, self.signals.matrix(np.asarray(rows, dtype=np.int64), cands)])
        return np.nan_to_num(x, nan=-1.0, posinf=-1.0, neginf=-1.0).astype(np.float32)


def design(history: PairHistory, rows: np.ndarray, cands: np.ndarray, stacked: np.ndarray,
           keep: np.ndarray | None = None) -> np.ndarray:
    """Full feature matrix: :meth:`PairHistory.features` then the component scores (non-finite: -1),
    one row per (row, candidate) slot in row-major order, or per slot of the flat mask ``keep``
    only (e.g. the real candidates: a repeated column or padding need no prediction)."""
    comp = stacked.reshape(-1, stacked.shape[2])
    if keep is not None:
        r = np.repeat(np.asarray(rows, dtype=np.int64), cands.shape[1])[keep]
        rows, cands, comp = r, np.asarray(cands).ravel()[keep][:, None], comp[keep]
    comp = comp.astype(np.float32)
    comp = np.where(np.isfinite(comp) & (comp > -1e8), comp, -1.0)
    return np.hstack([history.features(rows, cands), comp])


@dataclass
class Examples:
    """Training pairs of one window: labels ``y`` and real-candidate mask ``valid`` of every
    slot, features ``x`` of the real candidates only (``x[i]`` is slot ``flatnonzero(valid)[i]``)."""

    x: np.ndarray
    y: np.ndarray
    valid: np.ndarray
    # the negative sampling draws one number per slot of the pool before compaction
    # (``draws`` of them); ``draw_at``: the draw of each real candidate. None: one per real candidate.
    draws: int | None = None
    draw_at: np.ndarray | None = None

    def predict_slots(self, ranker: Ranker, fill: float = -1e9) -> np.ndarray:
        """``ranker``'s probability at every slot (``fill`` where there is no real candidate)."""
        out = np.full(len(self.valid), fill, dtype=np.float32)
        out[self.valid] = ranker.predict(self.x)
        return out


def pool_examples(pool, history: PairHistory) -> Examples:
    """The (customer, candidate) pairs of a :class:`~helpers.tuning.weights.CandidatePool`
    with labels from its relevance (bought in the evaluation window)."""
    n, c = pool.cands.shape
    valid = pool.valid_slots().ravel()
    x = design(history, pool.rows, pool.cands, pool.scores, keep=valid)
    rel = sp.csr_matrix(pool.relevance.matrix)
    y = np.asarray(rel[np.repeat(np.arange(n), c), pool.cands.ravel()]).ravel() > 0
    # negatives are drawn per slot of the pool's layout before compaction (CandidatePool._compact)
    width = pool.full_width or c
    cols = pool.slot_of if pool.slot_of is not None else np.broadcast_to(np.arange(c), (n, c))
    full = (np.arange(n)[:, None] * width + cols).ravel()
    return Examples(x, y, valid, draws=n * width, draw_at=full[valid])


class Ranker:
    """Gradient-boosted purchase classifier over candidate features (see module doc)."""

    def __init__(self, max_iter: int = 100, learning_rate: float = 0.1, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 100, l2_regularization: float = 0.0, negative_rate: float = 1.0,
                 seed: int = 0, signal_groups=(), horizon_days: int = 28):
        if not 0 < negative_rate <= 1:
            raise ValueError("negative_rate must be in (0, 1]")
        self.signal_groups = tuple(signal_groups or ())
        self.horizon_days = int(horizon_days)
        self.params = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                           min_samples_leaf=min_samples_leaf, l2_regularization=l2_regularization)
        self.negative_rate = negative_rate
        self.seed = seed

    def history(self, data: FitData) -> PairHistory:
        """The features this ranker reads, for one fit window (its signal groups and horizon).

        Computed once per fit window and setting (kept in ``data.extras``, read-only): the
        rankers of both protocols, fitted on one window, share it."""
        groups, horizon = getattr(self, "signal_groups", ()), getattr(self, "horizon_days", 28)
        memo = data.extras.setdefault("ranker_history", {})
        key = (tuple(groups), int(horizon))
        if key not in memo:
            memo[key] = PairHistory.from_fit(data, signal_groups=groups, horizon_days=horizon)
        return memo[key]

    def fit(self, windows: list[Examples]) -> Ranker:
        from sklearn.ensemble import HistGradientBoostingClassifier

        rng = np.random.default_rng(self.seed)
        xs, ys = [], []
        for ex in windows:
            y = ex.y[ex.valid]  # x holds the valid slots only
            keep = np.ones(len(y), dtype=bool)
            if self.negative_rate < 1:
                draws = rng.random(ex.draws)[ex.draw_at] if ex.draws is not None else rng.random(len(y))
                keep = y | (draws < self.negative_rate)
            xs.append(ex.x[keep])
            ys.append(y[keep])
        y = np.concatenate(ys) if ys else np.zeros(0, dtype=bool)
        if len(np.unique(y)) < 2:
            raise ValueError("the ranker needs both bought and not-bought candidates in its training windows")
        self.model_ = HistGradientBoostingClassifier(random_state=self.seed, early_stopping=False,
                                                     **self.params).fit(np.vstack(xs), y)
        self.n_train_ = int(len(y))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Purchase probability per row of ``x`` (float32)."""
        if len(x) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.model_.predict_proba(x)[:, 1].astype(np.float32)
