"""The hybrid's weight search on a small candidate pool per customer.

:class:`CandidatePool` scores every component once for the evaluated customers of a
stage and keeps, per customer, the union of each component's top-``pool_size`` items
with all component scores (row-normalized, :func:`~helpers.models.normalize.minmax_rows`).
A weight trial is then a weighted sum over that small matrix plus a top-K, scored by the
evaluation engine: thousands of trials take seconds. :func:`search_weights` draws the
trials (seeded) and refines the best; the final numbers always come from the full (dense)
:class:`~helpers.models.hybrid.Hybrid`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.arrays import unique
from helpers.evaluation import Relevance, compute_metrics, evaluation_set, hit_matrix, metrics_from_hits
from helpers.models.base import FitData, Recommender, excluded_matrix, map_blocks, n_threads, top_k
from helpers.models.hybrid import history_baskets, row_weights
from helpers.models.normalize import minmax_rows
from helpers.models.ranker import candidates
from helpers.models.rules import Rules, category_codes, diversify_ranked

__all__ = ["CandidatePool", "search_weights"]


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
        union = unique(np.concatenate([es.rows for es in sets.values()])) if sets else np.zeros(0, np.int64)
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
    sequential, the light and heavy buckets' at once. Same weights whatever the thread count.

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
    buckets = (("light", light), ("heavy", ~light))
    with ThreadPoolExecutor(2) as ex:  # the buckets are independent: their sequential refinements overlap
        runs = list(ex.map(lambda bm: run(bm[1] if bm[1].any() else None), buckets))
    for (bucket, _), (best, _, log) in zip(buckets, runs):
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
