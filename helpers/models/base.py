"""The common recommender interface (:class:`Recommender`).

Conventions
-----------
* A model is fitted on a :class:`~helpers.models.fitdata.FitData` and scores the catalog.
* ``score(rows)`` returns a dense ``float32`` array ``(len(rows), n_items)`` for
  customer *row indices* of ``FitData.customer_ids`` (every customer of
  ``dim_customer``, with or without history). Higher is better. ``-inf`` means
  "never recommend".
* ``recommend(customer_ids, k, exclude)`` is implemented once, here: it maps ids
  to rows (unknown ids get the cold-start row, i.e. an all-zero history),
  scores in chunks, masks the excluded (customer, item) pairs and returns the
  top-k product ids and scores, ordered by descending score, ties broken by the
  lower item index (deterministic).

The fit-window data (:mod:`~helpers.models.fitdata`), the ranking utilities
(:mod:`~helpers.models.ranking`) and the thread budget (:mod:`~helpers.models.threads`)
have their own modules; their names are re-exported here for the callers that import
them from this module.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from helpers.models.fitdata import FitData, make_fit_data
from helpers.models.ranking import excluded_matrix, mask_excluded, stable_dot, top_k, top_k_parts
from helpers.models.threads import THREADS_ENV, map_blocks, n_threads

__all__ = [
    "DEFAULT_CHUNK", "Recommender",
    # re-exported from their own modules
    "THREADS_ENV", "FitData", "excluded_matrix", "make_fit_data", "map_blocks", "mask_excluded", "n_threads",
    "stable_dot", "top_k", "top_k_parts",
]

DEFAULT_CHUNK = 2048


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
        :func:`~helpers.models.normalize.minmax_rows`), unless it is read-only."""
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
