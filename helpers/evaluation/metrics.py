"""Top-K metrics of recommendation lists, and the scoring of a fitted model on a stage.

Conventions
-----------
* **Metrics** (binary relevance, ``hits@K`` = relevant items in the first K
  slots, ``-1`` = empty slot, never a hit): ``precision = hits/K`` (always K),
  ``recall = hits/n_relevant``, ``ndcg = DCG/IDCG`` with
  ``DCG = sum_{hit ranks i} 1/log2(i+1)`` and IDCG over ``min(K, n_relevant)``
  positions, ``hit_rate = 1[hits > 0]``. Customers with ``n_relevant == 0`` get
  0 (:func:`~helpers.evaluation.relevance.evaluation_set` never keeps them). Top-K
  rows must not repeat an item. Macro average = mean over evaluated customers.
* Relevance and protocols: :mod:`helpers.evaluation.relevance`; bootstrap CIs:
  :mod:`helpers.evaluation.bootstrap`; the temporal split: :mod:`helpers.data.split`
  (their names are re-exported here, where the report, bench and notebooks import them).
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.data.split import Split, select_window, temporal_split
from helpers.evaluation.bootstrap import SUMMARY_COLUMNS, paired_bootstrap, summarize
from helpers.evaluation.relevance import Relevance, binary_matrix, evaluation_set, relevance_matrix

__all__ = [
    "METRICS", "catalog_coverage", "compute_metrics", "evaluate_model", "hit_matrix", "metrics_from_hits",
    "predictions_frame",
    # re-exported from their own modules
    "SUMMARY_COLUMNS", "Relevance", "Split", "evaluation_set", "paired_bootstrap", "relevance_matrix",
    "select_window", "summarize", "temporal_split",
]

METRICS = ("precision", "recall", "ndcg", "hit_rate")


_BLOCK_BYTES = 1 << 22  # membership buffer: one byte per (customer row, catalog item) cell of a block
_GROUP_BLOCKS = 16  # blocks whose buffer positions are computed in one call
_SPARE_BUFFERS: list[list] = []  # [buffer, last stamp written] kept for the next calls
_SPARE_LOCK = threading.Lock()
_MAX_SPARE = 4


def _membership_buffer(size: int) -> list:
    """A zeroed or stamped buffer of at least ``size`` bytes with its last stamp, reused
    when possible (a fresh 4 MiB buffer costs a memset or page faults on every call)."""
    with _SPARE_LOCK:
        for i, spare in enumerate(_SPARE_BUFFERS):
            if spare[0].size >= size:
                return _SPARE_BUFFERS.pop(i)
    return [np.zeros(size, dtype=np.uint8), 0]


def _keep_buffer(spare: list) -> None:
    with _SPARE_LOCK:
        if len(_SPARE_BUFFERS) < _MAX_SPARE and spare[0].size <= 2 * _BLOCK_BYTES:
            _SPARE_BUFFERS.append(spare)


def _relevance_csr(relevance: sp.spmatrix) -> sp.csr_matrix:
    """``relevance`` itself when it is a canonical CSR (sorted, unique indices) with every
    stored value > 0, else its :func:`binary_matrix` copy: either way, the stored columns of
    row ``u`` are exactly its relevant items, once each."""
    if (sp.issparse(relevance) and relevance.format == "csr" and relevance.has_canonical_format
            and bool((relevance.data > 0).all())):
        return relevance
    return binary_matrix(relevance)


def hit_matrix(topk_items: np.ndarray, relevance: sp.spmatrix) -> np.ndarray:
    """Boolean ``(n, K)``: is slot ``(u, i)`` a relevant item?

    Block-dense membership test. Customer rows are taken in blocks of ``B`` rows,
    ``B`` such that a dense ``B x (n_items + 1)`` byte buffer is about
    ``_BLOCK_BYTES`` (4 MiB: it stays in cache). Each block writes its relevant
    ``(row, item)`` cells with a new stamp, one more than the previous block's
    (one scatter), then reads the cell of every top-K slot (one gather): a slot is
    a hit when its cell holds the current stamp. Cells left by earlier blocks hold
    older stamps, so no clean-up pass is needed; the buffer is zeroed only when
    the stamps wrap around, every 255 blocks. Cell 0 of each buffer row belongs
    to the empty slot (``-1``) and is never stamped. The buffer, with its last
    stamp, is kept for the next call (a few spares, one per concurrent caller).
    """
    topk = np.asarray(topk_items, dtype=np.int64)
    if topk.ndim != 2 or topk.shape[0] != relevance.shape[0]:
        raise ValueError("topk_items must be 2-D with one row per relevance row")
    return _hits(topk, _relevance_csr(relevance))


def _hits(topk: np.ndarray, rel: sp.csr_matrix, block_rows: int | None = None) -> np.ndarray:
    """Membership of ``topk`` (int, ``(n, K)``, negative = empty) in the rows of CSR ``rel``
    (see :func:`hit_matrix`). ``rel`` may hold duplicate or unsorted indices (only
    membership is read) but no stored zeros. ``block_rows`` sets ``B`` (tests)."""
    n, n_items = rel.shape
    if topk.size == 0:
        return np.zeros(topk.shape, dtype=bool)
    if topk.max() >= n_items:
        raise ValueError("topk_items holds a column index outside the catalog")
    if rel.nnz == 0:
        return np.zeros(topk.shape, dtype=bool)
    if topk.min() < -1:
        topk = np.maximum(topk, -1)  # every negative value is an empty slot
    stride = n_items + 1
    rows = min(n, max(1, int(block_rows) if block_rows else _BLOCK_BYTES // stride))
    offset = (np.arange(n, dtype=np.intp) % rows) * stride + 1  # item 0's cell, per customer row
    indptr, indices = rel.indptr, rel.indices
    counts = np.diff(indptr)
    starts = list(range(0, n, rows)) + [n]  # block b: rows [starts[b], starts[b + 1])
    ptr = indptr[starts].tolist()
    n_blocks = len(starts) - 1
    hits = np.empty(topk.shape, dtype=bool)
    spare = _membership_buffer(rows * stride)
    buf, stamp = spare
    for g0 in range(0, n_blocks, _GROUP_BLOCKS):
        g1 = min(g0 + _GROUP_BLOCKS, n_blocks)
        r0, r1, p0 = starts[g0], starts[g1], ptr[g0]
        keys = np.repeat(offset[r0:r1], counts[r0:r1])  # cells of the relevant pairs
        keys += indices[p0:ptr[g1]]
        slots = topk[r0:r1] + offset[r0:r1, None]  # cells of the top-K slots
        for b in range(g0, g1):
            stamp += 1
            if stamp > 255:  # every stamp is in use: start again from a zeroed buffer
                buf.fill(0)
                stamp = 1
            buf[keys[ptr[b] - p0:ptr[b + 1] - p0]] = stamp
            s, e = starts[b] - r0, starts[b + 1] - r0
            np.equal(buf.take(slots[s:e], mode="clip"), stamp, out=hits[r0 + s:r0 + e])
    spare[1] = stamp
    _keep_buffer(spare)
    return hits


def compute_metrics(topk_items: np.ndarray, relevance: sp.spmatrix, n_relevant, ks=(5, 10)) -> dict:
    """Per-customer ``{(metric, k): ndarray}`` for ``METRICS`` and each ``k``.

    ``topk_items`` holds catalog column indices, ``-1`` for an empty slot; rows
    shorter than ``k`` count as padded with empty slots. Hits: :func:`hit_matrix`.
    """
    topk = np.asarray(topk_items, dtype=np.int64)
    if topk.ndim != 2:
        raise ValueError("topk_items must be 2-D (customers x K)")
    n = topk.shape[0]
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    if relevance.shape[0] != n or n_rel.shape != (n,):
        raise ValueError("topk_items, relevance and n_relevant must have one row per customer")
    ks = tuple(ks)
    kmax = max(ks)
    if min(ks) < 1:
        raise ValueError("every k must be >= 1")
    topk = topk[:, :kmax]
    if topk.shape[1] < kmax:
        topk = np.hstack([topk, np.full((n, kmax - topk.shape[1]), -1, dtype=np.int64)])
    rel = _relevance_csr(relevance)
    hits = _hits(topk, rel)
    if np.any(np.diff(rel.indptr) > n_rel):
        raise ValueError("n_relevant is smaller than the number of relevant catalog items")
    return metrics_from_hits(hits, n_rel, ks)


_TABLE_MAX_K = 12  # up to this many ranks, metrics_from_hits looks rows up by their hit mask


@functools.lru_cache(maxsize=_TABLE_MAX_K)
def _mask_tables(kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, dcg)``, each ``(kmax + 1, 2**kmax)``: row ``k`` holds hits@k and DCG@k of every
    hit mask (bit ``j`` set = a hit at rank ``j + 1``), summed rank by rank as in
    :func:`metrics_from_hits`' running sums (the same values, bit for bit)."""
    masks = np.arange(1 << kmax)
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    run_hits, run_dcg, gain = np.zeros(1 << kmax), np.zeros(1 << kmax), np.empty(1 << kmax)
    hits, dcg = [run_hits.copy()], [run_dcg.copy()]
    for j in range(kmax):
        bit = ((masks >> j) & 1).astype(np.uint8)
        run_hits += bit
        np.multiply(bit, disc[j], out=gain)
        run_dcg += gain
        hits.append(run_hits.copy())
        dcg.append(run_dcg.copy())
    out = np.stack(hits), np.stack(dcg)
    for a in out:
        a.flags.writeable = False
    return out


