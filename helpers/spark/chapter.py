"""The model chapters (03, 04) on the Spark engine: tune on validation, refit, score test once,
and write the files the local chapter writes.

:func:`run_chapter` is :func:`helpers.tuning.workflow.run_chapter` for the models the Spark
engine has (:data:`helpers.spark.engine.MODELS`), called by
:func:`helpers.report.model_chapter.run` when a notebook's ``engine`` parameter is ``"spark"``:

* the same grids (:func:`helpers.tuning.fits.grid` with the notebook's ``grid_overrides``),
  the same validation score (NDCG@5, the mean over the evaluated customers in customer order,
  as the local engine sums it) and the same choice per protocol (the first best:
  :func:`helpers.tuning.stages.best_params`), written to the same tuning files;
* ``metrics_<model>.csv`` and ``predictions_<model>.parquet`` in the local layout, so the
  hybrid (06), the evaluation (07) and the export (08) read them unchanged.

Fits, top-N lists and per-customer metrics run on Spark. The per-customer metrics (one row
per evaluated customer) are collected to the driver for the bootstrap intervals, computed by
the local :func:`helpers.evaluation.bootstrap.summarize` (the same intervals for the same
values), and the test top-N lists for the predictions table.

A candidate with a parameter the Spark model does not implement (an ALS weighting other than
``none``) is an error naming it; one of a segment type the Spark engine does not compute is
left out of its tuning table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from helpers.evaluation.bootstrap import summarize
from helpers.models.registry import MODELS as REGISTRY
from helpers.spark.engine import MODELS, Fitted, params_with_defaults
from helpers.spark.evaluate import evaluation_set, per_customer_metrics, relevance
from helpers.spark.segments import compute_segments
from helpers.spark.session import DEFAULT_MASTER, get_session
from helpers.spark.split import FitWindow, fit_window, temporal_split
from helpers.spark.tables import load_star
from helpers.tuning.files import params_key, save_tuning
from helpers.tuning.fits import grid
from helpers.tuning.stages import best_params

#: Local parameter name -> the Spark engine's, per model (the names the grids use).
PARAMS = {
    "global_popularity": ("window_days",),
    "segmented_popularity": ("segment_type", "min_segment_size", "blend", "window_days"),
    "buy_again": ("half_life_days", "backfill_weight", "tie_break", "repeat_beta", "repeat_prior"),
    "als": ("factors", "regularization", "alpha", "iterations"),
}
#: Local parameters the Spark model has only at one value.
FIXED = {"als": {"weighting": "none"}}
KS = (5, 10)
TOP_N = 10


def spark_params(name: str, params: dict) -> dict:
    """The Spark engine's parameters of one local grid candidate (error on anything it lacks)."""
    if name not in PARAMS:
        raise ValueError(f"the Spark engine has no model {name!r}; it has {sorted(PARAMS)}")
    out = {}
    for key, value in params.items():
        if key in FIXED.get(name, {}):
            if value != FIXED[name][key]:
                raise ValueError(f"{name}: the Spark engine supports {key}={FIXED[name][key]!r} only, "
                                 f"the grid asks for {value!r}")
        elif key in PARAMS[name]:
            out[key] = value  # a NaN window (a table's None) is no window, as locally
        else:
            raise ValueError(f"{name}: the Spark engine has no parameter {key!r}; it has {list(PARAMS[name])}")
    return out


@dataclass
class SparkStage:
    """One fit window and its evaluation window on Spark (validation or test)."""

    name: str
    fit: FitWindow
    segments: DataFrame
    relevance: DataFrame
    segment_types: frozenset
    sets: dict

    def unpersist(self) -> None:
        for df in (self.segments, self.relevance, self.fit.user_items, self.fit.catalog,
                   *(d for triple in self.sets.values() for d in triple if d is not None)):
            df.unpersist()

    def evaluation(self, protocol: str):
        if protocol not in self.sets:
            evaluated, rel, excluded = evaluation_set(self.fit, self.relevance, protocol)
            self.sets[protocol] = (evaluated.cache(), rel.cache(), None if excluded is None else excluded.cache())
        return self.sets[protocol]


def make_stage(tables: dict, split, name: str) -> SparkStage:
    fact, customers = tables["fact_transactions"], tables["dim_customer"].select("customer_id")
    fit_end, start, end = split.windows(name)
    segments, _ = compute_segments(tables, fit_end)
    segments = segments.cache()
    fw = fit_window(fact, customers, fit_end)
    fw.user_items, fw.catalog = fw.user_items.cache(), fw.catalog.cache()
    types = frozenset(r[0] for r in segments.select("segment_type").distinct().collect())
    return SparkStage(name, fw, segments, relevance(fact, start, end, customers).cache(), types, {})


def per_customer(pc: DataFrame, ks=KS) -> tuple[np.ndarray, dict]:
    """Evaluated customers in ascending id (the local order) and ``{(metric, k): values}``."""
    cols = [c for c in pc.columns if "@" in c and int(c.split("@")[1]) in ks]
    pdf = pc.select("customer_id", *cols).toPandas().sort_values("customer_id", kind="stable")
    per = {(c.split("@")[0], int(c.split("@")[1])): pdf[c].to_numpy(np.float64) for c in cols}
    return pdf["customer_id"].to_numpy(np.int64), per


def validation_value(fitted: Fitted, name: str, stage: SparkStage, protocol: str, k: int = 5) -> float:
    evaluated, rel, excluded = stage.evaluation(protocol)
    recs = fitted.recommend(name, evaluated, k, excluded)
    _, per = per_customer(per_customer_metrics(recs, evaluated, rel, (k,)), (k,))
    values = per[("ndcg", k)]
    return float(np.mean(values)) if len(values) else 0.0


