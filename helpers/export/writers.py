"""Writing the export: chunked table writers, the API artifacts (publication: :mod:`.versioned`).

Every file speaks the source's own identifiers (``id_maps``, :class:`helpers.data.ids.IdMap`;
integer ids are their own codes). The model folder's id arrays are Parquet
(``items.parquet``, ``components/content_product_ids.parquet``: one
``product_id`` column, in the order of the matching matrices' columns / rows); for integer ids the ``.npy`` twins of earlier
versions are written too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from helpers.data.ids import IdMap
from helpers.data.products import ProductLookup
from helpers.export.reasons import _categories, decode_reasons
from helpers.export.schemas import SCORE_DECIMALS, sim_arrow_schema
from helpers.models.base import FitData
from helpers.models.popularity import popularity_prior
from helpers.tuning import workflow as models
from helpers.tuning.production import similar_products


def light_weights(weights: dict) -> dict:
    """The weights a customer with a short history (or an anonymous basket) gets."""
    return dict(weights["light"]) if "light" in weights and "heavy" in weights else dict(weights)


def _round(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64), SCORE_DECIMALS)


def _pmap(id_maps: dict | None) -> IdMap:
    return (id_maps or {}).get("product_id") or IdMap("product_id")


def write_ids(folder: Path, stem: str, codes: np.ndarray, id_maps: dict | None) -> None:
    """Product ids of codes as ``<stem>.parquet`` (and ``<stem>.npy`` for integer ids)."""
    pmap = _pmap(id_maps)
    ids = pmap.decode(np.asarray(codes, dtype=np.int64))
    pd.DataFrame({"product_id": pd.array(ids, dtype="int64" if pmap.is_identity else "string")}).to_parquet(
        folder / f"{stem}.parquet", index=False)
    if pmap.is_identity:
        np.save(folder / f"{stem}.npy", ids.astype(np.int64))


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


def _write_cold(folder: Path, protocol: str, cold, fit: FitData, cold_model, id_maps: dict | None = None) -> None:
    idx, val, reasons = cold
    n, k = idx.shape
    valid = np.isfinite(val)
    code = np.broadcast_to(np.arange(n)[:, None], (n, k))
    rank = np.broadcast_to(np.arange(1, k + 1), (n, k))
    df = pd.DataFrame({"segment_code": code[valid].astype(np.int32), "rank": rank[valid].astype(np.int32),
                       "product_id": _pmap(id_maps).decode(fit.item_ids[idx[valid]]), "score": _round(val[valid]),
                       "reason": decode_reasons(np.asarray(reasons, dtype=object)[code[valid]], _pmap(id_maps))})
    df.to_parquet(folder / f"cold_start_{protocol}.parquet", index=False)


def _timed(fn, *args):
    """``(fn(*args), seconds)``."""
    t = time.perf_counter()
    return fn(*args), round(time.perf_counter() - t, 2)


def _write_similar(folder: Path, content, products: ProductLookup, n_similar: int, chunk: int = 65536,
                   params: dict | None = None, id_maps: dict | None = None) -> int:
    """Similar products of every product (:func:`similar_products`: identical texts are ranked
    once across the whole catalog, see ``ContentTFIDF.similar_products``), written in row groups."""
    pmap = _pmap(id_maps)
    out = _Writer(folder, "similar_products", sim_arrow_schema(pmap.dtype), ("parquet", "csv", "jsonl"))
    try:
        ids = products.ids
        all_ids, all_scores = similar_products(content, params, ids, n_similar)
        for s in range(0, len(ids), chunk):
            q, sim_ids, sim_scores = ids[s:s + chunk], all_ids[s:s + chunk], all_scores[s:s + chunk]
            valid = sim_ids >= 0
            rank = np.broadcast_to(np.arange(1, sim_ids.shape[1] + 1, dtype=np.int32), sim_ids.shape)
            out.write(pd.DataFrame({"product_id": pmap.decode(np.broadcast_to(q[:, None], sim_ids.shape)[valid]),
                                    "rank": rank[valid], "similar_product_id": pmap.decode(sim_ids[valid]),
                                    "score": np.clip(_round(sim_scores[valid]), 0.0, 1.0)}))
    finally:
        out.close()
    return out.rows


# ----------------------------------------------------------------- artifacts
def _json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str))


def write_artifacts(folder: Path, model, products: ProductLookup, id_maps: dict | None = None) -> None:
    """What the API needs to answer from memory (NumPy / SciPy npz / Parquet / JSON only).

    * ``items.parquet`` (``items.npy`` for integer ids): catalog product ids (columns of every score
      vector), in code order.
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
    write_ids(folder, "items", fit.item_ids, id_maps)
    frame = products.frame()
    frame["product_id"] = pd.array(_pmap(id_maps).decode(frame["product_id"].to_numpy(np.int64)),
                                   dtype="int64" if _pmap(id_maps).is_identity else "string")
    frame.to_parquet(folder / "products.parquet", index=False)
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
        params[name] = _save_component(comp_dir, name, comp, products, id_maps)
    _json(comp_dir / "components.json", params)


def _save_component(folder: Path, name: str, comp, products: ProductLookup, id_maps: dict | None = None) -> dict:
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
        np.save(folder / "ease_items.npy", np.asarray(comp.items_, dtype=np.int64))  # catalog positions
        np.save(folder / "ease_backfill.npy", np.asarray(comp.backfill_, dtype=np.float32))
        return {"values": comp.values, "l2": comp.l2, "max_items": comp.max_items}
    if name == "content":
        fit = comp.data
        new_ids = np.setdiff1d(products.ids, fit.item_ids)
        mat = sp.vstack([comp.item_tfidf, comp.transform(new_ids)]).tocsr()
        ids = np.concatenate([fit.item_ids, new_ids])
        order = np.argsort(ids, kind="stable")
        sp.save_npz(folder / "content_tfidf.npz", sp.csr_matrix(mat[order], dtype=np.float32), compressed=False)
        write_ids(folder, "content_product_ids", ids[order], id_maps)
        np.save(folder / "content_fallback.npy", np.asarray(comp.score(np.array([-1]))[0], np.float32))
        vec = comp.vectorizer
        vocab = sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])
        _json(folder / "content_vocabulary.json", {"terms": [t for t, _ in vocab],
                                                   "idf": [float(x) for x in vec.idf_],
                                                   "ngram_range": list(comp.ngram_range),
                                                   "text_columns": list(comp.text_columns), "norm": "l2"})
        return {"half_life_days": comp.half_life_days, "ngram_range": list(comp.ngram_range)}
    raise ValueError(f"no basket artifacts for component {name!r}")  # pragma: no cover
