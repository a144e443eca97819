"""The storefront export: the production recommender refitted on all data, written for other systems.

What is exported
----------------
* ``recommendations.parquet|.csv|.jsonl``: for **every** customer of ``dim_customer``
  the top ``top_n`` products of the tuned hybrid of protocol ``all`` (repeat
  purchases allowed), one row per (customer, rank) with the columns
  :data:`REC_COLUMNS`.
* ``recommendations_new.parquet``: the same for the hybrid of protocol ``new``
  (its own weights), each customer's past purchases excluded.
* ``similar_products.parquet|.csv|.jsonl``: for every product of ``dim_product``
  (new, never-bought products included) its ``n_similar`` most similar products
  by TF-IDF cosine of the product text (the content model's
  ``similar_products``); products without any similar product (no known
  words) have no rows.
* ``recommendations.schema.json``, ``similar_products.schema.json``: JSON Schema
  (2020-12) of one row; ``manifest.json``: model version, data fingerprint, row
  counts, parameters.
* ``model/``: the artifacts the API (:mod:`helpers.serving.api`) loads, no pickle:
  NumPy ``.npy``, SciPy sparse ``.npz``, Parquet and JSON (see :func:`write_artifacts`).

The production model
--------------------
Components are refitted on **all** transactions (``as_of`` = the day after the
last transaction date) with the parameters of ``tuning.json``
(:func:`helpers.tuning.workflow.fit_components`); weights, business rules and the light
/ heavy threshold come from its ``hybrid`` entry, never retyped. Components
whose weight is zero for every customer are left out (they change nothing).
Parameters stored as ``NaN`` by the grid tables (a ``None`` candidate, e.g.
``half_life_days=None``: no decay) are read back as ``None``.

Cold start
----------
Customers without any purchase get the tuned segmented popularity of their
segment (``segmented_popularity`` of the protocol; global popularity when it
is not tuned): reason ``popular_in_segment:<segment_type>=<segment>`` when the
segment is large enough to have its own ranking, else ``trending``. Customers
the export has never seen (API) get the global list (``trending``). Business
rules (availability, boosts, diversity) apply to these lists too.

Reasons
-------
For each recommended item the component with the largest weighted, normalized
score (:meth:`Hybrid.contributions`) names the reason: ``buy_again`` (only
for an item the customer bought), ``trending`` (global popularity),
``popular_in_segment:...`` (segmented popularity), and for ALS, item-kNN, EASE
and content ``similar_to:<product_id>``: the customer's past product ``j``
that contributes most to the item ``i``: ``x[u, j] * S[j, i]`` with the
item-kNN similarity ``S`` for the collaborative components (ALS, item-kNN,
EASE), ``w[u, j] * cos(j, i)`` with the content model's purchase weights and
TF-IDF cosine for content, among the customer's ``max_history`` most weighted
products; each falls back to the other similarity, then to the customer's most
bought product. ``reason_label`` is the human sentence (:func:`label_reasons`).

Scale and determinism
---------------------
Customers are scored in chunks (the dense customers x catalog score block never
exceeds ``chunk_size`` rows); every file is written chunk by chunk (Parquet in
row groups). The export is written into a temporary sibling folder and swapped
into place only when complete: a failed export leaves the previous one intact.
Two exports of the same data, tuning and seed are identical apart from
``generated_at``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from helpers import config
from helpers.data.products import ProductLookup
from helpers.data.star import fingerprint as compute_fingerprint
from helpers.data.star import load_meta, load_tables
from helpers.models.base import FitData, Recommender, top_k
from helpers.models.content import ContentTFIDF
from helpers.models.hybrid import Hybrid, Rules, diversify, item_attribute, minmax_rows
from helpers.models.popularity import popularity_prior
from helpers.tuning import model_cache
from helpers.tuning import workflow as models
from helpers.tuning.production import N_SIMILAR, production_fit_data, production_tuning, similar_products

MAX_K = 100  # largest k the API serves; depth of the precomputed per-customer lists
SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
REC_COLUMNS = ["customer_id", "rank", "product_id", "score", "reason", "reason_label", "description", "category",
               "brand", "model_version", "generated_at"]
TOP_COLUMNS = ["customer_id", "rank", "product_id", "score", "reason"]
SIM_COLUMNS = ["product_id", "rank", "similar_product_id", "score"]
COLLABORATIVE = ("als", "itemknn", "ease")
SIMILARITY_COMPONENTS = (*COLLABORATIVE, "content")
VARIANTS = {"all": "recommendations", "new": "recommendations_new"}
SCORE_DECIMALS = 6
REASON_PATTERN = r"^(buy_again|trending|similar_to:-?[0-9]+|popular_in_segment:.+)$"

REC_SCHEMA = pa.schema([("customer_id", pa.int64()), ("rank", pa.int32()), ("product_id", pa.int64()),
                        ("score", pa.float64()), ("reason", pa.string()), ("reason_label", pa.string()),
                        ("description", pa.string()), ("category", pa.string()), ("brand", pa.string()),
                        ("model_version", pa.string()), ("generated_at", pa.string())])
TOP_SCHEMA = pa.schema([("customer_id", pa.int64()), ("rank", pa.int32()), ("product_id", pa.int64()),
                        ("score", pa.float64()), ("reason", pa.string())])
SIM_SCHEMA = pa.schema([("product_id", pa.int64()), ("rank", pa.int32()), ("similar_product_id", pa.int64()),
                        ("score", pa.float64())])


# ------------------------------------------------------------------ folders
def default_export_dir(processed_dir=None) -> Path:
    """``data/exports`` for the default run, ``<processed_dir>/exports`` for ``--output-dir`` runs."""
    if processed_dir is None or Path(processed_dir).resolve() == config.PROCESSED_DIR.resolve():
        return config.EXPORTS_DIR
    return Path(processed_dir).resolve() / "exports"


# --------------------------------------------------------------- parameters


def model_version(tuning: dict, fingerprint: str | None, seed: int) -> str:
    """Short sha256 of the tuned parameters, the data fingerprint and the seed."""
    payload = json.dumps({"tuning": tuning, "data_fingerprint": fingerprint, "seed": int(seed)},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _weights_used(weights: dict, name: str) -> bool:
    buckets = [weights["light"], weights["heavy"]] if "light" in weights and "heavy" in weights else [weights]
    return any(float(b.get(name, 0.0) or 0.0) > 0.0 for b in buckets)


def light_weights(weights: dict) -> dict:
    """The weights a customer with a short history (or an anonymous basket) gets."""
    return dict(weights["light"]) if "light" in weights and "heavy" in weights else dict(weights)


# ------------------------------------------------------------------ model
class _Memo(Recommender):
    """A fitted component whose last ``score(rows)`` is kept, so that the hybrid's
    ``recommend`` and ``contributions`` on the same chunk score it once."""

    def __init__(self, inner: Recommender):
        self.inner = inner
        self.data = inner.data
        self.name = inner.name
        self._key = None
        self._value = None

    def fit(self, data):  # pragma: no cover - components are fitted before wrapping
        raise TypeError("a memoized component is already fitted")

    def score(self, rows):
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        key = rows.tobytes()
        if key != self._key:
            self._key, self._value = None, None  # free the previous block first
            self._value = self.inner.score(rows)
            self._value.flags.writeable = False  # shared by every caller of this block: nobody normalizes it in place
            self._key = key
        return self._value

    def clear(self) -> None:
        self._key, self._value = None, None


@dataclass
class ProductionModel:
    fit: FitData
    tuning: dict  # production parameters (see production_tuning)
    hybrid_config: dict  # tuning.json's "hybrid" entry
    hybrids: dict  # protocol -> Hybrid (memoized components)
    cold: dict  # protocol -> SegmentedPopularity / GlobalPopularity
    content: Recommender
    itemknn: Recommender | None
    version: str
    fingerprint: str | None
    seed: int
    timings: dict = field(default_factory=dict)
    history: np.ndarray | None = None  # distinct catalog items bought, per customer row

    def components(self, protocol: str) -> dict:
        return {n: c.inner for n, c in self.hybrids[protocol].components.items()}

    def warm(self, rows: np.ndarray) -> np.ndarray:
        """Customer rows with at least one purchase in the fit window (the others are cold start)."""
        if self.history is None:
            self.history = np.diff(self.fit.user_items.indptr)
        rows = np.asarray(rows, dtype=np.int64)
        return (rows >= 0) & (self.history[np.maximum(rows, 0)] > 0)


def fit_production(tables: dict, tuning: dict, fingerprint: str | None = None, seed: int = 0,
                   log=None, tables_dir=None, cache_dir=None) -> ProductionModel:
    """Refit the tuned hybrids (``all`` and ``new``) and the cold-start models on all data.

    A hybrid with a learned re-ranker reuses the ranker trained by the hybrid notebook
    (``<tables_dir>/hybrid_ranker_<protocol>.pkl``; its features are relative to the
    scoring date, so it applies to the all-data fit) with every component it was trained on.
    With ``cache_dir`` (a processed folder whose star schema ``tables`` is, ``fingerprint``
    its data fingerprint) the component fits go through the model cache
    (:mod:`helpers.tuning.model_cache`, stage ``production``): the model notebooks fit them ahead
    (:func:`helpers.tuning.workflow.later_fits`).
    """
    log = log or (lambda *_: None)
    t0 = time.perf_counter()
    if "hybrid" not in tuning:
        raise KeyError("tuning.json has no 'hybrid' entry: run the hybrid notebook (06) first")
    hyb = tuning["hybrid"]
    needs_promos = any(float(hyb[p]["rules"].get("promo_boost") or 0) for p in hyb)
    fit = production_fit_data(tables, needs_promos)
    if cache_dir is not None and fingerprint:
        model_cache.enable(fit, cache_dir, fingerprint, models.PRODUCTION_STAGE)
    tuned = production_tuning({k: v for k, v in tuning.items()}, seed)
    timings = {"fit_data_s": round(time.perf_counter() - t0, 2)}
    cache: dict = {}
    hybrids, cold = {}, {}
    for protocol in models.PROTOCOLS:
        t1 = time.perf_counter()
        cfg = hyb[protocol]
        ranker = models.load_ranker(cfg, tables_dir or config.TABLES_DIR)
        names = [n for n in cfg["components"] if ranker is not None or _weights_used(cfg["weights"], n)]
        comps = models.fit_components(tuned, fit, protocol, names, cache)
        hybrids[protocol] = models.hybrid_from_config(cfg, {n: _Memo(c) for n, c in comps.items()}, fit, ranker)
        if "segmented_popularity" in tuned and protocol in tuned["segmented_popularity"]:
            cold[protocol] = models.make_model("segmented_popularity", tuned["segmented_popularity"][protocol], fit)
        else:
            gp = tuned.get("global_popularity", {}).get(protocol, {})
            cold[protocol] = models.make_model("global_popularity", gp, fit)
        timings[f"fit_{protocol}_s"] = round(time.perf_counter() - t1, 2)
        log(f"fitted the '{protocol}' hybrid ({', '.join(comps)}) in {timings[f'fit_{protocol}_s']:.1f} s")
    content = models.fit_components(tuned, fit, "all", ("content",), cache).get("content")
    if content is None:
        content = ContentTFIDF().fit(fit)
    itemknn = models.fit_components(tuned, fit, "all", ("itemknn",), cache).get("itemknn")
    used = {"components": {n: tuned[n] for n in tuned if n != "hybrid"}, "hybrid": hyb}
    version = model_version(used, fingerprint, seed)
    return ProductionModel(fit, tuned, hyb, hybrids, cold, content, itemknn, version, fingerprint, seed, timings)


# ----------------------------------------------------------------- products


def reason_label(reason: str, products: ProductLookup) -> str:
    """The human sentence of a reason code."""
    if reason == "buy_again":
        return "Buy it again: you have bought this before"
    if reason == "trending":
        return "Trending: popular with all customers"
    if reason.startswith("similar_to:"):
        return f"Because you bought {products.name(int(reason.split(':', 1)[1]))}"
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
               generated_at: str) -> pd.DataFrame:
    """Recommendation rows with every export column (:data:`REC_COLUMNS`)."""
    product_ids = np.asarray(product_ids, dtype=np.int64)
    return pd.DataFrame({
        "customer_id": np.asarray(customer_ids, dtype=np.int64),
        "rank": np.asarray(ranks, dtype=np.int32),
        "product_id": product_ids,
        "score": np.asarray(scores, dtype=np.float64),
        "reason": np.asarray(reasons, dtype=object),
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


# ------------------------------------------------------------------- writers
class _Writer:
    """One table written chunk by chunk as Parquet (row groups) and optionally CSV and JSON Lines."""

    def __init__(self, folder: Path, stem: str, schema: pa.Schema, formats=("parquet",)):
        self.folder, self.stem, self.schema, self.formats = folder, stem, schema, formats
        self.rows = 0
        self._pq = pq.ParquetWriter(folder / f"{stem}.parquet", schema, compression="zstd")
        self._csv = open(folder / f"{stem}.csv", "w", newline="") if "csv" in formats else None
        self._jsonl = open(folder / f"{stem}.jsonl", "w") if "jsonl" in formats else None

    def write(self, df: pd.DataFrame) -> None:
        self._pq.write_table(pa.Table.from_pandas(df, schema=self.schema, preserve_index=False))
        if self._csv is not None:
            df.to_csv(self._csv, header=self.rows == 0, index=False, lineterminator="\n")
        if self._jsonl is not None and len(df):
            text = df.to_json(orient="records", lines=True, force_ascii=False, double_precision=15)
            self._jsonl.write(text if text.endswith("\n") else text + "\n")
        self.rows += len(df)

    def close(self) -> None:
        self._pq.close()
        for f in (self._csv, self._jsonl):
            if f is not None:
                f.close()


# ------------------------------------------------------------------- schemas
def recommendations_schema(top_n: int) -> dict:
    ident = {"type": "integer", "minimum": -(2 ** 63), "maximum": 2 ** 63 - 1}
    text = {"type": ["string", "null"]}
    return {
        "$schema": SCHEMA_URL,
        "$id": "recommendations.schema.json",
        "title": "Recommendation",
        "description": (f"One recommended product for one customer: rank 1 is the best. The batch export holds "
                        f"ranks 1..{top_n} for every customer; the API returns up to {MAX_K}. customer_id is "
                        f"null for an anonymous basket (API POST /recommendations)."),
        "type": "object",
        "properties": {
            "customer_id": {**ident, "type": ["integer", "null"], "description": "Customer (household) id."},
            "rank": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "1 = best."},
            "product_id": {**ident, "description": "Recommended product id (dim_product.product_id)."},
            "score": {"type": "number", "description": "Hybrid score (weighted min-max normalized component "
                                                       "scores, or, where the hybrid has a learned re-ranker, "
                                                       "1 + sum of weights + its purchase probability for the "
                                                       "re-ranked candidates; times business-rule multipliers); "
                                                       "higher is better; comparable within one customer's list "
                                                       "only."},
            "reason": {"type": "string", "pattern": REASON_PATTERN,
                       "description": "buy_again | similar_to:<product_id> | "
                                      "popular_in_segment:<segment_type>=<segment> | trending."},
            "reason_label": {"type": "string", "minLength": 1, "description": "Human sentence for the reason."},
            "description": {**text, "description": "Product description (null where unknown)."},
            "category": {**text, "description": "Product category (null where unknown)."},
            "brand": {**text, "description": "Product brand (null where unknown)."},
            "model_version": {"type": "string", "pattern": "^[0-9a-f]{12}$",
                              "description": "Short sha256 of the tuned parameters and the data fingerprint."},
            "generated_at": {"type": "string", "format": "date-time",
                             "description": "When the list was generated (UTC, RFC 3339)."},
        },
        "required": list(REC_COLUMNS),
        "additionalProperties": False,
    }


def similar_products_schema(n_similar: int) -> dict:
    ident = {"type": "integer", "minimum": -(2 ** 63), "maximum": 2 ** 63 - 1}
    text = {"type": ["string", "null"]}
    return {
        "$schema": SCHEMA_URL,
        "$id": "similar_products.schema.json",
        "title": "Similar product",
        "description": (f"One of the (up to {n_similar}) most similar products of a product, by cosine similarity "
                        f"of the TF-IDF vectors of the product text. The API adds the similar product's "
                        f"description, category and brand."),
        "type": "object",
        "properties": {
            "product_id": {**ident, "description": "Query product id."},
            "rank": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "1 = most similar."},
            "similar_product_id": {**ident, "description": "Similar product id (never the query itself)."},
            "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "Cosine similarity."},
            "description": text,
            "category": text,
            "brand": text,
        },
        "required": list(SIM_COLUMNS),
        "additionalProperties": False,
    }


# ------------------------------------------------------------------- export
def _chunk_size(fit: FitData, n_components: int, budget_bytes: float = 1.0e9) -> int:
    """Customers per block so that the dense score blocks stay within ``budget_bytes``."""
    per_row = max(fit.n_items, 1) * 4 * (2 * n_components + 6)
    return int(max(16, min(2048, budget_bytes // per_row)))


def _round(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64), SCORE_DECIMALS)


def score_customers(model: ProductionModel, protocol: str, customer_ids: np.ndarray, k: int,
                    explainer: Explainer, cold_lists) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-k product ids, scores, reasons and validity of a block of customers (``(n, k)`` each)."""
    fit = model.fit
    hybrid = model.hybrids[protocol]
    rows = fit.customer_rows(customer_ids)
    n = len(rows)
    warm = model.warm(rows)
    ids = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    reasons = np.full((n, k), "trending", dtype=object)
    w = np.flatnonzero(warm)
    if len(w):
        pid, val = hybrid.recommend(customer_ids[w], k=k, exclude=True if protocol == "new" else None,
                                    chunk_size=max(len(w), 1), threads=1)
        cols = fit.item_columns(pid)
        valid = np.isfinite(val) & (cols >= 0)
        ids[w], scores[w] = pid, val
        reasons[w] = explain(hybrid, explainer, rows[w], np.where(valid, cols, 0), valid)
        for comp in hybrid.components.values():
            comp.clear()
    c = np.flatnonzero(~warm)
    if len(c):
        idx, val, seg_reasons = cold_lists
        codes = _segment_codes(model.cold[protocol], rows[c])
        ids[c] = fit.item_ids[idx[codes]]
        scores[c] = val[codes]
        reasons[c] = np.asarray(seg_reasons, dtype=object)[codes][:, None]
    valid = np.isfinite(scores) & (ids >= 0)
    return ids, scores, reasons, valid


