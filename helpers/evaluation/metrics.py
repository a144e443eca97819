"""Offline evaluation: temporal split, relevance, top-K metrics, bootstrap CIs.

Conventions
-----------
* **Split.** Windows are half-open on ``timestamp``: ``[start, end)``. ``end`` is
  midnight after the last transaction's calendar day; test is the last
  ``test_days`` days, validation the ``valid_days`` before, train the rest.
* **Relevance.** A customer's relevant set is the *distinct* products bought
  (``quantity > 0``) in the evaluation window. Products outside the fit catalog
  can never be recommended, hence never hit, but they *do* count in
  ``n_relevant`` (the recall / IDCG denominator): the honest choice.
  Customers absent from ``customer_ids`` are dropped.
* **Protocols.** ``"all"``: customers with >= 1 fit-window purchase and >= 1
  relevant product; repeat purchases count. ``"new"``: the same customers, but
  products bought in the fit window leave the relevant set (and ``n_relevant``),
  are excluded from the recommendations, and customers left with nothing are
  dropped.
* **Metrics** (binary relevance, ``hits@K`` = relevant items in the first K
  slots, ``-1`` = empty slot, never a hit): ``precision = hits/K`` (always K),
  ``recall = hits/n_relevant``, ``ndcg = DCG/IDCG`` with
  ``DCG = sum_{hit ranks i} 1/log2(i+1)`` and IDCG over ``min(K, n_relevant)``
  positions, ``hit_rate = 1[hits > 0]``. Customers with ``n_relevant == 0`` get
  0 (``evaluation_set`` never keeps them). Top-K rows must not repeat an item.
  Macro average = mean over evaluated customers.
* **Bootstrap.** 95% percentile bootstrap over customers, seeded; every metric
  of a group shares the same resamples. For groups above ``BIG_N`` customers the
  number of resamples shrinks to ``max(200, n_boot * BIG_N // n)`` to bound time
  (the CI is then very narrow anyway).
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.atomic import write_text

METRICS = ("precision", "recall", "ndcg", "hit_rate")
SUMMARY_COLUMNS = [
    "model", "protocol", "split", "segment_type", "segment", "k", "metric",
    "value", "ci_low", "ci_high", "n_customers", "small_segment",
]
BIG_N = 200_000  # bootstrap groups above this size use fewer resamples
_BOOT_CELLS = 4_000_000  # resample-count cells held in memory at once


# --------------------------------------------------------------------- split
@dataclass(frozen=True)
class Split:
    """Train ``[start, valid_start)``, validation ``[valid_start, test_start)``,
    test ``[test_start, end)``; all midnights, half-open."""

    start: pd.Timestamp
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp

    def windows(self, stage: str) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
        """``(fit_end, eval_start, eval_end)`` for ``"valid"`` or ``"test"``."""
        if stage == "valid":
            return self.valid_start, self.valid_start, self.test_start
        if stage == "test":
            return self.test_start, self.test_start, self.end
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")

    def to_dict(self) -> dict[str, str]:
        return {k: getattr(self, k).date().isoformat()
                for k in ("start", "valid_start", "test_start", "end")}

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(**{k: pd.Timestamp(d[k]) for k in ("start", "valid_start", "test_start", "end")})

    def write(self, path) -> None:
        """Write ``to_dict()`` as JSON atomically (temp file + ``os.replace``); an
        identical existing file is left untouched (so caches keyed on it stay valid)."""
        path = os.fspath(path)
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if os.path.exists(path):
            with open(path) as f:
                if f.read() == text:
                    return

        write_text(path, text)


def temporal_split(transactions: pd.DataFrame, test_days: int = 28, valid_days: int = 28) -> Split:
    """Split by calendar days counted back from the day after the last transaction."""
    ts = transactions["timestamp"]
    if len(ts) == 0:
        raise ValueError("no transactions to split")
    start = ts.min().floor("D")
    end = ts.max().normalize() + pd.Timedelta(days=1)
    test_start = end - pd.Timedelta(days=test_days)
    valid_start = test_start - pd.Timedelta(days=valid_days)
    if valid_start <= start:
        raise ValueError(f"no training days left: data starts {start.date()}, validation {valid_start.date()}")
    return Split(start, valid_start, test_start, end)


def select_window(transactions: pd.DataFrame, start, end) -> pd.DataFrame:
    """Rows with ``start <= timestamp < end``."""
    ts = transactions["timestamp"]
    return transactions.loc[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]


# ----------------------------------------------------------------- relevance
@dataclass
class Relevance:
    """``matrix``: CSR customers x catalog, 1 = relevant; ``n_relevant``: distinct
    relevant products per row, off-catalog ones included (>= row nnz)."""

    matrix: sp.csr_matrix
    n_relevant: np.ndarray


class EvalSet(NamedTuple):
    rows: np.ndarray  # row indices (into the fit customers) of the evaluated customers
    relevance: Relevance  # aligned with ``rows``
    exclude: sp.csr_matrix | None  # fit purchases to mask ("new"), aligned with ``rows``


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in ``sorted_ids``, ``-1`` when absent."""
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def _binary(matrix: sp.spmatrix) -> sp.csr_matrix:
    """CSR copy with sorted, unique indices and value 1 where ``matrix > 0``."""
    rel = sp.csr_matrix(matrix, copy=True)
    rel.sum_duplicates()  # also sorts the indices
    rel.data = (rel.data > 0).astype(np.float32)
    rel.eliminate_zeros()
    return rel