def metrics_from_hits(hits: np.ndarray, n_relevant, ks=(5, 10)) -> dict:
    """:func:`compute_metrics` from the hit matrix (``(n, K)`` booleans, :func:`hit_matrix`)
    of the top-K lists, ``K >= max(ks)``: the same values."""
    hits = np.asarray(hits, dtype=bool)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    n = hits.shape[0]
    ks = tuple(ks)
    kmax = max(ks)
    if min(ks) < 1:
        raise ValueError("every k must be >= 1")
    if hits.shape[1] < kmax:
        raise ValueError("hits has fewer columns than the largest k")
    hits = hits[:, :kmax]
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    cum_disc = np.concatenate([[0.0], np.cumsum(disc)])  # cum_disc[j] = IDCG with j hits
    by_rank = np.ascontiguousarray(hits.T).view(np.uint8)
    at_k = {}
    if kmax <= _TABLE_MAX_K:
        # each row's hits as a bit mask (bit j = rank j + 1), then hits@k and DCG@k looked up
        # in tables over every mask, built with the same additions as the running sums below
        mask = np.zeros(n, dtype=np.uint16)
        for j in range(kmax):
            mask |= np.left_shift(by_rank[j], j, dtype=np.uint16)
        hit_table, dcg_table = _mask_tables(kmax)
        for k in ks:
            m = mask & np.uint16((1 << k) - 1) if k < kmax else mask
            at_k[k] = (hit_table[k].take(m), dcg_table[k].take(m))
    else:
        # hits@k and DCG@k: running sums over the ranks, one contiguous rank at a time
        # (the same additions, in the same order, as a cumulative sum along each row)
        run_hits = np.zeros(n, dtype=np.min_scalar_type(kmax))
        run_dcg, gain = np.zeros(n), np.empty(n)
        for j in range(kmax):
            run_hits += by_rank[j]
            np.multiply(by_rank[j], disc[j], out=gain)
            run_dcg += gain
            if j + 1 in ks:
                at_k[j + 1] = (run_hits.astype(np.float64), run_dcg.copy())
    has_rel = n_rel > 0
    safe_rel = np.where(has_rel, n_rel, 1.0)
    out = {}
    for k in ks:
        h, dcg = at_k[k]
        idcg = cum_disc[np.minimum(k, n_rel).astype(np.int64)]
        out[("precision", k)] = h / k
        out[("recall", k)] = np.where(has_rel, h / safe_rel, 0.0)
        out[("ndcg", k)] = np.where(has_rel, dcg / np.where(has_rel, idcg, 1.0), 0.0)
        out[("hit_rate", k)] = (h > 0).astype(np.float64)
    return out


