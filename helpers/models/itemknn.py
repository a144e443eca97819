"""Item-based k-nearest-neighbours on co-purchases, via ``implicit.nearest_neighbours``.

Conventions
-----------
* **Input** ``X`` (customers x catalog): ``values="count"`` (distinct baskets,
  the default, as ``implicit`` expects), ``"binary"`` or ``"log"`` (``log1p``).
* **Item vectors** are the columns of ``X`` (one coordinate per customer),
  reweighted by ``weighting``: ``"none"``; ``"tfidf"`` (``sqrt(count) * idf``,
  ``implicit.nearest_neighbours.tfidf_weight``); ``"bm25"`` (``bm25_weight``
  with ``bm25_k1``, ``bm25_b``). ``similarity="cosine"`` L2-normalises each item
  vector after weighting (``none + cosine`` is implicit's ``CosineRecommender``,
  ``tfidf + cosine`` its ``TFIDFRecommender``); ``"dot"`` keeps the raw dot
  product (``bm25 + dot`` is implicit's ``BM25Recommender``).
* **Similarity** ``S`` (items x items, sparse) keeps, for each item, its
  ``k_neighbors`` most similar items, itself included (``implicit.all_pairs_knn``).
* **Scores** ``X[u] @ S`` (exactly what implicit's ``recommend`` computes, with
  ``filter_already_liked_items=False``; here sparse, by chunk of rows), plus
  ``backfill_weight * popularity_prior`` on every item. Cold-start rows (``-1``)
  and customers without history get the backfill only (global popularity).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize, tfidf_weight
from threadpoolctl import threadpool_limits

from helpers.models.base import FitData, Recommender
from helpers.models.ease import input_matrix
from helpers.models.popularity import popularity_prior
from helpers.models.threads import native_threads

WEIGHTINGS = ("none", "tfidf", "bm25")
SIMILARITIES = ("cosine", "dot")


def weighted_items(x: sp.csr_matrix, weighting: str, similarity: str, k1: float = 1.2,
                   b: float = 0.75) -> sp.csr_matrix:
    """Customers x items matrix whose columns are the weighted (and normalised) item vectors."""
    if weighting == "none":
        w = sp.coo_matrix(x.T)
    elif weighting == "tfidf":
        w = tfidf_weight(x.T)
    elif weighting == "bm25":
        w = bm25_weight(x.T, K1=k1, B=b)
    else:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if similarity == "cosine":
        w = normalize(w)
    elif similarity != "dot":
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    w = sp.csr_matrix(w.T, dtype=np.float64)  # all_pairs_knn wants float64
    w.eliminate_zeros()
    return w


class ItemKNN(Recommender):
    """Item-item kNN recommender (see module doc)."""

    name = "itemknn"

    def __init__(self, k_neighbors: int = 100, weighting: str = "bm25", similarity: str = "cosine",
                 values: str = "count", bm25_k1: float = 1.2, bm25_b: float = 0.75,
                 backfill_weight: float = 1e-6, num_threads: int = 0):
        self.k_neighbors = k_neighbors
        self.weighting = weighting
        self.similarity = similarity
        self.values = values
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.backfill_weight = backfill_weight
        self.num_threads = num_threads  # implicit's threads (0 = every core; rows are independent)

    def fit(self, data: FitData) -> ItemKNN:
        self.data = data
        self.x_ = input_matrix(data.user_items, self.values)
        w = weighted_items(self.x_, self.weighting, self.similarity, self.bm25_k1, self.bm25_b)
        model = ItemItemRecommender(K=int(self.k_neighbors), num_threads=native_threads(self.num_threads))
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit(w, show_progress=False)
        self.similarity_ = sp.csr_matrix(model.similarity, dtype=np.float32)
        self.backfill_ = (self.backfill_weight * popularity_prior(data)).astype(np.float32)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        known = rows >= 0
        sims = self.x_[np.where(known, rows, 0)].multiply(known[:, None].astype(np.float32)).tocsr()
        out = np.asarray((sims @ self.similarity_).toarray(), dtype=np.float32)
        out += self.backfill_[None, :]
        return out