def relevance_matrix(eval_transactions: pd.DataFrame, customer_ids, item_ids) -> Relevance:
    """Relevant (customer, product) pairs of an evaluation window; ids sorted ascending."""
    customer_ids = np.asarray(customer_ids, dtype=np.int64)
    item_ids = np.asarray(item_ids, dtype=np.int64)
    for name, a in (("customer_ids", customer_ids), ("item_ids", item_ids)):
        if np.any(np.diff(a) <= 0):
            raise ValueError(f"{name} must be sorted and unique")
    buys = eval_transactions.loc[eval_transactions["quantity"].to_numpy() > 0]
    rows = _positions(customer_ids, buys["customer_id"].to_numpy(np.int64))
    prods = buys["product_id"].to_numpy(np.int64)[rows >= 0]
    rows = rows[rows >= 0]
    # distinct (row, product) pairs: sort by row then product, keep first of each run
    order = np.lexsort((prods, rows))
    rows, prods = rows[order], prods[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (prods[1:] != prods[:-1])
    rows, prods = rows[first], prods[first]
    n_relevant = np.bincount(rows, minlength=len(customer_ids)).astype(np.int64)
    cols = _positions(item_ids, prods)
    keep = cols >= 0
    matrix = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
        shape=(len(customer_ids), len(item_ids)),
    )
    matrix.sort_indices()
    return Relevance(matrix, n_relevant)


def evaluation_set(fit_user_items: sp.spmatrix, relevance: Relevance, protocol: str) -> EvalSet:
    """Evaluated customers and their relevance under protocol ``"all"`` or ``"new"``."""
    fit = _binary(fit_user_items)
    rel, n_rel = _binary(relevance.matrix), np.asarray(relevance.n_relevant, dtype=np.int64)
    if fit.shape != rel.shape:
        raise ValueError(f"fit matrix {fit.shape} and relevance {rel.shape} are not aligned")
    exclude = None
    if protocol == "new":
        seen = rel.multiply(fit).tocsr()
        seen.eliminate_zeros()
        n_rel = n_rel - np.diff(seen.indptr)
        rel = (rel - seen).tocsr()
        rel.eliminate_zeros()
    elif protocol != "all":
        raise ValueError(f"protocol must be 'all' or 'new', got {protocol!r}")
    rows = np.flatnonzero((np.diff(fit.indptr) > 0) & (n_rel > 0))
    if protocol == "new":
        exclude = fit[rows]
    sub = rel[rows]
    sub.sort_indices()
    return EvalSet(rows, Relevance(sub, n_rel[rows]), exclude)


