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
    item_ids = unique(buys["product_id"].to_numpy(np.int64))
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