def catalog_coverage(topk_items: np.ndarray, n_items: int) -> float:
    """Distinct catalog items recommended (``-1`` ignored) / ``n_items``."""
    items = np.asarray(topk_items, dtype=np.int64).ravel()
    items = items[items >= 0]
    return float(np.count_nonzero(np.bincount(items, minlength=n_items))) / n_items if n_items else 0.0


def evaluate_model(model, fit_data, relevance: Relevance, protocol: str, ks=(5, 10), top_n: int = 10):
    """Recommend for the evaluated customers and score them.

    Returns ``(per_customer, topk_product_ids, topk_scores, evaluated_customer_ids)``;
    the top lists have ``max(ks + (top_n,))`` columns and slots scored ``-inf``
    (excluded / never-recommend) are empty: product id ``-1``. Coverage@k:
    ``catalog_coverage(fit_data.item_columns(ids[:, :k]), fit_data.n_items)``.
    """
    es = evaluation_set(fit_data.user_items, relevance, protocol)
    customer_ids = fit_data.customer_ids[es.rows]
    ids, scores = model.recommend(customer_ids, k=max(max(ks), top_n), exclude=es.exclude)
    ids = np.where(np.isfinite(scores), ids, -1)
    cols = np.where(ids >= 0, fit_data.item_columns(ids), -1)
    per_customer = compute_metrics(cols, es.relevance.matrix, es.relevance.n_relevant, ks)
    return per_customer, ids, scores, customer_ids


def predictions_frame(model_name: str, protocol: str, customer_ids, ids, scores) -> pd.DataFrame:
    """Long top-N table ``model, protocol, customer_id, rank (1-based), product_id, score``;
    empty slots (id ``-1``) are dropped."""
    ids = np.asarray(ids, dtype=np.int64)
    n, k = ids.shape
    keep = (ids >= 0).ravel()
    codes = np.zeros(int(keep.sum()), dtype=np.int8)
    return pd.DataFrame({
        "model": pd.Categorical.from_codes(codes, categories=[model_name]),
        "protocol": pd.Categorical.from_codes(codes, categories=[protocol]),
        "customer_id": np.repeat(np.asarray(customer_ids, dtype=np.int64), k)[keep],
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), n)[keep],
        "product_id": ids.ravel()[keep],
        "score": np.asarray(scores, dtype=np.float32).ravel()[keep],
    })
