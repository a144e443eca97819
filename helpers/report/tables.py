"""Tables and charts the model and evaluation chapters share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.report import plotting
from helpers.tuning.workflow import LABELS, headline


def tuning_chart(table: pd.DataFrame, model: str, key: str, reports_dir=None, metric_label="NDCG@5"):
    """Validation metric of every candidate of one model, both protocols, best first."""
    sub = table[table["model"] == model].dropna(axis=1, how="all").copy()
    params = [c for c in sub.columns if c not in ("model", "protocol", "value", "fit_seconds")]
    sub["candidate"] = sub[params].astype(str).agg(", ".join, axis=1)
    fig, axes = plotting.new_figure(1, sub["protocol"].nunique(), figsize=(10, max(3.0, 0.28 * len(sub) / 2 + 1.5)))
    axes = np.atleast_1d(axes)
    for ax, (protocol, g) in zip(axes, sub.groupby("protocol", sort=True)):
        g = g.sort_values("value")
        ax.barh(g["candidate"], g["value"], color=plotting.colors(2)[0 if protocol == "all" else 1])
        plotting.label(ax, f"{LABELS.get(model, model)}: protocol '{protocol}'",
                       f"validation {metric_label} (0-1)", ", ".join(params) or "candidate")
        ax.tick_params(axis="y", labelsize=8)
    return plotting.save_figure(fig, key, reports_dir)


def tuning_table(table: pd.DataFrame, model: str) -> pd.DataFrame:
    sub = table[table["model"] == model].drop(columns=["model"]).dropna(axis=1, how="all")
    params = [c for c in sub.columns if c not in ("protocol", "value", "fit_seconds")]
    wide = sub.pivot_table(index=params, columns="protocol", values="value", dropna=False).reset_index()
    wide.columns.name = None
    return wide.rename(columns={p: f"NDCG@5 ({p})" for p in ("all", "new")})


def metrics_table(metrics: pd.DataFrame, k: int = 5, split: str = "test") -> pd.DataFrame:
    """P/R/NDCG@k with 95% CIs as display strings, one row per model x protocol."""
    h = headline(metrics, split, k)
    out = pd.DataFrame({"model": h["model"].map(lambda m: LABELS.get(m, m)), "protocol": h["protocol"]})
    for metric, label in (("precision", f"P@{k}"), ("recall", f"R@{k}"), ("ndcg", f"NDCG@{k}")):
        out[label] = [f"{v:.4f} [{lo:.4f}, {hi:.4f}]" for v, lo, hi in
                      zip(h[metric], h[f"{metric}_ci_low"], h[f"{metric}_ci_high"])]
    return out.sort_values(["protocol", "model"]).reset_index(drop=True)


def metric_value(metrics: pd.DataFrame, model: str, protocol: str, metric: str = "ndcg", k: int = 5,
                 split: str = "test", column: str = "value") -> float:
    m = metrics[(metrics["model"] == model) & (metrics["protocol"] == protocol) & (metrics["split"] == split)
                & (metrics["segment_type"] == "overall") & (metrics["metric"] == metric) & (metrics["k"] == k)]
    if len(m) != 1:
        raise KeyError(f"no single overall row for {model}/{protocol}/{metric}@{k}")
    return float(m[column].iloc[0])
