"""The recommendation API: FastAPI over the export folder, answering from memory.

    make serve          # uvicorn helpers.serving.api:app on 127.0.0.1:8000
    RECBOOK_EXPORT_DIR=/path/to/exports .venv/bin/python -m uvicorn helpers.serving.api:app --port 8000

The export folder (``data/exports`` unless ``RECBOOK_EXPORT_DIR`` says otherwise;
written by :func:`helpers.export.production.export`) is loaded once at start-up. Serialized
customer answers are kept in a bounded least-recently-used cache
(``RECBOOK_API_CACHE_MB``, default 64; 0 disables it): the lists do not change
while the server runs.

Endpoints
---------
``GET /health``
    Model version, export time and what was loaded.
``GET /customers/{customer_id}/recommendations?k=10&exclude_purchased=false``
    A known customer gets exactly the batch export's list (the precomputed
    per-customer lists of ``model/top_all.parquet``, or ``top_new.parquet`` with
    ``exclude_purchased=true``: the ``new``-protocol hybrid, past purchases
    excluded). An unknown customer is not an error: it gets the cold-start list
    (global popularity, reason ``trending``) and ``"known_customer": false``.
``GET /products/{product_id}/similar?k=10``
    The export's most similar products (TF-IDF cosine), 404 naming the id if unknown.
``POST /recommendations`` with ``{"product_ids": [...], "k": 10}``
    An anonymous basket scored in real time: every component of the ``all``
    hybrid scores the basket (ALS fold-in against the item factors, TF-IDF
    profile, item-kNN and EASE through their item-item weights, popularity),
    scores are min-max normalized and blended with the hybrid's *light-customer*
    weights, business rules applied, basket items excluded. Unknown product ids:
    404 naming them.

``k`` must be in 1..100 (else 422); a malformed body is a 422. Every list item
has the fields of ``recommendations.schema.json`` (``customer_id`` null for a
basket); similar products those of ``similar_products.schema.json`` plus the
similar product's description, category and brand.
"""

import json
import os
import threading
from collections import OrderedDict
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from helpers import config
from helpers.data.products import ProductLookup
from helpers.export.production import COLLABORATIVE, MAX_K, SCORE_DECIMALS, label_reasons
from helpers.models.base import top_k
from helpers.models.hybrid import diversify, minmax_rows

ENV_VAR = "RECBOOK_EXPORT_DIR"
CACHE_ENV_VAR = "RECBOOK_API_CACHE_MB"  # size of the answer cache in MiB; 0 disables it
MAX_BASKET = 1000
CACHE_BYTES = 64 * 2 ** 20  # serialized customer answers kept (least recently used evicted first)


def export_dir_from_env() -> Path:
    return Path(os.environ.get(ENV_VAR) or config.EXPORTS_DIR)


# ------------------------------------------------------------------ lists
class _Lists:
    """Per-key ranked lists held as flat arrays with offsets (keys sorted ascending).

    Built from a Parquet file without one Python object per row: the reason column is
    read dictionary-encoded (codes + the distinct reasons), numbers as NumPy arrays.
    """

    def __init__(self, keys: np.ndarray, ranks: np.ndarray, product_ids: np.ndarray, scores: np.ndarray,
                 reason_codes: np.ndarray, reasons: np.ndarray):
        if len(keys) > 1 and not ((np.diff(keys) > 0) | ((np.diff(keys) == 0) & (np.diff(ranks) > 0))).all():
            order = np.lexsort((ranks, keys))  # the export writes sorted files; sort only if needed
            keys, product_ids, scores, reason_codes = keys[order], product_ids[order], scores[order], \
                reason_codes[order]
        self.product_ids = product_ids
        self.scores = scores
        self.reason_codes = reason_codes
        self.reasons = reasons
        self.keys, starts = np.unique(keys, return_index=True)
        self.starts = np.append(starts, len(keys)).astype(np.int64)

    @classmethod
    def read(cls, path: Path, key: str, id_col: str = "product_id", reason_col: str | None = "reason",
             filters=None) -> "_Lists":
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        cols = [key, "rank", id_col, "score"] + ([reason_col] if reason_col else [])
        table = pq.read_table(path, columns=cols, read_dictionary=[reason_col] if reason_col else None,
                              filters=filters)
        if reason_col:
            col = table.column(reason_col)
            if not pa.types.is_dictionary(col.type):
                col = pc.dictionary_encode(col)
            col = col.unify_dictionaries() if col.num_chunks else col
            reasons = (np.asarray(col.chunk(0).dictionary.to_pylist(), dtype=object) if col.num_chunks
                       else np.zeros(0, dtype=object))
            codes = (np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in col.chunks])
                     if col.num_chunks else np.zeros(0, dtype=np.int32)).astype(np.int32)
        else:
            reasons, codes = np.zeros(0, dtype=object), np.zeros(table.num_rows, dtype=np.int32)
        return cls(table.column(key).to_numpy().astype(np.int64), table.column("rank").to_numpy(),
                   table.column(id_col).to_numpy().astype(np.int64), table.column("score").to_numpy(), codes,
                   reasons)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, key: int) -> int:
        i = int(np.searchsorted(self.keys, key))
        return i if i < len(self.keys) and int(self.keys[i]) == key else -1

    def slice(self, i: int, k: int) -> slice:
        start = int(self.starts[i])
        return slice(start, min(start + k, int(self.starts[i + 1])))


