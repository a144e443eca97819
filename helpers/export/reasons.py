"""Reasons and explanations of the export's recommendations.

For each recommended item the component with the largest weighted, normalized
score (:meth:`Hybrid.contributions`) names the reason (see
:mod:`helpers.export.production`). Internally a ``similar_to:`` reason names the
product's integer code; :func:`decode_reasons` turns it into the source's own
product id for every file (``similar_to:HBZ-4720-BL``), and :func:`reason_label`
reads either.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.data.ids import IdMap
from helpers.data.products import ProductLookup
from helpers.models.base import FitData, top_k
from helpers.models.hybrid import Hybrid, Rules, diversify, item_attribute, minmax_rows
from helpers.tuning import workflow as models

COLLABORATIVE = ("als", "itemknn", "ease")
SIMILARITY_COMPONENTS = (*COLLABORATIVE, "content")
SIMILAR_TO = "similar_to:"


def decode_reasons(reasons, product_map: IdMap | None) -> np.ndarray:
    """Reason codes with the ``similar_to:`` product code replaced by the source's product id."""
    reasons = np.asarray(reasons, dtype=object)
    if product_map is None or product_map.is_identity or not len(reasons):
        return reasons
    uniq, inv = np.unique(reasons.astype(str), return_inverse=True)
    sim = np.char.startswith(uniq.astype(str), SIMILAR_TO)
    out = uniq.astype(object)
    if sim.any():
        codes = np.array([int(r[len(SIMILAR_TO):]) for r in uniq[sim]], dtype=np.int64)
        out[sim] = [SIMILAR_TO + str(p) for p in product_map.decode(codes)]
    return out[inv.reshape(reasons.shape)]


def reason_label(reason: str, products: ProductLookup) -> str:
    """The human sentence of a reason code."""
    if reason == "buy_again":
        return "Buy it again: you have bought this before"
    if reason == "trending":
        return "Trending: popular with all customers"
    if reason.startswith("similar_to:"):
        return f"Because you bought {products.name(reason.split(':', 1)[1])}"
    if reason.startswith("popular_in_segment:"):
        seg = reason.split(":", 1)[1]
        stype, _, value = seg.partition("=")
        return (f"Popular with customers like you ({stype.replace('_', ' ')}: {value})" if value
                else f"Popular with customers like you ({seg})")
    return reason


def label_reasons(reasons, products: ProductLookup) -> np.ndarray:
    reasons = np.asarray(reasons, dtype=object)
    uniq, inv = np.unique(reasons.astype(str), return_inverse=True)
    labels = np.array([reason_label(r, products) for r in uniq], dtype=object)
    return labels[inv.reshape(-1)] if len(reasons) else np.zeros(0, dtype=object)


def rows_frame(customer_ids, ranks, product_ids, scores, reasons, products: ProductLookup, version: str,
               generated_at: str, id_maps: dict[str, IdMap] | None = None) -> pd.DataFrame:
    """Recommendation rows with every export column (:data:`REC_COLUMNS`); ids and reasons in the
    source's own identifiers (``id_maps``; the codes are the ids when it is None)."""
    id_maps = id_maps or {}
    product_ids = np.asarray(product_ids, dtype=np.int64)
    cmap, pmap = id_maps.get("customer_id") or IdMap("customer_id"), id_maps.get("product_id") or IdMap("product_id")
    return pd.DataFrame({
        "customer_id": cmap.decode(customer_ids),
        "rank": np.asarray(ranks, dtype=np.int32),
        "product_id": pmap.decode(product_ids),
        "score": np.asarray(scores, dtype=np.float64),
        "reason": decode_reasons(reasons, pmap),
        "reason_label": label_reasons(reasons, products),
        "description": products.attribute(product_ids, "description"),
        "category": products.attribute(product_ids, "category"),
        "brand": products.attribute(product_ids, "brand"),
        "model_version": version,
        "generated_at": generated_at,
    })


# -------------------------------------------------------------- explanations
def _best_other_per_row(m: sp.csr_matrix, own: np.ndarray) -> np.ndarray:
    """Per row ``r`` of ``m``, the column of the largest positive entry other than column
    ``own[r]`` (ties: lower column); -1 if none."""
    m = sp.csr_matrix(m)
    val = np.where(m.indices == np.repeat(own, np.diff(m.indptr)), 0, m.data)
    return _best_per_row(m.indptr, m.indices.astype(np.int64), val)