# ------------------------------------------------------------------- metrics
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
    stored value > 0, else its :func:`_binary` copy: either way, the stored columns of
    row ``u`` are exactly its relevant items, once each."""
    if (sp.issparse(relevance) and relevance.format == "csr" and relevance.has_canonical_format
            and bool((relevance.data > 0).all())):
        return relevance
    return _binary(relevance)


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


# ----------------------------------------------------------------- bootstrap
def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means ``(n_boot, m)`` of ``values (n, m)`` over resamples of the rows.

    Each resample is a vector of draw counts (bincount of ``n`` uniform draws),
    so a chunk of resamples is one matrix product and memory stays bounded.
    """
    n, m = values.shape
    out = np.empty((n_boot, m))
    step = max(1, _BOOT_CELLS // max(n, 1))
    for b0 in range(0, n_boot, step):
        b = min(step, n_boot - b0)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b, dtype=np.int64) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out[b0:b0 + b] = counts @ values / n
    return out


def _n_boot_for(n: int, n_boot: int) -> int:
    return n_boot if n <= BIG_N else max(200, n_boot * BIG_N // n)


def paired_bootstrap(a, b, n_boot: int = 2000, seed: int = 0) -> dict:
    """Bootstrap of ``mean(a - b)`` over customers (same resamples for both arrays).

    ``p_value_two_sided = min(1, 2 * min(P*(diff <= 0), P*(diff >= 0)))`` with the
    add-one correction ``(1 + count) / (1 + n_boot)``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("a and b must be non-empty 1-D arrays of the same customers")
    n_boot = _n_boot_for(len(a), n_boot)
    means = _bootstrap_means(np.column_stack([a, b]), n_boot, np.random.default_rng(seed))
    diff = means[:, 0] - means[:, 1]
    lo, hi = np.percentile(diff, [2.5, 97.5])
    p_le = (1 + np.count_nonzero(diff <= 0)) / (1 + n_boot)
    p_ge = (1 + np.count_nonzero(diff >= 0)) / (1 + n_boot)
    return {"mean_diff": float(np.mean(a - b)), "ci_low": float(lo), "ci_high": float(hi),
            "p_value_two_sided": float(min(1.0, 2 * min(p_le, p_ge)))}


def summarize(per_customer: dict, customer_ids, segments: pd.DataFrame | None, model: str,
              protocol: str, split: str, n_boot: int = 1000, seed: int = 0, min_segment: int = 30,
              coverage: dict | None = None) -> pd.DataFrame:
    """Long table of macro averages with 95% bootstrap CIs, overall and per segment.

    ``per_customer`` maps ``(metric, k)`` to arrays aligned with ``customer_ids``;
    ``segments`` is long (``customer_id, segment_type, segment``); customers absent
    from a segment type (or with a null segment) are left out of its rows.
    ``coverage`` (``{k: value}``) adds ``metric="coverage"`` rows with NaN CIs.
    """
    customer_ids = np.asarray(customer_ids, dtype=np.int64)
    keys = list(per_customer)
    values = np.column_stack([np.asarray(per_customer[k], dtype=np.float64) for k in keys]) \
        if keys else np.empty((len(customer_ids), 0))
    if values.shape[0] != len(customer_ids):
        raise ValueError("per-customer arrays and customer_ids differ in length")
    groups = [("overall", "all", np.arange(len(customer_ids)))]
    if segments is not None and len(segments):
        pos = pd.Index(customer_ids).get_indexer(segments["customer_id"].to_numpy(np.int64))
        seg = segments.assign(_pos=pos).loc[pos >= 0]
        for (stype, sname), g in seg.groupby(["segment_type", "segment"], sort=True, observed=True):
            groups.append((stype, sname, np.unique(g["_pos"].to_numpy())))
    records = []
    for gi, (stype, sname, idx) in enumerate(groups):
        n = len(idx)
        if n == 0:
            continue
        vals = values[idx]
        mean = vals.mean(axis=0)
        boots = _bootstrap_means(vals, _n_boot_for(n, n_boot), np.random.default_rng([seed, gi]))
        lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
        for j, (metric, k) in enumerate(keys):
            records.append((model, protocol, split, stype, sname, int(k), metric, mean[j], lo[j],
                            hi[j], n, n < min_segment))
    for k, cov in (coverage or {}).items():
        records.append((model, protocol, split, "overall", "all", int(k), "coverage", float(cov),
                        np.nan, np.nan, len(customer_ids), len(customer_ids) < min_segment))
    return pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)


# -------------------------------------------------------------------- runner
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
