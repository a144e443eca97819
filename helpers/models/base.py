"""The common recommender interface and the fit-window data every model sees.

Conventions
-----------
* A model is fitted on a :class:`FitData` (one window of transactions, plus the
  dimensions and segments computed on that window) and scores the *catalog*:
  the products bought at least once in the fit window (``FitData.item_ids``).
  Every model therefore shares the same candidate filter.
* ``score(rows)`` returns a dense ``float32`` array ``(len(rows), n_items)`` for
  customer *row indices* of ``FitData.customer_ids`` (every customer of
  ``dim_customer``, with or without history). Higher is better. ``-inf`` means
  "never recommend".
* ``recommend(customer_ids, k, exclude)`` is implemented once, here: it maps ids
  to rows (unknown ids get the cold-start row, i.e. an all-zero history),
  scores in chunks, masks the excluded (customer, item) pairs and returns the
  top-k product ids and scores, ordered by descending score, ties broken by the
  lower item index (deterministic).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

DEFAULT_CHUNK = 2048


@dataclass
class FitData:
    """Everything a model may use: only data strictly before ``as_of``.

    ``user_items`` is a CSR matrix ``customers x items`` holding the number of
    distinct baskets in which the customer bought the item (returns and
    zero-quantity lines excluded). ``customer_ids`` is every customer of
    ``dim_customer`` (rows without history are empty); ``item_ids`` the products
    bought in the window, sorted ascending.
    """

    transactions: pd.DataFrame
    customers: pd.DataFrame
    products: pd.DataFrame
    as_of: pd.Timestamp
    customer_ids: np.ndarray
    item_ids: np.ndarray
    user_items: sp.csr_matrix
    segments: pd.DataFrame | None = None  # long: customer_id, segment_type, segment
    promotions: pd.DataFrame | None = None
    extras: dict = field(default_factory=dict)

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def customer_rows(self, customer_ids) -> np.ndarray:
        """Row index of each id, ``-1`` for ids not in ``customer_ids``."""
        ids = np.asarray(customer_ids, dtype=np.int64)
        pos = np.searchsorted(self.customer_ids, ids)
        pos = np.clip(pos, 0, max(len(self.customer_ids) - 1, 0))
        ok = (len(self.customer_ids) > 0) & (self.customer_ids[pos] == ids)
        return np.where(ok, pos, -1)

    def item_columns(self, product_ids) -> np.ndarray:
        """Column index of each product id, ``-1`` for products outside the catalog."""
        ids = np.asarray(product_ids, dtype=np.int64)
        pos = np.searchsorted(self.item_ids, ids)
        pos = np.clip(pos, 0, max(len(self.item_ids) - 1, 0))
        ok = (len(self.item_ids) > 0) & (self.item_ids[pos] == ids)
        return np.where(ok, pos, -1)


def make_fit_data(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    products: pd.DataFrame,
    as_of,
    start=None,
    segments: pd.DataFrame | None = None,
    promotions: pd.DataFrame | None = None,
) -> FitData:
    """Build a :class:`FitData` from the star schema for the window ``[start, as_of)``."""
    as_of = pd.Timestamp(as_of)
    ts = transactions["timestamp"]
    mask = ts < as_of
    if start is not None:
        mask &= ts >= pd.Timestamp(start)
    tx = transactions.loc[mask]
    customer_ids = np.sort(customers["customer_id"].to_numpy(np.int64))
    buys = tx.loc[tx["quantity"].to_numpy() > 0, ["customer_id", "product_id", "basket_id"]]
    item_ids = np.unique(buys["product_id"].to_numpy(np.int64))
    rows = np.searchsorted(customer_ids, buys["customer_id"].to_numpy(np.int64))
    cols = np.searchsorted(item_ids, buys["product_id"].to_numpy(np.int64))
    # distinct baskets per (customer, item): drop repeated lines of one basket
    key = pd.DataFrame({"r": rows, "c": cols, "b": buys["basket_id"].to_numpy()}).drop_duplicates()
    ui = sp.csr_matrix(
        (np.ones(len(key), dtype=np.float32), (key["r"].to_numpy(), key["c"].to_numpy())),
        shape=(len(customer_ids), len(item_ids)),
    )
    ui.sum_duplicates()
    ui.sort_indices()
    return FitData(
        transactions=tx,
        customers=customers,
        products=products,
        as_of=as_of,
        customer_ids=customer_ids,
        item_ids=item_ids,
        user_items=ui,
        segments=segments,
        promotions=promotions,
    )


#: Environment variable with the thread budget of this process; unset or 0: every core.
THREADS_ENV = "RECBOOK_THREADS"
#: Environment variable naming a file that holds the budget, read at every call: the pipeline
#: rewrites it as notebooks start and finish (cores / notebooks running), so that two notebooks
#: running at once do not both start a thread per core.
THREADS_FILE_ENV = "RECBOOK_THREADS_FILE"


def thread_budget() -> int:
    """Threads this process may use now (0: no budget set, every core)."""
    path = os.environ.get(THREADS_FILE_ENV)
    if path:
        try:
            return int(open(path).read())
        except (OSError, ValueError):  # not written yet, or the run is over
            pass
    return int(os.environ.get(THREADS_ENV) or 0)


def n_threads(requested: int = 0) -> int:
    """Threads for parallel work (block scoring, weight search, implicit's solvers): ``requested``,
    or when 0 the process's budget (:func:`thread_budget`), else every core. Results never depend on it."""
    return max(1, int(requested) or thread_budget() or (os.cpu_count() or 1))


def map_blocks(fn, n: int, block: int, threads: int = 0) -> None:
    """Call ``fn(a, b)`` for consecutive row blocks ``[a, b)`` of ``block`` rows out of ``n``.

    Blocks run on ``threads`` threads (0 = every core): SciPy's sparse products and
    NumPy's large-array kernels release the GIL. ``fn`` must only write its own
    rows of its outputs, so the result is the same as a serial loop whatever the
    thread count.
    """
    bounds = [(a, min(a + block, n)) for a in range(0, n, block)]
    workers = min(n_threads(threads), len(bounds))
    if workers <= 1:
        for a, b in bounds:
            fn(a, b)
        return
    with ThreadPoolExecutor(workers) as ex:
        for f in [ex.submit(fn, a, b) for a, b in bounds]:
            f.result()  # re-raises a block's error


BLOCK = 128


def stable_dot(a: np.ndarray, b_t: np.ndarray) -> np.ndarray:
    """``a @ b_t.T`` as ``float32``, the same for a row whatever block it is computed in.

    A ``float32`` BLAS product depends on the block's shape and on the thread count
    (edge tiles and thread partitions take other kernels, with other summation orders),
    so one customer's scores would change with the chunk size. The product is taken in
    ``float64`` and rounded to ``float32``: the rounding absorbs the ``float64``
    kernels' last-bit differences, so scores, lists and exports do not depend on the
    chunking or on ``--jobs``.
    """
    return np.asarray(np.asarray(a, dtype=np.float64) @ np.asarray(b_t, dtype=np.float64).T, dtype=np.float32)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k best scores per row.

    Ordered by descending score; ties broken by the lower column index, so the
    result is deterministic. ``k`` is capped at the number of columns.

    Wide rows go through a block filter first: the k best entries of a row lie in
    the k blocks (of ``BLOCK`` columns) with the largest maxima (ties: lower block).
    It pays from about three times ``k * BLOCK`` columns (the hybrid's eight
    normalized component matrices of Complete Journey, 256 rows x 65k columns:
    k = 100 in 0.31 s against 1.0 s for the full partition, k = 10 in 0.12 s
    against 0.95 s). Up to k = 16, float rows are ranked by argmax passes
    (:func:`_top_k_argmax`), here on the block maxima.
    """
    n, m = scores.shape
    k = min(k, m)
    if n and k and m >= 3 * BLOCK * k:
        return _top_k_blocks(scores, k)
    return _top_k_exact(scores, k)


def _top_k_blocks(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k through the k full blocks with the best (block maximum, lower block index),
    plus the short last block, if any.

    Exact, ties included: if an entry of another full block were in the top k, each
    chosen block's maximum would beat it (a higher score, or an equal score at a
    lower index, since a chosen block with an equal maximum lies to its left), so
    it would have k better entries. The chosen blocks are copied whole (one
    contiguous run each), so only ``k * BLOCK`` (+ the tail) values per row are
    ranked, by :func:`_rank_candidates`.
    """
    n, m = scores.shape
    nb = m // BLOCK
    full = scores[:, : nb * BLOCK].reshape(n, nb, BLOCK)
    head = scores[:, : nb * BLOCK]
    if head.flags.f_contiguous and not head.flags.c_contiguous:
        # columns are contiguous (e.g. the transpose of a product): reduce whole columns, block by block
        bmax = head.T.reshape(nb, BLOCK, n).max(axis=1).T
    else:
        bmax = np.maximum.reduceat(head, np.arange(0, nb * BLOCK, BLOCK), axis=1)  # = full.max(2)
    blocks = np.sort(_top_k_exact(bmax, k)[0], axis=1)  # ascending: positions keep the column order
    width = k * BLOCK
    vals = np.empty((n, width + m - nb * BLOCK), dtype=scores.dtype)
    vals[:, :width].reshape(n, k, BLOCK)[:] = full[np.arange(n)[:, None], blocks]
    vals[:, width:] = scores[:, nb * BLOCK:]
    # every chosen block holds its maximum, so at least k values reach the k-th best maximum
    floor = np.take_along_axis(bmax, blocks, axis=1).min(axis=1)
    pos, val = _rank_candidates(vals, k, floor)
    inner = np.minimum(pos, width - 1)
    cols = np.take_along_axis(blocks, inner // BLOCK, axis=1) * BLOCK + inner % BLOCK
    return np.where(pos < width, cols, pos - width + nb * BLOCK), val


def _rank_candidates(vals: np.ndarray, k: int, floor: np.ndarray, max_ratio: int = 4):
    """:func:`_top_k_exact` of ``vals`` given ``floor``, a per-row value that at least ``k``
    entries of the row reach: the top k lie among those entries. Rows with at most
    ``max_ratio * k`` of them are ranked by sorting those entries alone (by value, then
    position); rows with more (ties at the floor) go through :func:`_top_k_exact`."""
    n = vals.shape[0]
    above = vals >= floor[:, None]
    count = np.count_nonzero(above, axis=1)
    few = (count >= k) & (count <= max_ratio * k)
    idx = np.empty((n, k), dtype=np.int64)
    out = np.empty((n, k), dtype=vals.dtype)
    rows = np.flatnonzero(few)
    if len(rows):
        r, c = np.nonzero(above[rows] if len(rows) < n else above)
        v = vals[rows[r], c]
        order = np.lexsort((c, -v, r))  # by row, value descending, then position
        starts = np.concatenate([[0], np.cumsum(count[rows])[:-1]])
        take = order[(starts[:, None] + np.arange(k)).ravel()]
        idx[rows] = c[take].reshape(-1, k)
        out[rows] = v[take].reshape(-1, k)
    rest = np.flatnonzero(~few)
    if len(rest):
        idx[rest], out[rest] = _top_k_exact(vals[rest], k)
    return idx, out


#: Up to this k, float scores are ranked by k passes of ``argmax`` (:func:`_top_k_argmax`).
ARGMAX_MAX_K = 16


def _top_k_argmax(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k of a float matrix by k passes of ``argmax`` over a copy, each pass taking every
    row's best remaining entry (its first occurrence: the lower column wins a tie) and
    setting it to -inf. A row whose top k reach -inf or NaN (``argmax`` would repeat a taken
    column, or put NaN first) is ranked by the partition instead. The weight search's
    blends, 4,000 rows x 513 candidates: k = 5 in 6 ms against 27 ms for the partition."""
    n = scores.shape[0]
    work = scores.copy()
    rows = np.arange(n)
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=scores.dtype)
    for j in range(k):
        col = work.argmax(axis=1)
        idx[:, j] = col
        val[:, j] = work[rows, col]
        work[rows, col] = -np.inf
    del work
    bad = np.flatnonzero(~(val > -np.inf).all(axis=1))  # -inf reached, or NaN (fails the test)
    if len(bad):
        idx[bad], val[bad] = _top_k_partition(scores[bad], k)
    return idx, val


def _top_k_exact(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n, m = scores.shape
    k = min(k, m)
    if k == 0 or n == 0:
        return np.zeros((n, k), dtype=np.int64), np.zeros((n, k), dtype=scores.dtype)
    if k <= ARGMAX_MAX_K and scores.dtype.kind == "f":
        return _top_k_argmax(scores, k)
    return _top_k_partition(scores, k)


def _top_k_partition(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n, m = scores.shape
    if k < m:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # argpartition picks arbitrary members of a tie at the k-th value: keep
        # every column strictly above it, then the lowest-index columns equal to it.
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
        above = scores > kth
        eq = scores == kth
        n_above = above.sum(axis=1)
        tie = n_above + eq.sum(axis=1) > k  # rows where ties straddle the boundary
        if tie.any():
            r = np.flatnonzero(tie)
            e = eq[r]
            first = np.cumsum(e, axis=1, dtype=np.int32) <= (k - n_above[r])[:, None]
            part[r] = np.nonzero(above[r] | (e & first))[1].reshape(len(r), k)
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -part_scores), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
    else:
        idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(scores, idx, axis=1)


def excluded_matrix(data: FitData, rows: np.ndarray, exclude, sl: slice) -> sp.csr_matrix | None:
    """The excluded entries of a block of rows as a CSR pattern (``None``: nothing excluded).

    ``exclude``: ``True`` excludes each row's fit-window purchases (none for
    cold-start rows ``-1``); a sparse matrix (aligned with the whole request)
    excludes the non-zeros of its rows ``sl``; ``None``/``False`` excludes nothing.
    """
    mask = None
    if exclude is True:
        safe = np.where(rows >= 0, rows, 0)
        mask = data.user_items[safe].multiply((rows >= 0)[:, None].astype(np.float32)).tocsr()
    elif exclude is not None and exclude is not False and sp.issparse(exclude):
        mask = exclude[sl].tocsr()
    if mask is None or not mask.nnz:
        return None
    mask.eliminate_zeros()
    return mask if mask.nnz else None


def mask_excluded(s: np.ndarray, data: FitData, rows: np.ndarray, exclude, sl: slice) -> None:
    """Set excluded entries (:func:`excluded_matrix`) of a score block to -inf, in place."""
    mask = excluded_matrix(data, rows, exclude, sl)
    if mask is not None:
        rr, cc = mask.nonzero()
        s[rr, cc] = -np.inf


def _pattern(m: sp.csr_matrix) -> sp.csr_matrix:
    """The stored entries of ``m`` (explicit zeros included) as ones."""
    return sp.csr_matrix((np.ones(len(m.indices), dtype=np.int32), m.indices, m.indptr), shape=m.shape)


def top_k_parts(table: np.ndarray, order: np.ndarray, inverse: np.ndarray, groups: np.ndarray,
                boost: sp.csr_matrix | None, excluded: sp.csr_matrix | None, k: int):
    """:func:`top_k` of scores given in parts, without building them densely; ``None`` when
    a row has fewer than ``k`` allowed items (the caller then ranks densely).

    Row ``r`` scores ``boost[r, i]`` on the stored entries of ``boost`` and
    ``table[groups[r], i]`` elsewhere; the stored entries of ``excluded`` count as
    ``-inf``. ``order[g]`` lists the columns by descending ``table[g]`` (ties: lower
    column), ``inverse[g]`` is each column's position in it. Outside its stored
    entries a row ranks as its group's order, so its top ``k`` lie among the first
    ``k`` columns of that order that are neither boosted nor excluded, and its
    allowed boosted entries: only those are sorted. Same columns and values as
    :func:`top_k` on the dense scores with exclusions at ``-inf``.
    """
    n_rows, n_items = len(groups), table.shape[1]
    k = min(k, n_items)
    if n_rows == 0 or k == 0:
        return np.zeros((n_rows, k), dtype=np.int64), np.zeros((n_rows, k), dtype=table.dtype)
    skip = None
    for part in (boost, excluded):
        if part is not None and part.nnz:
            skip = _pattern(part) if skip is None else skip + _pattern(part)
    n_skip = np.diff(skip.indptr) if skip is not None else np.zeros(n_rows, dtype=np.int64)
    if np.any(n_items - n_skip < k):
        return None
    width = int(min(n_items, k + n_skip.max()))  # holds k columns that are not skipped
    prefix = order[groups, :width]
    allowed = np.ones((n_rows, width), dtype=bool)
    if skip is not None:
        rr = np.repeat(np.arange(n_rows), n_skip)
        pos = inverse[groups[rr], skip.indices]
        near = pos < width
        allowed[rr[near], pos[near]] = False
    allowed &= np.cumsum(allowed, axis=1) <= k
    cols = prefix[allowed].reshape(n_rows, k)  # in each row's order: already ranked
    vals = table[groups[:, None], cols]
    if boost is None or not boost.nnz:
        return cols.astype(np.int64, copy=False), vals
    b_rows = np.repeat(np.arange(n_rows), np.diff(boost.indptr))
    keep = np.ones(len(b_rows), dtype=bool)
    if excluded is not None and excluded.nnz:
        e_rows = np.repeat(np.arange(n_rows), np.diff(excluded.indptr))
        keep = ~np.isin(b_rows * n_items + boost.indices, e_rows * np.int64(n_items) + excluded.indices)
    b_rows, b_cols, b_vals = b_rows[keep], boost.indices[keep], boost.data[keep]
    per_row = np.bincount(b_rows, minlength=n_rows)
    slot = np.arange(len(b_rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    all_cols = np.full((n_rows, k + int(per_row.max(initial=0))), n_items, dtype=np.int64)
    all_vals = np.full(all_cols.shape, -np.inf, dtype=table.dtype)
    all_cols[:, :k], all_vals[:, :k] = cols, vals
    all_cols[b_rows, k + slot], all_vals[b_rows, k + slot] = b_cols, b_vals
    best = np.lexsort((all_cols, -all_vals), axis=1)[:, :k]
    return np.take_along_axis(all_cols, best, axis=1), np.take_along_axis(all_vals, best, axis=1)


class Recommender:
    """Base class: subclasses implement ``fit`` and ``score``."""

    name = "base"
    data: FitData

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_parts_order", None)  # a cache of rank_rows, rebuilt on demand
        state.pop("_f64", None)  # ALS's float64 item factors, derived on demand
        return state

    def fit(self, data: FitData) -> Recommender:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, rows: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Dense scores ``(len(rows), n_items)``; ``rows`` may contain -1 (cold start).

        The array is the caller's own (it may be changed in place, e.g. by
        :func:`~helpers.models.hybrid.minmax_rows`), unless it is read-only."""
        raise NotImplementedError

    def recommend(
        self,
        customer_ids,
        k: int = 10,
        exclude: sp.csr_matrix | bool | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        threads: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k product ids and scores for each customer id.

        ``exclude``: ``True`` removes each customer's fit-window purchases; a CSR
        matrix aligned with ``customer_ids`` x catalog removes its non-zeros;
        ``None``/``False`` removes nothing. Excluded items get ``-inf`` and are
        never returned ahead of an allowed item. Blocks of ``chunk_size`` customers
        run on ``threads`` threads (0 = every core); the result does not depend on it.
        """
        rows = self.data.customer_rows(customer_ids)
        n = len(rows)
        k_eff = min(k, self.data.n_items)
        out_ids = np.empty((n, k_eff), dtype=np.int64)
        out_scores = np.empty((n, k_eff), dtype=np.float32)

        def block(a, b):
            sl = slice(a, b)
            idx, val = self.rank_rows(rows[sl], excluded_matrix(self.data, rows[sl], exclude, sl), k_eff)
            out_ids[sl] = self.data.item_ids[idx]
            out_scores[sl] = val

        map_blocks(block, n, chunk_size, threads)
        return out_ids, out_scores

    def parts(self, rows: np.ndarray):
        """Scores of ``rows`` in parts, for models whose rows share a few score vectors:
        ``(table, groups, boost)`` as :func:`top_k_parts` reads them (``boost`` may be
        ``None``), the same scores as :meth:`score`. ``None`` (the default): no parts."""
        return None

    def rank_rows(self, rows: np.ndarray, excluded: sp.csr_matrix | None, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`rank` of the scores of ``rows`` with the ``excluded`` pattern at ``-inf``.

        Models with :meth:`parts` (and the base ranking) rank through :func:`top_k_parts`,
        without dense scores; the others score densely. Same result either way.
        """
        parts = self.parts(rows) if type(self).rank is Recommender.rank else None
        if parts is not None:
            table, groups, boost = parts
            cached = getattr(self, "_parts_order", None)
            if cached is None or cached[0] is not table:
                order = np.argsort(-table, axis=1, kind="stable")
                inverse = np.empty_like(order)
                np.put_along_axis(inverse, order, np.arange(table.shape[1])[None, :], axis=1)
                cached = self._parts_order = (table, order, inverse)
            out = top_k_parts(table, cached[1], cached[2], np.asarray(groups, dtype=np.int64), boost, excluded, k)
            if out is not None:
                return out
        s = np.asarray(self.score(rows), dtype=np.float32)
        if excluded is not None:
            if not s.flags.writeable:  # shared (a memoized block): mask a copy
                s = s.copy()
            rr, cc = excluded.nonzero()
            s[rr, cc] = -np.inf
        return self.rank(s, k)

    def rank(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Catalog columns and scores of the ``k`` best entries per row (excluded: -inf).

        :func:`top_k` here; a model with a re-ranking rule (the hybrid's diversity
        cap) overrides it, and every caller that ranks scores goes through it.
        """
        return top_k(scores, k)