def _best_per_row(indptr: np.ndarray, col: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Per CSR row, the ``col`` of the largest positive ``val`` (ties: lower col); -1 if none."""
    n = len(indptr) - 1
    out = np.full(n, -1, dtype=np.int64)
    val = np.where(np.isfinite(val) & (val > 0), val, 0.0)
    has = np.diff(indptr) > 0
    if not has.any():
        return out
    starts = indptr[:-1][has]
    row_max = np.zeros(n, dtype=val.dtype)
    row_max[has] = np.maximum.reduceat(val, starts)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    big = np.iinfo(np.int64).max
    cand = np.where((val == row_max[rows]) & (val > 0), col, big)
    best = np.full(n, big, dtype=np.int64)
    best[has] = np.minimum.reduceat(cand, starts)
    return np.where(best < big, best, -1)


def _top_per_row(m: sp.csr_matrix, limit: int):
    """Flat ``(row, col, value)`` of each row's ``limit`` largest entries and row offsets."""
    m = sp.csr_matrix(m)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))
    r, c, v = rows[order], m.indices[order].astype(np.int64), m.data[order]
    start = np.searchsorted(r, r, side="left")
    keep = (np.arange(len(r)) - start) < limit
    r, c, v = r[keep], c[keep], v[keep]
    offsets = np.searchsorted(r, np.arange(m.shape[0] + 1), side="left")
    return c, v, offsets


