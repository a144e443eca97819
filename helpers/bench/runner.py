"""Benchmarks: end-to-end book build, a scale ladder, side-by-side ratios, API latency.

    python -m helpers.bench                       # CJ cold/warm + ladder 10k, 100k + ratios + API
    python -m helpers.bench --max-customers 1000000 --no-cj   # adds the 1M x 50k rung
    python -m helpers.bench --write-placeholder   # "not run yet" tables (when none exist)
    python -m helpers.bench --render-only         # re-render tables and plots from bench.json

Measurement
-----------
Every heavy stage runs in its own child process (``python -c``, fresh
interpreter), so peaks are per stage, not cumulative:

* ``wall_s`` / ``cpu_s``: wall and CPU time (``resource.getrusage`` of the
  child itself *plus* its own children, e.g. papermill kernels; deltas around
  the stage's work, imports and process start-up excluded);
* ``peak_rss_gib``: ``ru_maxrss`` of the child as reported by ``os.wait4`` for
  that one process (the maximum over the child and every descendant it waited
  for), so it covers the whole stage including start-up;
* ``wall_process_s``: wall time of the whole child process;
* ``load``: the 1-minute load average before the stage (the machine may be
  shared: numbers measured under load are slower than on an idle machine).

What is measured
----------------
1. **Complete Journey end to end** (``--cj``, default on): the ``make book``
   equivalent, ``python -m helpers.pipeline run`` then ``python -m helpers.pipeline.book``,
   first *cold* (the pipeline cache file and the fitted-model cache are removed,
   so every notebook executes and fits; caching stays on so that the cache is rebuilt), then *warm* (an
   unchanged rerun: notebooks are reused from the cache). Per-notebook times and
   the reused notebooks come from ``reports/run_manifest.json``; the pipeline runs
   with its default ``--jobs`` (notebooks overlap, so their times add up to more
   than the wall time).
2. **Scale ladder** on the synthetic source (``LADDER``: 10k x 5k, 100k x 20k,
   1M x 50k customers x products, ``LINES_PER_CUSTOMER`` lines per customer;
   ``--max-customers`` caps it, default 100,000). Per rung: ``generate``
   (generator + validation + Parquet), ``als_fit`` (``ALS_PARAMS``, fit on the
   window before the test split), ``score_export`` (a fixed-weight hybrid of
   global popularity + buy-again + ALS scores every customer in chunks; top-10
   written as Parquet row groups; own code, used by the metrics stage),
   ``export`` (:func:`helpers.export.production.export` with a fixed tuning, when that
   module exists: refit on all data, both protocols, reasons, similar products,
   CSV/JSONL) and ``metrics`` (``relevance_matrix`` of the test window +
   ``compute_metrics``). Growth exponents are log-log slopes of stage time
   against number of transaction lines (:func:`growth_exponents`).
3. **Ratios** (>1 means the project's code is faster; computed on the
   ``--ratio-customers`` rung): (a) ``ALS.recommend`` vs implicit's batch
   ``model.recommend(..., filter_already_liked_items=False)`` on the same
   factors; (b) ``compute_metrics`` vs a pandas groupby implementation of the
   same definitions (:func:`reference_metrics`); (c) ``ContentTFIDF.score``
   (chunked sparse) vs scikit-learn's dense ``cosine_similarity`` on as many
   customers as a dense matrix of ``--dense-budget-gib`` holds. Top-10 lists
   are compared as sets, items tied with the 10th score allowed to differ
   (:func:`topk_agreement`).
4. **API latency**: :mod:`helpers.bench.api_load` when it exists (8 concurrent
   clients, 10,000 requests), else recorded as not available.

Outputs: ``reports/benchmarks/bench.json`` (written atomically; sections and
rungs not rerun are kept from the previous file unless ``--fresh``), plots
``reports/benchmarks/*.png`` and ``reports/benchmarks/performance_tables.md``
(included by ``book/performance.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import config
from helpers.atomic import write_text
from helpers.bench.api_load import run_benchmark
from helpers.data.sources import synthetic
from helpers.data.star import fingerprint, load_tables, write_tables
from helpers.data.validate import validate_star_schema
from helpers.evaluation.metrics import compute_metrics, relevance_matrix, select_window, temporal_split
from helpers.export import production as ex
from helpers.models.als import ALS
from helpers.models.base import make_fit_data, top_k
from helpers.models.buy_again import BuyAgain
from helpers.models.content import ContentTFIDF
from helpers.models.hybrid import Hybrid
from helpers.models.popularity import GlobalPopularity
from helpers.pipeline.run import CACHE_FILE
from helpers.report.performance import (
    METRIC_GOAL,
    STAGES,
    TABLES_MD,
    render,
    stage_time,
    write_placeholder,
)
from helpers.tuning import model_cache

LADDER: tuple[tuple[int, int], ...] = ((10_000, 5_000), (100_000, 20_000), (1_000_000, 50_000))
LINES_PER_CUSTOMER = 40.0
N_DAYS = 365
TEST_DAYS = 28
TOP_N = 10
ALS_PARAMS = dict(factors=64, iterations=10, regularization=0.05, alpha=1.0, weighting="bm25", random_state=0)
HYBRID_WEIGHTS = {"global_popularity": 0.2, "buy_again": 0.4, "als": 0.4}
CJ_TARGETS = {"cold_s": 240.0, "warm_s": 60.0}
BENCH_JSON = "bench.json"
GIB = 1024 ** 3
SCHEMA_VERSION = 1


# =========================================================================== #
# Pure helpers (tested)
# =========================================================================== #
def growth_exponents(lines, times) -> dict:
    """Log-log slopes of ``times`` against ``lines``.

    Returns ``{"pairs": [slope between consecutive points], "overall": least-squares
    slope over all points}`` (``None`` where fewer than two usable points).
    Points with a non-positive or missing value are skipped.
    """
    pts = [(float(n), float(t)) for n, t in zip(lines, times)
           if n is not None and t is not None and float(n) > 0 and float(t) > 0 and math.isfinite(float(t))]
    pts.sort()
    pairs = []
    for (n0, t0), (n1, t1) in zip(pts[:-1], pts[1:]):
        pairs.append(math.log(t1 / t0) / math.log(n1 / n0) if n1 != n0 else None)
    overall = None
    if len(pts) >= 2 and len({n for n, _ in pts}) >= 2:
        x = np.log([n for n, _ in pts])
        y = np.log([t for _, t in pts])
        overall = float(np.polyfit(x, y, 1)[0])
    return {"pairs": pairs, "overall": overall}


def reference_metrics(predictions: pd.DataFrame, relevant: pd.DataFrame, n_relevant: pd.Series,
                      k: int = 10) -> pd.DataFrame:
    """Precision, recall and NDCG@k the straightforward pandas way (the baseline of ratio b).

    ``predictions``: long frame ``customer_id, rank (1-based), product_id`` (empty
    slots simply absent); ``relevant``: distinct relevant ``customer_id, product_id``
    pairs; ``n_relevant``: relevant products per evaluated customer (index =
    ``customer_id``; off-catalog products included). Same definitions as
    :func:`helpers.evaluation.metrics.compute_metrics`: ``precision = hits/k``, ``recall =
    hits/n_relevant``, ``ndcg = sum_{hit ranks r} 1/log2(r+1) / IDCG(min(k, n_relevant))``.
    """
    top = predictions.loc[predictions["rank"] <= k, ["customer_id", "rank", "product_id"]]
    merged = top.merge(relevant[["customer_id", "product_id"]].assign(hit=1.0),
                       on=["customer_id", "product_id"], how="left")
    merged["hit"] = merged["hit"].fillna(0.0)
    merged["gain"] = merged["hit"] / np.log2(merged["rank"] + 1.0)
    per = merged.groupby("customer_id").agg(hits=("hit", "sum"), dcg=("gain", "sum"))
    per = per.reindex(n_relevant.index, fill_value=0.0)
    n_rel = n_relevant.astype(float)
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = pd.Series(ideal[np.minimum(n_rel.to_numpy(), k).astype(int)], index=n_rel.index)
    return pd.DataFrame({
        "precision": per["hits"] / k,
        "recall": (per["hits"] / n_rel).where(n_rel > 0, 0.0),
        "ndcg": (per["dcg"] / idcg).where(idcg > 0, 0.0),
    })


def topk_agreement(ids_a: np.ndarray, scores_a: np.ndarray, ids_b: np.ndarray, scores_b: np.ndarray,
                   rtol: float = 1e-5, atol: float = 1e-6) -> dict:
    """Do two top-k lists per row hold the same items, ties allowed?

    A row is ``identical`` when both item *sets* are equal; ``ties_only`` when they
    differ only by items whose score equals (within tolerance) the row's k-th
    score in both lists (a tie at the boundary may be broken either way);
    otherwise ``mismatched``.
    """
    ids_a, ids_b = np.asarray(ids_a), np.asarray(ids_b)
    scores_a = np.asarray(scores_a, dtype=np.float64)
    scores_b = np.asarray(scores_b, dtype=np.float64)
    if ids_a.shape != ids_b.shape:
        raise ValueError(f"shapes differ: {ids_a.shape} vs {ids_b.shape}")
    sa, sb = np.sort(ids_a, axis=1), np.sort(ids_b, axis=1)
    same = (sa == sb).all(axis=1)
    ties = 0
    bad_rows = []
    for r in np.flatnonzero(~same):
        kth_a, kth_b = scores_a[r].min(), scores_b[r].min()
        tol = atol + rtol * max(abs(kth_a), abs(kth_b))
        only_a = ~np.isin(ids_a[r], ids_b[r])
        only_b = ~np.isin(ids_b[r], ids_a[r])
        if (abs(kth_a - kth_b) <= tol and np.all(np.abs(scores_a[r][only_a] - kth_a) <= tol)
                and np.all(np.abs(scores_b[r][only_b] - kth_b) <= tol)):
            ties += 1
        else:
            bad_rows.append(int(r))
    n = int(len(ids_a))
    return {"n_rows": n, "identical": int(same.sum()), "ties_only": ties, "mismatched": len(bad_rows),
            "agree": len(bad_rows) == 0, "example_mismatched_rows": bad_rows[:5]}


def als_from_factors(data, user_factors: np.ndarray, item_factors: np.ndarray, **params):
    """An :class:`~helpers.models.als.ALS` on ``data`` with given factors, as if fitted.

    Used to score (and to build implicit's own model) from the factors saved by
    the ``als_fit`` stage instead of fitting again.
    """
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits


    als = ALS(**params)
    als.data = data
    als.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
    als.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    counts = sp.csr_matrix(data.user_items, dtype=np.float32)
    if als.weighting == "bm25":
        als._bm25_stats(counts)
    als._warm = np.diff(counts.indptr) >= max(int(als.min_history), 1)
    with threadpool_limits(1, "blas"):  # what implicit wants (it warns otherwise), as in ALS.fit
        model = AlternatingLeastSquares(factors=als.factors, regularization=als.regularization, alpha=1.0,
                                        iterations=als.iterations, random_state=als.random_state,
                                        dtype=np.float32)
    model.user_factors = als.user_factors
    model.item_factors = als.item_factors
    als._model = model
    als._fit_fallback(data)
    return als


def implicit_recommend(model, rows: np.ndarray, user_items, n: int = TOP_N):
    """implicit's own batch top-N (no filtering) for customer rows; column indices and scores."""
    import scipy.sparse as sp

    rows = np.asarray(rows, dtype=np.int64)
    return model.recommend(rows, sp.csr_matrix(user_items[rows]), N=n, filter_already_liked_items=False)


# =========================================================================== #
# Child-process stage runner
# =========================================================================== #
def _rusage() -> dict:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_self": s.ru_utime + s.ru_stime, "cpu_children": c.ru_utime + c.ru_stime,
            "maxrss_self_kib": s.ru_maxrss, "maxrss_children_kib": c.ru_maxrss}