def export(processed_dir=None, tables_dir=None, export_dir=None, top_n: int = 10, n_similar: int = N_SIMILAR,
           seed: int = 0, api_top_n: int = MAX_K, max_history: int = 100, chunk_size: int | None = None,
           tables: dict | None = None, tuning: dict | None = None, log=None) -> dict:
    """Fit the production model on all data and write the export folder atomically.

    ``tables`` / ``tuning`` default to the star schema of ``processed_dir`` and
    ``<tables_dir>/tuning.json``. Returns the manifest plus ``timings`` and ``path``.
    """
    log = log or (lambda *_: None)
    if not 1 <= top_n <= MAX_K:
        raise ValueError(f"top_n must be in 1..{MAX_K}, got {top_n}")
    if not 1 <= n_similar <= MAX_K:
        raise ValueError(f"n_similar must be in 1..{MAX_K}, got {n_similar}")
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    export_dir = Path(export_dir) if export_dir else default_export_dir(processed_dir)
    if tuning is None:
        tuning = models.load_tuning(tables_dir or config.TABLES_DIR)
    needs_promos = any(float(v["rules"].get("promo_boost") or 0) for v in tuning.get("hybrid", {}).values())
    from_processed = tables is None  # then the fingerprint of the processed folder is the one of these tables
    if tables is None:
        names = ["fact_transactions", "dim_customer", "dim_product", "customer_exposure"]
        tables = load_tables(processed_dir, names=names + (["dim_promotion"] if needs_promos else []))
    try:
        fingerprint = load_meta(processed_dir).get("fingerprint")
    except FileNotFoundError:
        fingerprint = compute_fingerprint(tables) if all(
            n in tables for n in ("fact_transactions", "dim_customer", "dim_product", "dim_date",
                                  "dim_promotion", "customer_exposure")) else None
    timings["load_s"] = round(time.perf_counter() - t_start, 2)

    model = fit_production(tables, tuning, fingerprint, seed, log=log, tables_dir=tables_dir or config.TABLES_DIR,
                           cache_dir=config.processed_dir(processed_dir) if from_processed else None)
    timings.update(model.timings)
    fit = model.fit
    products = ProductLookup(tables["dim_product"])
    generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    depth = min(max(top_n, api_top_n), MAX_K, fit.n_items)
    customers = np.sort(tables["dim_customer"]["customer_id"].to_numpy(np.int64))
    n_comp = max(len(h.components) for h in model.hybrids.values())
    chunk = int(chunk_size or _chunk_size(fit, n_comp, 1.0e9 / len(VARIANTS)))

    export_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{export_dir.name}-", dir=export_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the published folder must be readable
    try:
        (tmp / "model").mkdir()
        counts: dict[str, int] = {}
        reason_counts: dict[str, dict[str, int]] = {}

        def variant(protocol: str, stem: str) -> tuple[int, int, int, dict[str, int], float]:
            t1 = time.perf_counter()
            hybrid = model.hybrids[protocol]
            comps = model.components(protocol)
            explainer = Explainer(fit, comps.get("content", model.content), comps.get("itemknn", model.itemknn),
                                  max_history=max_history)
            rules = hybrid.rules
            cold = cold_start_lists(model.cold[protocol], fit, rules, depth)
            _write_cold(tmp / "model", protocol, cold, fit, model.cold[protocol])
            formats = ("parquet", "csv", "jsonl") if protocol == "all" else ("parquet",)
            out = _Writer(tmp, stem, REC_SCHEMA, formats)
            top = _Writer(tmp / "model", f"top_{protocol}", TOP_SCHEMA)
            kinds: dict[str, int] = {}
            n_cold = 0
            try:
                for s in range(0, len(customers), chunk):
                    ids_c = customers[s:s + chunk]
                    pid, val, why, valid = score_customers(model, protocol, ids_c, depth, explainer, cold)
                    rows = fit.customer_rows(ids_c)
                    n_cold += int((~model.warm(rows)).sum())
                    rank = np.broadcast_to(np.arange(1, depth + 1, dtype=np.int32), pid.shape)
                    cust = np.broadcast_to(ids_c[:, None], pid.shape)
                    # ranks are contiguous: invalid slots (-inf) only ever trail
                    top.write(pd.DataFrame({"customer_id": cust[valid], "rank": rank[valid],
                                            "product_id": pid[valid], "score": _round(val[valid]),
                                            "reason": why[valid]}))
                    keep = valid & (rank <= top_n)
                    df = rows_frame(cust[keep], rank[keep], pid[keep], _round(val[keep]), why[keep], products,
                                    model.version, generated_at)
                    out.write(df)
                    for kind, cnt in pd.Series(why[keep]).str.split(":", n=1).str[0].value_counts().items():
                        kinds[kind] = kinds.get(kind, 0) + int(cnt)
                    log(f"{stem}: {min(s + chunk, len(customers)):,} / {len(customers):,} customers")
            finally:
                out.close()
                top.close()
            return out.rows, top.rows, n_cold, kinds, round(time.perf_counter() - t1, 2)

        # the variants run side by side (their files and memoized components are their own),
        # each with half the memory budget of its score blocks, and beside them the similar
        # products (they depend on the content model only); leaving the block waits for all
        with ThreadPoolExecutor(len(VARIANTS) + 1) as pool:
            params = model.tuning.get("content", {}).get("all")  # None: an untuned content model
            similar = pool.submit(_timed, lambda: _write_similar(tmp, model.content, products, n_similar,
                                                                 params=params))
            done = {p: pool.submit(variant, p, stem) for p, stem in VARIANTS.items()}
            for protocol, stem in VARIANTS.items():
                rows_written, top_rows, n_cold, kinds, seconds = done[protocol].result()
                counts[stem] = rows_written
                counts[f"top_{protocol}"] = top_rows
                counts[f"cold_start_customers_{protocol}"] = n_cold
                reason_counts[stem] = dict(sorted(kinds.items()))
                timings[f"{stem}_s"] = seconds
            counts["similar_products"], timings["similar_products_s"] = similar.result()

        t1 = time.perf_counter()
        write_artifacts(tmp / "model", model, products)
        timings["artifacts_s"] = round(time.perf_counter() - t1, 2)

        (tmp / "recommendations.schema.json").write_text(json.dumps(recommendations_schema(top_n), indent=2))
        (tmp / "similar_products.schema.json").write_text(json.dumps(similar_products_schema(n_similar), indent=2))
        manifest = {
            "model_version": model.version,
            "data_fingerprint": fingerprint,
            "generated_at": generated_at,
            "as_of": str(fit.as_of.date()),
            "top_n": int(top_n),
            "n_similar": int(n_similar),
            "api_top_n": int(depth),
            "seed": int(seed),
            "row_counts": {"customers": int(len(customers)), "products": int(len(products.ids)),
                           "catalog_items": int(fit.n_items), **counts},
            "reasons": reason_counts,
            "hybrid": {p: {"weights": model.hybrid_config[p]["weights"], "rules": model.hybrid_config[p]["rules"],
                           "light_max_baskets": model.hybrid_config[p].get("light_max_baskets"),
                           "components_used": list(model.hybrids[p].components)} for p in models.PROTOCOLS},
            "cold_start": {p: {"model": type(model.cold[p]).__name__,
                               "segment_type": getattr(model.cold[p], "segment_type", None)}
                           for p in models.PROTOCOLS},
            "parameters": {n: v for n, v in model.tuning.items() if n != "hybrid"},
            "files": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + ["manifest.json"],
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        _swap(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    timings["total_s"] = round(time.perf_counter() - t_start, 2)
    log(f"export written to {export_dir} in {timings['total_s']:.1f} s")
    return {**manifest, "timings": timings, "path": str(export_dir)}


def _swap(tmp: Path, export_dir: Path) -> None:
    """Put the finished folder in place; the previous export is removed only afterwards."""
    old = export_dir.parent / f".{export_dir.name}-old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    if export_dir.exists():
        os.replace(export_dir, old)
    try:
        os.replace(tmp, export_dir)
    except BaseException:
        if old.exists() and not export_dir.exists():
            os.replace(old, export_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_cold(folder: Path, protocol: str, cold, fit: FitData, cold_model) -> None:
    idx, val, reasons = cold
    n, k = idx.shape
    valid = np.isfinite(val)
    code = np.broadcast_to(np.arange(n)[:, None], (n, k))
    rank = np.broadcast_to(np.arange(1, k + 1), (n, k))
    df = pd.DataFrame({"segment_code": code[valid].astype(np.int32), "rank": rank[valid].astype(np.int32),
                       "product_id": fit.item_ids[idx[valid]], "score": _round(val[valid]),
                       "reason": np.asarray(reasons, dtype=object)[code[valid]]})
    df.to_parquet(folder / f"cold_start_{protocol}.parquet", index=False)


def _timed(fn, *args):
    """``(fn(*args), seconds)``."""
    t = time.perf_counter()
    return fn(*args), round(time.perf_counter() - t, 2)


def _write_similar(folder: Path, content, products: ProductLookup, n_similar: int, chunk: int = 65536,
                   params: dict | None = None) -> int:
    """Similar products of every product (:func:`similar_products`: identical texts are ranked
    once across the whole catalog, see ``ContentTFIDF.similar_products``), written in row groups."""
    out = _Writer(folder, "similar_products", SIM_SCHEMA, ("parquet", "csv", "jsonl"))
    try:
        ids = products.ids
        all_ids, all_scores = similar_products(content, params, ids, n_similar)
        for s in range(0, len(ids), chunk):
            q, sim_ids, sim_scores = ids[s:s + chunk], all_ids[s:s + chunk], all_scores[s:s + chunk]
            valid = sim_ids >= 0
            rank = np.broadcast_to(np.arange(1, sim_ids.shape[1] + 1, dtype=np.int32), sim_ids.shape)
            out.write(pd.DataFrame({"product_id": np.broadcast_to(q[:, None], sim_ids.shape)[valid],
                                    "rank": rank[valid], "similar_product_id": sim_ids[valid],
                                    "score": np.clip(_round(sim_scores[valid]), 0.0, 1.0)}))
    finally:
        out.close()
    return out.rows


# ----------------------------------------------------------------- artifacts
def _json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str))


def write_artifacts(folder: Path, model: ProductionModel, products: ProductLookup) -> None:
    """What the API needs to answer from memory (NumPy / SciPy npz / Parquet / JSON only).

    * ``items.npy``: catalog product ids (columns of every score vector), ascending.
    * ``products.parquet``: product_id, description, category, brand of every dim_product product.
    * ``hybrid.json``: per protocol the weights, rules, light/heavy threshold and components used,
      ``basket`` (components and light weights of the ``all`` hybrid, for anonymous baskets).
    * ``rules_all.npz``: per-item rule multiplier, allowed mask and category codes (diversity).
    * ``components/``: per component what scoring an anonymous basket needs (popularity
      vectors, ALS item factors and confidence statistics, item-kNN similarity, EASE weights,
      content TF-IDF of every product with its vocabulary and IDF).
    * ``top_all.parquet`` / ``top_new.parquet``: each customer's precomputed list (the export's
      rows, deeper), ``cold_start_<protocol>.parquet``: the cold-start lists per segment.
    """
    fit = model.fit
    comp_dir = folder / "components"
    comp_dir.mkdir(parents=True, exist_ok=True)
    np.save(folder / "items.npy", fit.item_ids.astype(np.int64))
    products.frame().to_parquet(folder / "products.parquet", index=False)
    hybrid_all = model.hybrids["all"]
    # an anonymous basket scores every buy-again horizon alike (basket items are excluded,
    # the popularity backfill remains): their light weights add up under "buy_again"
    basket_weights: dict[str, float] = {}
    light = light_weights(hybrid_all.weights)
    for n in hybrid_all.components:
        w = float(light.get(n, 0.0) or 0.0)
        if w > 0:
            basket_weights[models.base_model(n)] = basket_weights.get(models.base_model(n), 0.0) + w
    basket_names = list(basket_weights)
    config_out = {p: {"weights": model.hybrid_config[p]["weights"], "rules": model.hybrid_config[p]["rules"],
                      "light_max_baskets": model.hybrid_config[p].get("light_max_baskets"),
                      "components": list(model.hybrids[p].components)} for p in models.PROTOCOLS}
    config_out["basket"] = {"protocol": "all", "components": basket_names,
                            "weights": {n: round(basket_weights[n], 6) for n in basket_names}}
    config_out["as_of"] = str(fit.as_of.date())
    config_out["model_version"] = model.version
    _json(folder / "hybrid.json", config_out)
    mult, allowed = hybrid_all.rules.item_multiplier_and_mask(fit)
    np.savez(folder / "rules_all.npz", multiplier=mult.astype(np.float32), allowed=allowed,
             categories=_categories(fit).astype(np.int32))
    comps = model.components("all")
    params = {}
    family = {models.base_model(n): c for n, c in comps.items()}
    for name in sorted(set(basket_names) | {"content", "itemknn"}):
        comp = comps.get(name) or family.get(name) or (model.content if name == "content" else model.itemknn)
        if comp is None:
            continue
        params[name] = _save_component(comp_dir, name, comp, products)
    _json(comp_dir / "components.json", params)


def _save_component(folder: Path, name: str, comp, products: ProductLookup) -> dict:
    """Write one component's basket-scoring arrays; returns its parameters."""
    if name == "global_popularity":
        np.save(folder / "global_popularity.npy", np.asarray(comp.scores_, dtype=np.float32))
        return {"window_days": comp.window_days}
    if name == "segmented_popularity":
        np.save(folder / "segmented_popularity_global.npy", np.asarray(comp.table_[-1], dtype=np.float32))
        return {"segment_type": comp.segment_type}
    if name == "buy_again":
        np.save(folder / "popularity_prior.npy", np.asarray(popularity_prior(comp.data), dtype=np.float64))
        return {"backfill_weight": comp.backfill_weight, "tie_break": comp.tie_break,
                "half_life_days": comp.half_life_days}
    if name == "als":
        np.save(folder / "als_item_factors.npy", np.asarray(comp.item_factors, dtype=np.float32))
        np.save(folder / "als_fallback.npy", np.asarray(comp.score(np.array([-1]))[0], np.float32))
        if comp.weighting == "bm25":
            np.save(folder / "als_bm25_length_norm.npy", np.asarray(comp._bm25_length_norm, dtype=np.float64))
        return {"factors": comp.factors, "regularization": comp.regularization, "alpha": comp.alpha,
                "weighting": comp.weighting, "bm25_k1": comp.bm25_k1, "bm25_b": comp.bm25_b}
    if name == "itemknn":
        sp.save_npz(folder / "itemknn_similarity.npz", sp.csr_matrix(comp.similarity_, dtype=np.float32),
                    compressed=False)
        np.save(folder / "itemknn_backfill.npy", np.asarray(comp.backfill_, dtype=np.float32))
        return {"values": comp.values, "k_neighbors": comp.k_neighbors, "weighting": comp.weighting,
                "similarity": comp.similarity}
    if name == "ease":
        np.save(folder / "ease_weights.npy", np.asarray(comp.B_, dtype=np.float32))
        np.save(folder / "ease_items.npy", np.asarray(comp.items_, dtype=np.int64))
        np.save(folder / "ease_backfill.npy", np.asarray(comp.backfill_, dtype=np.float32))
        return {"values": comp.values, "l2": comp.l2, "max_items": comp.max_items}
    if name == "content":
        fit = comp.data
        new_ids = np.setdiff1d(products.ids, fit.item_ids)
        mat = sp.vstack([comp.item_tfidf, comp.transform(new_ids)]).tocsr()
        ids = np.concatenate([fit.item_ids, new_ids])
        order = np.argsort(ids, kind="stable")
        sp.save_npz(folder / "content_tfidf.npz", sp.csr_matrix(mat[order], dtype=np.float32), compressed=False)
        np.save(folder / "content_product_ids.npy", ids[order].astype(np.int64))
        np.save(folder / "content_fallback.npy", np.asarray(comp.score(np.array([-1]))[0], np.float32))
        vec = comp.vectorizer
        vocab = sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])
        _json(folder / "content_vocabulary.json", {"terms": [t for t, _ in vocab],
                                                   "idf": [float(x) for x in vec.idf_],
                                                   "ngram_range": list(comp.ngram_range),
                                                   "text_columns": list(comp.text_columns), "norm": "l2"})
        return {"half_life_days": comp.half_life_days, "ngram_range": list(comp.ngram_range)}
    raise ValueError(f"no basket artifacts for component {name!r}")  # pragma: no cover