class Explainer:
    """``similar_to`` explanations: which past product of a customer makes an item relevant."""

    PAIR_BATCH = 4096
    CUSTOMER_BATCH = 256

    def __init__(self, fit: FitData, content, itemknn=None, max_history: int = 100):
        self.fit = fit
        self.x = sp.csr_matrix(fit.user_items, dtype=np.float32)
        self.tfidf = sp.csr_matrix(content.item_tfidf, dtype=np.float32)
        self.weights = sp.csr_matrix(content.weights, dtype=np.float32)
        self.sim_t = (sp.csr_matrix(itemknn.similarity_, dtype=np.float32).T.tocsr()
                      if itemknn is not None else None)
        self.max_history = max_history

    def knn(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """argmax_j x[u, j] * S[j, i] over the customer's past products j != i."""
        out = np.full(len(rows), -1, dtype=np.int64)
        if self.sim_t is None:
            return out
        for s in range(0, len(rows), self.PAIR_BATCH):
            r, c = rows[s:s + self.PAIR_BATCH], cols[s:s + self.PAIR_BATCH]
            out[s:s + len(r)] = _best_other_per_row(self.sim_t[c].multiply(self.x[r]), c)
        return out

    def content(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """argmax_j w[u, j] * cos(j, i) over the customer's ``max_history`` most weighted products j != i.

        Customers are taken ``CUSTOMER_BATCH`` at a time; each one's vocabulary is
        shifted to its own block of columns, so one sparse product
        ``pairs x (customer, past product)`` holds exactly the same-customer cosines.
        """
        out = np.full(len(rows), -1, dtype=np.int64)
        if len(rows) == 0:
            return out
        uniq, q = np.unique(rows, return_inverse=True)
        hc, hv, off = _top_per_row(self.weights[uniq], self.max_history)
        n_terms = self.tfidf.shape[1]
        by_customer = np.argsort(q, kind="stable")
        bounds = np.searchsorted(q[by_customer], np.arange(len(uniq) + 1))
        for u0 in range(0, len(uniq), self.CUSTOMER_BATCH):
            u1 = min(u0 + self.CUSTOMER_BATCH, len(uniq))
            pairs = by_customer[bounds[u0]:bounds[u1]]
            h = slice(off[u0], off[u1])
            if len(pairs) == 0 or off[u1] == off[u0]:
                continue
            owner_h = np.repeat(np.arange(u1 - u0), np.diff(off[u0:u1 + 1]))
            past = self._shifted(hc[h], owner_h, n_terms, u1 - u0)
            recs = self._shifted(cols[pairs], q[pairs] - u0, n_terms, u1 - u0)
            cos = (recs @ past.T).tocsr()  # pairs x past products of the same customer
            cos.sort_indices()
            entry_row = np.repeat(np.arange(len(pairs)), np.diff(cos.indptr))
            j = hc[h][cos.indices]
            val = cos.data * hv[h][cos.indices]
            val[j == cols[pairs][entry_row]] = 0.0  # never the item itself
            out[pairs] = _best_per_row(cos.indptr, j, val)
        return out

    def _shifted(self, items: np.ndarray, owner: np.ndarray, n_terms: int, n_owners: int) -> sp.csr_matrix:
        """TF-IDF rows of ``items``, the terms of row r moved to block ``owner[r]`` of the columns."""
        m = self.tfidf[items]
        indices = m.indices.astype(np.int64) + np.repeat(owner.astype(np.int64) * n_terms, np.diff(m.indptr))
        return sp.csr_matrix((m.data, indices, m.indptr), shape=(len(items), n_terms * n_owners))

    def most_bought(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The customer's most bought past product other than the item (ties: lower column)."""
        out = np.full(len(rows), -1, dtype=np.int64)
        for s in range(0, len(rows), self.PAIR_BATCH):
            r, c = rows[s:s + self.PAIR_BATCH], cols[s:s + self.PAIR_BATCH]
            out[s:s + len(r)] = _best_other_per_row(self.x[r], c)
        return out

    def similar_past(self, rows: np.ndarray, cols: np.ndarray, component: np.ndarray) -> np.ndarray:
        """Past catalog column per pair: kNN first for collaborative components, content first for content."""
        out = np.full(len(rows), -1, dtype=np.int64)
        is_content = component == "content"
        for first, mask in (("content", is_content), ("knn", ~is_content)):
            idx = np.flatnonzero(mask)
            if not len(idx):
                continue
            order = (self.content, self.knn) if first == "content" else (self.knn, self.content)
            for fn in (*order, self.most_bought):
                todo = idx[out[idx] < 0]
                if not len(todo):
                    break
                out[todo] = fn(rows[todo], cols[todo])
        return out


def history_membership(x: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether customer row ``rows[a]`` bought catalog column ``cols[a, b]`` (``(n, K)`` bool)."""
    sub = x[rows].tocoo()
    n_items = x.shape[1]
    keys = sub.row.astype(np.int64) * n_items + sub.col
    pair = np.arange(len(rows), dtype=np.int64)[:, None] * n_items + cols
    return np.isin(pair, keys)


def explain(hybrid: Hybrid, explainer: Explainer, rows: np.ndarray, cols: np.ndarray,
            valid: np.ndarray) -> np.ndarray:
    """Reason code of every (customer row, catalog column) pair of a block (``(n, K)`` object array)."""
    n, k = cols.shape
    reasons = np.full((n, k), "trending", dtype=object)
    if n == 0 or k == 0:
        return reasons
    safe_cols = np.where(valid, cols, 0)
    contrib = hybrid.contributions(rows, safe_cols)
    names = list(contrib)
    stack = np.stack([np.asarray(contrib[c], dtype=np.float64) for c in names], axis=2)
    stack[~np.isfinite(stack)] = -np.inf
    in_hist = history_membership(explainer.x, rows, safe_cols)
    repeat = [j for j, c in enumerate(names) if models.base_model(c) == "buy_again"]
    for j in repeat:  # "buy it again" only for something the customer bought
        stack[..., j] = np.where(in_hist, stack[..., j], -np.inf)
    top = np.argmax(stack, axis=2)
    best = np.take_along_axis(stack, top[..., None], axis=2)[..., 0]
    top_name = np.asarray(names, dtype=object)[top]
    top_name[~(np.isfinite(best) & (best > 0))] = "trending"
    reasons[np.isin(top_name, [names[j] for j in repeat])] = "buy_again"
    if "segmented_popularity" in names:
        seg = hybrid.components["segmented_popularity"]
        seg = getattr(seg, "inner", seg)
        per_row = np.asarray(segment_reasons(seg), dtype=object)[_segment_codes(seg, rows)]
        m = top_name == "segmented_popularity"
        reasons[m] = np.broadcast_to(per_row[:, None], (n, k))[m]
    sim = np.isin(top_name, SIMILARITY_COMPONENTS) & valid
    if sim.any():
        rr, cc = np.nonzero(sim)
        past = explainer.similar_past(rows[rr], cols[rr, cc], top_name[rr, cc].astype(str))
        ok = past >= 0
        ids = explainer.fit.item_ids[np.where(ok, past, 0)]
        text = np.array([f"similar_to:{int(p)}" for p in ids], dtype=object)
        fallback = np.where(in_hist[rr, cc], "buy_again", "trending").astype(object)
        reasons[rr, cc] = np.where(ok, text, fallback)
    return reasons


# ------------------------------------------------------------------ cold start
def segment_reasons(model) -> list[str]:
    """Reason code per row of a popularity model's score table (last row: global)."""
    names = list(getattr(model, "segments_", []))
    stype = getattr(model, "segment_type", "segment")
    return [f"popular_in_segment:{stype}={s}" for s in names] + ["trending"]


def _segment_codes(model, rows: np.ndarray) -> np.ndarray:
    """Row of the cold-start table of each customer row (``-1``: unknown -> global)."""
    rows = np.asarray(rows, dtype=np.int64)
    if hasattr(model, "code_"):
        n_seg = len(model.segments_)
        return np.where(rows >= 0, model.code_[np.maximum(rows, 0)], n_seg)
    return np.zeros(len(rows), dtype=np.int64)


def _categories(fit: FitData) -> np.ndarray:
    cats = item_attribute(fit, "category")
    return pd.factorize(pd.Series(cats).fillna("(none)"), sort=True)[0]


def _select(scores: np.ndarray, k: int, rules: Rules, categories: np.ndarray | None):
    """Top-k (or the diversified top-k) of a score block."""
    if rules.max_per_category:
        return diversify(scores, categories, k, rules.max_per_category)
    return top_k(scores, k)


def cold_start_lists(model, fit: FitData, rules: Rules, k: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Top-k catalog columns and scores per cold-start table row (segments..., global) and reasons."""
    table = (np.asarray(model.table_, dtype=np.float32) if hasattr(model, "table_")
             else np.asarray(model.score(np.array([-1])), dtype=np.float32))
    mult, allowed = rules.item_multiplier_and_mask(fit)
    s = minmax_rows(table)
    s[~np.isfinite(s)] = 0.0
    s = s * mult[None, :]
    s[:, ~allowed] = -np.inf
    idx, val = _select(s, k, rules, _categories(fit) if rules.max_per_category else None)
    return idx, val, segment_reasons(model)
