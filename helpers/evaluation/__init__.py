"""Evaluation: relevance of a window and the protocols (``relevance``), top-K metrics and the
scoring of a fitted model (``metrics``), bootstrap confidence intervals (``bootstrap``).

It knows nothing of the models: a model is anything with ``recommend(customer_ids, k, exclude)``.
The temporal split lives in :mod:`helpers.data.split` and is re-exported here.
"""

from helpers.data.split import Split, select_window, temporal_split
from helpers.evaluation.bootstrap import BIG_N, SUMMARY_COLUMNS, paired_bootstrap, summarize
from helpers.evaluation.metrics import (
    METRICS,
    catalog_coverage,
    compute_metrics,
    evaluate_model,
    hit_matrix,
    metrics_from_hits,
    predictions_frame,
)
from helpers.evaluation.relevance import EvalSet, Relevance, evaluation_set, relevance_matrix

__all__ = [
    "BIG_N", "METRICS", "SUMMARY_COLUMNS", "EvalSet", "Relevance", "Split", "catalog_coverage", "compute_metrics",
    "evaluate_model", "evaluation_set", "hit_matrix", "metrics_from_hits", "paired_bootstrap", "predictions_frame",
    "relevance_matrix", "select_window", "summarize", "temporal_split",
]
