"""Real-time hybrid scores of an anonymous basket from the export's model artifacts.

Every component of the ``all`` hybrid scores the basket (ALS fold-in against the item
factors, TF-IDF profile, item-kNN and EASE through their item-item weights, popularity);
scores are min-max normalized and blended with the hybrid's *light-customer* weights,
business rules applied, basket items excluded. Products are addressed by their position in
the export's product index (:class:`~helpers.serving.ids.IdIndex`), so integer and text ids
work alike; every artifact is read into memory (no memory map: a file replaced under a
running server cannot change or break what it serves).

:meth:`BasketScorer.recommend_many` scores several baskets at once (the API's micro-batches,
:mod:`helpers.serving.batcher`) and answers each exactly as :meth:`~BasketScorer.recommend`
scores it alone, bit for bit: only the work that does not change a value is shared (the ALS
factors are read from memory once per batch, the basket-independent components are
normalized once at load, the element-wise blend runs over the batch's rows); every sum keeps
the order of the one-basket computation (:meth:`~BasketScorer.scores_of`, the reference).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from helpers.export.production import COLLABORATIVE
from helpers.models.base import top_k
from helpers.models.hybrid import diversify, minmax_rows
from helpers.serving.ids import IdIndex, read_ids


def _basket_value(values: str) -> float:
    """Input value of one purchase for a model's ``values`` mode (binary / count / log)."""
    return float(np.log1p(1.0)) if values == "log" else 1.0


