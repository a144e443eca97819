"""What follows what: directional "bought A, then B within N days" lifts, and the complements they raise.

Conventions (purchase occasions of :class:`~helpers.features.events.PurchaseEvents`: fit window only)
---------------------------------------------------------------------------------------------
* A *trip* is a distinct (customer, day) with a purchase. For a trip of A on day ``d`` whose
  following ``window_days`` lie inside the fit window (``age > window_days``), the *future*
  is the set of products the customer buys on days ``d+1 .. d+window_days``.
* ``base(B)`` = share of those trips whose future holds B; ``conf(A -> B)`` = share of the
  trips holding A whose future holds B, shrunk towards ``base(B)`` with ``prior`` pseudo-trips;
  ``lift(A -> B) = conf / base``. Directional: ``lift(A -> B) != lift(B -> A)``. Same-trip
  co-occurrence does not count (that is what the co-purchase models already see).
* Products: the ``max_items`` products with the most buyers (ties by position), so the
  lift matrix stays small on any catalog; product groups (``item_groups``, e.g. product
  type): every group. Both are sparse: only pairs seen at least once are stored.
* ``complement(r, c)`` = sum over the products A the customer bought in the last
  ``window_days`` before ``as_of`` of ``max(lift(A -> c) - 1, 0)``: a recent grill raises
  charcoal and tongs; ``group_complement`` the same on groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from helpers.features.events import PurchaseEvents, group_codes, group_starts

SEQUENCE_FEATURES = ("complement", "group_complement")


def _trips(ev: PurchaseEvents) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trip index of every event, and each trip's customer row and age (trips sorted by row, age desc)."""
    key = ev.rows * np.int64(ev.span_days + 2) + (ev.span_days + 1 - ev.age)  # day index grows with time
    uniq, trip = np.unique(key, return_inverse=True)
    return trip, uniq // np.int64(ev.span_days + 2), (ev.span_days + 1) - uniq % np.int64(ev.span_days + 2)


def _followers(trip_row: np.ndarray, trip_age: np.ndarray, window_days: int) -> sp.csr_matrix:
    """``trips x trips`` 0/1 matrix: trip j is a later trip of the same customer within ``window_days``."""
    src, dst = [], []
    n = len(trip_row)
    for j in range(1, window_days + 1):  # at most one trip a day, so offsets beyond the window are useless
        if j >= n:
            break
        ok = (trip_row[j:] == trip_row[:-j]) & (trip_age[:-j] - trip_age[j:] <= window_days)
        if not ok.any():
            break
        i = np.flatnonzero(ok)
        src.append(i)
        dst.append(i + j)
    if not src:
        return sp.csr_matrix((n, n), dtype=np.float32)
    s, d = np.concatenate(src), np.concatenate(dst)
    return sp.csr_matrix((np.ones(len(s), dtype=np.float32), (s, d)), shape=(n, n))


def _lifts(x: sp.csr_matrix, follow: sp.csr_matrix, eligible: np.ndarray, prior: float) -> sp.csr_matrix:
    """``max(lift - 1, 0)`` of every (A, B) seen, ``x`` the trips x keys 0/1 matrix."""
    future = (follow @ x).tocsr()
    future.data[:] = 1.0
    e = sp.diags(eligible.astype(np.float32))
    xa = (e @ x).tocsc()
    fut_e = (e @ future).tocsr()
    n_trips = max(float(eligible.sum()), 1.0)
    base = np.asarray(fut_e.sum(axis=0)).ravel() / n_trips
    count_a = np.asarray(xa.sum(axis=0)).ravel()
    co = (xa.T @ fut_e).tocoo()
    a, b, c = co.row, co.col, co.data.astype(np.float64)
    conf = (c + prior * base[b]) / (count_a[a] + prior)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where(base[b] > 0, conf / base[b], 0.0)
    keep = lift > 1.0
    return sp.csr_matrix(((lift[keep] - 1.0).astype(np.float32), (a[keep], b[keep])), shape=(x.shape[1], x.shape[1]))


