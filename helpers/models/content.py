"""Content-based recommender: TF-IDF of product text, recency/frequency-weighted profiles.

Conventions
-----------
* **Item text** = the ``text_columns`` of ``dim_product`` joined with spaces
  (missing values are empty). The ``TfidfVectorizer`` is fitted on the *catalog*
  only (``FitData.item_ids``, the products bought in the fit window), so its
  vocabulary and IDF never see anything else; item vectors are L2-normalised
  (``norm="l2"``). Any other product (new, never bought) is vectorised with that
  fitted vocabulary; words unseen in the catalog are dropped.
* **Purchase weights** ``W`` (customers x catalog): each distinct basket
  (``quantity > 0``) containing the item contributes
  ``0.5 ** (age_days / half_life_days)``, ``age_days`` measured from
  ``FitData.as_of`` (``half_life_days=None``: no decay). ``use_frequency=True``
  sums over baskets (recency *and* frequency); ``False`` keeps the most recent
  basket only (recency, each item once).
* **Profile** = weighted mean of the item vectors (``W`` row-normalised to sum 1,
  ``@ item_tfidf``), then L2-normalised; **score** = cosine = profile @
  item_tfidf.T, computed in blocks of ``chunk_size`` customers (each block of
  profiles densified, times the sparse item matrix). Customers without history, unknown ids (row ``-1``) and
  empty profiles get the fallback (see :class:`~helpers.models.als.FallbackMixin`:
  injected recommender or global popularity).
* ``popularity_weight`` adds ``w * popularity`` (in ``(0, 1]``) to warm scores:
  Complete Journey texts are category-level, so thousands of products share a
  text and tie exactly; the prior ranks the popular ones first among them.
* :meth:`ContentTFIDF.similar_products` is item-to-item cosine similarity; the
  query product itself and candidates with zero similarity are never returned
  (their slots hold id ``-1`` and score ``-inf``); ties by lower product id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from helpers.arrays import unique
from helpers.models.als import FallbackMixin, global_popularity
from helpers.models.base import FitData, Recommender, map_blocks, top_k

TEXT_COLUMNS = ("description", "department", "category", "product_type", "brand")

_ANALYZED: dict[tuple, dict[str, list[str]]] = {}  # analyzer settings -> text -> its terms
_ANALYZED_MAX = 1_000_000  # texts kept per setting before the memo starts again


class MemoTfidfVectorizer(TfidfVectorizer):
    """``TfidfVectorizer`` whose analyzer keeps the terms of every text it has split, per
    analyzer setting, for the process: the windows of one run (validation, test, earlier
    windows, production) each fit a vocabulary and IDF on their own products, but mostly
    the same product texts, which are then split once. The terms of a text are those of
    the plain analyzer, so vocabulary, IDF and matrices are the same."""

    def build_analyzer(self):
        analyze = super().build_analyzer()
        stop = tuple(self.stop_words) if isinstance(self.stop_words, (list, set, frozenset)) else self.stop_words
        memo = _ANALYZED.setdefault((self.analyzer, self.preprocessor, self.tokenizer, self.lowercase,
                                     self.token_pattern, tuple(self.ngram_range), self.strip_accents, stop,
                                     self.input, self.encoding, self.decode_error), {})
        if len(memo) > _ANALYZED_MAX:
            memo.clear()

        def terms(doc):
            if not isinstance(doc, str):
                return analyze(doc)
            found = memo.get(doc)
            if found is None:
                found = memo[doc] = analyze(doc)
            return found

        return terms

#: Tuning grid (for :func:`helpers.tuning.stages.expand_grid`): 3 fits. A first grid on the
#: Complete Journey validation stage (half-life 14/30/60/None x frequency x n-grams, no
#: popularity prior) favoured ``use_frequency=True`` and ``ngram_range=(1, 2)`` everywhere;
#: the tie-breaking prior (``popularity_weight=1e-3``) then lifted NDCG@5 about fourfold.
#: Larger weights keep improving by turning the model into popularity: that blend is
#: left to the hybrid, so the prior stays at tie-break strength here. Of the next grid
#: (half-life 14/30/60/None x sublinear tf), no half-life trailed every other one in both
#: protocols (all 0.080-0.083 vs 0.090-0.094) and plain tf trailed sublinear tf at every
#: half-life in "all" and at the best one in "new" (30 days: 0.0136 vs 0.0145): the budget
#: keeps sublinear tf and the three half-lives.
GRID = {
    "half_life_days": [14, 30, 60],
    "sublinear_tf": [True],
    "use_frequency": [True],
    "ngram_range": [(1, 2)],
    "popularity_weight": [1e-3],
}


class ContentTFIDF(FallbackMixin, Recommender):
    """TF-IDF content model.

    Parameters
    ----------
    half_life_days : recency half-life of a purchase's weight (``None``: no decay).
    min_df, max_features, ngram_range, sublinear_tf : ``TfidfVectorizer`` options.
    use_frequency : sum over baskets (``True``) or most recent basket only.
    fallback : recommender for cold rows (default: global popularity).
    text_columns : ``dim_product`` columns concatenated into the item text.
    popularity_weight : warm scores are ``cosine + popularity_weight * pop`` with
        ``pop`` the cold-start popularity in ``(0, 1]``
        (:func:`~helpers.models.als.global_popularity`); a small weight only
        breaks the many exact ties between textually identical products.
    chunk_size : customers (queries) per dense block.
    num_threads : threads scoring blocks in parallel (0 = every core); results do not depend on it.

    The defaults are the best :data:`GRID` candidate on the Complete Journey
    validation stage for both protocols (NDCG@5 0.094 "all", 0.014 "new").
    """

    name = "content_tfidf"

    def __init__(self, half_life_days: float | None = 30, min_df: int = 2, max_features: int | None = 50000,
                 ngram_range: tuple[int, int] = (1, 2), use_frequency: bool = True,
                 fallback: Recommender | None = None, text_columns=TEXT_COLUMNS, sublinear_tf: bool = True,
                 popularity_weight: float = 1e-3, chunk_size: int = 256, num_threads: int = 0):
        self.half_life_days = half_life_days
        self.min_df = min_df
        self.max_features = max_features
        self.ngram_range = tuple(ngram_range)
        self.use_frequency = use_frequency
        self.fallback = fallback
        self.text_columns = tuple(text_columns)
        self.sublinear_tf = sublinear_tf
        self.popularity_weight = popularity_weight
        self.chunk_size = chunk_size
        self.num_threads = num_threads

    # ------------------------------------------------------------------ text
    def _product_text(self) -> pd.Series:
        """Text of every ``dim_product`` row, indexed by product id (cached per fit)."""
        if self._text is None:
            table = self.data.products.drop_duplicates("product_id")
            cols = [c for c in self.text_columns if c in table.columns]
            parts = [table[c].astype("string").fillna("") for c in cols]
            text = parts[0].str.cat(parts[1:], sep=" ").str.strip() if parts else pd.Series("", index=table.index)
            self._text = pd.Series(text.to_numpy(dtype=object), index=table["product_id"].to_numpy(np.int64))
        return self._text

    def _texts(self, product_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Text of each product id (``""`` when not in ``dim_product``) and whether it is known."""
        found = self._product_text().reindex(pd.Index(np.asarray(product_ids, dtype=np.int64)))
        return found.fillna("").to_numpy(dtype=object), found.notna().to_numpy()

    def transform(self, product_ids) -> sp.csr_matrix:
        """L2-normalised TF-IDF rows (fitted vocabulary) of any product ids."""
        text, _ = self._texts(np.asarray(product_ids, dtype=np.int64))
        return sp.csr_matrix(self.vectorizer.transform(text), dtype=np.float32)

    # ------------------------------------------------------------------- fit
    def fit(self, data: FitData) -> ContentTFIDF:
        self.data = data
        self._text = None
        self.vectorizer, self.item_tfidf = self._item_tfidf(data)
        self.weights = self._purchase_weights(data)
        self.profiles = self._profiles(self.weights)
        self._warm = np.diff(self.profiles.indptr) > 0
        self._pop = global_popularity(data.user_items)
        self._all = None  # lazily built candidate matrix of every product
        self._fit_fallback(data)
        return self

    def _item_tfidf(self, data: FitData) -> tuple[TfidfVectorizer, sp.csr_matrix]:
        """The vectorizer fitted on the window's products and their TF-IDF rows.

        They depend on the text settings only, not on the purchase weighting, so one
        fit window computes them once per setting (kept in ``data.extras``): the
        grid's half-lives share them. Callers treat both as read-only."""
        key = ("content_tfidf", self.min_df, self.max_features, tuple(self.ngram_range), bool(self.sublinear_tf),
               tuple(self.text_columns))
        memo = data.extras.setdefault("content_tfidf", {})
        if key not in memo:
            vectorizer = MemoTfidfVectorizer(min_df=self.min_df, max_features=self.max_features,
                                         ngram_range=tuple(self.ngram_range), sublinear_tf=self.sublinear_tf,
                                         norm="l2", dtype=np.float32)
            text, _ = self._texts(data.item_ids)
            memo[key] = (vectorizer, sp.csr_matrix(vectorizer.fit_transform(text), dtype=np.float32))
        return memo[key]

    def _purchase_weights(self, data: FitData) -> sp.csr_matrix:
        tx = data.transactions
        tx = tx.loc[tx["quantity"].to_numpy() > 0]
        rows = data.customer_rows(tx["customer_id"].to_numpy(np.int64))
        cols = data.item_columns(tx["product_id"].to_numpy(np.int64))
        age = (data.as_of - tx["timestamp"]).dt.total_seconds().to_numpy() / 86400.0
        decay = (np.power(0.5, age / self.half_life_days) if self.half_life_days
                 else np.ones(len(tx)))
        df = pd.DataFrame({"r": rows, "c": cols, "b": tx["basket_id"].to_numpy(), "w": decay})
        df = df.loc[(df["r"] >= 0) & (df["c"] >= 0)]
        per_basket = df.groupby(["r", "c", "b"], sort=False)["w"].max()  # repeated lines of a basket
        agg = per_basket.groupby(level=["r", "c"], sort=False)
        w = agg.sum() if self.use_frequency else agg.max()
        r = w.index.get_level_values("r").to_numpy()
        c = w.index.get_level_values("c").to_numpy()
        m = sp.csr_matrix((w.to_numpy(np.float32), (r, c)), shape=(data.n_customers, data.n_items))
        m.sort_indices()
        return m

    def _profiles(self, weights: sp.csr_matrix) -> sp.csr_matrix:
        """L2-normalised weighted-mean TF-IDF profiles (customers x vocabulary)."""
        mean_w = normalize(weights, norm="l1", axis=1)
        prof = sp.csr_matrix(mean_w @ self.item_tfidf, dtype=np.float32)
        prof.eliminate_zeros()
        return sp.csr_matrix(normalize(prof, norm="l2", axis=1), dtype=np.float32)

    # ----------------------------------------------------------------- score
    def _cosine(self, queries: sp.csr_matrix, candidates: sp.csr_matrix) -> np.ndarray:
        """Dense ``queries @ candidates.T`` in blocks of ``chunk_size`` query rows.

        Each block of queries is densified (``chunk_size x vocabulary``) and
        multiplied by the sparse candidates (``candidates @ block.T``): about ten
        times faster than sparse x sparse here, whose result is nearly dense.
        Blocks run on ``num_threads`` threads (same result as serial).
        """
        out = np.empty((queries.shape[0], candidates.shape[0]), dtype=np.float32)

        def block(a, b):
            _put(out[a:b], _cosine_block(queries[a:b], candidates))

        map_blocks(block, queries.shape[0], self.chunk_size, self.num_threads)
        return out

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        warm = (rows >= 0) & self._warm[np.where(rows >= 0, rows, 0)] if len(self._warm) else rows < -1
        if warm.all() and len(rows):  # written in place, without a masked copy
            out = self._cosine(self.profiles[rows], self.item_tfidf)
            if self.popularity_weight:
                out += np.float32(self.popularity_weight) * self._pop
            return out
        out = np.empty((len(rows), self.data.n_items), dtype=np.float32)
        if warm.any():
            out[warm] = self._cosine(self.profiles[rows[warm]], self.item_tfidf)
            if self.popularity_weight:
                out[warm] += np.float32(self.popularity_weight) * self._pop
        if (~warm).any():
            out[~warm] = self._fallback_scores(rows[~warm])
        return out

    def score_products(self, product_ids) -> np.ndarray:
        """Cosine scores ``(1, n_items)`` of an anonymous basket's profile (unweighted
        mean of its products' vectors); an empty profile gets the fallback."""
        ids = unique(np.asarray(product_ids, dtype=np.int64))
        if len(ids) == 0:
            return self._fallback_scores(np.array([-1]))
        prof = normalize(sp.csr_matrix(self.transform(ids).sum(axis=0)), norm="l2")
        if prof.nnz == 0:
            return self._fallback_scores(np.array([-1]))
        return self._cosine(sp.csr_matrix(prof, dtype=np.float32), self.item_tfidf)

    # ----------------------------------------------------------- similarity
    def _candidates(self, include_new: bool) -> tuple[np.ndarray, sp.csr_matrix]:
        if not include_new:
            return self.data.item_ids, self.item_tfidf
        if self._all is None:
            all_ids = np.union1d(self.data.products["product_id"].to_numpy(np.int64), self.data.item_ids)
            new_ids = np.setdiff1d(all_ids, self.data.item_ids, assume_unique=True)
            mat = sp.vstack([self.item_tfidf, self.transform(new_ids)]).tocsr()
            ids = np.concatenate([self.data.item_ids, new_ids])
            order = np.argsort(ids, kind="stable")
            self._all = (ids[order], sp.csr_matrix(mat[order], dtype=np.float32))
        return self._all

    def similar_products(self, product_ids, k: int = 10, include_new: bool = True):
        """The ``k`` most similar products of each product id.

        Queries may be any product of ``dim_product`` (bought or not); candidates
        are the catalog, plus every other ``dim_product`` product when
        ``include_new``. Returns ``(ids, scores)`` of shape ``(n, k)``, by
        descending cosine; empty slots are ``-1`` / ``-inf`` (unknown product, no
        known words, or fewer than ``k`` products sharing a term).
        """
        q_ids = np.asarray(product_ids, dtype=np.int64).ravel()
        if len(q_ids) == 0:
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
        cand_ids, cand = self._candidates(include_new)
        k_eff = min(k, len(cand_ids))
        out_ids = np.full((len(q_ids), k), -1, dtype=np.int64)
        out_scores = np.full((len(q_ids), k), -np.inf, dtype=np.float32)
        if k_eff == 0:
            return out_ids, out_scores
        self_pos = np.clip(np.searchsorted(cand_ids, q_ids), 0, len(cand_ids) - 1)
        is_cand = cand_ids[self_pos] == q_ids
        # a candidate's query vector is its candidate row (no second pass over its text)
        queries = cand[self_pos[is_cand]]
        if not is_cand.all():
            stacked = sp.vstack([queries, self.transform(q_ids[~is_cand])]).tocsr()
            source = np.concatenate([np.flatnonzero(is_cand), np.flatnonzero(~is_cand)])  # query of each row
            queries = stacked[np.argsort(source)]
        queries = sp.csr_matrix(queries, dtype=np.float32)
        # Products with the same text have the same scores against every candidate:
        # rank once per distinct TF-IDF row, k + 1 deep, then drop each query's own slot.
        first, group = _distinct_rows(queries)
        kk = min(k_eff + 1, len(cand_ids))
        g_idx = np.empty((len(first), kk), dtype=np.int64)
        g_val = np.empty((len(first), kk), dtype=np.float32)
        uq = queries[first]

        def block(a, b):
            s = _cosine_block(uq[a:b], cand)
            idx, val = top_k(s, kk)
            # a product shares no term with those of cosine <= 0: they are no candidates. Rows whose
            # kk best are all positive are the same as with those set to -inf; the others are redone so.
            short = np.flatnonzero(~(val[:, -1] > 0))
            if len(short):
                sub = s[short]
                sub[sub <= 0] = -np.inf
                idx[short], val[short] = top_k(sub, kk)
            g_idx[a:b], g_val[a:b] = idx, val

        map_blocks(block, len(first), self.chunk_size, self.num_threads)
        idx, val = g_idx[group], g_val[group]
        own = is_cand[:, None] & (idx == self_pos[:, None])
        order = np.argsort(own, axis=1, kind="stable")[:, :k_eff]  # own slot (if any) moves past the end
        idx = np.take_along_axis(idx, order, axis=1)
        val = np.take_along_axis(val, order, axis=1)
        out_ids[:, :k_eff] = np.where(np.isfinite(val), cand_ids[idx], -1)
        out_scores[:, :k_eff] = np.where(np.isfinite(val), val, -np.inf)
        return out_ids, out_scores


