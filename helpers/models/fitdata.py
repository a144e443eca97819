"""The fit-window data every model sees: :class:`FitData` and :func:`make_fit_data`.

Conventions: a model is fitted on one window of transactions (strictly before
``as_of``) plus the dimensions and segments computed on that window, and scores the
*catalog*: the products bought at least once in the window (``FitData.item_ids``), so
every model shares the same candidate filter. Rows are every ``dim_customer``
customer (``FitData.customer_ids``, with or without history).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.arrays import unique

__all__ = ["FitData", "make_fit_data", "positions"]


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
        return positions(self.customer_ids, customer_ids)

    def item_columns(self, product_ids) -> np.ndarray:
        """Column index of each product id, ``-1`` for products outside the catalog."""
        return positions(self.item_ids, product_ids)


def positions(sorted_ids: np.ndarray, ids) -> np.ndarray:
    """Index of each of ``ids`` in the sorted, unique ``sorted_ids``; ``-1`` where absent."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(sorted_ids) == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def first_per_basket(pair: np.ndarray, basket: np.ndarray, *carried: np.ndarray) -> tuple[np.ndarray, ...]:
    """The lines sorted by (``pair``, ``basket``), stably, keeping each pair's first line of every
    basket: ``pair`` and each of ``carried`` at those lines (repeated lines of a basket count once)."""
    order = np.lexsort((basket, pair))
    pair, basket = pair[order], basket[order]
    first = np.ones(len(pair), dtype=bool)
    first[1:] = (pair[1:] != pair[:-1]) | (basket[1:] != basket[:-1])
    del basket
    return (pair[first], *(c[order][first] for c in carried))


def _basket_counts(tx: pd.DataFrame, customer_ids: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
    """The bought items (sorted) and the CSR customers x items of distinct baskets per pair.

    Sort-based, on column arrays (no frame of the lines, no hash table): the distinct
    (customer, item, basket) triples in (customer, item) order give the matrix's entries directly."""
    buy = tx["quantity"].to_numpy() > 0
    product = tx["product_id"].to_numpy(np.int64)[buy]
    item_ids = unique(product)
    pair = np.searchsorted(customer_ids, tx["customer_id"].to_numpy(np.int64)[buy]) * np.int64(len(item_ids))
    pair += np.searchsorted(item_ids, product)
    del product
    (pair,) = first_per_basket(pair, tx["basket_id"].to_numpy(np.int64)[buy])
    start = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else np.zeros(0, np.int64)
    counts = np.diff(np.r_[start, len(pair)]).astype(np.float32)
    pair = pair[start]
    n_items = max(len(item_ids), 1)
    rows, cols = np.divmod(pair, n_items)
    index = np.int32 if max(len(pair), n_items) < 2 ** 31 else np.int64  # scipy's own choice
    indptr = np.zeros(len(customer_ids) + 1, dtype=index)
    np.cumsum(np.bincount(rows, minlength=len(customer_ids)), out=indptr[1:])
    ui = sp.csr_matrix((counts, cols.astype(index), indptr), shape=(len(customer_ids), len(item_ids)))
    return item_ids, ui


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
    item_ids, ui = _basket_counts(tx, customer_ids)
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