@dataclass(frozen=True)
class Sequences:
    items: np.ndarray  # product columns modelled (the max_items most bought), sorted
    item_lift: sp.csr_matrix  # len(items) x len(items): max(lift - 1, 0)
    group_lift: sp.csr_matrix  # n_groups x n_groups
    item_groups: np.ndarray
    recent_items: sp.csr_matrix  # customers x len(items): bought in the last window_days
    recent_groups: sp.csr_matrix  # customers x n_groups
    n_items: int

    @classmethod
    def from_events(cls, ev: PurchaseEvents, item_groups: np.ndarray | None = None, window_days: int = 14,
                    max_items: int = 5000, prior: float = 10.0) -> Sequences:
        n = ev.n_items
        groups, n_groups = group_codes(item_groups, n)
        pair_first = group_starts(ev.pair_keys)
        buyers = np.bincount(ev.cols[pair_first], minlength=n)
        items = np.sort(np.argsort(-buyers, kind="stable")[:max_items]) if n else np.zeros(0, dtype=np.int64)
        col_of = np.full(n, -1, dtype=np.int64)
        col_of[items] = np.arange(len(items))
        trip, trip_row, trip_age = _trips(ev)
        n_trips = len(trip_row)
        follow = _followers(trip_row, trip_age, window_days)
        eligible = trip_age > window_days

        def binary(keys: np.ndarray, width: int) -> sp.csr_matrix:
            ok = keys >= 0
            m = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (trip[ok], keys[ok])), shape=(n_trips, width))
            m.data[:] = 1.0  # duplicates summed on construction; a trip holds a key once
            return m

        def recent(keys: np.ndarray, width: int) -> sp.csr_matrix:
            ok = (keys >= 0) & (ev.age <= window_days)
            m = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (ev.rows[ok], keys[ok])),
                              shape=(ev.n_customers, width))
            m.data[:] = 1.0
            return m

        ic = col_of[ev.cols]
        item_x = binary(ic, len(items))
        item_x.sum_duplicates()
        item_x.data[:] = 1.0
        item_lift = _lifts(item_x, follow, eligible, prior)
        group_lift = sp.csr_matrix((n_groups, n_groups), dtype=np.float32)
        gc = groups[ev.cols] if n else ev.cols
        if n_groups:
            gx = binary(gc, n_groups)
            gx.sum_duplicates()
            gx.data[:] = 1.0
            group_lift = _lifts(gx, follow, eligible, prior)
        ri = recent(ic, len(items))
        ri.sum_duplicates()
        ri.data[:] = 1.0
        rg = recent(gc, n_groups) if n_groups else sp.csr_matrix((ev.n_customers, 0), dtype=np.float32)
        rg.sum_duplicates()
        rg.data[:] = 1.0
        return cls(items, item_lift, group_lift, groups, ri, rg, n)

    def features(self, rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
        """:data:`SEQUENCE_FEATURES` of (customer row, product column) pairs: ``rows`` (m,), ``cols`` (m, c).

        ``rows`` may repeat (one per candidate slot): each distinct customer's complement scores are
        computed once, so memory follows the customers, not the slots."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        cols2 = cols.reshape(len(rows), -1)
        uniq, row_of = np.unique(rows, return_inverse=True)
        col_of = np.full(self.n_items, -1, dtype=np.int64)
        col_of[self.items] = np.arange(len(self.items))
        out = {"complement": _gather(self.recent_items[uniq] @ self.item_lift, row_of, col_of[cols2])}
        g = self.item_groups[cols2] if len(self.item_groups) else np.full(cols2.shape, -1)
        out["group_complement"] = (_gather(self.recent_groups[uniq] @ self.group_lift, row_of, g)
                                   if self.group_lift.shape[0] else np.zeros(cols2.shape))
        return {k: v.reshape(cols.shape) for k, v in out.items()}


def _gather(m: sp.csr_matrix, row_of: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[row_of[i], cols[i, j]]`` for every i, j (0 where ``cols`` is -1 or the entry is not stored)."""
    m = m.tocsr()
    m.sort_indices()
    out = np.zeros(cols.shape, dtype=np.float64)
    if m.nnz == 0:
        return out
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * np.int64(m.shape[1]) + m.indices
    q = np.asarray(row_of, dtype=np.int64)[:, None] * np.int64(m.shape[1]) + np.maximum(cols, 0)
    pos = np.clip(np.searchsorted(keys, q), 0, len(keys) - 1)
    hit = (cols >= 0) & (keys[pos] == q)
    out[hit] = m.data[pos[hit]]
    return out