def _put(dst: np.ndarray, src: np.ndarray, width: int = 256) -> None:
    """``dst[:] = src`` a band of ``width`` columns at a time: ``src`` (a :func:`_cosine_block`) is
    column-major, ``dst`` row-major, and a whole transposing copy thrashes the cache
    (256 x 68k: 110 ms against 31 ms by bands)."""
    for j in range(0, src.shape[1], width):
        dst[:, j:j + width] = src[:, j:j + width]


def _cosine_block(queries: sp.csr_matrix, candidates: sp.csr_matrix) -> np.ndarray:
    """Dense ``queries @ candidates.T`` for one block of queries (densified, times the sparse candidates)."""
    return (candidates @ queries.toarray().T).T


def _distinct_rows(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """``(first, group)``: the first row of each distinct sparse row of ``m`` and, per
    row, the index of its group in ``first`` (groups in order of first appearance)."""
    m = sp.csr_matrix(m)
    m.sort_indices()
    seen: dict[bytes, int] = {}
    group = np.empty(m.shape[0], dtype=np.int64)
    first: list[int] = []
    ind, dat, ptr = m.indices, m.data, m.indptr
    for i in range(m.shape[0]):
        key = ind[ptr[i]:ptr[i + 1]].tobytes() + b"|" + dat[ptr[i]:ptr[i + 1]].tobytes()
        g = seen.setdefault(key, len(first))
        if g == len(first):
            first.append(i)
        group[i] = g
    return np.asarray(first, dtype=np.int64), group
