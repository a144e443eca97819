"""Score fitted models on a stage: the long metrics table with bootstrap CIs, the top-N
predictions, per-customer values for paired tests, and the headline table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.evaluation import catalog_coverage, evaluate_model, predictions_frame, summarize
from helpers.models.base import Recommender
from helpers.tuning.stages import Stage

__all__ = ["evaluate_models", "headline"]


def evaluate_models(models: dict[tuple[str, str], Recommender], stage: Stage, segments: pd.DataFrame | None,
                    split: str = "test", ks=(5, 10), top_n: int = 10, n_boot: int = 1000, seed: int = 0):
    """Score every (model, protocol) on a stage.

    Returns ``(metrics, predictions, per_customer)``: the long metrics table
    (``helpers.evaluation.bootstrap.SUMMARY_COLUMNS``), the top-``top_n`` predictions of every
    evaluated customer, and ``{(model, protocol): (customer_ids, {(metric, k): values})}``
    for paired comparisons.
    """
    frames, preds, per = [], [], {}
    for (name, protocol), model in models.items():
        pc, ids, scores, cust = evaluate_model(model, stage.fit, stage.relevance, protocol, ks=ks, top_n=top_n)
        cov = {k: catalog_coverage(np.where(ids[:, :k] >= 0, stage.fit.item_columns(ids[:, :k]), -1),
                                   stage.fit.n_items) for k in ks}
        frames.append(summarize(pc, cust, segments, name, protocol, split, n_boot=n_boot, seed=seed, coverage=cov))
        preds.append(predictions_frame(name, protocol, cust, ids[:, :top_n], scores[:, :top_n]))
        per[(name, protocol)] = (cust, pc)
    metrics = pd.concat(frames, ignore_index=True)
    predictions = pd.concat(preds, ignore_index=True)
    for col in ("model", "protocol"):
        predictions[col] = predictions[col].astype(str)
    return metrics, predictions, per


def headline(metrics: pd.DataFrame, split: str = "test", k: int = 5) -> pd.DataFrame:
    """Overall P/R/NDCG@k with CIs, one row per model x protocol."""
    m = metrics[(metrics["split"] == split) & (metrics["segment_type"] == "overall") & (metrics["k"] == k)
                & metrics["metric"].isin(["precision", "recall", "ndcg", "hit_rate"])]
    wide = m.pivot_table(index=["model", "protocol"], columns="metric", values=["value", "ci_low", "ci_high"])
    wide.columns = [f"{metric}_{what}" if what != "value" else metric for what, metric in wide.columns]
    return wide.reset_index()
