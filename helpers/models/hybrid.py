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

Business rules (each a parameter; their effect is measured, not assumed)
-----------------------------------------------------------------------
* ``availability_days``: products not sold (by anybody) in the last N days
  before ``as_of`` are never recommended (an availability proxy).
* ``promo_boost``: products with a promotion active on ``as_of`` (the start
  of the scoring window; promotions are planned ahead, so this is known at
  scoring time) get ``score * (1 + promo_boost)``.
* ``margin_weight``: where ``dim_product.margin`` exists, scores are
  multiplied by ``1 + margin_weight * margin`` (margin-aware re-ranking).
* ``max_per_category``: at most M products of the same category in the top
  K (diversity), applied by a vectorized greedy re-rank of the top candidates.

Weight search
-------------
:class:`CandidatePool` scores every component once for the evaluated
customers of a stage and keeps, per customer, the union of each component's
top-``pool_size`` items with all component scores. A weight trial is then a
weighted sum over that small matrix plus a top-K: thousands of trials take
seconds. The final numbers always come from the full (dense) hybrid.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.evaluation.metrics import Relevance, compute_metrics, evaluation_set, hit_matrix, metrics_from_hits
from helpers.models.base import FitData, Recommender, excluded_matrix, map_blocks, n_threads, top_k
from helpers.models.ranker import PairHistory, Ranker, candidates, design