# ----------------------------------------------------------------- baskets
class BasketScorer:
    """Real-time hybrid scores of an anonymous basket from the export's model artifacts."""

    def __init__(self, model_dir: Path, items: np.ndarray, products: ProductLookup):
        cdir = model_dir / "components"
        self.items = items
        self.n_items = len(items)
        self.products = products
        hybrid = json.loads((model_dir / "hybrid.json").read_text())
        self.names = list(hybrid["basket"]["components"])
        self.weights = {n: float(w) for n, w in hybrid["basket"]["weights"].items()}
        self.rules = hybrid["all"]["rules"]
        params = json.loads((cdir / "components.json").read_text())
        self.params = params
        rules = np.load(model_dir / "rules_all.npz")
        self.multiplier = rules["multiplier"].astype(np.float32)
        self.allowed = rules["allowed"].astype(bool)
        self.categories = rules["categories"].astype(np.int64)
        self.vectors: dict[str, np.ndarray] = {}
        if "global_popularity" in self.names:
            self.vectors["global_popularity"] = np.load(cdir / "global_popularity.npy")
        if "segmented_popularity" in self.names:
            self.vectors["segmented_popularity"] = np.load(cdir / "segmented_popularity_global.npy")
        if "buy_again" in self.names:
            p = params["buy_again"]
            self.prior = np.load(cdir / "popularity_prior.npy")
            self.ba_weight, self.ba_tie = float(p["backfill_weight"]), float(p["tie_break"])
            self.ba_backfill = (self.ba_weight * self.prior).astype(np.float32)
        if "als" in self.names:
            p = params["als"]
            self.als = p
            self.item_factors = np.load(cdir / "als_item_factors.npy")
            y = self.item_factors.astype(np.float64)
            self.yty = y.T @ y
            self.als_fallback = np.load(cdir / "als_fallback.npy")
            self.bm25_norm = (np.load(cdir / "als_bm25_length_norm.npy") if p["weighting"] == "bm25" else None)
        self.knn = None
        if (cdir / "itemknn_similarity.npz").exists():
            self.knn = sp.load_npz(cdir / "itemknn_similarity.npz").tocsr()
            self.knn_backfill = np.load(cdir / "itemknn_backfill.npy")
            self.knn_value = _basket_value(params["itemknn"]["values"])
        if "ease" in self.names:
            self.ease_b = np.load(cdir / "ease_weights.npy", mmap_mode="r")
            self.ease_items = np.load(cdir / "ease_items.npy")
            self.ease_backfill = np.load(cdir / "ease_backfill.npy")
            self.ease_value = _basket_value(params["ease"]["values"])
        self.tfidf_all = sp.load_npz(cdir / "content_tfidf.npz").tocsr()
        self.tfidf_ids = np.load(cdir / "content_product_ids.npy")
        pos = np.searchsorted(self.tfidf_ids, items)
        self.tfidf_items = self.tfidf_all[pos].tocsr()
        self.content_fallback = np.load(cdir / "content_fallback.npy")

    # ---------------------------------------------------------- components
    def columns(self, product_ids) -> np.ndarray:
        """Catalog columns of the basket's products that are in the catalog (sorted, unique)."""
        ids = np.unique(np.asarray(product_ids, dtype=np.int64))
        pos = np.clip(np.searchsorted(self.items, ids), 0, max(self.n_items - 1, 0))
        return pos[self.items[pos] == ids] if self.n_items else np.zeros(0, dtype=np.int64)

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
        a = self.yty + float(self.als["regularization"]) * np.eye(self.yty.shape[0])
        a += (y.T * (conf - 1.0)) @ y
        b = (y * conf[:, None]).sum(axis=0)
        return np.linalg.solve(a, b).astype(np.float32)

    def component_scores(self, product_ids) -> dict[str, np.ndarray]:
        """Raw score vector (over the catalog) of every basket component."""
        cols = self.columns(product_ids)
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
                    s += self.knn_value * np.asarray(self.knn[cols].sum(axis=0), dtype=np.float32).ravel()
            elif name == "ease":
                s = self.ease_backfill.copy()
                pos = np.searchsorted(self.ease_items, cols)
                pos = pos[(pos < len(self.ease_items)) & (self.ease_items[np.minimum(pos, len(self.ease_items) - 1)]
                                                         == cols)] if len(cols) else pos
                if len(pos):
                    s[self.ease_items] += self.ease_value * np.asarray(self.ease_b[pos], np.float32).sum(axis=0)
            elif name == "content":
                s = self.content_scores(product_ids)
            else:  # pragma: no cover - export writes only the components above
                raise ValueError(f"no basket scorer for component {name!r}")
            out[name] = np.asarray(s, dtype=np.float32)
        return out

    def content_rows(self, product_ids) -> np.ndarray:
        ids = np.unique(np.asarray(product_ids, dtype=np.int64))
        pos = np.clip(np.searchsorted(self.tfidf_ids, ids), 0, max(len(self.tfidf_ids) - 1, 0))
        return pos[self.tfidf_ids[pos] == ids]

    def content_scores(self, product_ids) -> np.ndarray:
        """Cosine of the basket's TF-IDF profile (normalized sum of its products' rows) with the catalog."""
        rows = self.content_rows(product_ids)
        prof = np.asarray(self.tfidf_all[rows].sum(axis=0), dtype=np.float64).ravel() if len(rows) else None
        norm = float(np.sqrt((prof ** 2).sum())) if prof is not None else 0.0
        if norm == 0.0:
            return self.content_fallback.copy()
        return np.asarray(self.tfidf_items @ (prof / norm).astype(np.float32), dtype=np.float32).ravel()

    # -------------------------------------------------------------- blend
    def recommend(self, product_ids, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k product ids, scores and reasons for a basket (basket products excluded)."""
        raw = self.component_scores(product_ids)
        normed = {}
        total = np.zeros(self.n_items, dtype=np.float32)
        for name, s in raw.items():
            n = minmax_rows(s[None, :])[0]
            n[~np.isfinite(n)] = 0.0
            normed[name] = n
            total += np.float32(self.weights[name]) * n
        total *= self.multiplier
        total[~self.allowed] = -np.inf
        cols = self.columns(product_ids)
        total[cols] = -np.inf
        k = min(k, self.n_items)
        if self.rules.get("max_per_category"):
            idx, val = diversify(total[None, :], self.categories, k, int(self.rules["max_per_category"]))
        else:
            idx, val = top_k(total[None, :], k)
        idx, val = idx[0], val[0]
        keep = np.isfinite(val)
        idx, val = idx[keep], val[keep]
        return self.items[idx], val, self.reasons(product_ids, idx, normed)

    def reasons(self, product_ids, cols: np.ndarray, normed: dict) -> np.ndarray:
        names = [n for n in normed if n != "buy_again"]  # basket items are excluded: nothing to buy again
        out = np.full(len(cols), "trending", dtype=object)
        if not names or not len(cols):
            return out
        contrib = np.stack([self.weights[n] * normed[n][cols] for n in names], axis=1)
        top = np.argmax(contrib, axis=1)
        best = contrib[np.arange(len(cols)), top]
        top_name = np.asarray(names, dtype=object)[top]
        top_name[~(best > 0)] = "trending"
        basket_ids = np.unique(np.asarray(product_ids, dtype=np.int64))
        for i in np.flatnonzero(np.isin(top_name, (*COLLABORATIVE, "content"))):
            past = self._similar_in_basket(basket_ids, int(cols[i]), str(top_name[i]))
            out[i] = f"similar_to:{past}"
        return out

    def _similar_in_basket(self, basket_ids: np.ndarray, col: int, component: str) -> int:
        order = ("content", "knn") if component == "content" else ("knn", "content")
        for how in order:
            if how == "knn" and self.knn is not None:
                bcols = self.columns(basket_ids)
                if len(bcols):
                    sims = np.asarray(self.knn[bcols, col].todense()).ravel()
                    if (sims > 0).any():
                        return int(self.items[bcols[int(np.argmax(sims))]])
            elif how == "content":
                rows = self.content_rows(basket_ids)
                if len(rows):
                    sims = np.asarray(self.tfidf_all[rows] @ self.tfidf_items[col].T.toarray()).ravel()
                    if (sims > 0).any():
                        return int(self.tfidf_ids[rows[int(np.argmax(sims))]])
        return int(basket_ids[0])


def _basket_value(values: str) -> float:
    """Input value of one purchase for a model's ``values`` mode (binary / count / log)."""
    return float(np.log1p(1.0)) if values == "log" else 1.0


# ------------------------------------------------------------------ store
class ExportStore:
    """Everything the API serves, loaded from an export folder."""

    def __init__(self, folder, cache_bytes: int = CACHE_BYTES):
        self.folder = Path(folder)
        if not (self.folder / "manifest.json").exists():
            raise FileNotFoundError(f"{self.folder / 'manifest.json'} is missing: run the export "
                                    f"(notebook 08_export or helpers.export.production.export) first")
        model_dir = self.folder / "model"
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.version = self.manifest["model_version"]
        self.generated_at = self.manifest["generated_at"]
        self.items = np.load(model_dir / "items.npy")
        self.products = ProductLookup(pd.read_parquet(model_dir / "products.parquet"))
        self.lists = {v: _Lists.read(model_dir / f"top_{v}.parquet", "customer_id") for v in ("all", "new")}
        self.labels = {v: label_reasons(lists.reasons, self.products) for v, lists in self.lists.items()}
        self.cold = {}
        for v in ("all", "new"):
            path = model_dir / f"cold_start_{v}.parquet"
            last = int(pd.read_parquet(path, columns=["segment_code"])["segment_code"].max())
            self.cold[v] = _Lists.read(path, "segment_code", filters=[("segment_code", "=", last)])  # global list
            self.labels[f"cold_{v}"] = label_reasons(self.cold[v].reasons, self.products)
        self.similar = _Lists.read(self.folder / "similar_products.parquet", "product_id",
                                   id_col="similar_product_id", reason_col=None)
        self.basket = BasketScorer(model_dir, self.items, self.products)
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()

    # --------------------------------------------------------------- rows
    def _items(self, customer_id, lists: _Lists, i: int, k: int, labels: np.ndarray, generated_at: str) -> list:
        sl = lists.slice(i, k)
        pids = lists.product_ids[sl]
        pos = self.products.positions(pids)
        cols = self.products.columns
        codes = lists.reason_codes[sl]
        out = []
        for r, (pid, score, code, p) in enumerate(zip(pids.tolist(), lists.scores[sl].tolist(), codes.tolist(),
                                                      pos.tolist()), start=1):
            out.append({"customer_id": customer_id, "rank": r, "product_id": pid, "score": score,
                        "reason": lists.reasons[code], "reason_label": labels[code],
                        "description": cols["description"][p] if p >= 0 else None,
                        "category": cols["category"][p] if p >= 0 else None,
                        "brand": cols["brand"][p] if p >= 0 else None,
                        "model_version": self.version, "generated_at": generated_at})
        return out

    def customer(self, customer_id: int, k: int = 10, exclude_purchased: bool = False) -> dict:
        variant = "new" if exclude_purchased else "all"
        lists = self.lists[variant]
        i = lists.find(customer_id)
        known = i >= 0
        if known:
            items = self._items(customer_id, lists, i, k, self.labels[variant], self.generated_at)
        else:
            cold = self.cold[variant]
            items = self._items(customer_id, cold, 0, k, self.labels[f"cold_{variant}"], self.generated_at)
        return {"customer_id": customer_id, "known_customer": known, "exclude_purchased": exclude_purchased,
                "k": k, "model_version": self.version, "items": items}

    def customer_json(self, customer_id: int, k: int = 10, exclude_purchased: bool = False) -> bytes:
        """:meth:`customer` serialized, from a bounded LRU cache (the lists never change while serving)."""
        key = (customer_id, k, exclude_purchased)
        with self._lock:
            body = self._cache.get(key)
            if body is not None:
                self._cache.move_to_end(key)
                return body
        body = dumps(self.customer(customer_id, k, exclude_purchased))
        with self._lock:
            if key not in self._cache:
                self._cache[key] = body
                self._cache_bytes += len(body)
                while self._cache_bytes > self.cache_bytes and self._cache:
                    self._cache_bytes -= len(self._cache.popitem(last=False)[1])
        return body

    def similar_products(self, product_id: int, k: int = 10) -> dict | None:
        if self.products.positions([product_id])[0] < 0:
            return None
        i = self.similar.find(product_id)
        items = []
        if i >= 0:
            sl = self.similar.slice(i, k)
            sids = self.similar.product_ids[sl]
            for r, (sid, score) in enumerate(zip(sids.tolist(), self.similar.scores[sl].tolist()), start=1):
                items.append({"product_id": product_id, "rank": r, "similar_product_id": sid, "score": score,
                              **{c: self.products.attribute([sid], c)[0] for c in ("description", "category",
                                                                                    "brand")}})
        return {"product_id": product_id, "k": k, "model_version": self.version, "items": items}

    def unknown_products(self, product_ids) -> list[int]:
        ids = np.asarray(product_ids, dtype=np.int64)
        return [int(x) for x in ids[self.products.positions(ids) < 0]]

    def basket_recommendations(self, product_ids, k: int = 10) -> dict:
        pids, scores, reasons = self.basket.recommend(product_ids, k)
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        labels = label_reasons(reasons, self.products)
        pos = self.products.positions(pids)
        cols = self.products.columns
        items = []
        for r, (pid, score, reason, label, p) in enumerate(zip(pids.tolist(), scores.tolist(), reasons.tolist(),
                                                                labels.tolist(), pos.tolist()), start=1):
            items.append({"customer_id": None, "rank": r, "product_id": pid,
                          "score": round(float(score), SCORE_DECIMALS), "reason": reason, "reason_label": label,
                          "description": cols["description"][p] if p >= 0 else None,
                          "category": cols["category"][p] if p >= 0 else None,
                          "brand": cols["brand"][p] if p >= 0 else None,
                          "model_version": self.version, "generated_at": now})
        return {"product_ids": [int(x) for x in product_ids], "k": k, "model_version": self.version,
                "items": items}

    def health(self) -> dict:
        return {
            "status": "ok",
            "model_version": self.version,
            "generated_at": self.generated_at,
            "as_of": self.manifest.get("as_of"),
            "export_dir": str(self.folder),
            "loaded": {
                "customers": len(self.lists["all"]),
                "customers_exclude_purchased": len(self.lists["new"]),
                "list_rows": int(len(self.lists["all"].product_ids) + len(self.lists["new"].product_ids)),
                "list_depth": int(self.manifest.get("api_top_n", MAX_K)),
                "products": int(len(self.products.ids)),
                "catalog_items": int(len(self.items)),
                "products_with_similar": len(self.similar),
                "basket_components": self.basket.names,
            },
        }


# -------------------------------------------------------------------- app
class BasketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_ids: list[int] = Field(..., min_length=1, max_length=MAX_BASKET,
                                   description="Products in the basket (dim_product ids).")
    k: int = Field(10, ge=1, le=MAX_K, description="Number of recommendations (1..100).")


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _json_response(obj) -> Response:
    return Response(obj if isinstance(obj, bytes) else dumps(obj), media_type="application/json")


def create_app(export_dir=None) -> FastAPI:
    """The FastAPI app; the export folder is loaded at start-up (``export_dir`` or
    ``$RECBOOK_EXPORT_DIR`` or ``data/exports``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        cache_mb = float(os.environ.get(CACHE_ENV_VAR, CACHE_BYTES / 2 ** 20))
        app.state.store = ExportStore(Path(export_dir) if export_dir else export_dir_from_env(),
                                      cache_bytes=int(cache_mb * 2 ** 20))
        yield

    app = FastAPI(title="Retail recommender API", version="1.0",
                  description="Recommendations from the batch export, plus real-time basket scoring.",
                  lifespan=lifespan)

    @app.get("/health")
    async def health(request: Request):
        return _json_response(request.app.state.store.health())

    @app.get("/customers/{customer_id}/recommendations")
    async def customer_recommendations(request: Request, customer_id: int,
                                       k: int = Query(10, ge=1, le=MAX_K),
                                       exclude_purchased: bool = False):
        return _json_response(request.app.state.store.customer_json(customer_id, k, exclude_purchased))

    @app.get("/products/{product_id}/similar")
    async def similar_products(request: Request, product_id: int, k: int = Query(10, ge=1, le=MAX_K)):
        out = request.app.state.store.similar_products(product_id, k)
        if out is None:
            raise HTTPException(404, detail={"message": f"unknown product id {product_id}",
                                             "unknown_product_ids": [product_id]})
        return _json_response(out)

    @app.post("/recommendations")
    def basket_recommendations(request: Request, body: BasketRequest):
        store = request.app.state.store
        unknown = store.unknown_products(body.product_ids)
        if unknown:
            raise HTTPException(404, detail={"message": "unknown product ids: " + ", ".join(map(str, unknown)),
                                             "unknown_product_ids": unknown})
        return _json_response(store.basket_recommendations(body.product_ids, body.k))

    return app


app = create_app()