def tune(name: str, stage: SparkStage, candidates: list[dict], base: dict, log=None) -> tuple[pd.DataFrame, dict]:
    """Grid search of one model on the validation stage; the table and the best params per protocol."""
    protocols = REGISTRY[name][1]
    usable = [c for c in candidates if c.get("segment_type", "loyalty_tier") in stage.segment_types]
    if not usable:
        raise ValueError(f"{name}: no grid candidate the Spark engine can fit (segment types it computes: "
                         f"{sorted(stage.segment_types)})")
    rows = []
    for params in usable:
        t0 = time.perf_counter()
        fitted = Fitted(stage.fit, stage.segments, base).fit(name, spark_params(name, params))
        fit_s = time.perf_counter() - t0
        for protocol in protocols:
            value = validation_value(fitted, name, stage, protocol)
            rows.append({**params, "protocol": protocol, "value": value, "fit_seconds": round(fit_s, 3)})
        if log:
            log(f"spark {name} {params} -> " + ", ".join(f"{r['protocol']}={r['value']:.4f}"
                                                          for r in rows[-len(protocols):]))
    table = pd.DataFrame(rows)
    best = {p: best_params(table, p) for p in protocols}
    table.insert(0, "model", name)
    return table, best


def predictions_table(recs: pd.DataFrame, name: str, protocol: str) -> pd.DataFrame:
    """The local predictions layout (:func:`helpers.evaluation.metrics.predictions_frame`)."""
    recs = recs.sort_values(["customer_id", "rank"], kind="stable")
    return pd.DataFrame({"model": name, "protocol": protocol,
                         "customer_id": recs["customer_id"].to_numpy(np.int64),
                         "rank": recs["rank"].to_numpy(np.int16), "product_id": recs["product_id"].to_numpy(np.int64),
                         "score": recs["score"].to_numpy(np.float32)})


def score_test(name: str, best: dict, stage: SparkStage, base: dict, n_boot: int, seed: int,
               segments: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Refit the chosen parameters per protocol on the test fit window (identical ones once) and
    score the test window: the long metrics table with bootstrap CIs and the predictions."""
    n_items = stage.fit.catalog.count()
    fits, frames, preds = {}, [], []
    for protocol in REGISTRY[name][1]:
        params = best[protocol]
        key = params_key(params)
        if key not in fits:
            fits[key] = Fitted(stage.fit, stage.segments, base).fit(name, spark_params(name, params))
        evaluated, rel, excluded = stage.evaluation(protocol)
        recs = fits[key].recommend(name, evaluated, max(max(KS), TOP_N), excluded).cache()
        customers, per = per_customer(per_customer_metrics(recs, evaluated, rel, KS))
        top = recs.filter(F.col("rank") <= max(KS)).toPandas()
        coverage = {k: top.loc[top["rank"] <= k, "product_id"].nunique() / n_items if n_items else 0.0 for k in KS}
        frames.append(summarize(per, customers, segments, name, protocol, "test", n_boot=n_boot, seed=seed,
                                coverage=coverage))
        preds.append(predictions_table(top.loc[top["rank"] <= TOP_N], name, protocol))
        recs.unpersist()
    return pd.concat(frames, ignore_index=True), pd.concat(preds, ignore_index=True)


def run_chapter(names: list[str], data_dir, tables_dir, test_days: int = 28, valid_days: int = 28,
                overrides: dict | None = None, n_boot: int = 1000, seed: int = 0, master: str | None = DEFAULT_MASTER,
                spark: SparkSession | None = None, log=None) -> dict:
    """Tune each of ``names`` on validation, refit on train + validation and score test once, on
    Spark, from the star schema in ``data_dir``; writes the tuning files, ``metrics_<model>.csv``
    and ``predictions_<model>.parquet`` to ``tables_dir`` and returns ``{"tuning", "best",
    "metrics", "predictions", "timings"}`` as the local chapter does."""
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"the Spark engine has no model {unknown}; it has {list(MODELS)}")
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spark = spark or get_session(master)
    tables = load_star(spark, data_dir)
    tables["fact_transactions"] = tables["fact_transactions"].cache()
    split = temporal_split(tables["fact_transactions"], test_days, valid_days)
    base = params_with_defaults({"test_days": test_days, "valid_days": valid_days, "seed": seed})
    timings = {"load_s": time.perf_counter() - t0}
    valid = make_stage(tables, split, "valid")
    tuning_tables, best = [], {}
    for name in names:
        t = time.perf_counter()
        table, best[name] = tune(name, valid, grid(name, (overrides or {}).get(name)), base, log=log)
        tuning_tables.append(table)
        timings[f"{name}_tune_s"] = time.perf_counter() - t
    save_tuning(best, tables_dir)
    test = make_stage(tables, split, "test")
    segments = test.segments.toPandas()
    metrics, predictions = [], []
    for name in names:
        t = time.perf_counter()
        m, p = score_test(name, best[name], test, base, n_boot, seed, segments)
        m.to_csv(tables_dir / f"metrics_{name}.csv", index=False)
        p.to_parquet(tables_dir / f"predictions_{name}.parquet", index=False)
        metrics.append(m)
        predictions.append(p)
        timings[f"{name}_test_s"] = time.perf_counter() - t
    for stage in (valid, test):  # the session may go on (a notebook's kernel, the test suite)
        stage.unpersist()
    tables["fact_transactions"].unpersist()
    return {"tuning": pd.concat(tuning_tables, ignore_index=True), "best": best,
            "metrics": pd.concat(metrics, ignore_index=True), "predictions": pd.concat(predictions, ignore_index=True),
            "split": split, "timings": timings}
