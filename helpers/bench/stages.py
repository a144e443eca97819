"""Benchmark stage bodies, each run in its own child process by :func:`helpers.bench.runner.run_stage`
(arguments and results are JSON), and the reference implementations the ratios compare against.

Stages of a ladder rung: ``stage_generate`` (synthetic source + validation + Parquet),
``stage_als_fit`` (``ALS_PARAMS`` on the window before the test split), ``stage_score_export``
(fixed-weight hybrid of global popularity + buy-again + ALS over every customer in chunks, top-10
as Parquet row groups), ``stage_project_export`` (:func:`helpers.export.production.export` with
:func:`fixed_tuning`), ``stage_metrics``; the ratios ``stage_ratio_topn``, ``stage_ratio_metrics``,
``stage_ratio_content``; ``stage_command`` (the pipeline, the book build) and ``stage_api``.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import config
from helpers.arrays import unique
from helpers.bench.api_load import run_benchmark
from helpers.data.sources import synthetic
from helpers.data.star import fingerprint, load_tables, read_parquet, write_tables
from helpers.data.validate import validate_star_schema
from helpers.evaluation.metrics import compute_metrics, relevance_matrix, select_window, temporal_split
from helpers.export import production as ex
from helpers.models.als import ALS
from helpers.models.base import make_fit_data, top_k
from helpers.models.buy_again import BuyAgain
from helpers.models.content import ContentTFIDF
from helpers.models.hybrid import Hybrid
from helpers.models.popularity import GlobalPopularity
from helpers.report.performance import METRIC_GOAL

LINES_PER_CUSTOMER = 40.0
N_DAYS = 365
TEST_DAYS = 28
TOP_N = 10
ALS_PARAMS = dict(factors=64, iterations=10, regularization=0.05, alpha=1.0, weighting="bm25", random_state=0)
HYBRID_WEIGHTS = {"global_popularity": 0.2, "buy_again": 0.4, "als": 0.4}
GIB = 1024 ** 3


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
    fact = read_parquet(d / "fact_transactions.parquet", columns=FACT_COLUMNS)
    customers = read_parquet(d / "dim_customer.parquet", columns=["customer_id"])
    products = read_parquet(d / "dim_product.parquet") if with_products else pd.DataFrame(
        {"product_id": read_parquet(d / "dim_product.parquet", columns=["product_id"])["product_id"]})
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
    item_ids = unique(train["product_id"].to_numpy(np.int64))
    buyers = unique(train["customer_id"].to_numpy(np.int64))
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


def stage_api(export_dir: str, n_requests: int = 10_000, concurrency: int = 8, mode: str = "threads",
              max_seconds: float = 300.0) -> dict:
    """API latency: ``mode="threads"`` (the project's own client threads) or ``"locust"`` (every endpoint)."""
    return run_benchmark(export_dir=export_dir, n_requests=n_requests, concurrency=concurrency, mode=mode,
                         max_seconds=max_seconds)


# =========================================================================== #
# Orchestration (parent process)


def stage_spark_tuned_als(out_dir: str, master: str = "local[2]", driver_memory: str = "6g") -> dict:
    """ALS on Complete Journey as chapter 4 runs it, once per engine: each engine tunes the project's
    ALS grid on validation, refits on train + validation and scores test once
    (:func:`helpers.tuning.workflow.run_chapter`, :func:`helpers.spark.chapter.run_chapter`).
    One row per protocol: each engine's choice, its validation and test NDCG@5, and ``agree``
    (test NDCG@5 within :data:`helpers.spark.agreement.ALS_TOLERANCE`). The star schema in
    ``out_dir`` is built when absent."""
    from helpers.data.star import build_star_schema  # start-up: only this stage builds Complete Journey
    from helpers.spark import chapter as spark_chapter  # start-up: pyspark is loaded by this stage only
    from helpers.spark.agreement import ALS_TOLERANCE  # start-up: as above
    from helpers.spark.session import get_session  # start-up: as above
    from helpers.tuning import workflow  # start-up: the tuning workflow loads every model

    timings: dict = {}
    t = time.perf_counter()
    out = Path(out_dir)
    if not (out / "fact_transactions.parquet").exists():
        build_star_schema("completejourney", None, out)
    tables = load_tables(out, names=["fact_transactions", "dim_customer", "dim_product", "customer_exposure"])
    t = _tick(timings, "build_s", t)
    _, valid, test = workflow.prepare_stages(tables, 28, 28, out)
    local = workflow.run_chapter(["als"], valid, test, out / "tables-local", n_boot=10)
    del valid, test, tables
    t = _tick(timings, "local_s", t)
    spark = get_session(master, driver_memory=driver_memory)
    try:
        remote = spark_chapter.run_chapter(["als"], out, out / "tables-spark", n_boot=10, spark=spark)
    finally:
        spark.stop()
    _tick(timings, "spark_s", t)

    def overall(chapter, protocol):
        m = chapter["metrics"]
        return float(m.query("segment_type == 'overall' and metric == 'ndcg' and k == 5 "
                             "and protocol == @protocol")["value"].iloc[0])

    def chosen(chapter, protocol):
        tab = chapter["tuning"].query("protocol == @protocol")
        best = chapter["best"]["als"][protocol]
        hit = tab.loc[np.logical_and.reduce([tab[k] == v for k, v in best.items() if k in tab])]
        return best, float(hit["value"].iloc[0])

    rows = []
    for protocol in ("all", "new"):
        (lp, lv), (sp, sv) = chosen(local, protocol), chosen(remote, protocol)
        lt, st = overall(local, protocol), overall(remote, protocol)
        rows.append({"protocol": protocol, "local_params": lp, "spark_params": sp, "valid_local": lv,
                     "valid_spark": sv, "ndcg5_local": lt, "ndcg5_spark": st,
                     "agree": abs(st - lt) <= ALS_TOLERANCE})
    grid = local["tuning"].drop(columns=["model", "protocol", "value", "fit_seconds"]).drop_duplicates()
    return {"timings": timings, "master": master, "rows": rows, "grid": grid.to_dict("records"),
            "agree": all(r["agree"] for r in rows), "als_tolerance": ALS_TOLERANCE}


def stage_spark_agreement(out_dir: str, master: str = "local[2]", driver_memory: str = "6g",
                          params: dict | None = None) -> dict:
    """Complete Journey on both engines (:mod:`helpers.spark.agreement`): the star schema built
    into ``out_dir``, the local models and the Spark engine with the engine's parameters, one
    row per (model, protocol) of :func:`~helpers.spark.agreement.compare`."""
    from helpers.data.star import build_star_schema  # start-up: only this stage builds Complete Journey
    from helpers.spark import agreement, engine  # start-up: pyspark is loaded by this stage only
    from helpers.spark.session import get_session  # start-up: as above
    from helpers.spark.tables import load_star  # start-up: as above

    timings: dict = {}
    t = time.perf_counter()
    build_star_schema("completejourney", None, out_dir)
    tables = load_tables(out_dir, names=["fact_transactions", "dim_customer", "dim_product"])
    t = _tick(timings, "build_s", t)
    local = agreement.local_results(tables, params)
    t = _tick(timings, "local_s", t)
    spark = get_session(master, driver_memory=driver_memory)
    try:
        remote = engine.evaluate_models(spark, load_star(spark, out_dir), params)
        t = _tick(timings, "spark_s", t)
        table = agreement.compare(local, remote)
    finally:
        spark.stop()
    return {"timings": timings, "master": master, "params": local["params"], "rows": table.to_dict("records"),
            "agree": bool(table["agree"].all()), "als_tolerance": agreement.ALS_TOLERANCE}