def _write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp, datetime)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def child_main(spec_path: str) -> int:
    """Entry point of a stage's child process: run ``spec["func"](**spec["kwargs"])``."""
    spec = json.loads(Path(spec_path).read_text())
    func = globals()[spec["func"]]
    r0, t0 = _rusage(), time.perf_counter()
    try:
        result = func(**spec["kwargs"])
        error = None
    except BaseException as exc:  # reported to the parent, which records it
        result, error = None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    t1, r1 = time.perf_counter(), _rusage()
    out = {
        "result": result,
        "error": error,
        "wall_s": t1 - t0,
        "cpu_s": (r1["cpu_self"] - r0["cpu_self"]) + (r1["cpu_children"] - r0["cpu_children"]),
        "maxrss_self_gib": r1["maxrss_self_kib"] * 1024 / GIB,
        "maxrss_children_gib": r1["maxrss_children_kib"] * 1024 / GIB,
    }
    _write_json(Path(spec["out"]), out)
    return 0 if error is None else 1


def run_stage(label: str, func: str, log=print, **kwargs) -> dict:
    """Run ``func(**kwargs)`` of this module in a fresh child process and measure it."""
    scratch = Path(tempfile.mkdtemp(prefix="recbook-bench-"))
    spec, out = scratch / "spec.json", scratch / "out.json"
    _write_json(spec, {"func": func, "kwargs": kwargs, "out": str(out)})
    cmd = [sys.executable, "-c", "import sys; from helpers.bench.runner import child_main; sys.exit(child_main(sys.argv[1]))",
           str(spec)]
    load = os.getloadavg()
    log(f"[bench] {label}: started (load {load[0]:.2f})")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=config.PROJECT_ROOT)
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall_process = time.perf_counter() - t0
    rec = {"stage": label, "ok": False, "load_before": [round(x, 2) for x in load],
           "wall_process_s": round(wall_process, 3), "cpu_process_s": round(ru.ru_utime + ru.ru_stime, 3),
           "peak_rss_gib": round(ru.ru_maxrss * 1024 / GIB, 3), "exit_code": proc.returncode}
    if out.exists():
        child = json.loads(out.read_text())
        rec.update(ok=child["error"] is None, wall_s=round(child["wall_s"], 3), cpu_s=round(child["cpu_s"], 3),
                   result=child["result"], error=child["error"])
    else:
        rec.update(wall_s=round(wall_process, 3), cpu_s=rec["cpu_process_s"], result=None,
                   error=f"child exited with {proc.returncode} without a result (killed? out of memory?)")
    shutil.rmtree(scratch, ignore_errors=True)
    if rec["ok"]:
        log(f"[bench] {label}: done in {rec['wall_s']:.1f} s (cpu {rec['cpu_s']:.1f} s, "
            f"peak RSS {rec['peak_rss_gib']:.2f} GiB)")
    else:
        first = (rec["error"] or "").strip().splitlines()[:1]
        log(f"[bench] {label}: FAILED after {rec['wall_process_s']:.1f} s: {first[0] if first else ''}")
    return rec


