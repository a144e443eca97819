"""Relevance of an evaluation window and the evaluated customers of each protocol.

Conventions
-----------
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["EvalSet", "Relevance", "binary_matrix", "evaluation_set", "relevance_matrix"]


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


def binary_matrix(matrix: sp.spmatrix) -> sp.csr_matrix:
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
    fit = binary_matrix(fit_user_items)
    rel, n_rel = binary_matrix(relevance.matrix), np.asarray(relevance.n_relevant, dtype=np.int64)
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