def _entries(m: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Positions in ``m.indices`` / ``m.data`` of the stored entries of some rows, row after row."""
    starts, ends = m.indptr[rows], m.indptr[np.asarray(rows) + 1]
    lens = (ends - starts).astype(np.int64)
    first = np.concatenate(([0], np.cumsum(lens)[:-1]))
    return np.repeat(starts - first, lens) + np.arange(int(lens.sum()))


def row_sum(m: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Sum of some rows of a CSR matrix as a dense float64 vector, straight from its arrays (a
    basket's few rows: no sparse sub-matrix is built)."""
    at = _entries(m, rows)
    return np.bincount(m.indices[at], weights=m.data[at], minlength=m.shape[1])


def row_sum_at(m: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The columns :func:`row_sum` does not leave at zero and its values there (the same sums,
    added in the same order), without a dense vector over every column."""
    at = _entries(m, rows)
    cols, inverse = np.unique(m.indices[at], return_inverse=True)
    return cols, np.bincount(inverse, weights=m.data[at], minlength=len(cols))


def values_at(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[rows][:, cols].toarray()`` (``cols`` distinct), from the rows' entries alone: a column
    selection of a CSR matrix scans every stored entry of the rows it keeps, this only those of
    ``rows`` (a basket's few), looked up among the sorted ``cols``; duplicate entries add up in
    their stored order, as ``toarray`` adds them."""
    sub = m[rows]
    order = np.argsort(cols, kind="stable")
    sorted_cols = np.asarray(cols)[order]
    at = np.minimum(np.searchsorted(sorted_cols, sub.indices), max(len(cols) - 1, 0))
    hit = sorted_cols[at] == sub.indices if len(cols) else np.zeros(len(sub.indices), dtype=bool)
    out = np.zeros((len(rows), len(cols)), dtype=sub.dtype)
    row = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    np.add.at(out, (row[hit], order[at[hit]]), sub.data[hit])
    return out


def _normed(raw: np.ndarray) -> np.ndarray:
    """Rows min-max normalized as the blend takes them (:func:`minmax_rows`, non-finite -> 0);
    ``raw`` (a fresh float32 block) is normalized in place."""
    n = minmax_rows(raw, inplace=True)
    n[~np.isfinite(n)] = 0.0
    return n


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)  # read in full, never memory-mapped


class BasketScorer:
    """Scores baskets of product positions over the catalog (``items``: the catalog's ids)."""

    def __init__(self, model_dir: Path, items: np.ndarray, products: IdIndex):
        cdir = model_dir / "components"
        self.products = products
        self.item_pos = products.positions_of(items)  # catalog column -> product position
        if (self.item_pos < 0).any():
            raise ValueError(f"{model_dir / 'items.npy'}: catalog items missing from products.parquet")
        self.n_items = len(self.item_pos)
        self.col_of = np.full(len(products), -1, dtype=np.int64)  # product position -> catalog column
        self.col_of[self.item_pos] = np.arange(self.n_items)
        hybrid = json.loads((model_dir / "hybrid.json").read_text())
        self.names = list(hybrid["basket"]["components"])
        self.weights = {n: float(w) for n, w in hybrid["basket"]["weights"].items()}
        self.rules = hybrid["all"]["rules"]
        params = json.loads((cdir / "components.json").read_text())
        self.params = params
        with np.load(model_dir / "rules_all.npz", allow_pickle=False) as rules:
            self.multiplier = rules["multiplier"].astype(np.float32)
            self.allowed = rules["allowed"].astype(bool)
            self.categories = rules["categories"].astype(np.int64)
        self.disallowed = np.flatnonzero(~self.allowed)
        self.vectors: dict[str, np.ndarray] = {}
        if "global_popularity" in self.names:
            self.vectors["global_popularity"] = _load(cdir / "global_popularity.npy")
        if "segmented_popularity" in self.names:
            self.vectors["segmented_popularity"] = _load(cdir / "segmented_popularity_global.npy")
        if "buy_again" in self.names:
            p = params["buy_again"]
            self.prior = _load(cdir / "popularity_prior.npy")
            self.ba_weight, self.ba_tie = float(p["backfill_weight"]), float(p["tie_break"])
            self.ba_backfill = (self.ba_weight * self.prior).astype(np.float32)
        if "als" in self.names:
            p = params["als"]
            self.als = p
            self.item_factors = _load(cdir / "als_item_factors.npy")
            y = self.item_factors.astype(np.float64)
            self.yty = y.T @ y
            self.fold_in_base = self.yty + float(p["regularization"]) * np.eye(self.yty.shape[0])
            self.als_fallback = _load(cdir / "als_fallback.npy")
            self.bm25_norm = _load(cdir / "als_bm25_length_norm.npy") if p["weighting"] == "bm25" else None
        self.knn = None
        if (cdir / "itemknn_similarity.npz").exists():
            self.knn = sp.load_npz(cdir / "itemknn_similarity.npz").tocsr()
            self.knn_backfill = _load(cdir / "itemknn_backfill.npy")
            self.knn_value = _basket_value(params["itemknn"]["values"])
            # what adding an all-zero row_sum gives the backfill (x + 0 = x, but -0 + 0 = +0)
            self.knn_backfill_zero = self.knn_backfill + self.knn_backfill.dtype.type(0.0)
        if "ease" in self.names:
            self.ease_b = _load(cdir / "ease_weights.npy")
            self.ease_items = _load(cdir / "ease_items.npy")
            self.ease_row_of = np.full(self.n_items, -1, dtype=np.int64)  # catalog column -> EASE row
            self.ease_row_of[self.ease_items] = np.arange(len(self.ease_items))
            self.ease_backfill = _load(cdir / "ease_backfill.npy")
            self.ease_value = _basket_value(params["ease"]["values"])
        self.tfidf_all = sp.load_npz(cdir / "content_tfidf.npz").tocsr()
        tfidf_pos = products.positions_of(read_ids(cdir, "content_product_ids"))
        self.tfidf_row_of = np.full(len(products), -1, dtype=np.int64)  # product position -> TF-IDF row
        self.tfidf_row_of[tfidf_pos[tfidf_pos >= 0]] = np.flatnonzero(tfidf_pos >= 0)
        self.tfidf_pos = tfidf_pos
        self.tfidf_items = self.tfidf_all[self.tfidf_row_of[self.item_pos]].tocsr()
        self.content_fallback = _load(cdir / "content_fallback.npy")
        # basket-independent components, normalized once (as recommend would normalize them)
        self.normed_vectors = {name: _normed(np.array(v, dtype=np.float32)[None, :])[0]
                               for name, v in self.vectors.items()}

    # ---------------------------------------------------------- components
    def positions(self, product_ids) -> np.ndarray:
        """Product positions of product ids (as the files or a request hold them; -1: unknown)."""
        return self.products.positions(list(product_ids))

    def columns(self, pos: np.ndarray) -> np.ndarray:
        """Catalog columns of the basket's products that are in the catalog (sorted, unique)."""
        cols = self.col_of[np.asarray(pos, dtype=np.int64)]
        return np.unique(cols[cols >= 0])

    def als_confidence(self, cols: np.ndarray) -> np.ndarray:
        """Confidence of one basket (each product bought once), as :meth:`ALS.confidence`."""
        p = self.als
        x = np.ones(len(cols))
        if p["weighting"] == "log":
            w = 1.0 + p["alpha"] * np.log1p(x)
        elif p["weighting"] == "none":
            w = p["alpha"] * x
        else:
            idf = np.log(self.n_items) - np.log1p(len(cols))
            k1 = p["bm25_k1"]
            w = x * (k1 + 1.0) / (k1 * self.bm25_norm[cols] + x) * idf
            w = p["alpha"] * np.maximum(w, 1e-6)
        return w.astype(np.float32)

    def fold_in(self, cols: np.ndarray) -> np.ndarray:
        """Least-squares user factor of a basket against the item factors (implicit's
        ``recalculate_user``): ``(Y'Y + Y'(C - I)Y + reg I) x = Y'C p``."""
        conf = self.als_confidence(cols).astype(np.float64)
        y = self.item_factors[cols].astype(np.float64)
        a = self.fold_in_base.copy()  # Y'Y + reg I
        a += (y.T * (conf - 1.0)) @ y
        b = (y * conf[:, None]).sum(axis=0)
        return np.linalg.solve(a, b).astype(np.float32)

    def component_scores(self, product_ids) -> dict[str, np.ndarray]:
        """Raw score vector (over the catalog) of every basket component, for product ids."""
        return self.scores_of(self.positions(product_ids))

    def scores_of(self, pos: np.ndarray) -> dict[str, np.ndarray]:
        """Raw score vector (over the catalog) of every basket component, for product positions."""
        cols = self.columns(pos)
        out = {}
        for name in self.names:
            if name in self.vectors:
                s = self.vectors[name].copy()
            elif name == "buy_again":
                s = self.ba_backfill.copy()
                s[cols] = (self.ba_weight + 1.0 * (1.0 + self.ba_tie * self.prior[cols])).astype(np.float32)
            elif name == "als":
                s = (self.item_factors @ self.fold_in(cols)) if len(cols) else self.als_fallback.copy()
            elif name == "itemknn":
                s = self.knn_backfill.copy()
                if len(cols):
                    s += self.knn_value * row_sum(self.knn, cols).astype(np.float32)
            elif name == "ease":
                s = self.ease_backfill.copy()
                rows = self.ease_row_of[cols] if len(cols) else cols
                rows = rows[rows >= 0]
                if len(rows):
                    s[self.ease_items] += self.ease_value * self.ease_b[rows].sum(axis=0, dtype=np.float32)
            elif name == "content":
                s = self.content_scores(pos)
            else:  # pragma: no cover - export writes only the components above
                raise ValueError(f"no basket scorer for component {name!r}")
            out[name] = np.asarray(s, dtype=np.float32)
        return out

    def content_rows(self, pos: np.ndarray) -> np.ndarray:
        rows = self.tfidf_row_of[np.asarray(pos, dtype=np.int64)]
        return np.unique(rows[rows >= 0])

    def content_scores(self, pos: np.ndarray) -> np.ndarray:
        """Cosine of the basket's TF-IDF profile (normalized sum of its products' rows) with the catalog."""
        rows = self.content_rows(pos)
        prof = row_sum(self.tfidf_all, rows) if len(rows) else None
        norm = float(np.sqrt((prof ** 2).sum())) if prof is not None else 0.0
        if norm == 0.0:
            return self.content_fallback.copy()
        return np.asarray(self.tfidf_items @ (prof / norm).astype(np.float32), dtype=np.float32).ravel()

    # ------------------------------------------------------------ batches
    #: Rows of item factors per block of :meth:`als_many`: a block (1024 x 128 float32: 512 KB)
    #: stays in the core's cache while every basket of the batch takes its product. A multiple of
    #: 64, so that BLAS groups the rows of a block as it groups them in the whole matrix.
    als_block_rows = 1024

    def als_many(self, xs: np.ndarray, pool=None) -> np.ndarray:
        """``item_factors @ x`` for each user factor ``x`` (rows of ``xs``), the same values.

        One matrix-vector product alone reads all the factors from memory (35 MB on Complete
        Journey, about 2 ms); here they are read once per batch, block by block, and every
        basket's product runs over the block while it is in cache. Each block's product is
        the same BLAS matrix-vector kernel over the same rows as the whole product (each score
        is one row's dot product, summed in the kernel's fixed order), so the scores are those
        of ``item_factors @ x`` with one BLAS thread (the API's setting); a matrix-matrix
        product (``item_factors @ xs.T``) would sum in another order and change last bits.

        ``pool`` (a :class:`concurrent.futures.Executor`): every other block is computed by one
        of its threads meanwhile (BLAS runs without the GIL), the same products on another core.
        """
        y = self.item_factors
        out = np.empty((len(xs), len(y)), dtype=np.result_type(y.dtype, xs.dtype))
        step = self.als_block_rows

        def blocks(starts) -> None:
            for a in starts:
                blk = y[a:a + step]
                for j in range(len(xs)):
                    np.matmul(blk, xs[j], out=out[j, a:a + step])

        starts = range(0, len(y), step)
        if pool is None or len(starts) < 2:
            blocks(starts)
        else:
            other = pool.submit(blocks, starts[1::2])
            blocks(starts[0::2])
            other.result()
        return out

    def normed_many(self, pos_list: list, cols_list: list, pool=None) -> dict[str, np.ndarray]:
        """Normalized score rows of every component for a batch of baskets (positions and their
        catalog columns): ``{name: (baskets, items)}``, or ``(items,)`` for a component the
        basket does not change. Row ``i`` holds the values :meth:`scores_of` gives basket ``i``
        after the blend's normalization, computed by the same operations in the same order."""
        nb, out = len(pos_list), {}
        with_cols = [i for i, c in enumerate(cols_list) if len(c)]
        for name in self.names:
            if name in self.normed_vectors:
                out[name] = self.normed_vectors[name]
                continue
            if name == "buy_again":
                raw = np.repeat(self.ba_backfill[None, :], nb, axis=0)
                for i in with_cols:
                    c = cols_list[i]
                    raw[i, c] = (self.ba_weight + 1.0 * (1.0 + self.ba_tie * self.prior[c])).astype(np.float32)
            elif name == "als":
                folded = self.als_many(np.stack([self.fold_in(cols_list[i]) for i in with_cols]), pool) \
                    if with_cols else None
                if len(with_cols) == nb and folded.dtype == np.float32:
                    raw = folded
                else:
                    raw = np.repeat(self.als_fallback[None, :], nb, axis=0)
                    if with_cols:
                        raw[with_cols] = folded
            elif name == "itemknn":  # the rows' sum added where it is not zero (elsewhere x + 0: backfill_zero)
                raw = np.repeat(self.knn_backfill_zero[None, :], nb, axis=0)
                for i, c in enumerate(cols_list):
                    if len(c):
                        at, sums = row_sum_at(self.knn, c)
                        raw[i, at] += self.knn_value * sums.astype(np.float32)
                    else:
                        raw[i] = self.knn_backfill
            elif name == "ease":
                raw = np.repeat(self.ease_backfill[None, :], nb, axis=0)
                for i in with_cols:
                    rows = self.ease_row_of[cols_list[i]]
                    rows = rows[rows >= 0]
                    if len(rows):
                        raw[i, self.ease_items] += self.ease_value * self.ease_b[rows].sum(axis=0, dtype=np.float32)
            elif name == "content":
                raw = np.stack([self.content_scores(p) for p in pos_list])
            else:  # pragma: no cover - export writes only the components above
                raise ValueError(f"no basket scorer for component {name!r}")
            out[name] = _normed(np.asarray(raw, dtype=np.float32))
        return out

    # -------------------------------------------------------------- blend
    def recommend(self, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, list]:
        """Top-k product positions, scores and reasons (``similar_to:<position>`` of a basket
        product) for a basket of product positions (basket products excluded)."""
        return self.recommend_many([pos], k)[0]

    def recommend_many(self, baskets: list, k, pool=None) -> list[tuple[np.ndarray, np.ndarray, list]]:
        """:meth:`recommend` of each basket (product positions; ``k`` one int or one per basket),
        computed together: the same answers, ties and reasons as each basket scored alone
        (``pool``: a thread for half of the ALS products, :meth:`als_many`)."""
        pos_list = [np.unique(np.asarray(p, dtype=np.int64)) for p in baskets]
        ks = [int(k)] * len(pos_list) if np.ndim(k) == 0 else [int(x) for x in k]
        if len(ks) != len(pos_list):
            raise ValueError("one k per basket")
        if not pos_list:
            return []
        cols_list = [self.columns(p) for p in pos_list]
        normed = self.normed_many(pos_list, cols_list, pool)
        total = np.zeros((len(pos_list), self.n_items), dtype=np.float32)
        for name, n in normed.items():
            total += np.float32(self.weights[name]) * n
        total *= self.multiplier
        if len(self.disallowed):
            total[:, self.disallowed] = -np.inf
        for i, c in enumerate(cols_list):
            total[i, c] = -np.inf
        out = [None] * len(pos_list)
        for asked in sorted(set(ks)):  # the baskets asking for the same k ranked together
            rows = [i for i, x in enumerate(ks) if x == asked]
            block = total if len(rows) == len(ks) else total[rows]
            kk = min(asked, self.n_items)
            if self.rules.get("max_per_category"):
                idx, val = diversify(block, self.categories, kk, int(self.rules["max_per_category"]))
            else:
                idx, val = top_k(block, kk)
            for r, i in enumerate(rows):
                keep = np.isfinite(val[r])
                cols = idx[r][keep]
                row_normed = {name: n[i] if n.ndim == 2 else n for name, n in normed.items()}
                out[i] = (self.item_pos[cols], val[r][keep], self.explain(pos_list[i], cols, row_normed))
        return out

    def explain(self, pos: np.ndarray, cols: np.ndarray, normed: dict) -> list:
        """Per recommended column: ``"trending"`` or the position of the basket product it is similar to."""
        names = [n for n in normed if n != "buy_again"]  # basket items are excluded: nothing to buy again
        out: list = ["trending"] * len(cols)
        if not names or not len(cols):
            return out
        contrib = np.stack([self.weights[n] * normed[n][cols] for n in names], axis=1)
        top = np.argmax(contrib, axis=1)
        best = contrib[np.arange(len(cols)), top]
        top_name = np.asarray(names, dtype=object)[top]
        top_name[~(best > 0)] = "trending"
        similar = np.flatnonzero(np.isin(top_name, (*COLLABORATIVE, "content")))
        if len(similar):
            past = self._similar_in_basket(pos, cols[similar], top_name[similar] == "content")
            for i, p in zip(similar.tolist(), past.tolist()):
                out[i] = p
        return out

    def _similar_in_basket(self, pos: np.ndarray, cols: np.ndarray, by_content: np.ndarray) -> np.ndarray:
        """Per recommended column, the position of the basket product most similar to it: by item-kNN
        then TF-IDF cosine (``by_content``: the other way round); else the basket's first product."""
        n = len(cols)
        knn_best, content_best = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
        bcols = self.columns(pos)
        if self.knn is not None and len(bcols):
            sims = values_at(self.knn, bcols, cols)  # basket x recommended
            knn_best = np.where(sims.max(axis=0) > 0, self.item_pos[bcols[np.argmax(sims, axis=0)]], -1)
        rows = self.content_rows(pos)
        if len(rows):
            # the recommended items' rows (a column selection would scan the whole matrix); each
            # cosine still sums over the basket product's terms in their stored order
            sims = (self.tfidf_all[rows] @ self.tfidf_items[cols].T).toarray()
            content_best = np.where(sims.max(axis=0) > 0, self.tfidf_pos[rows[np.argmax(sims, axis=0)]], -1)
        first = np.where(by_content, content_best, knn_best)
        second = np.where(by_content, knn_best, content_best)
        return np.where(first >= 0, first, np.where(second >= 0, second, int(pos[0])))
