"""Everything the API serves, loaded from one export folder into private memory.

Ids are the export's own (integers or text, :mod:`helpers.serving.ids`); lists, products and
the basket scorer address products by position. Every file is read in full (no memory map)
and the folder's files are checked unchanged (size, modification time, inode) after the
load: an export replaced while it was being read raises :class:`ExportChanged` instead of
serving a mix, and a file overwritten later changes nothing in memory.

Answers are JSON bytes joined from precomputed pieces (:mod:`helpers.serving.lists`);
serialized customer and similar-product answers are kept in a bounded least-recently-used
cache (``cache_bytes``; 0 disables it).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq

from helpers.data.products import ProductLookup
from helpers.export.production import MAX_K, SCORE_DECIMALS, reason_label
from helpers.serving.basket import BasketScorer
from helpers.serving.ids import IdIndex, read_ids
from helpers.serving.lists import RankedLists, json_records, json_scores, json_values

CACHE_BYTES = 64 * 2 ** 20
ATTRIBUTES = ("description", "category", "brand")
SEGMENT_PREFIX = "popular_in_segment:"


class ExportChanged(RuntimeError):
    """The export's files changed while they were being loaded."""


def folder_state(folder: Path) -> dict:
    """``{relative path: (size, mtime_ns, inode)}`` of every file under ``folder``."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(root) / name
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def dumps(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


class ExportStore:
    """The lists, products and basket scorer of one export folder."""

    def __init__(self, folder, cache_bytes: int = CACHE_BYTES):
        self.folder = Path(folder)
        if not (self.folder / "manifest.json").exists():
            raise FileNotFoundError(f"{self.folder / 'manifest.json'} is missing: run the export "
                                    f"(notebook 08_export or helpers.export.production.export) first")
        before = folder_state(self.folder)
        self._load()
        if folder_state(self.folder) != before:
            raise ExportChanged(f"{self.folder} changed while it was loaded")
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()

    # --------------------------------------------------------------- load
    def _load(self) -> None:
        model_dir = self.folder / "model"
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.version = self.manifest["model_version"]
        self.generated_at = self.manifest["generated_at"]
        frame = pq.read_table(model_dir / "products.parquet", memory_map=False).to_pandas()
        frame = frame.drop_duplicates("product_id").reset_index(drop=True)
        self.products = IdIndex(frame["product_id"])
        for col in ATTRIBUTES:
            if col not in frame:
                frame[col] = None
        # labels name products by position (integer ids: the ids themselves, so labels equal the export's)
        keys = frame["product_id"] if self.products.is_int else np.arange(len(frame))
        self.lookup = ProductLookup(pd.DataFrame({"product_id": keys, **{c: frame[c] for c in ATTRIBUTES}}))
        self._lookup_key = (lambda pos: int(self.products.ids[pos])) if self.products.is_int else int
        self._labels: dict[str, str] = {}
        self.product_json = json_values(self.products.ids)
        self.attr_json = json_records(frame[list(ATTRIBUTES)])
        self.items = read_ids(model_dir, "items")
        self.lists, self.customers = {}, None
        for v in ("all", "new"):
            self.lists[v], self.customers = RankedLists.read(model_dir / f"top_{v}.parquet", "customer_id",
                                                             self.customers, self.products)
        self.cold, self.segments = {}, {}
        for v in ("all", "new"):
            lists, codes = RankedLists.read(model_dir / f"cold_start_{v}.parquet", "segment_code", None,
                                            self.products)
            self.cold[v] = (lists, codes)
            self.segments[v] = self._segment_names(lists, codes)
        self.similar, _ = RankedLists.read(self.folder / "similar_products.parquet", "product_id", self.products,
                                           self.products, id_col="similar_product_id", reason_col=None)
        self.reason_json = {v: self._reason_json(lists.reasons) for v, lists in self.lists.items()}
        self.reason_json.update({f"cold_{v}": self._reason_json(lists.reasons)
                                 for v, (lists, _c) in self.cold.items()})
        self.basket = BasketScorer(model_dir, self.items, self.products)
        self._tail = b',"model_version":' + dumps(self.version) + b',"generated_at":' + dumps(self.generated_at) \
            + b"}"

    def _segment_names(self, lists: RankedLists, codes: IdIndex) -> dict:
        """``{segment value: key position}`` (``popular_in_segment:<type>=<value>`` of the list's first row);
        the global list (the largest code) is ``None``."""
        out = {None: int(np.argmax(codes.ids))}
        for i in range(len(codes)):  # one entry per segment (a few dozen at most)
            if lists.has(i):
                reason = str(lists.reasons[lists.reason_codes[lists.starts[i]]])
                if reason.startswith(SEGMENT_PREFIX):
                    out.setdefault(reason[len(SEGMENT_PREFIX):].partition("=")[2], i)
        return out

    def label(self, reason: str) -> str:
        """The human sentence of a reason (``similar_to:<id>`` names the product as the export does)."""
        label = self._labels.get(reason)
        if label is None:
            label = self._labels[reason] = self._label(reason)  # at most one per product and reason kind
        return label

    def _label(self, reason: str) -> str:
        if reason.startswith("similar_to:"):
            pos = self.products.position(reason.split(":", 1)[1])
            if pos < 0:
                return f"Because you bought product {reason.split(':', 1)[1]}"
            if self.lookup.columns["description"][pos] is None and not self.products.is_int:
                return f"Because you bought product {self.products.value(pos)}"
            return reason_label(f"similar_to:{self._lookup_key(pos)}", self.lookup)
        return reason_label(reason, self.lookup)

    def _reason_json(self, reasons: np.ndarray) -> list[bytes]:
        return [b'"reason":' + dumps(str(r)) + b',"reason_label":' + dumps(self.label(str(r))) for r in reasons]

    # ----------------------------------------------------------- answers
    def _rows(self, customer_json: bytes, lists: RankedLists, i: int, k: int, reasons: list[bytes]) -> bytes:
        sl = lists.rows(i, k)
        pos, codes = lists.item_pos[sl].tolist(), lists.reason_codes[sl].tolist()
        scores = json_scores(lists.scores[sl])
        head = b'{"customer_id":' + customer_json + b',"rank":'
        pj, aj, tail = self.product_json, self.attr_json, self._tail
        return b",".join([head + str(r).encode() + b',"product_id":' + pj[p] + b',"score":' + s + b"," + reasons[c]
                          + b"," + aj[p] + tail for r, (p, c, s) in enumerate(zip(pos, codes, scores), start=1)])

    def _cached(self, key, build):
        with self._lock:
            body = self._cache.get(key)
            if body is not None:
                self._cache.move_to_end(key)
                return body
        body = build()
        if body is None or not self.cache_bytes:
            return body
        with self._lock:
            if key not in self._cache:
                self._cache[key] = body
                self._cache_bytes += len(body)
                while self._cache_bytes > self.cache_bytes and self._cache:
                    self._cache_bytes -= len(self._cache.popitem(last=False)[1])
        return body

    def customer_json(self, customer_id, k: int = 10, exclude_purchased: bool = False) -> bytes | None:
        """A known customer's list as JSON bytes (``None``: unknown customer)."""
        i = self.customers.position(customer_id)
        if i < 0:
            return None
        return self._cached(("c", i, k, exclude_purchased), lambda: self._customer(i, k, exclude_purchased))

    def _customer(self, i: int, k: int, exclude_purchased: bool) -> bytes:
        variant = "new" if exclude_purchased else "all"
        cid = dumps(self.customers.value(i))
        items = self._rows(cid, self.lists[variant], i, k, self.reason_json[variant])
        return (b'{"customer_id":' + cid + b',"known_customer":true,"exclude_purchased":'
                + (b"true" if exclude_purchased else b"false") + b',"k":' + str(k).encode()
                + b',"model_version":' + dumps(self.version) + b',"items":[' + items + b"]}")

    def customer(self, customer_id, k: int = 10, exclude_purchased: bool = False) -> dict | None:
        body = self.customer_json(customer_id, k, exclude_purchased)
        return None if body is None else orjson.loads(body)

    def cold_start_json(self, k: int = 10, exclude_purchased: bool = False, segment: str | None = None):
        """The cold-start list (global, or of a segment value such as ``35-44``); ``None``: unknown segment."""
        variant = "new" if exclude_purchased else "all"
        lists, _codes = self.cold[variant]
        i = self.segments[variant].get(segment)
        if i is None:
            return None
        items = self._rows(b"null", lists, i, k, self.reason_json[f"cold_{variant}"])
        return (b'{"segment":' + dumps(segment) + b',"exclude_purchased":' + (b"true" if exclude_purchased
                                                                           else b"false")
                + b',"k":' + str(k).encode() + b',"model_version":' + dumps(self.version) + b',"items":['
                + items + b"]}")

    def similar_json(self, product_id, k: int = 10) -> bytes | None:
        """A product's most similar products as JSON bytes (``None``: unknown product)."""
        i = self.products.position(product_id)
        if i < 0:
            return None
        return self._cached(("s", i, k), lambda: self._similar(i, k))

    def _similar(self, i: int, k: int) -> bytes:
        pid = self.product_json[i]
        rows = b""
        if self.similar.has(i):
            sl = self.similar.rows(i, k)
            head = b'{"product_id":' + pid + b',"rank":'
            pj, aj = self.product_json, self.attr_json
            rows = b",".join([head + str(r).encode() + b',"similar_product_id":' + pj[p] + b',"score":' + s + b","
                              + aj[p] + b"}" for r, (p, s) in enumerate(zip(self.similar.item_pos[sl].tolist(),
                                                                             json_scores(self.similar.scores[sl])),
                                                                         start=1)])
        return (b'{"product_id":' + pid + b',"k":' + str(k).encode() + b',"model_version":' + dumps(self.version)
                + b',"items":[' + rows + b"]}")

    def similar_products(self, product_id, k: int = 10) -> dict | None:
        body = self.similar_json(product_id, k)
        return None if body is None else orjson.loads(body)

    def unknown_products(self, product_ids) -> list:
        """The requested ids that are not products of the export (as requested)."""
        pos = self.products.positions(list(product_ids))
        return [x for x, p in zip(product_ids, pos.tolist()) if p < 0]

    def basket_json(self, product_ids, k: int = 10) -> bytes:
        """Real-time recommendations of a basket of known product ids (as JSON bytes)."""
        return self.basket_json_many([product_ids], [k])[0]

    def basket_json_many(self, baskets: list, ks: list, pool=None) -> list[bytes]:
        """:meth:`basket_json` of each basket (known product ids) with its ``k``, scored together
        (:meth:`~helpers.serving.basket.BasketScorer.recommend_many`: the same answers; ``pool``
        a thread for half of its ALS products)."""
        pos_list = [self.products.positions(list(ids)) for ids in baskets]
        if any((pos < 0).any() for pos in pos_list):
            raise KeyError("unknown product ids")
        return [self._basket_answer(pos, k, *rec)
                for pos, k, rec in zip(pos_list, ks, self.basket.recommend_many(pos_list, ks, pool))]

    def _basket_answer(self, pos: np.ndarray, k: int, out_pos: np.ndarray, scores: np.ndarray, why: list) -> bytes:
        reasons = ["trending" if w == "trending" else f"similar_to:{self.products.value(w)}" for w in why]
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        tail = b',"model_version":' + dumps(self.version) + b',"generated_at":' + dumps(now) + b"}"
        rounded = json_scores(np.round(scores.astype(np.float64), SCORE_DECIMALS))
        rows = b",".join([b'{"customer_id":null,"rank":' + str(r).encode() + b',"product_id":'
                          + self.product_json[p] + b',"score":' + s + b',"reason":' + dumps(why_r)
                          + b',"reason_label":' + dumps(self.label(why_r)) + b"," + self.attr_json[p] + tail
                          for r, (p, s, why_r) in enumerate(zip(out_pos.tolist(), rounded, reasons), start=1)])
        return (b'{"product_ids":' + dumps(self.products.values(pos)) + b',"k":' + str(k).encode()
                + b',"model_version":' + dumps(self.version) + b',"items":[' + rows + b"]}")

    def basket_recommendations(self, product_ids, k: int = 10) -> dict:
        return orjson.loads(self.basket_json(product_ids, k))

    def health(self) -> dict:
        return {
            "status": "ok",
            "model_version": self.version,
            "generated_at": self.generated_at,
            "as_of": self.manifest.get("as_of"),
            "export_dir": str(self.folder),
            "id_types": {"customer_id": "integer" if self.customers.is_int else "string",
                         "product_id": "integer" if self.products.is_int else "string"},
            "loaded": {
                "customers": len(self.lists["all"]),
                "customers_exclude_purchased": len(self.lists["new"]),
                "list_rows": int(self.lists["all"].n_rows + self.lists["new"].n_rows),
                "list_depth": int(self.manifest.get("api_top_n", MAX_K)),
                "products": len(self.products),
                "catalog_items": int(self.basket.n_items),
                "products_with_similar": len(self.similar),
                "basket_components": self.basket.names,
                "cold_start_segments": sorted(s for s in self.segments["all"] if s is not None),
            },
        }
