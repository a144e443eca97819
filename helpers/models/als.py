"""Implicit-feedback matrix factorization (ALS, Hu, Koren & Volinsky 2008) on ``implicit`` 0.7.

Conventions
-----------
* **Input.** ``FitData.user_items``: customers x catalog, number of distinct
  baskets in which the customer bought the item.
* **Confidence** (``weighting``), computed on the non-zeros only, then handed to
  ``implicit`` with its own ``alpha`` fixed at 1 so that fitting and folding in
  see exactly the same matrix:

  - ``"bm25"``: ``alpha * bm25``, the weighting of
    ``implicit.nearest_neighbours.bm25_weight`` applied, as in implicit's
    examples, to the *items x users* matrix: items are the "documents" (length
    normalisation by the item's total count, ``bm25_b``, saturation ``bm25_k1``)
    and customers the "terms" (``idf = log(n_items) - log1p(#items bought)``, so
    a customer who buys everything says little about each item). Non-positive
    weights (a customer buying nearly the whole catalog: tiny data only) are
    floored at ``1e-6``.
  - ``"log"``: ``1 + alpha * log1p(count)``.
  - ``"none"``: ``alpha * count``.

* **Scores.** ``score(rows) = user_factors[rows] @ item_factors.T`` (dense
  ``float32``). Rows ``-1`` (unknown customer) and customers with fewer than
  ``min_history`` distinct fit-window items are *cold*: they get the fallback's
  scores (the injected ``fallback`` recommender, fitted on the same data unless
  it already is, e.g. segmented popularity; by default global popularity:
  items ordered by distinct buyers, then distinct baskets, see
  :func:`global_popularity`). Scores of warm and cold rows are on
  different scales; only the ranking within a row matters.
* **Fold in.** :meth:`ALS.fold_in` solves the exact least-squares user factor
  (``recalculate_user``, Cholesky) of an anonymous basket or a new history
  against the fitted item factors; :meth:`ALS.score_baskets` and
  :meth:`ALS.recommend_baskets` build on it (an empty basket, or one with only
  off-catalog products, gets the fallback).
* **Threads and determinism.** BLAS is limited to one thread around every call
  into ``implicit`` (``threadpoolctl``), which is what implicit recommends and
  keeps it from warning. Factors are initialised from ``random_state``; each
  customer's (item's) solve in an ALS half-step reads only the other side's
  factors, so the result does not depend on ``num_threads``: same data + same
  seed => bit-identical factors (checked in the tests with 1 and 2 threads).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from helpers.models.base import DEFAULT_CHUNK, FitData, Recommender, stable_dot, top_k
from helpers.models.threads import native_threads

WEIGHTINGS = ("bm25", "log", "none")

#: Tuning grid (for :func:`helpers.tuning.stages.expand_grid`): 1 x 3 = 3 fits. Chosen
#: from a probe on the Complete Journey validation stage (factors=64): low confidence
#: scales win (alpha 1 beats 5-40 for "log", 10 for "none"), implicit's regularization
#: is not scaled by the number of interactions so 1-10 beats 0.01-0.1, the BM25
#: weighting (alpha 0.25-5, K1 100 or 1.2) trails both on "new" (0.02-0.03 vs 0.048),
#: and raw counts beat "log" at every size and regularization tried (e.g. 32 factors,
#: regularization 10: 0.251 vs 0.232 "all"), so the grid spends its fits on size and
#: regularization (30 probes past the former best, 10).
#: On that stage 32 and 64 factors trailed 128 at every regularization in both protocols
#: (e.g. regularization 30: "all" 0.262 / 0.280 / 0.296), 1 trailed 10 and 30 everywhere,
#: and 60 and 100 fell back again (0.290, 0.241): the budget goes to 128 factors and
#: regularization around that peak (``grid_overrides`` widens it again). Ten iterations
#: score like fifteen there (128 factors, regularization 30: "all" 0.2957 vs 0.2960, "new"
#: 0.0512 vs 0.0506) at two thirds of the fit time, so the grid fits ten.
GRID = {
    "factors": [128],
    "regularization": [10.0, 30.0, 60.0],
    "weighting": ["none"],
    "alpha": [1.0],
    "iterations": [10],
}


# ------------------------------------------------------------------ fallback
def global_popularity(user_items: sp.spmatrix) -> np.ndarray:
    """Cold-start scores in ``(0, 1]``: items ranked by (distinct buyers, distinct baskets).

    Lexicographic order (same as the popularity baseline's prior); the value is
    the item's dense rank divided by the number of distinct ranks, so it is exact
    in ``float32``; fully tied items share a value (then the lower index wins).
    """
    ui = sp.csc_matrix(user_items)
    ui.eliminate_zeros()
    buyers = np.diff(ui.indptr)
    baskets = np.asarray(ui.sum(axis=0), dtype=np.float64).ravel()
    if len(buyers) == 0:
        return np.zeros(0, dtype=np.float32)
    order = np.lexsort((baskets, buyers))
    b, k = buyers[order], baskets[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (b[1:] != b[:-1]) | (k[1:] != k[:-1])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.cumsum(new)
    return (rank / rank.max()).astype(np.float32)


class FallbackMixin:
    """Cold-start scores: an injected recommender, or global popularity.

    ``self.fallback`` is ``None`` or a :class:`Recommender`; it is fitted on the
    same :class:`FitData` unless its ``data`` already *is* that object.
    """

    fallback: Recommender | None

    def _fit_fallback(self, data: FitData) -> None:
        self._popularity = None
        if self.fallback is None:
            self._popularity = global_popularity(data.user_items)
        elif getattr(self.fallback, "data", None) is not data:
            self.fallback.fit(data)

    def _fallback_scores(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if self._popularity is None:
            return np.asarray(self.fallback.score(rows), dtype=np.float32)
        return np.broadcast_to(self._popularity, (len(rows), len(self._popularity))).copy()


# ------------------------------------------------------------------- baskets
def baskets_to_user_items(baskets, item_ids: np.ndarray) -> sp.csr_matrix:
    """Catalog-aligned CSR (``len(baskets) x len(item_ids)``) of anonymous baskets.

    ``baskets`` is either a sparse matrix already aligned with the catalog
    (returned as CSR, values kept: e.g. counts of distinct baskets), a sequence
    of product-id sequences (one basket each) or a single flat sequence of
    product ids (one basket). Each distinct catalog product of a basket counts 1
    (one basket = one purchase occasion); products outside the catalog are
    ignored. ``item_ids`` must be sorted ascending.
    """
    n_items = len(item_ids)
    if sp.issparse(baskets):
        m = sp.csr_matrix(baskets, dtype=np.float32)
        if m.shape[1] != n_items:
            raise ValueError(f"basket matrix has {m.shape[1]} columns, catalog has {n_items}")
        return m
    if isinstance(baskets, np.ndarray) and baskets.ndim == 1 and baskets.dtype != object:
        baskets = [baskets]
    elif isinstance(baskets, Sequence) and len(baskets) and all(np.ndim(b) == 0 for b in baskets):
        baskets = [baskets]
    lengths = np.fromiter((len(b) for b in baskets), dtype=np.int64, count=len(baskets))
    ids = (np.concatenate([np.asarray(b, dtype=np.int64).ravel() for b in baskets])
           if lengths.sum() else np.zeros(0, dtype=np.int64))
    rows = np.repeat(np.arange(len(baskets), dtype=np.int64), lengths)
    pos = np.clip(np.searchsorted(item_ids, ids), 0, max(n_items - 1, 0))
    ok = (n_items > 0) & (item_ids[pos] == ids) if n_items else np.zeros(len(ids), dtype=bool)
    m = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (rows[ok], pos[ok])),
                      shape=(len(baskets), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


# ----------------------------------------------------------------------- ALS
class ALS(FallbackMixin, Recommender):
    """Implicit ALS with BM25 / log confidence, popularity cold start and fold-in.

    Parameters
    ----------
    factors, regularization, iterations : ALS hyper-parameters (``implicit``).
    alpha : confidence scale (see the module docstring for each ``weighting``).
    weighting : ``"bm25"``, ``"log"`` or ``"none"``.

    The defaults (64 factors, regularization 10, raw counts, alpha 1) are a
    cheaper middle ground for untuned use (Complete Journey validation NDCG@5
    0.255 "all", 0.046 "new"); tuning there picks 128 factors and regularization
    30 for both protocols (0.296, 0.051).
    bm25_k1, bm25_b : BM25 saturation and length normalisation.
    random_state : seed of the factor initialisation.
    fallback : recommender for cold rows (default: global popularity).
    min_history : customers with fewer distinct fit-window items are cold.
    num_threads : threads of implicit's solver (``0`` = all cores); the result
        does not depend on it (bit-identical with 1 and 2 threads on Complete
        Journey). Default 0: on a quiet 2-core machine 2 threads halve the fit
        (128 factors, Complete Journey validation: 16.5 s with 1 thread, 7.8 s with 2).
    use_cg : conjugate-gradient solver (implicit's default) instead of Cholesky.
    chunk_size : rows per dense block in :meth:`score_baskets`.
    """

    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 10.0, alpha: float = 1.0,
                 iterations: int = 15, weighting: str = "none", bm25_k1: float = 100.0,
                 bm25_b: float = 0.8, random_state: int | None = 0, fallback: Recommender | None = None,
                 min_history: int = 1, num_threads: int = 0, use_cg: bool = True,
                 chunk_size: int = DEFAULT_CHUNK):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.random_state = random_state
        self.fallback = fallback
        self.min_history = min_history
        self.num_threads = num_threads
        self.use_cg = use_cg
        self.chunk_size = chunk_size

    # -------------------------------------------------------------- weighting
    def _bm25_stats(self, counts: sp.csr_matrix) -> None:
        """Item length normalisation of the fit window (BM25 'documents' = items)."""
        item_totals = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
        avg = item_totals.mean() if len(item_totals) else 1.0
        self._bm25_length_norm = (1.0 - self.bm25_b) + self.bm25_b * item_totals / (avg if avg > 0 else 1.0)

    def confidence(self, counts: sp.spmatrix) -> sp.csr_matrix:
        """Confidence matrix (same sparsity) of catalog-aligned count rows, with the
        fit-window statistics (BM25 item lengths); used for both fit and fold-in."""
        c = sp.csr_matrix(counts, dtype=np.float32, copy=True)
        c.eliminate_zeros()
        x = c.data.astype(np.float64)
        if self.weighting == "log":
            w = 1.0 + self.alpha * np.log1p(x)
        elif self.weighting == "none":
            w = self.alpha * x
        else:
            n_items = c.shape[1]
            row_nnz = np.diff(c.indptr)
            idf = np.log(n_items) - np.log1p(row_nnz)  # per customer ("term")
            k1 = self.bm25_k1
            w = x * (k1 + 1.0) / (k1 * self._bm25_length_norm[c.indices] + x) * np.repeat(idf, row_nnz)
            w = self.alpha * np.maximum(w, 1e-6)
        c.data = w.astype(np.float32)
        return c

    # -------------------------------------------------------------------- fit
    def fit(self, data: FitData) -> ALS:
        from implicit.als import AlternatingLeastSquares

        self.data = data
        counts = sp.csr_matrix(data.user_items, dtype=np.float32)
        if self.weighting == "bm25":
            self._bm25_stats(counts)
        conf = self.confidence(counts)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=1.0,
                iterations=self.iterations, use_gpu=False, use_cg=self.use_cg,
                num_threads=native_threads(self.num_threads), random_state=self.random_state, dtype=np.float32,
            )
            model.fit(conf, show_progress=False)
        self._model = model
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._warm = np.diff(counts.indptr) >= max(int(self.min_history), 1)
        self._fit_fallback(data)
        return self

    # ------------------------------------------------------------------ score
    def _factors64(self) -> np.ndarray:
        """``item_factors`` in ``float64`` for :func:`stable_dot` (kept while they are the same array)."""
        cached = getattr(self, "_f64", None)
        if cached is None or cached[0] is not self.item_factors:
            cached = self._f64 = (self.item_factors, self.item_factors.astype(np.float64))
        return cached[1]

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.data.n_items), dtype=np.float32)
        warm = (rows >= 0) & self._warm[np.where(rows >= 0, rows, 0)] if len(self._warm) else rows < -1
        if warm.any():
            out[warm] = stable_dot(self.user_factors[rows[warm]], self._factors64())
        if (~warm).any():
            out[~warm] = self._fallback_scores(rows[~warm])
        return out

    # ---------------------------------------------------------------- fold in
    def fold_in(self, baskets) -> np.ndarray:
        """User factors ``(n, factors)`` of anonymous baskets / new histories.

        ``baskets``: see :func:`baskets_to_user_items` (product-id lists, one flat
        list = one basket, or a catalog-aligned count matrix such as rows of
        ``user_items``). Solved exactly (least squares against the fitted item
        factors, same confidence weighting as the fit); an empty basket gets a
        zero vector.
        """
        counts = baskets_to_user_items(baskets, self.data.item_ids)
        if counts.shape[0] == 0:
            return np.zeros((0, self.factors), dtype=np.float32)
        conf = self.confidence(counts)
        with threadpool_limits(1, "blas"):
            f = self._model.recalculate_user(np.arange(conf.shape[0]), conf)
        return np.asarray(f, dtype=np.float32).reshape(conf.shape[0], -1)

    def score_baskets(self, baskets) -> np.ndarray:
        """Dense scores ``(n, n_items)`` of folded-in baskets; empty ones get the
        fallback's cold-start scores (row ``-1``)."""
        counts = baskets_to_user_items(baskets, self.data.item_ids)
        factors = self.fold_in(counts)
        out = np.empty((counts.shape[0], self.data.n_items), dtype=np.float32)
        empty = np.diff(counts.indptr) == 0
        for start in range(0, len(out), self.chunk_size):
            sl = slice(start, start + self.chunk_size)
            out[sl] = stable_dot(factors[sl], self._factors64())
        if empty.any():
            out[empty] = self._fallback_scores(np.full(int(empty.sum()), -1))
        return out

    def recommend_baskets(self, baskets, k: int = 10, exclude_basket: bool = True):
        """Top-k product ids and scores for anonymous baskets (basket items
        excluded unless ``exclude_basket=False``); ties by lower catalog index."""
        counts = baskets_to_user_items(baskets, self.data.item_ids)
        s = self.score_baskets(counts)
        if exclude_basket and counts.nnz:
            r, c = counts.nonzero()
            s[r, c] = -np.inf
        idx, val = top_k(s, min(k, self.data.n_items))
        return self.data.item_ids[idx], val
