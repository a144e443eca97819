"""EASE: closed-form linear item-item autoencoder (Steck, WWW 2019).

Conventions
-----------
* **Items modelled.** The ``max_items`` most popular products of the fit window
  (distinct buyers, ties by :func:`~helpers.models.popularity.popularity_prior`),
  so that the dense Gram matrix stays ``max_items^2`` (5k items: 200 MB in
  ``float64``, a few seconds to invert).
* **Input matrix** ``X`` (customers x modelled items): ``values="binary"``
  (1 if bought; the default, as in the paper) or ``"log"``
  (``log1p(distinct baskets)``, which keeps some repeat-purchase intensity).
* **Fit.** ``G = X'X + l2 * I``, ``P = G^-1``, ``B = -P / diag(P)`` column-wise,
  ``diag(B) = 0``; the inverse is computed in ``dtype`` (``float64`` default),
  ``B`` stored in ``float32``.
* **Scores.** ``X[u] @ B`` on the modelled items, 0 on the others, plus
  ``backfill_weight * popularity_prior`` on every item (tie-break and ordering
  of the unmodelled tail). EASE scores can be negative: such items rank below
  the unmodelled tail. Cold-start rows (``-1``) and customers without history
  get the backfill only, i.e. global popularity.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from helpers.models.base import FitData, Recommender
from helpers.models.popularity import popularity_prior, repeat_rows
from helpers.models.threads import blas_limits


def input_matrix(user_items: sp.spmatrix, values: str) -> sp.csr_matrix:
    """``binary`` (1 if bought), ``log`` (``log1p`` of the counts) or ``count`` (as is)."""
    x = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    x.eliminate_zeros()
    if values == "binary":
        x.data[:] = 1.0
    elif values == "log":
        x.data = np.log1p(x.data).astype(np.float32)
    elif values != "count":
        raise ValueError(f"values must be 'binary', 'log' or 'count', got {values!r}")
    return x


def top_items(data: FitData, n: int) -> np.ndarray:
    """Column indices of the ``n`` most popular catalog items, sorted ascending."""
    prior = popularity_prior(data)
    n = min(int(n), data.n_items)
    order = np.lexsort((np.arange(data.n_items), -prior))  # popularity desc, index asc
    return np.sort(order[:n])


def window_gram(data: FitData, values: str, items: np.ndarray, x: sp.spmatrix) -> np.ndarray:
    """Dense ``x.T @ x`` (``float32``), ``x`` the input matrix (``values``) on the sorted columns ``items``.

    A fit window computes it once per ``values`` for the largest item set asked for, kept in
    ``data.extras`` (read-only): a smaller top-n set, which lies within a larger one (the grid's
    2,000 within 5,000), is its sub-matrix, with every entry the same sum over the same
    customers in the same order, so the same value."""
    memo = data.extras.setdefault("ease_gram", {})
    kept = memo.get(values)
    if kept is not None and len(items) <= len(kept[0]) and len(kept[0]):
        cols, g = kept
        pos = np.minimum(np.searchsorted(cols, items), len(cols) - 1)
        if np.array_equal(cols[pos], items):
            return g[np.ix_(pos, pos)]
    g = (x.T @ x).toarray()
    if kept is None or len(items) > len(kept[0]):
        memo[values] = (np.array(items), g)
    return g


def spd_inverse(a: np.ndarray) -> np.ndarray | None:
    """Inverse of a symmetric positive definite matrix from its Cholesky factor
    (LAPACK ``potrf`` + ``potri``: about half the work of solving against the
    identity), overwriting ``a``; ``None`` when ``a`` is not positive definite."""
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (a,))
    c, info = potrf(a, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        return None
    inv, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        return None
    return mirror_upper(inv)  # potri fills the upper triangle only


def mirror_upper(a: np.ndarray, block: int = 256) -> np.ndarray:
    """Copy the upper triangle of square ``a`` onto its lower triangle, in place, a block of
    rows at a time (each block's transposed panel stays in cache); returns ``a``."""
    n = a.shape[0]
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        a[i0:i1, :i0] = a[:i0, i0:i1].T
        diag = a[i0:i1, i0:i1]
        low = np.tril_indices(i1 - i0, -1)
        diag[low] = diag.T[low]
    return a


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder on the top ``max_items`` products (see module doc)."""

    name = "ease"

    def __init__(self, l2: float = 500.0, max_items: int = 5000, values: str = "binary",
                 backfill_weight: float = 1e-6, dtype: str = "float64", threads: int | None = None):
        self.l2 = l2
        self.max_items = max_items
        self.values = values
        self.backfill_weight = backfill_weight
        self.dtype = dtype
        self.threads = threads  # BLAS threads for the Gram / inverse; None or 0: n_threads()

    def fit(self, data: FitData) -> EASE:
        self.data = data
        self.items_ = top_items(data, self.max_items)
        x = input_matrix(data.user_items, self.values)[:, self.items_]
        self.x_ = x.tocsr()
        dt = np.dtype(self.dtype)
        with blas_limits(self.threads or 0):
            gram = window_gram(data, self.values, self.items_, x).astype(dt)  # a copy: the memo stays intact
            gram[np.diag_indices_from(gram)] += self.l2
            p = spd_inverse(gram)
            if p is None:  # l2 = 0 on a singular Gram
                p = np.linalg.pinv((x.T @ x).toarray().astype(dt) + self.l2 * np.eye(len(gram), dtype=dt))
            b = np.empty(p.shape, dtype=np.float32)
            np.divide(p, -np.diag(p)[None, :], out=b)  # B = -P / diag(P), divided in dtype, stored in float32
            b[np.diag_indices_from(b)] = 0.0
        self.B_ = b
        self.backfill_ = (self.backfill_weight * popularity_prior(data)).astype(np.float32)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = repeat_rows(self.backfill_, len(rows))
        known = np.flatnonzero(rows >= 0)
        if len(known):
            xs = self.x_[rows[known]]
            has = np.flatnonzero(np.diff(xs.indptr) > 0)
            if len(has):
                s = np.asarray(xs[has] @ self.B_, dtype=np.float32)
                out[np.ix_(known[has], self.items_)] += s
        return out
