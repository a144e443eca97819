"""The Spark engine end to end: read and validate, split, segments, models, top-N, metrics, export.

:func:`run` is the entry the pipeline CLI and the notebooks call with ``--engine spark``:
the same parameter names as the local engine where they exist (:data:`DEFAULTS`).
Stages: the star schema from ``data_dir`` (:mod:`helpers.spark.tables`), the temporal
split, segments on the fit window (:mod:`helpers.spark.segments`), the models fitted on
``[start, test_start)`` (``stage="test"``) or ``[start, valid_start)`` (``"valid"``),
the top-N of every evaluated customer under each protocol, the metrics overall and per
segment (:mod:`helpers.spark.evaluate`), and (with ``export_dir``) the export of
``export_model`` refitted on all data for every ``dim_customer`` customer
(:mod:`helpers.spark.export`). Not here: the content model, item-kNN, EASE, the hybrid and
its learned re-ranker (single-machine models of the local engine), bootstrap CIs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from helpers.atomic import atomic_path
from helpers.spark import als as spark_als
from helpers.spark import evaluate, export, models
from helpers.spark.segments import compute_segments
from helpers.spark.session import DEFAULT_MASTER, get_session
from helpers.spark.split import FitWindow, fit_window, temporal_split
from helpers.spark.tables import load_star
from helpers.spark.topn import recommend

LOG = logging.getLogger(__name__)
MODELS = ("global_popularity", "segmented_popularity", "buy_again", "als")
DEFAULTS = {
    "stage": "test", "test_days": 28, "valid_days": 28, "ks": (5, 10), "top_n": 10,
    "models": MODELS, "protocols": ("all", "new"),
    "factors": 64, "regularization": 10.0, "alpha": 1.0, "iterations": 15, "seed": 0, "als_reg_param": None,
    "half_life_days": 30.0, "backfill_weight": 1e-3, "tie_break": 1e-3, "repeat_beta": 0.0, "repeat_prior": 5.0,
    "segment_type": "loyalty_tier", "min_segment_size": 30, "blend": 0.0, "window_days": None, "min_segment": 30,
    "export_model": "als", "export_partitions": 8, "max_history": 100,
}


def params_with_defaults(params: dict | None) -> dict:
    unknown = set(params or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown Spark engine parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **(params or {})}


class Fitted:
    """The models of one fit window, recommending for any customers."""

    def __init__(self, fw: FitWindow, segments: DataFrame, p: dict):
        self.fw, self.segments, self.p = fw, segments, p
        self.parts, self.als, self.segment_table = {}, None, None

    def fit(self, name: str, params: dict | None = None) -> Fitted:
        """Fit ``name`` with the engine parameters, ``params`` (the model's own) overriding them."""
        p, fw = {**self.p, **(params or {})}, self.fw
        if name == "global_popularity":
            self.parts[name] = models.global_popularity(fw, p["window_days"])
        elif name == "buy_again":
            self.parts[name] = models.buy_again(fw, p["half_life_days"], p["backfill_weight"], p["tie_break"],
                                                p["repeat_beta"], p["repeat_prior"])
        elif name == "segmented_popularity":
            self.parts[name], self.segment_table = models.segmented_popularity(
                fw, self.segments, p["segment_type"], p["min_segment_size"], p["blend"], p["window_days"])
        elif name == "als":
            self.als = spark_als.SparkALS(p["factors"], p["regularization"], p["alpha"], p["iterations"], p["seed"],
                                          p["als_reg_param"]).fit(fw)
        else:
            raise ValueError(f"unknown model {name!r}; the Spark engine has {MODELS}")
        return self

    def recommend(self, name: str, customers: DataFrame, k: int, excluded: DataFrame | None) -> DataFrame:
        if name == "als":
            return self.als.recommend(customers, k, excluded)
        return recommend(self.parts[name], customers, k, excluded)


def evaluate_models(spark: SparkSession, tables: dict, params: dict | None = None) -> dict:
    """Fit and score every model of ``params["models"]`` on the stage's windows.

    Returns ``split``, ``metrics`` (long pandas table), ``per_customer`` and ``recs``
    (DataFrames keyed by ``(model, protocol)``), the fit window and the segments."""
    p = params_with_defaults(params)
    fact = tables["fact_transactions"].cache()
    customers = tables["dim_customer"].select("customer_id").cache()
    split = temporal_split(fact, p["test_days"], p["valid_days"])
    fit_end, eval_start, eval_end = split.windows(p["stage"])
    segments, seg_info = compute_segments({**tables, "fact_transactions": fact}, fit_end)
    segments = segments.cache()
    fw = fit_window(fact, customers, fit_end)
    fw.user_items = fw.user_items.cache()
    fw.catalog = fw.catalog.cache()
    fitted = Fitted(fw, segments, p)
    rel = evaluate.relevance(fact, eval_start, eval_end, customers).cache()
    k = max(max(p["ks"]), p["top_n"])
    tables_out, per, recs, timings = [], {}, {}, {}
    for name in p["models"]:
        t = time.perf_counter()
        fitted.fit(name)
        timings[f"{name}_fit_s"] = time.perf_counter() - t
        LOG.info("spark: %s fitted in %.1f s", name, timings[f"{name}_fit_s"])
        for protocol in p["protocols"]:
            t = time.perf_counter()
            evaluated, prel, excluded = evaluate.evaluation_set(fw, rel, protocol)
            r = fitted.recommend(name, evaluated, k, excluded).cache()
            pc = evaluate.per_customer_metrics(r, evaluated, prel, p["ks"]).cache()
            tables_out.append(evaluate.summarize(pc, segments, name, protocol, p["stage"], p["ks"], p["min_segment"]))
            per[(name, protocol)], recs[(name, protocol)] = pc, r
            timings[f"{name}_{protocol}_score_s"] = time.perf_counter() - t
            LOG.info("spark: %s %s scored in %.1f s", name, protocol, timings[f"{name}_{protocol}_score_s"])
    metrics = pd.concat(tables_out, ignore_index=True) if tables_out else pd.DataFrame()
    return {"split": split, "metrics": metrics, "per_customer": per, "recs": recs, "fit": fw, "fitted": fitted,
            "segments": segments, "segment_info": seg_info, "relevance": rel, "timings": timings}


def export_recommendations(spark: SparkSession, tables: dict, export_dir, params: dict | None = None,
                           split=None) -> dict:
    """Refit ``export_model`` on all data and write both variants for every customer."""
    p = params_with_defaults(params)
    fact = tables["fact_transactions"]
    customers = tables["dim_customer"].select("customer_id")
    split = split or temporal_split(fact, p["test_days"], p["valid_days"])
    segments, _ = compute_segments(tables, split.end)
    fw = fit_window(fact, customers, split.end)
    fw.user_items = fw.user_items.cache()
    name = p["export_model"]
    fitted = Fitted(fw, segments, p).fit(name)
    factors = spark_als.item_factors(fitted.als) if name == "als" else None
    seg_reason = None
    if name == "segmented_popularity":
        seg_reason = (segments.filter(segments.segment_type == p["segment_type"])
                      .join(fitted.segment_table.select("segment"), "segment")
                      .selectExpr("customer_id", f"concat('popular_in_segment:{p['segment_type']}=', segment) "
                                                 "AS seg_reason"))
    fit_pairs = fw.user_items.select("customer_id", "product_id")
    variants = {}
    for protocol, stem in (("all", "recommendations"), ("new", "recommendations_new")):
        recs = fitted.recommend(name, customers, p["top_n"], fit_pairs if protocol == "new" else None)
        variants[stem] = export.with_reasons(recs, fw.user_items, name, factors, seg_reason, p["max_history"])
    counts = {"fact_transactions": fact.count(), "dim_customer": customers.count()}
    return export.write_export(variants, tables["dim_product"], export_dir, p["top_n"],
                               {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()},
                               split.to_dict(), counts, p["export_partitions"])


def run(data_dir, params: dict | None = None, master: str | None = DEFAULT_MASTER, export_dir=None,
        output_dir=None, spark: SparkSession | None = None) -> dict:
    """The Spark engine on the star-schema folder ``data_dir`` (Parquet or CSV tables).

    Returns ``metrics`` (pandas long table), ``split``, ``timings`` and, with
    ``export_dir``, the export ``manifest``; with ``output_dir`` the metrics are also
    written there as ``spark_metrics.csv``. ``spark``: a session to reuse (tests)."""
    p = params_with_defaults(params)
    t0 = time.perf_counter()
    spark = spark or get_session(master)
    tables = load_star(spark, data_dir)
    timings = {"load_s": time.perf_counter() - t0}
    res = evaluate_models(spark, tables, p)
    timings.update(res["timings"])
    out = {"metrics": res["metrics"], "split": res["split"].to_dict(), "timings": timings}
    if export_dir is not None:
        t = time.perf_counter()
        out["manifest"] = export_recommendations(spark, tables, export_dir, p, res["split"])
        timings["export_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    if output_dir is not None:
        with atomic_path(Path(output_dir) / "spark_metrics.csv") as tmp:
            res["metrics"].to_csv(tmp, index=False)
    return out