# =========================================================================== #
# Stage bodies (run in the child)
# =========================================================================== #
FACT_COLUMNS = ["customer_id", "product_id", "basket_id", "timestamp", "quantity"]


def _tick(timings: dict, key: str, t0: float) -> float:
    """Record the time since ``t0`` under ``key`` and the process's peak RSS so far
    (``<step>_peak_rss_gib``: the step that raised it is the one that set the stage's peak)."""
    import resource

    t = time.perf_counter()
    timings[key] = round(t - t0, 3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
    timings[f"{key.removesuffix('_s')}_peak_rss_gib"] = round(peak, 3)
    return t


def _load_fit(data_dir: str, test_days: int = TEST_DAYS, with_products: bool = True):
    """Fact columns, customers, products, the test split and the fit data (window before the test)."""
    timings: dict = {}
    t = time.perf_counter()
    d = Path(data_dir)
    fact = pd.read_parquet(d / "fact_transactions.parquet", columns=FACT_COLUMNS)
    customers = pd.read_parquet(d / "dim_customer.parquet", columns=["customer_id"])
    products = pd.read_parquet(d / "dim_product.parquet") if with_products else pd.DataFrame(
        {"product_id": pd.read_parquet(d / "dim_product.parquet", columns=["product_id"])["product_id"]})
    t = _tick(timings, "load_s", t)
    split = temporal_split(fact, test_days=test_days, valid_days=test_days)
    fit = make_fit_data(fact, customers, products, split.test_start)
    _tick(timings, "fit_data_s", t)
    return fact, split, fit, timings


def stage_generate(n_customers: int, n_products: int, out_dir: str, seed: int = 0,
                   lines_per_customer: float = LINES_PER_CUSTOMER, n_days: int = N_DAYS) -> dict:
    timings: dict = {}
    t = time.perf_counter()
    raw = synthetic.generate(n_customers=n_customers, n_products=n_products, n_days=n_days, seed=seed,
                             lines_per_customer=lines_per_customer, progress=True)
    t = _tick(timings, "generate_s", t)
    tables = validate_star_schema({k: v for k, v in raw.items() if not k.startswith("_")})
    del raw
    t = _tick(timings, "validate_s", t)
    rows = {n: int(len(df)) for n, df in tables.items()}
    write_tables(tables, out_dir, {"dataset": "synthetic", "rows": rows})
    _tick(timings, "write_s", t)
    timings["fingerprint"] = fingerprint(tables) if rows["fact_transactions"] < 2_000_000 else None
    return {"timings": timings, "rows": rows, "lines": rows["fact_transactions"]}


def stage_als_fit(data_dir: str, factors_out: str, als_params: dict) -> dict:
    from threadpoolctl import threadpool_info


    _, _, fit, timings = _load_fit(data_dir, with_products=False)
    t = time.perf_counter()
    print(f"[bench]   ALS fit: {fit.n_customers:,} customers x {fit.n_items:,} items, "
          f"{fit.user_items.nnz:,} non-zeros, {als_params}", flush=True)
    als = ALS(**als_params).fit(fit)
    _tick(timings, "als_fit_s", t)
    np.savez(factors_out, user_factors=als.user_factors, item_factors=als.item_factors,
             item_ids=fit.item_ids, customer_ids=fit.customer_ids)
    return {"timings": timings, "n_customers": fit.n_customers, "n_items": fit.n_items,
            "nnz": int(fit.user_items.nnz), "blas": [i.get("internal_api") for i in threadpool_info()]}


def _hybrid(fit, factors_path: str, als_params: dict, weights: dict):
    f = np.load(factors_path)
    if not np.array_equal(f["item_ids"], fit.item_ids):
        raise RuntimeError("saved ALS factors do not match this catalog")
    comps = {"global_popularity": GlobalPopularity().fit(fit), "buy_again": BuyAgain().fit(fit),
             "als": als_from_factors(fit, f["user_factors"], f["item_factors"], **als_params)}
    return Hybrid({n: comps[n] for n in weights}, dict(weights)).fit(fit)


def score_chunk_size(n_items: int, n_components: int = 3, budget_bytes: float = 1.0e9) -> int:
    """Customers per dense score block so that the blocks stay within ``budget_bytes``."""
    per_row = max(n_items, 1) * 4 * (2 * n_components + 6)
    return int(max(64, min(2048, budget_bytes // per_row)))


def stage_score_export(data_dir: str, factors_path: str, out_path: str, als_params: dict, weights: dict,
                       k: int = TOP_N) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    _, _, fit, timings = _load_fit(data_dir, with_products=False)
    t = time.perf_counter()
    hybrid = _hybrid(fit, factors_path, als_params, weights)
    _tick(timings, "fit_components_s", t)
    schema = pa.schema([("customer_id", pa.int64()), ("rank", pa.int16()), ("product_id", pa.int64()),
                        ("score", pa.float32())])
    ids = fit.customer_ids
    chunk = score_chunk_size(fit.n_items, len(weights))
    score_s = write_s = 0.0
    rows = 0
    tmp = Path(out_path).with_suffix(".tmp")
    writer = pq.ParquetWriter(tmp, schema, compression="zstd")
    try:
        for s in tqdm(range(0, len(ids), chunk), desc="score+export", unit="chunk", mininterval=2.0):
            t0 = time.perf_counter()
            c = ids[s:s + chunk]
            pid, val = hybrid.recommend(c, k=k, chunk_size=chunk)
            t1 = time.perf_counter()
            kk = pid.shape[1]
            table = pa.table({"customer_id": np.repeat(c, kk), "rank": np.tile(np.arange(1, kk + 1, dtype=np.int16), len(c)),
                              "product_id": pid.ravel(), "score": val.ravel().astype(np.float32)}, schema=schema)
            writer.write_table(table)
            rows += table.num_rows
            write_s += time.perf_counter() - t1
            score_s += t1 - t0
    finally:
        writer.close()
    os.replace(tmp, out_path)
    timings.update(score_s=round(score_s, 3), write_s=round(write_s, 3), chunk_size=chunk)
    return {"timings": timings, "rows": rows, "customers": int(len(ids)), "n_items": fit.n_items,
            "file_mib": round(os.path.getsize(out_path) / 2**20, 2)}


def fixed_tuning(weights: dict = HYBRID_WEIGHTS, als_params: dict = ALS_PARAMS) -> dict:
    """A ``tuning.json``-shaped dict with the benchmark's fixed parameters (for helpers.export.production)."""
    new_weights = {n: w for n, w in weights.items() if n != "buy_again"}  # buy-again is not a 'new' model
    return {
        "global_popularity": {"all": {"window_days": None}, "new": {"window_days": None}},
        "buy_again": {"all": {"half_life_days": 30.0}},
        "als": {"all": dict(als_params), "new": dict(als_params)},
        "hybrid": {
            "all": {"components": list(weights), "weights": dict(weights), "rules": {}, "light_max_baskets": 5},
            "new": {"components": list(new_weights), "weights": new_weights, "rules": {}, "light_max_baskets": 5},
        },
    }


def stage_project_export(data_dir: str, export_dir: str, tuning: dict) -> dict:
    t = time.perf_counter()
    tables = load_tables(data_dir, names=["fact_transactions", "dim_customer", "dim_product", "customer_exposure"])
    load_s = time.perf_counter() - t
    res = ex.export(processed_dir=data_dir, export_dir=export_dir, tables=tables, tuning=tuning,
                    log=lambda msg: print(f"[bench]   export: {msg}", flush=True))
    timings = {"load_s": round(load_s, 3), **res.get("timings", {})}
    return {"timings": timings, "row_counts": res.get("row_counts", {})}


def _metric_inputs(data_dir: str, topk_path: str, test_days: int = TEST_DAYS):
    """Evaluated customers' top-k column indices, relevance rows and n_relevant (protocol 'all')."""
    timings: dict = {}
    t = time.perf_counter()
    d = Path(data_dir)
    fact = pd.read_parquet(d / "fact_transactions.parquet", columns=["customer_id", "product_id", "timestamp", "quantity"])
    customer_ids = np.sort(pd.read_parquet(d / "dim_customer.parquet", columns=["customer_id"])["customer_id"]
                           .to_numpy(np.int64))
    top = pd.read_parquet(topk_path)
    t = _tick(timings, "load_s", t)
    split = temporal_split(fact, test_days=test_days, valid_days=test_days)
    train = fact.loc[(fact["timestamp"] < split.test_start) & (fact["quantity"] > 0)]
    item_ids = np.unique(train["product_id"].to_numpy(np.int64))
    buyers = np.unique(train["customer_id"].to_numpy(np.int64))
    test = select_window(fact, split.test_start, split.end)
    del fact, train
    t = _tick(timings, "split_s", t)
    rel = relevance_matrix(test, customer_ids, item_ids)
    t = _tick(timings, "relevance_s", t)
    has_fit = np.isin(customer_ids, buyers)
    rows = np.flatnonzero(has_fit & (rel.n_relevant > 0))
    k = int(top["rank"].max())
    top = top.sort_values(["customer_id", "rank"], kind="stable")
    pid = top["product_id"].to_numpy(np.int64).reshape(-1, k)
    cust = top["customer_id"].to_numpy(np.int64)[::k]
    if not np.array_equal(cust, customer_ids):
        raise RuntimeError("top-k file does not hold every customer once")
    pos = np.clip(np.searchsorted(item_ids, pid), 0, len(item_ids) - 1)
    cols = np.where(item_ids[pos] == pid, pos, -1)
    sub = rel.matrix[rows]
    sub.sort_indices()
    _tick(timings, "align_s", t)
    return {"customer_ids": customer_ids[rows], "item_ids": item_ids, "topk": cols[rows], "relevance": sub,
            "n_relevant": rel.n_relevant[rows], "test_tx": test, "timings": timings}


def stage_metrics(data_dir: str, topk_path: str) -> dict:
    inp = _metric_inputs(data_dir, topk_path)
    timings = inp["timings"]
    t = time.perf_counter()
    m = compute_metrics(inp["topk"], inp["relevance"], inp["n_relevant"], ks=(5, 10))
    _tick(timings, "compute_metrics_s", t)
    means = {f"{name}@{k}": round(float(v.mean()), 6) for (name, k), v in m.items()}
    return {"timings": timings, "evaluated_customers": int(len(inp["topk"])), "means": means}


def stage_ratio_topn(data_dir: str, factors_path: str, als_params: dict, max_users: int | None = None,
                     k: int = TOP_N, repeats: int = 2) -> dict:
    """Ratio (a): the project's batch top-N vs implicit's ``recommend`` on the same factors."""
    _, _, fit, timings = _load_fit(data_dir, with_products=False)
    f = np.load(factors_path)
    als = als_from_factors(fit, f["user_factors"], f["item_factors"], **als_params)
    warm = np.flatnonzero(np.diff(fit.user_items.indptr) > 0)  # cold rows get popularity, not factors
    if max_users:
        warm = warm[:max_users]
    ids = fit.customer_ids[warm]
    project_s, implicit_s = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        p_ids, p_scores = als.recommend(ids, k=k, exclude=None)
        project_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        i_cols, i_scores = implicit_recommend(als._model, warm, fit.user_items, n=k)
        implicit_s.append(time.perf_counter() - t)
    agreement = topk_agreement(p_ids, p_scores, fit.item_ids[i_cols], i_scores)
    p, i = min(project_s), min(implicit_s)
    return {"timings": timings, "users": int(len(ids)), "n_items": fit.n_items, "project_s": round(p, 3),
            "reference_s": round(i, 3), "ratio": round(i / p, 3) if p > 0 else None,
            "project": "ALS.recommend (Recommender.recommend: chunked dense scores + top_k)",
            "reference": "implicit AlternatingLeastSquares.recommend(userids, user_items, N=10, "
                         "filter_already_liked_items=False)",
            "agreement": agreement, "repeats": repeats,
            "threads": {"implicit_num_threads": int(getattr(als._model, "num_threads", 0)),
                        "omp_blas": os.environ.get("OMP_NUM_THREADS")}}


def _long_frames(inp: dict):
    topk, cust, item_ids = inp["topk"], inp["customer_ids"], inp["item_ids"]
    n, k = topk.shape
    valid = topk >= 0
    pred = pd.DataFrame({"customer_id": np.repeat(cust, k)[valid.ravel()],
                         "rank": np.tile(np.arange(1, k + 1), n)[valid.ravel()],
                         "product_id": item_ids[np.where(valid, topk, 0)].ravel()[valid.ravel()]})
    test = inp["test_tx"]
    buys = test.loc[test["quantity"] > 0, ["customer_id", "product_id"]]
    relevant = buys.loc[buys["customer_id"].isin(cust)].drop_duplicates()
    n_rel = pd.Series(inp["n_relevant"], index=pd.Index(cust, name="customer_id"))
    return pred, relevant, n_rel


def stage_ratio_metrics(data_dir: str, topk_path: str, k: int = TOP_N, repeats: int = 7) -> dict:
    """Ratio (b): ``compute_metrics`` vs :func:`reference_metrics` (pandas) on the same predictions."""
    inp = _metric_inputs(data_dir, topk_path)
    t = time.perf_counter()
    pred, relevant, n_rel = _long_frames(inp)
    prep_s = time.perf_counter() - t
    project_s, reference_s = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        m = compute_metrics(inp["topk"], inp["relevance"], inp["n_relevant"], ks=(k,))
        project_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = reference_metrics(pred, relevant, n_rel, k=k)
        reference_s.append(time.perf_counter() - t)
    diffs = {name: float(np.max(np.abs(m[(name, k)] - ref[name].to_numpy()))) if len(ref) else 0.0
             for name in ("precision", "recall", "ndcg")}
    p, r = min(project_s), min(reference_s)
    return {"customers": int(len(inp["topk"])), "prediction_rows": int(len(pred)),
            "relevant_pairs": int(len(relevant)), "project_s": round(p, 4), "reference_s": round(r, 4),
            "ratio": round(r / p, 2) if p > 0 else None, "goal": METRIC_GOAL,
            "max_abs_diff": diffs, "agree": all(v <= 1e-9 for v in diffs.values()),
            "prep_long_frames_s": round(prep_s, 3), "repeats": repeats,
            "project": "helpers.evaluation.metrics.compute_metrics (ks=(10,))",
            "reference": "pandas merge + groupby (helpers.bench.runner.reference_metrics)"}


def stage_ratio_content(data_dir: str, dense_budget_gib: float = 1.0, k: int = TOP_N,
                        all_customers: bool = True) -> dict:
    """Ratio (c): ``ContentTFIDF.score`` (chunked) vs sklearn ``cosine_similarity`` (dense)."""
    import inspect

    from sklearn.metrics.pairwise import cosine_similarity
    from tqdm.auto import tqdm


    _, _, fit, timings = _load_fit(data_dir, with_products=True)
    t = time.perf_counter()
    # pure cosine, what sklearn computes: switch off the popularity tie-break prior where the model has one
    params = {"popularity_weight": 0.0} if "popularity_weight" in inspect.signature(ContentTFIDF).parameters else {}
    content = ContentTFIDF(**params).fit(fit)
    t = _tick(timings, "content_fit_s", t)
    warm = np.flatnonzero(content._warm)
    n_dense = int(min(len(warm), max(1, dense_budget_gib * GIB // (8 * fit.n_items))))
    rows = warm[:n_dense]
    t = time.perf_counter()
    s_proj = content.score(rows)
    project_s = time.perf_counter() - t
    p_idx, p_val = top_k(s_proj, k)
    del s_proj
    t = time.perf_counter()
    s_ref = cosine_similarity(content.profiles[rows], content.item_tfidf)
    reference_s = time.perf_counter() - t
    ref_dtype = str(s_ref.dtype)
    r_idx, r_val = top_k(np.asarray(s_ref, dtype=np.float32), k)
    del s_ref
    agreement = topk_agreement(p_idx, p_val, r_idx, r_val)
    out = {"timings": timings, "customers": int(n_dense), "n_items": fit.n_items,
           "vocabulary": int(content.item_tfidf.shape[1]), "project_s": round(project_s, 3),
           "reference_s": round(reference_s, 3), "ratio": round(reference_s / project_s, 3) if project_s else None,
           "reference_dtype": ref_dtype, "agreement": agreement, "content_params": params,
           "project": "ContentTFIDF.score (blocks of 256 profiles densified x sparse items)",
           "reference": "sklearn.metrics.pairwise.cosine_similarity(profiles, items) (dense output)",
           "dense_full_size_gib": round(fit.n_customers * fit.n_items * 8 / GIB, 2)}
    if all_customers:
        chunk = 2048
        t = time.perf_counter()
        for s in tqdm(range(0, fit.n_customers, chunk), desc="content all customers", unit="chunk", mininterval=2.0):
            r = np.arange(s, min(s + chunk, fit.n_customers))
            top_k(content.score(r), k)
        out["all_customers"] = {"customers": fit.n_customers, "score_topk_s": round(time.perf_counter() - t, 3)}
    return out


def stage_command(cmd: list[str], cwd: str | None = None, env: dict | None = None) -> dict:
    """Run a command (e.g. the pipeline or the book build); its children are measured too."""
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd or config.PROJECT_ROOT, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {res.returncode}")
    return {"cmd": cmd, "seconds": round(time.perf_counter() - t, 3)}


def stage_api(export_dir: str, n_requests: int = 10_000, concurrency: int = 8) -> dict:
    return run_benchmark(export_dir=export_dir, n_requests=n_requests, concurrency=concurrency)


# =========================================================================== #
# Orchestration (parent process)
# =========================================================================== #
def machine_info() -> dict:
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) * 1024 / GIB, 1)
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for pkg in ("numpy", "scipy", "pandas", "implicit", "scikit-learn", "pyarrow"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpus": os.cpu_count(), "memory_gib": mem, "platform": platform.platform(),
            "python": platform.python_version(), "packages": versions}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _manifest_summary(reports_dir: Path) -> dict:
    path = reports_dir / "run_manifest.json"
    if not path.exists():
        return {}
    m = json.loads(path.read_text())
    return {"notebooks": m.get("notebooks", {}), "reused_from_cache": m.get("reused_from_cache", []),
            "pipeline_wall_time_s": m.get("wall_time_s"), "pipeline_jobs": m.get("jobs", 1),
            "git_commit": m.get("git_commit"),
            "finished_at": m.get("finished_at")}


def _code_state(root: Path) -> dict:
    """What the pipeline cache key depends on besides the data: the helpers source hash (as
    :func:`helpers.config.code_hash` computes it, for ``root``) and the git commit."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((Path(root) / "helpers").rglob("*.py")):
        h.update(path.read_bytes())
    res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True, text=True)
    return {"helpers_hash": h.hexdigest()[:16], "git_commit": res.stdout.strip() or None}


def make_snapshot(dest: Path) -> dict:
    """The committed project (``git archive HEAD``) unpacked into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    archive = subprocess.Popen(["git", "archive", head], cwd=config.PROJECT_ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        raise RuntimeError("git archive failed")
    return {"commit": head, "path": str(dest)}


def bench_cj(phases=("cold", "warm"), snapshot_dir: Path | None = None, log=print) -> dict:
    """Cold then warm ``make book`` equivalent on Complete Journey.

    With ``snapshot_dir`` (the default of the CLI) the runs happen in a snapshot of
    the committed project (``git archive HEAD``; ``RECBOOK_ROOT`` and ``PYTHONPATH``
    point at it, so notebooks import the snapshot's ``helpers``): the pipeline cache
    key hashes the ``helpers`` source, so in a working tree that others edit while the
    benchmark runs the warm run could not reuse anything, and timings would mix code
    versions. Without it, the runs use the working tree and its ``reports/``. Either
    way the helpers hash is recorded before and after each phase (``code_changed``).
    """
    py = sys.executable
    root, env, where = config.PROJECT_ROOT, None, {"mode": "working tree"}
    if snapshot_dir is not None:
        shutil.rmtree(snapshot_dir, ignore_errors=True)
        where = {"mode": "snapshot of HEAD", **make_snapshot(Path(snapshot_dir))}
        root = Path(snapshot_dir)
        env = {**os.environ, "RECBOOK_ROOT": str(root),
               "PYTHONPATH": os.pathsep.join([str(root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    pipeline = [py, "-m", "helpers.pipeline", "run", "--dataset", "completejourney", "--no-progress"]
    book = [py, "-m", "helpers.pipeline.book"]
    out: dict = {"measured_at": _now(), "targets": dict(CJ_TARGETS), "where": where,
                 "cold_mode": f"reports/{CACHE_FILE} and the model cache removed, pipeline run with the cache on "
                              "(so that it is rebuilt)"}
    for phase in phases:
        if phase == "cold":
            (root / "reports" / CACHE_FILE).unlink(missing_ok=True)
            model_cache.clear(root / "data" / "processed")
        before = _code_state(root)
        p = run_stage(f"CJ {phase}: pipeline", "stage_command", log=log, cmd=pipeline, cwd=str(root), env=env)
        summary = _manifest_summary(root / "reports") if p["ok"] else {}
        b = run_stage(f"CJ {phase}: book", "stage_command", log=log, cmd=book, cwd=str(root), env=env) \
            if p["ok"] else None
        after = _code_state(root)
        total = p["wall_process_s"] + (b["wall_process_s"] if b else 0.0)
        out[phase] = {"pipeline": _slim(p), "book": _slim(b) if b else None, "total_s": round(total, 2),
                      "ok": bool(p["ok"] and b and b["ok"]), "measured_at": _now(), "code_before": before,
                      "code_after": after, "code_changed": before["helpers_hash"] != after["helpers_hash"],
                      **summary}
        log(f"[bench] CJ {phase}: {total:.1f} s (pipeline {p['wall_process_s']:.1f} s"
            + (f", book {b['wall_process_s']:.1f} s)" if b else ")")
            + (" -- helpers/ changed during the run" if out[phase]["code_changed"] else ""))
    return out


def merge_cj(old: dict | None, new: dict) -> dict:
    """Phases measured now replace the old ones; ``met`` is recomputed."""
    out = {**(old or {}), **new}
    for phase in ("cold", "warm"):
        if phase not in new and old and phase in old:
            out[phase] = old[phase]
    out["met"] = {ph: bool((out.get(ph) or {}).get("ok")) and (out[ph]["total_s"] < CJ_TARGETS[f"{ph}_s"])
                  for ph in ("cold", "warm") if out.get(ph)}
    return out


def _slim(rec: dict | None) -> dict | None:
    if rec is None:
        return None
    return {k: v for k, v in rec.items() if k != "stage"}


def bench_rung(n_customers: int, n_products: int, work: Path, seed: int, lines_per_customer: float,
               project_export: bool, keep_export: Path | None = None, log=print) -> dict:
    tag = f"{n_customers:,} x {n_products:,}"
    folder = work / f"rung-{n_customers}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data_dir = folder / "star"
    factors = folder / "als_factors.npz"
    topk = folder / "top10.parquet"
    rung = {"n_customers": n_customers, "n_products": n_products, "lines_per_customer": lines_per_customer,
            "seed": seed, "measured_at": _now(), "load_before": [round(x, 2) for x in os.getloadavg()],
            "stages": {}}
    st = rung["stages"]
    st["generate"] = run_stage(f"{tag}: generate", "stage_generate", log=log, n_customers=n_customers,
                               n_products=n_products, out_dir=str(data_dir), seed=seed,
                               lines_per_customer=lines_per_customer)
    if not st["generate"]["ok"]:
        return rung
    rung["lines"] = st["generate"]["result"]["lines"]
    st["als_fit"] = run_stage(f"{tag}: ALS fit", "stage_als_fit", log=log, data_dir=str(data_dir),
                              factors_out=str(factors), als_params=ALS_PARAMS)
    if st["als_fit"]["ok"]:
        st["score_export"] = run_stage(f"{tag}: hybrid scoring + export", "stage_score_export", log=log,
                                       data_dir=str(data_dir), factors_path=str(factors), out_path=str(topk),
                                       als_params=ALS_PARAMS, weights=HYBRID_WEIGHTS)
    if project_export:
        st["export"] = run_stage(f"{tag}: helpers.export.production", "stage_project_export", log=log,
                                 data_dir=str(data_dir), export_dir=str(folder / "exports"),
                                 tuning=fixed_tuning())
        if keep_export is not None and st["export"]["ok"]:  # served by the API latency benchmark
            shutil.rmtree(keep_export, ignore_errors=True)
            os.replace(folder / "exports", keep_export)
        shutil.rmtree(folder / "exports", ignore_errors=True)
    if st.get("score_export", {}).get("ok"):
        st["metrics"] = run_stage(f"{tag}: metrics", "stage_metrics", log=log, data_dir=str(data_dir),
                                  topk_path=str(topk))
    for rec in st.values():
        rec.pop("stage", None)
    return rung


def bench_ratios(rung_dir: Path, dense_budget_gib: float, log=print) -> dict:
    data_dir, factors, topk = rung_dir / "star", rung_dir / "als_factors.npz", rung_dir / "top10.parquet"
    out: dict = {"measured_at": _now(), "data": rung_dir.name}
    if factors.exists():
        out["topn"] = _slim(run_stage("ratio a: top-N vs implicit", "stage_ratio_topn", log=log,
                                      data_dir=str(data_dir), factors_path=str(factors), als_params=ALS_PARAMS))
    if topk.exists():
        out["metrics"] = _slim(run_stage("ratio b: compute_metrics vs pandas", "stage_ratio_metrics", log=log,
                                         data_dir=str(data_dir), topk_path=str(topk)))
    out["content"] = _slim(run_stage("ratio c: content chunked vs sklearn dense", "stage_ratio_content", log=log,
                                     data_dir=str(data_dir), dense_budget_gib=dense_budget_gib))
    return out


def bench_api(export_dir: Path | None, log=print) -> dict:
    """API latency (helpers.bench.api_load) on ``data/exports`` or, failing that, a rung's export."""
    import importlib.util

    if importlib.util.find_spec("helpers.bench.api_load") is None:
        log("[bench] API latency: helpers.bench.api_load not available")
        return {"available": False, "note": "not available (helpers.bench.api_load does not exist)", "measured_at": _now()}
    candidates = [config.EXPORTS_DIR] + ([export_dir] if export_dir else [])
    found = next((Path(d) for d in candidates if (Path(d) / "manifest.json").exists()), None)
    if found is None:
        log("[bench] API latency: no export to serve (run the pipeline or the ladder's export stage)")
        return {"available": True, "ok": False, "measured_at": _now(),
                "error": "no export folder with a manifest.json to serve"}
    rec = run_stage("API latency (8 clients, 10,000 requests)", "stage_api", log=log, export_dir=str(found),
                    n_requests=10_000, concurrency=8)
    return {"available": True, "measured_at": _now(), "export_dir": str(found), **_slim(rec)}


def _key_rungs(rungs: list[dict]) -> list[dict]:
    return sorted(rungs, key=lambda r: r["n_customers"])


def growth_table(rungs: list[dict]) -> dict:
    """Growth exponents per stage over the rungs (time against transaction lines)."""
    rungs = [r for r in _key_rungs(rungs) if r.get("lines")]
    out = {}
    for stage in STAGES:
        pts = [(r["lines"], stage_time(r["stages"].get(stage))) for r in rungs]
        pts = [(n, t) for n, t in pts if t]
        if len(pts) >= 2:
            g = growth_exponents([n for n, _ in pts], [t for _, t in pts])
            g["lines"] = [n for n, _ in pts]
            out[stage] = g
    return out


def merge_results(old: dict | None, new: dict) -> dict:
    """New sections replace old ones; ladder rungs are merged by number of customers."""
    if not old or old.get("schema") != SCHEMA_VERSION:
        merged = dict(new)
    else:
        merged = {**old, **{k: v for k, v in new.items() if k != "scale"}}
        if "cj" in new:
            merged["cj"] = merge_cj(old.get("cj"), new["cj"])
        if "scale" in new:
            rungs = {r["n_customers"]: r for r in old.get("scale", {}).get("rungs", [])}
            rungs.update({r["n_customers"]: r for r in new["scale"]["rungs"]})
            merged["scale"] = {**old.get("scale", {}), **new["scale"], "rungs": _key_rungs(list(rungs.values()))}
    if merged.get("cj"):
        merged["cj"] = merge_cj(None, merged["cj"])
    if "scale" in merged:
        merged["scale"]["growth"] = growth_table(merged["scale"]["rungs"])
    return merged


# =========================================================================== #
# CLI
# =========================================================================== #
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cj", action=argparse.BooleanOptionalAction, default=True,
                    help="Complete Journey end to end, cold and warm (default on)")
    ap.add_argument("--cj-phases", default="cold,warm",
                    help="which CJ runs: cold,warm (default) or warm alone (reuses the last cache)")
    ap.add_argument("--cj-snapshot", action=argparse.BooleanOptionalAction, default=True,
                    help="run CJ in a snapshot of HEAD (default; isolates the cache from concurrent edits) "
                         "instead of the working tree")
    ap.add_argument("--max-customers", type=int, default=100_000,
                    help="largest ladder rung (default 100000; 1000000 adds the 1M x 50k rung)")
    ap.add_argument("--rungs", help="only these rungs (comma-separated customer counts), e.g. 1000000")
    ap.add_argument("--ladder", action=argparse.BooleanOptionalAction, default=True, help="run the scale ladder")
    ap.add_argument("--sizes", help="replace the ladder (quick checks), e.g. 2000x1000,5000x2000")
    ap.add_argument("--ratios", action=argparse.BooleanOptionalAction, default=True, help="run the three ratios")
    ap.add_argument("--ratio-customers", type=int, default=100_000, help="rung whose data the ratios use")
    ap.add_argument("--dense-budget-gib", type=float, default=1.0,
                    help="size of the dense sklearn matrix in ratio (c)")
    ap.add_argument("--api", action=argparse.BooleanOptionalAction, default=True, help="API latency (if available)")
    ap.add_argument("--project-export", action=argparse.BooleanOptionalAction, default=None,
                    help="run helpers.export.production as the 'export' stage (default: when the module exists)")
    ap.add_argument("--export-max-customers", type=int, default=10_000,
                    help="run the helpers.export.production stage only on rungs up to this size (it is the slowest stage)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lines-per-customer", type=float, default=LINES_PER_CUSTOMER)
    ap.add_argument("--work-dir", default=str(config.DATA_DIR / "cache" / "bench"),
                    help="scratch folder for the rungs' data (removed afterwards unless --keep-work)")
    ap.add_argument("--keep-work", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="do not keep sections of the previous bench.json")
    ap.add_argument("--out-dir", default=str(config.BENCH_DIR))
    ap.add_argument("--write-placeholder", action="store_true",
                    help="write 'benchmarks not run yet' tables if none exist, then exit")
    ap.add_argument("--force", action="store_true", help="with --write-placeholder: overwrite existing tables")
    ap.add_argument("--render-only", action="store_true", help="re-render tables and plots from bench.json")
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir)

    if args.write_placeholder:
        path = write_placeholder(out_dir, force=args.force)
        print(f"[bench] tables: {path}")
        return 0
    bench_path = out_dir / BENCH_JSON
    old = json.loads(bench_path.read_text()) if bench_path.exists() else None
    if args.render_only:
        if old is None:
            raise SystemExit(f"{bench_path} does not exist: run the benchmarks first")
        render(old, out_dir)
        _write_json(bench_path, old)
        print(f"[bench] rendered {out_dir / TABLES_MD}")
        return 0

    import importlib.util

    project_export = args.project_export
    if project_export is None:
        project_export = importlib.util.find_spec("helpers.export.production") is not None
    new: dict = {"schema": SCHEMA_VERSION, "generated_at": _now(), "machine": machine_info(),
                 "command": ["python", "-m", "helpers.bench", *(argv if argv is not None else sys.argv[1:])]}
    t_all = time.perf_counter()
    if args.cj:
        snap = Path(args.work_dir) / "cj-snapshot" if args.cj_snapshot else None
        try:
            new["cj"] = bench_cj(tuple(p.strip() for p in args.cj_phases.split(",") if p.strip()), snap)
        finally:
            if snap is not None and not args.keep_work:
                shutil.rmtree(snap, ignore_errors=True)
    work = Path(args.work_dir)
    sizes = LADDER
    if args.sizes:
        sizes = tuple(tuple(int(v) for v in x.lower().split("x")) for x in args.sizes.split(","))
    ladder = [(c, p) for c, p in sizes if c <= args.max_customers]
    if args.rungs:
        wanted = {int(x) for x in args.rungs.split(",")}
        ladder = [(c, p) for c, p in sizes if c in wanted]
    ratio_rung = work / f"rung-{args.ratio_customers}"
    api_export = work / "api-export"
    try:
        if args.ladder and ladder:
            rungs = []
            for c, p in ladder:
                run_export = project_export and c <= args.export_max_customers
                keep = api_export if (run_export and not api_export.exists()) else None
                rungs.append(bench_rung(c, p, work, args.seed, args.lines_per_customer, run_export, keep))
                if project_export and not run_export:
                    rungs[-1]["stages"]["export"] = {
                        "ok": False, "skipped": True, "result": None,
                        "error": f"skipped: above --export-max-customers {args.export_max_customers:,}"}
                if not args.keep_work and c != args.ratio_customers:
                    shutil.rmtree(work / f"rung-{c}", ignore_errors=True)
                partial = merge_results(old if not args.fresh else None, {**new, "scale": {"rungs": rungs}})
                _write_json(bench_path, render(partial, out_dir))  # results so far survive an interruption
            new["scale"] = {"rungs": rungs, "ladder": [list(x) for x in sizes],
                            "lines_per_customer": args.lines_per_customer, "als_params": ALS_PARAMS,
                            "hybrid_weights": HYBRID_WEIGHTS}
        if args.ratios:
            if not (ratio_rung / "star").exists():
                c = args.ratio_customers
                p = dict(sizes).get(c)
                if p is None:
                    raise SystemExit(f"--ratio-customers {c} is not a ladder rung")
                print(f"[bench] preparing the {c:,}-customer data for the ratios")
                ratio_rung.mkdir(parents=True, exist_ok=True)
                g = run_stage("ratio data: generate", "stage_generate", n_customers=c, n_products=p,
                              out_dir=str(ratio_rung / "star"), seed=args.seed,
                              lines_per_customer=args.lines_per_customer)
                if g["ok"]:
                    run_stage("ratio data: ALS fit", "stage_als_fit", data_dir=str(ratio_rung / "star"),
                              factors_out=str(ratio_rung / "als_factors.npz"), als_params=ALS_PARAMS)
                    run_stage("ratio data: hybrid top-10", "stage_score_export", data_dir=str(ratio_rung / "star"),
                              factors_path=str(ratio_rung / "als_factors.npz"),
                              out_path=str(ratio_rung / "top10.parquet"), als_params=ALS_PARAMS,
                              weights=HYBRID_WEIGHTS)
            new["ratios"] = bench_ratios(ratio_rung, args.dense_budget_gib)
        if args.api:
            new["api"] = bench_api(api_export if api_export.exists() else None)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    new["total_s"] = round(time.perf_counter() - t_all, 1)
    bench = merge_results(old if not args.fresh else None, new)
    render(bench, out_dir)
    _write_json(bench_path, bench)
    print(f"[bench] wrote {bench_path} and {out_dir / TABLES_MD} in {new['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
