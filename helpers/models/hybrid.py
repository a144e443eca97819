"""The hybrid recommender: a weighted blend of normalized component scores, then business rules.

Scoring
-------
Each component (fitted :class:`~helpers.models.base.Recommender`) scores
a chunk of customers; every row is min-max normalized over the catalog to
``[0, 1]`` (``-inf`` stays ``-inf``), and the hybrid score is
``sum_c w_c * norm(score_c)``. Weights may depend on the customer's history
length (number of fit-window baskets): ``weights`` maps a bucket name to a
weight dict, buckets being ``"light"`` (<= ``light_max_baskets``) and
``"heavy"``; a plain weight dict applies to everybody.

Then the business rules of :class:`~helpers.models.rules.Rules` (availability,
promotion boost, margin weight, diversity cap). With a ``ranker``
(:class:`~helpers.models.ranker.Ranker`), each customer's candidates are re-ordered by
its purchase probability, above every other product.

Normalization is in :mod:`helpers.models.normalize`, the rules in
:mod:`helpers.models.rules` (their names are re-exported here); the weight search
(:class:`~helpers.tuning.weights.CandidatePool`, :func:`~helpers.tuning.weights.search_weights`)
is tuning and lives in :mod:`helpers.tuning.weights`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from helpers.models.base import FitData, Recommender, n_threads, top_k
from helpers.models.normalize import minmax_at, minmax_rows
from helpers.models.ranker import PairHistory, Ranker, candidates, design
from helpers.models.rules import Rules, category_codes, diversify, diversify_ranked, item_attribute

__all__ = [
    "Hybrid", "history_baskets", "row_weights",
    # re-exported from their own modules
    "Rules", "category_codes", "diversify", "diversify_ranked", "item_attribute", "minmax_at", "minmax_rows",
]


def history_baskets(data: FitData) -> np.ndarray:
    """Number of distinct fit-window baskets per customer row."""
    tx = data.transactions
    buys = tx.loc[tx["quantity"].to_numpy() > 0, ["customer_id", "basket_id"]].drop_duplicates()
    rows = data.customer_rows(buys["customer_id"].to_numpy())
    return np.bincount(rows[rows >= 0], minlength=data.n_customers)


def _members(matrix, cols: np.ndarray) -> np.ndarray:
    """``(rows, width)`` booleans: is ``(i, cols[i, j])`` a non-zero of the CSR ``matrix``."""
    m = matrix.tocsr()
    if not m.has_sorted_indices:
        m = m.sorted_indices()
    n_items = m.shape[1]
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * n_items + m.indices
    want = (np.arange(cols.shape[0], dtype=np.int64)[:, None] * n_items + cols).ravel()
    pos = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    return (keys[pos] == want).reshape(cols.shape) if len(keys) else np.zeros(cols.shape, dtype=bool)


def row_weights(weights: dict, names: list[str], baskets: np.ndarray, light_max_baskets: int) -> np.ndarray:
    """(len(baskets), len(names)) component weights per customer: a plain ``{component: w}``
    dict for everyone, or ``{"light": ..., "heavy": ...}`` split at ``light_max_baskets``."""
    def vec(d):
        return np.array([d.get(c, 0.0) for c in names], dtype=np.float32)

    if "light" in weights and "heavy" in weights:
        light = (np.asarray(baskets) <= light_max_baskets)[:, None]
        return np.where(light, vec(weights["light"]), vec(weights["heavy"]))
    return np.broadcast_to(vec(weights), (len(baskets), len(names)))


class Hybrid(Recommender):
    """Weighted blend of fitted components plus business rules (see module docstring)."""

    name = "hybrid"

    def __init__(self, components: dict[str, Recommender], weights: dict, rules: Rules | None = None,
                 light_max_baskets: int = 5, threads: int = 0, ranker: Ranker | None = None,
                 pool_size: int = 100, ranker_chunk: int = 256):
        self.components = components
        self.weights = weights
        self.rules = rules or Rules()
        self.light_max_baskets = light_max_baskets
        self.threads = threads  # components scored at once (0 = every core); same scores whatever it is
        self.ranker = ranker  # a fitted Ranker re-orders each customer's candidates (module doc)
        self.pool_size = pool_size
        self.ranker_chunk = ranker_chunk  # rows whose component matrices are held at once

    def fit(self, data: FitData) -> Hybrid:
        """Components must already be fitted on ``data`` (they are reused across weight trials)."""
        self.data = data
        self._mult, self._allowed = self.rules.item_multiplier_and_mask(data)
        self._baskets = history_baskets(data)
        if self.rules.max_per_category:
            self._categories = category_codes(data)
        if self.ranker is not None:
            own = getattr(self.ranker, "history", None)  # a Ranker knows its feature settings
            self._history = own(data) if own is not None else PairHistory.from_fit(data)
        return self

    def _row_weights(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n_components) weight matrix."""
        nb = np.where(rows >= 0, self._baskets[np.maximum(rows, 0)], 0)
        return row_weights(self.weights, list(self.components), nb, self.light_max_baskets)

    def component_scores(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: minmax_rows(comp.score(rows), inplace=True) for name, comp in self.components.items()}

    def contributions(self, rows: np.ndarray, item_cols: np.ndarray) -> dict[str, np.ndarray]:
        """Weighted normalized score of each component for given (row, item) pairs (for reasons)."""
        w = self._row_weights(rows)
        out = {}
        for j, (name, comp) in enumerate(self.components.items()):
            out[name] = w[:, j][:, None] * minmax_at(comp.score(rows), item_cols)
        return out

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Weighted sum of normalized component scores, then the rules' multiplier and mask.

        Components are scored ``threads`` at a time (0 = every core) and added in
        their fixed order, so the sum does not depend on the thread count; at most
        ``threads`` component matrices are held besides the total.
        """
        rows = np.asarray(rows)
        if self.ranker is not None:
            return self._ranked_score(rows)
        w = self._row_weights(rows)
        total = np.zeros((len(rows), self.data.n_items), dtype=np.float32)
        comps = list(self.components.values())
        active = [j for j in range(len(comps)) if np.any(w[:, j])]

        def normed(j):
            s = minmax_rows(comps[j].score(rows), inplace=True)
            return np.maximum(s, 0.0, out=s)  # -inf (minmax_rows' only non-finite value) -> 0

        width = n_threads(self.threads)
        with ThreadPoolExecutor(width) as ex:
            for start in range(0, len(active), width):
                group = active[start:start + width]
                for j, s in zip(group, ex.map(normed, group)):
                    s *= w[:, j][:, None]  # s is this call's own: no temporary of the block's size
                    total += s
        self._apply_rules(total)
        return total

    def _ranked_score(self, rows: np.ndarray) -> np.ndarray:
        """With a ranker: each customer's candidates score ``1 + sum(w) + p`` (``p`` the
        ranker's purchase probability), above every other product, which keeps its blend
        score (at most ``sum(w)``); then the rules' multiplier and mask. Rows are done
        ``ranker_chunk`` at a time so that only that many rows of every component are held."""
        out = np.empty((len(rows), self.data.n_items), dtype=np.float32)
        with ThreadPoolExecutor(n_threads(self.threads)) as ex:
            for a in range(0, len(rows), self.ranker_chunk):
                total = out[a:a + self.ranker_chunk]
                cands, _, value = self._ranked_block(rows[a:a + self.ranker_chunk], ex, total)
                np.put_along_axis(total, cands, value, axis=1)
        self._apply_rules(out)
        return out

    def _ranked_block(self, r: np.ndarray, ex: ThreadPoolExecutor, total: np.ndarray | None = None):
        """``(cands, dup, value)`` of one chunk of rows: each row's candidates (sorted, a repeated
        column flagged in ``dup``) and their score ``1 + sum(w) + p`` (a repeat takes its first
        occurrence's). With ``total`` (``len(r) x n_items``), the blend of every product is written
        there too."""
        comps = list(self.components.values())
        normed = list(ex.map(lambda c: minmax_rows(c.score(r), inplace=True), comps))
        w = self._row_weights(r)
        if total is not None:
            total[:] = 0.0
            part = np.empty_like(total)  # one scratch block for every weighted component
            for j, s in enumerate(normed):
                if np.any(w[:, j]):
                    np.maximum(s, 0.0, out=part)  # -inf (minmax_rows' only non-finite value) -> 0
                    part *= w[:, j][:, None]
                    total += part
            del part
        cands, stacked = candidates(normed, self.pool_size)
        del normed
        # a repeated column (sentinel -inf in every component) takes its first occurrence's value
        dup = np.zeros(cands.shape, dtype=bool)
        dup[:, 1:] = cands[:, 1:] == cands[:, :-1]
        keep = ~dup.ravel()
        p = np.zeros(cands.size, dtype=np.float32)
        p[keep] = self.ranker.predict(design(self._history, r, cands, stacked, keep=keep))
        p = p.reshape(cands.shape)
        first = np.maximum.accumulate(np.where(dup, 0, np.arange(cands.shape[1])), axis=1)
        p = np.take_along_axis(p, first, axis=1)
        offset = 1.0 + w.sum(axis=1, dtype=np.float32)
        return cands, dup, offset[:, None] + p

    def rank_rows(self, rows: np.ndarray, excluded, k: int) -> tuple[np.ndarray, np.ndarray]:
        """With a ranker, no score multiplier and no diversity cap, each row's top k are its
        ``k`` best allowed candidates (every candidate scores above every other product), so
        only the candidates are ranked: the same lists and scores as ranking :meth:`score`,
        without the dense blend. Rows with fewer than ``k`` allowed candidates are ranked densely."""
        if self.ranker is None or self.rules.max_per_category or not (self._mult == 1.0).all():
            return super().rank_rows(rows, excluded, k)
        rows = np.asarray(rows)
        out_idx = np.empty((len(rows), k), dtype=np.int64)
        out_val = np.empty((len(rows), k), dtype=np.float32)
        short = []
        with ThreadPoolExecutor(n_threads(self.threads)) as ex:
            for a in range(0, len(rows), self.ranker_chunk):
                b = min(a + self.ranker_chunk, len(rows))
                cands, dup, value = self._ranked_block(rows[a:b], ex)
                value[dup | ~self._allowed[cands]] = -np.inf
                if excluded is not None:
                    value[_members(excluded[a:b], cands)] = -np.inf
                ok = np.zeros(b - a, dtype=bool)
                if cands.shape[1] >= k:
                    pos, val = top_k(value, k)
                    ok = np.isfinite(val[:, -1]) if k else ~ok
                    out_idx[a:b][ok] = np.take_along_axis(cands, pos, axis=1)[ok]
                    out_val[a:b][ok] = val[ok]
                short.append(a + np.flatnonzero(~ok))
        short = np.concatenate(short) if short else np.zeros(0, dtype=np.int64)
        if len(short):
            sub = excluded[short] if excluded is not None else None
            out_idx[short], out_val[short] = super().rank_rows(rows[short], sub, k)
        return out_idx, out_val

    def _apply_rules(self, scores: np.ndarray) -> None:
        """The rules' multiplier and mask, in place (a multiplier of 1 everywhere changes nothing,
        so that pass is skipped, as is the mask when every item is allowed)."""
        if not (self._mult == 1.0).all():
            scores *= self._mult[None, :]
        if not self._allowed.all():
            scores[:, ~self._allowed] = -np.inf

    def rank(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.rules.max_per_category:
            return diversify(scores, self._categories, k, self.rules.max_per_category)
        return top_k(scores, k)