def _minmax_scale(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of float32 ``s``: the offset and factor of :func:`minmax_rows` (``float32``), and
    which rows hold a non-finite value."""
    lo = s.min(axis=1)
    hi = s.max(axis=1)
    # a row is all finite iff its min and max are (NaN propagates); only the others
    # need the masked reductions
    bad_rows = ~(np.isfinite(lo) & np.isfinite(hi))
    if bad_rows.any():
        sub = s[bad_rows]
        fin = np.isfinite(sub)
        lo[bad_rows] = np.where(fin, sub, np.inf).min(axis=1)
        hi[bad_rows] = np.where(fin, sub, -np.inf).max(axis=1)
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    scale = np.where(ok, 1.0 / np.where(ok, span, 1.0), 1.0).astype(np.float32)
    lo = np.where(np.isfinite(lo), lo, 0.0).astype(np.float32)
    return lo, scale, bad_rows


#: minmax_rows works through blocks of rows of about this size, which stay in cache between
#: its passes (min, max, shift, scale): one read and one write of the scores from memory.
MINMAX_BLOCK_BYTES = 1 << 20


def minmax_rows(scores: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Min-max normalize each row over its finite values to [0, 1]; non-finite values become -inf
    (so every value is in [0, 1] or -inf: the blend maps -inf to 0 with ``max(x, 0)``).

    A row without two distinct finite values maps its finite values to 0. ``inplace``: the
    caller owns ``scores`` (a component's fresh :meth:`~Recommender.score`), so a writable
    ``float32`` array is normalized in place (a read-only one is not: a new array is returned).
    """
    s = np.asarray(scores, dtype=np.float32)
    if s.size == 0:
        return s.copy()
    out = s if (inplace or s is not scores) and s.flags.writeable else np.empty_like(s)
    step = max(8, MINMAX_BLOCK_BYTES // (4 * s.shape[1]))
    for a in range(0, s.shape[0], step):
        blk, o = s[a:a + step], out[a:a + step]
        lo, scale, bad_rows = _minmax_scale(blk)
        keep = np.isfinite(blk[bad_rows]) if bad_rows.any() else None  # before o (maybe blk) changes
        np.subtract(blk, lo[:, None], out=o)
        o *= scale[:, None]
        if keep is not None:
            o[bad_rows] = np.where(keep, o[bad_rows], -np.inf)
    return out


def minmax_at(scores: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``take_along_axis(minmax_rows(scores), cols, axis=1)``, the same values, without
    normalizing the columns not asked for."""
    s = np.asarray(scores, dtype=np.float32)
    if s.size == 0:
        return np.take_along_axis(s, cols, axis=1).copy()
    lo, scale, _ = _minmax_scale(s)
    sel = np.take_along_axis(s, cols, axis=1)
    out = sel - lo[:, None]
    out *= scale[:, None]
    return np.where(np.isfinite(sel), out, np.float32(-np.inf))  # only rows with a non-finite value have one


def history_baskets(data: FitData) -> np.ndarray:
    """Number of distinct fit-window baskets per customer row."""
    tx = data.transactions
    buys = tx.loc[tx["quantity"].to_numpy() > 0, ["customer_id", "basket_id"]].drop_duplicates()
    rows = data.customer_rows(buys["customer_id"].to_numpy())
    return np.bincount(rows[rows >= 0], minlength=data.n_customers)


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
            self._history = PairHistory.from_fit(data)
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
        comps = list(self.components.values())
        with ThreadPoolExecutor(n_threads(self.threads)) as ex:
            for a in range(0, len(rows), self.ranker_chunk):
                r = rows[a:a + self.ranker_chunk]
                normed = list(ex.map(lambda c, r=r: minmax_rows(c.score(r), inplace=True), comps))
                w = self._row_weights(r)
                total = out[a:a + len(r)]
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
                np.put_along_axis(total, cands, offset[:, None] + p, axis=1)
        self._apply_rules(out)
        return out

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


class CandidatePool:
    """Component scores of each evaluated customer on a small candidate set, for fast weight search."""

    full_width: int | None = None  # columns before compaction (None: never compacted)
    slot_of: np.ndarray | None = None  # each kept slot's column before compaction

    def __init__(self, components: dict[str, Recommender], data: FitData, relevance, protocol: str,
                 pool_size: int = 100, k: int = 5, chunk_size: int = 512, threads: int = 0):
        built = CandidatePool.for_protocols({protocol: components}, data, relevance, pool_size, k, chunk_size,
                                            threads)[protocol]
        self.__dict__.update(built.__dict__)

    @classmethod
    def for_protocols(cls, components: dict[str, dict[str, Recommender]], data: FitData, relevance,
                      pool_size: int = 100, k: int = 5, chunk_size: int = 512,
                      threads: int = 0) -> dict[str, CandidatePool]:
        """One pool per protocol of ``{protocol: components}`` on the same stage.

        Customers are taken in blocks of the union of the protocols' evaluated
        customers, and a component object shared by several protocols (same fit)
        is scored and normalized once per block. Every step is row by row, so each
        pool is the same as when built alone.
        """
        sets = {p: evaluation_set(data.user_items, relevance, p) for p in components}
        union = np.unique(np.concatenate([es.rows for es in sets.values()])) if sets else np.zeros(0, np.int64)
        uses: dict[int, int] = {}  # protocols using each component object
        for comps in components.values():
            for c in comps.values():
                uses[id(c)] = uses.get(id(c), 0) + 1
        starts = list(range(0, len(union), chunk_size))
        parts = {p: [None] * len(starts) for p in components}

        def block(a, b):
            rows = union[a:b]
            normed, left = {}, dict(uses)
            for p, es in sets.items():  # each normalized matrix is held from its first use to its last
                lo, hi = np.searchsorted(es.rows, [rows[0], rows[-1] + 1])
                pos = np.searchsorted(rows, es.rows[lo:hi])
                every = len(pos) == len(rows)
                excl = excluded_matrix(data, rows[pos], es.exclude, slice(lo, hi))  # once for every component
                excl = excl.nonzero() if excl is not None else None
                mine = []
                for comp in components[p].values():
                    key = id(comp)
                    if key not in normed:
                        normed[key] = minmax_rows(comp.score(rows), inplace=True)
                    left[key] -= 1
                    s = normed.pop(key) if not left[key] else normed[key]
                    if not every:
                        s = s[pos]  # a copy
                    elif excl is not None and left[key]:
                        s = s.copy()  # its exclusions stay in this protocol
                    if excl is not None:
                        s[excl] = -np.inf
                    mine.append(s)
                parts[p][a // chunk_size] = candidates(mine, pool_size)
                del mine

        map_blocks(block, len(union), chunk_size, threads)
        baskets = history_baskets(data)
        out = {}
        for p, es in sets.items():
            pool = out[p] = cls.__new__(cls)
            pool.rows, pool.k, pool.names = es.rows, k, list(components[p])
            pool.baskets = baskets[pool.rows]
            done = [part for part in parts[p] if part is not None]
            width = max((c.shape[1] for c, _ in done), default=0)
            pool.cands = (np.concatenate([c for c, _ in done]) if done else np.zeros((0, width), np.int64))
            pool.scores = (np.concatenate([st for _, st in done]) if done
                           else np.zeros((0, width, len(pool.names))))
            pool.scores = np.where(np.isfinite(pool.scores), pool.scores, -1e9).astype(np.float32)
            pool._compact()
            pool.relevance = es.relevance
        return out

    def _compact(self) -> None:
        """Move each row's real candidates first (in their column order) and drop the columns
        no row fills: a repeated column is never a candidate, and every trial of the weight
        search pays for each column. Rankings are unchanged (ties still go to the lower column)."""
        valid = self.scores.max(axis=2) > -1e8 if self.scores.size else np.zeros(self.cands.shape, dtype=bool)
        if not valid.size:
            return
        width = int(valid.sum(axis=1).max())
        order = np.argsort(~valid, axis=1, kind="stable")[:, :width]
        self.full_width = self.cands.shape[1]
        self.slot_of = order
        self.cands = np.take_along_axis(self.cands, order, axis=1)
        self.scores = np.take_along_axis(self.scores, order[:, :, None], axis=1)

    @classmethod
    def concat(cls, pools: list[CandidatePool]) -> CandidatePool:
        """One pool holding the customers of several pools (e.g. several validation
        windows), for a weight search that maximizes the mean over all of them.

        Each row keeps its own stage's catalog columns (relevance matrices are padded
        to the widest catalog); ``rows`` then no longer index one stage, so only the
        search (:func:`search_weights`, :meth:`evaluate`) uses a concatenated pool.
        """
        if len({tuple(p.names) for p in pools}) != 1 or len({p.k for p in pools}) != 1:
            raise ValueError("pools must share their components and k")
        width = max(p.cands.shape[1] for p in pools)
        n_cols = max(p.relevance.matrix.shape[1] for p in pools)
        out = cls.__new__(cls)
        out.k, out.names = pools[0].k, list(pools[0].names)
        out.rows = np.concatenate([p.rows for p in pools])
        out.baskets = np.concatenate([p.baskets for p in pools])
        out.cands = np.concatenate([np.pad(p.cands, ((0, 0), (0, width - p.cands.shape[1]))) for p in pools])
        out.scores = np.concatenate([np.pad(p.scores, ((0, 0), (0, width - p.scores.shape[1]), (0, 0)),
                                            constant_values=-1e9) for p in pools])  # padding: never picked
        mats = [sp.csr_matrix((p.relevance.matrix.data, p.relevance.matrix.indices, p.relevance.matrix.indptr),
                              shape=(p.relevance.matrix.shape[0], n_cols)) for p in pools]
        out.relevance = Relevance(sp.vstack(mats, format="csr"),
                                  np.concatenate([p.relevance.n_relevant for p in pools]))
        return out

    def weight_matrix(self, weights: dict, light_max_baskets: int = 5) -> np.ndarray:
        """(n_customers, n_components) weights of a :class:`Hybrid` weights dict (plain or light/heavy)."""
        return row_weights(weights, self.names, self.baskets, light_max_baskets)

    def evaluate_rules(self, weights: dict, rules: Rules, data: FitData, light_max_baskets: int = 5,
                       metric: str = "ndcg", base: np.ndarray | None = None) -> float:
        """Mean ``metric@k`` of the blend with business rules, re-ranked within the pool.

        The rule's item multiplier and availability mask apply to the pooled
        candidates, and the diversity cap re-ranks them greedily, as
        :class:`Hybrid` does on the whole catalog; items outside every
        component's top ``pool_size`` are never recommended (as in the weight search).
        ``base`` (customers x candidates, e.g. a ranker's probabilities) replaces the
        blend when given.
        """
        if base is None:
            blend = np.einsum("ncj,nj->nc", self.scores, self.weight_matrix(weights, light_max_baskets))
        else:
            blend = np.where(self.valid_slots(), np.asarray(base, dtype=np.float32), -1e9)
        mult, allowed = rules.item_multiplier_and_mask(data)
        blend *= mult[self.cands]
        blend[~allowed[self.cands] | (blend < -1e8)] = -np.inf
        if rules.max_per_category:
            order, ranked = top_k(blend, min(blend.shape[1], max(self.k * 10, 50)))
            cats = category_codes(data)[np.take_along_axis(self.cands, order, axis=1)]
            pick, _ = diversify_ranked(ranked, cats, self.k, rules.max_per_category)
            idx = np.take_along_axis(order, pick, axis=1)
        else:
            idx, _ = top_k(blend, self.k)
        cols = np.take_along_axis(self.cands, idx, axis=1)
        picked = np.take_along_axis(blend, idx, axis=1)
        cols = np.where(np.isfinite(picked), cols, -1)
        res = compute_metrics(cols, self.relevance.matrix, self.relevance.n_relevant, ks=(self.k,))
        return float(np.mean(res[(metric, self.k)])) if len(self.rows) else 0.0

    def valid_slots(self) -> np.ndarray:
        """(customers, candidates): real candidates (not a repeated column or padding)."""
        return self.scores.max(axis=2) > -1e8

    def evaluate_scores(self, scores: np.ndarray, metric: str = "ndcg") -> float:
        """Mean ``metric@k`` of ranking each customer's candidates by ``scores`` (customers x candidates)."""
        s = np.where(self.valid_slots(), np.asarray(scores, dtype=np.float32), -1e9).astype(np.float32)
        return _View.of(self).rank_and_score(s, metric)

    def evaluate(self, weights: np.ndarray, metric: str = "ndcg") -> float:
        """Mean ``metric@k`` of the blend; ``weights`` is (n_customers, n_components) or (n_components,)."""
        w = np.asarray(weights, dtype=np.float32)
        view = _View.of(self)
        if w.ndim == 1:
            return view.evaluate(w, metric)
        return view.rank_and_score(np.einsum("ncj,nj->nc", self.scores, w), metric)


def search_weights(pool: CandidatePool, n_trials: int = 300, seed: int = 0, metric: str = "ndcg",
                   by_history: bool = False, light_max_baskets: int = 5,
                   threads: int = 0) -> tuple[dict, pd.DataFrame]:
    """Random search (Dirichlet draws plus every single component) then coordinate refinement.

    The random trials run on ``threads`` threads (0 = every core); the refinement is
    sequential. Same weights whatever the thread count.

    Returns the best weights (a dict per component, or ``{"light": ..., "heavy": ...}``
    when ``by_history``) and the trial log. Seeded, hence reproducible.
    """
    rng = np.random.default_rng(seed)
    m = len(pool.names)
    trials = [np.eye(m)[j] for j in range(m)] + [np.full(m, 1.0 / m)]
    trials += list(rng.dirichlet(np.full(m, 0.7), size=max(n_trials - len(trials), 0)))

    def run(mask_rows=None):
        view = _View.of(pool, mask_rows)
        # the fixed trials are independent: evaluated on every core, then read in order
        with ThreadPoolExecutor(n_threads(threads)) as ex:
            values = list(ex.map(lambda w: view.evaluate(w, metric), trials))
        log, best, best_v = [], None, -1.0
        for w, v in zip(trials, values):
            log.append((w, v))
            if v > best_v + 1e-12:
                best, best_v = w, v
        # coordinate refinement: scale one weight at a time
        for _ in range(2):
            for j in range(m):
                for f in (0.0, 0.5, 0.8, 1.25, 2.0):
                    w = best.copy()
                    w[j] = w[j] * f if w[j] > 0 else (0.05 if f > 1 else 0.0)
                    if w.sum() <= 0:
                        continue
                    w = w / w.sum()
                    v = view.evaluate(w, metric)
                    log.append((w, v))
                    if v > best_v + 1e-12:
                        best, best_v = w, v
        return best, best_v, log

    def as_dict(w):
        return {name: round(float(x), 6) for name, x in zip(pool.names, w)}

    if not by_history:
        best, best_v, log = run()
        weights = as_dict(best)
        table = pd.DataFrame([{**as_dict(w), "value": v} for w, v in log])
        return weights, table
    light = pool.baskets <= light_max_baskets
    out, frames = {}, []
    for bucket, mask in (("light", light), ("heavy", ~light)):
        best, best_v, log = run(mask if mask.any() else None)
        out[bucket] = as_dict(best)
        frames.append(pd.DataFrame([{**as_dict(w), "value": v, "bucket": bucket} for w, v in log]))
    return out, pd.concat(frames, ignore_index=True)


@dataclass
class _View:
    """The pool restricted to some customers (a bucket), sliced once for many trials."""

    scores: np.ndarray
    cands: np.ndarray
    relevance: sp.csr_matrix
    n_relevant: np.ndarray
    k: int

    @classmethod
    def of(cls, pool: CandidatePool, mask_rows=None) -> _View:
        if mask_rows is None:
            return cls(pool.scores, pool.cands, pool.relevance.matrix, pool.relevance.n_relevant, pool.k)
        rows = np.flatnonzero(mask_rows)
        return cls(pool.scores[rows], pool.cands[rows], pool.relevance.matrix[rows],
                   pool.relevance.n_relevant[rows], pool.k)

    def evaluate(self, w: np.ndarray, metric: str) -> float:
        """Mean ``metric@k`` of the blend with one weight vector for every customer."""
        if len(self.cands) == 0:
            return 0.0
        return self.rank_and_score(np.einsum("ncj,j->nc", self.scores, np.asarray(w, np.float32)), metric)

    def rank_and_score(self, blend: np.ndarray, metric: str) -> float:
        """Mean ``metric@k`` of the top k of a blended ``(customers, candidates)`` matrix."""
        if len(self.cands) == 0:
            return 0.0
        idx, _ = top_k(blend, self.k)
        res = metrics_from_hits(np.take_along_axis(self.slot_hits, idx, axis=1), self.n_relevant, ks=(self.k,))
        return float(np.mean(res[(metric, self.k)]))

    @cached_property
    def slot_hits(self) -> np.ndarray:
        """(customers, candidates): is the candidate relevant; every trial's hits are a gather."""
        return hit_matrix(self.cands, self.relevance)
