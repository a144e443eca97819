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
last transaction date) with the parameters of the tuning files (:mod:`helpers.tuning.files`)
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

Identifiers
-----------
The models work on the star schema's integer codes; every file of the export
(and the API artifacts in ``model/``) speaks the source's own ids, typed as in
the source (:mod:`helpers.data.ids`; ``id_types`` in the manifest).

Modules: this one (the production refit and the export), :mod:`.reasons`
(reasons and explanations), :mod:`.schemas` (file layouts, JSON Schema),
:mod:`.writers` (chunked writers, API artifacts), :mod:`.versioned` (version folders, ``current``).

Scale and determinism
---------------------
Customers are scored in chunks (the dense customers x catalog score block never
exceeds ``chunk_size`` rows); every file is written chunk by chunk (Parquet in
row groups). The export is written into a temporary sibling folder of the export root
and, once complete (``manifest.json`` written last), published as a new version folder of the
root whose ``current`` link is switched atomically (:func:`helpers.export.versioned.publish`;
two versions kept, an old plain layout in the root cleaned away). A failed export leaves the
root as it was. Readers of the root go through :func:`helpers.export.versioned.resolve`.
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

from helpers import config
from helpers.data.ids import IdMap
from helpers.data.products import ProductLookup
from helpers.data.star import fingerprint as compute_fingerprint
from helpers.data.star import load_ids, load_meta, load_tables
from helpers.export import versioned
from helpers.export.reasons import (  # noqa: F401  (re-exported: callers import them from here)
    COLLABORATIVE,
    SIMILARITY_COMPONENTS,
    Explainer,
    _segment_codes,
    cold_start_lists,
    decode_reasons,
    explain,
    history_membership,
    label_reasons,
    reason_label,
    rows_frame,
    segment_reasons,
)
from helpers.export.schemas import (  # noqa: F401
    MAX_K,
    REASON_PATTERN,
    REC_COLUMNS,
    REC_SCHEMA,
    SCHEMA_URL,
    SCORE_DECIMALS,
    SIM_COLUMNS,
    SIM_SCHEMA,
    TOP_COLUMNS,
    TOP_SCHEMA,
    rec_arrow_schema,
    recommendations_schema,
    similar_products_schema,
    top_arrow_schema,
)
from helpers.export.writers import (  # noqa: F401
    _json,
    _round,
    _save_component,
    _timed,
    _write_cold,
    _write_similar,
    _Writer,
    light_weights,
    write_artifacts,
)
from helpers.models.base import FitData, Recommender
from helpers.models.content import ContentTFIDF
from helpers.tuning import model_cache
from helpers.tuning import workflow as models
from helpers.tuning.production import N_SIMILAR, production_fit_data, production_tuning, similar_products  # noqa: F401
from helpers.tuning.windows import segments_of

VARIANTS = {"all": "recommendations", "new": "recommendations_new"}


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
    hybrid_config: dict  # the "hybrid" tuning entry
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


def promotions_needed(hybrid: dict) -> bool:
    """Whether a protocol's hybrid reads ``dim_promotion``: its promotion rule, or a re-ranker reading
    the promotion calendar (:mod:`helpers.features.signals`)."""
    def reads(cfg: dict) -> bool:
        ranker = cfg.get("ranker") or {}
        return bool(float(cfg.get("rules", {}).get("promo_boost") or 0)) or \
            "calendar" in (ranker.get("params", {}).get("signal_groups") or ())
    return any(reads(cfg) for cfg in hybrid.values())


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
        raise KeyError("the tuning files have no 'hybrid' entry: run the hybrid notebook (06) first")
    hyb = tuning["hybrid"]
    needs_promos = promotions_needed(hyb)
    cached = cache_dir is not None and fingerprint
    fit = production_fit_data(tables, needs_promos, segments_of(cache_dir) if cached else None)
    if cached:
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


# ------------------------------------------------------------------- export
def _chunk_size(fit: FitData, n_components: int, budget_bytes: float = 1.0e9) -> int:
    """Customers per block so that the dense score blocks stay within ``budget_bytes``."""
    per_row = max(fit.n_items, 1) * 4 * (2 * n_components + 6)
    return int(max(16, min(2048, budget_bytes // per_row)))


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
           tables: dict | None = None, tuning: dict | None = None, log=None,
           id_maps: dict[str, IdMap] | None = None) -> dict:
    """Fit the production model on all data and publish the export as a new version of the
    export root ``export_dir`` (``<export_dir>/<UTC time>-<model_version>/``, ``current`` switched
    to it atomically, :func:`helpers.export.versioned.publish`).

    ``tables`` / ``tuning`` default to the star schema of ``processed_dir`` and
    ``<tables_dir>/tuning/``, ``id_maps`` to the id lookups beside that star schema.
    Returns the manifest plus ``timings`` and ``path`` (the new version folder).
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
    needs_promos = promotions_needed(tuning.get("hybrid", {}))
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
    if id_maps is None:
        id_maps = load_ids(processed_dir)
    cmap, pmap = id_maps.get("customer_id") or IdMap("customer_id"), id_maps.get("product_id") or IdMap("product_id")
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
            _write_cold(tmp / "model", protocol, cold, fit, model.cold[protocol], id_maps)
            formats = ("parquet", "csv", "jsonl") if protocol == "all" else ("parquet",)
            out = _Writer(tmp, stem, rec_arrow_schema(cmap.dtype, pmap.dtype), formats)
            top = _Writer(tmp / "model", f"top_{protocol}", top_arrow_schema(cmap.dtype, pmap.dtype))
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
                    top.write(pd.DataFrame({"customer_id": cmap.decode(cust[valid]), "rank": rank[valid],
                                            "product_id": pmap.decode(pid[valid]), "score": _round(val[valid]),
                                            "reason": decode_reasons(why[valid], pmap)}))
                    keep = valid & (rank <= top_n)
                    df = rows_frame(cust[keep], rank[keep], pid[keep], _round(val[keep]), why[keep], products,
                                    model.version, generated_at, id_maps)
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
                                                                 params=params, id_maps=id_maps))
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
        write_artifacts(tmp / "model", model, products, id_maps)
        timings["artifacts_s"] = round(time.perf_counter() - t1, 2)

        (tmp / "recommendations.schema.json").write_text(json.dumps(recommendations_schema(top_n, cmap.dtype, pmap.dtype),
                                                                          indent=2))
        (tmp / "similar_products.schema.json").write_text(json.dumps(similar_products_schema(n_similar, pmap.dtype),
                                                                           indent=2))
        manifest = {
            "model_version": model.version,
            "data_fingerprint": fingerprint,
            "generated_at": generated_at,
            "as_of": str(fit.as_of.date()),
            "top_n": int(top_n),
            "n_similar": int(n_similar),
            "api_top_n": int(depth),
            "seed": int(seed),
            "id_types": {k: m.dtype for k, m in id_maps.items()},
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
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))  # last: complete
        version_dir = versioned.publish(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    timings["total_s"] = round(time.perf_counter() - t_start, 2)
    log(f"export written to {version_dir} (now {export_dir / versioned.CURRENT}) in {timings['total_s']:.1f} s")
    return {**manifest, "timings": timings, "path": str(version_dir)}
