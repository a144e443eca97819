"""Model-comparison tables shared by the model and evaluation chapters (and their glue):
one overall metric value, the test table of every model with its intervals, and Markdown pipe tables
for the generated pages."""

from __future__ import annotations

import pandas as pd

from helpers.report import palette
from helpers.tuning import workflow as models


def metrics_frame(metrics: pd.DataFrame, k: int = 5, split: str = "test") -> pd.DataFrame:
    """Precision, recall, NDCG and hit rate at ``k`` with 95% intervals, one row per model x
    protocol (models in palette order), as display strings."""
    h = models.headline(metrics, split, k)
    h = h.assign(order=h["model"].map({m: i for i, m in enumerate(palette.order_models(h["model"]))}))
    h = h.sort_values(["protocol", "order"])
    out = pd.DataFrame({"model": h["model"].map(lambda m: models.LABELS.get(m, m)), "protocol": h["protocol"]})
    for metric, label in (("precision", f"P@{k}"), ("recall", f"R@{k}"), ("ndcg", f"NDCG@{k}"),
                          ("hit_rate", f"hit rate@{k}")):
        if metric in h:
            out[label] = [f"{v:.4f} [{lo:.4f}, {hi:.4f}]" for v, lo, hi in
                          zip(h[metric], h[f"{metric}_ci_low"], h[f"{metric}_ci_high"])]
    return out.reset_index(drop=True)


def metric_value(metrics: pd.DataFrame, model: str, protocol: str, metric: str = "ndcg", k: int = 5,
                 split: str = "test", column: str = "value") -> float:
    m = metrics[(metrics["model"] == model) & (metrics["protocol"] == protocol) & (metrics["split"] == split)
                & (metrics["segment_type"] == "overall") & (metrics["metric"] == metric) & (metrics["k"] == k)]
    if len(m) != 1:
        raise KeyError(f"no single overall row for {model}/{protocol}/{metric}@{k}")
    return float(m[column].iloc[0])


metrics_table = metrics_frame  # the name the chapters used before


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown pipe table (cells as ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
