"""The evaluation dashboard: collect every chapter's test results, compare models, chart segments."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.evaluation.metrics import SUMMARY_COLUMNS, compute_metrics, evaluation_set, paired_bootstrap
from helpers.report import plotting
from helpers.tuning.stages import Stage
from helpers.tuning.workflow import LABELS

PREDICTION_COLUMNS = ["model", "protocol", "customer_id", "rank", "product_id", "score"]


def collect(tables_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenate ``metrics_*.csv`` / ``predictions_*.parquet`` into ``metrics.csv`` and
    ``test_predictions.parquet`` (written atomically) and return both."""
    tables_dir = Path(tables_dir)
    metric_files = sorted(tables_dir.glob("metrics_*.csv"))
    pred_files = sorted(tables_dir.glob("predictions_*.parquet"))
    if not metric_files:
        raise FileNotFoundError(f"no metrics_*.csv in {tables_dir}: run the model notebooks first")
    metrics = pd.concat([pd.read_csv(f) for f in metric_files], ignore_index=True)[SUMMARY_COLUMNS]
    preds = pd.concat([pd.read_parquet(f) for f in pred_files], ignore_index=True)[PREDICTION_COLUMNS]
    for df, name in ((metrics, "metrics.csv"), (preds, "test_predictions.parquet")):
        tmp = tables_dir / f".{name}.tmp"
        if name.endswith(".csv"):
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, tables_dir / name)
    return metrics, preds


def per_customer(predictions: pd.DataFrame, stage: Stage, model: str, protocol: str, ks=(5, 10)):
    """Per-customer metrics recomputed from the stored top-N (no refit): ``(customer_ids, {(metric,k): arr})``."""
    es = evaluation_set(stage.fit.user_items, stage.relevance, protocol)
    cust = stage.fit.customer_ids[es.rows]
    p = predictions[(predictions["model"] == model) & (predictions["protocol"] == protocol)]
    width = max(ks)
    top = np.full((len(cust), width), -1, dtype=np.int64)
    row = np.searchsorted(cust, p["customer_id"].to_numpy())
    rank = p["rank"].to_numpy() - 1
    ok = (row < len(cust)) & (rank < width)
    row, rank = row[ok], rank[ok]
    ok2 = cust[row] == p["customer_id"].to_numpy()[ok]
    cols = stage.fit.item_columns(p["product_id"].to_numpy()[ok][ok2])
    top[row[ok2], rank[ok2]] = cols
    return cust, compute_metrics(top, es.relevance.matrix, es.relevance.n_relevant, ks)


def best_other(metrics: pd.DataFrame, protocol: str, reference: str = "hybrid", metric: str = "ndcg",
               k: int = 5) -> str:
    m = metrics[(metrics["protocol"] == protocol) & (metrics["segment_type"] == "overall")
                & (metrics["metric"] == metric) & (metrics["k"] == k) & (metrics["model"] != reference)
                & (metrics["split"] == "test")]
    return str(m.sort_values(["value", "model"], ascending=[False, True]).iloc[0]["model"])


def compare(predictions: pd.DataFrame, stage: Stage, protocol: str, a: str, b: str, metric: str = "ndcg",
            k: int = 5, n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap of ``a - b`` on the same customers."""
    ca, ma = per_customer(predictions, stage, a, protocol)
    cb, mb = per_customer(predictions, stage, b, protocol)
    assert np.array_equal(ca, cb)
    res = paired_bootstrap(ma[(metric, k)], mb[(metric, k)], n_boot=n_boot, seed=seed)
    return {"protocol": protocol, "model": a, "baseline": b, "metric": f"{metric}@{k}", "n_customers": len(ca),
            **res}


def segment_chart(metrics: pd.DataFrame, segment_type: str, protocol: str, key: str, reports_dir=None,
                  metric: str = "ndcg", k: int = 5):
    """NDCG@k by segment for every model (test split), with 95% CI whiskers."""
    m = metrics[(metrics["split"] == "test") & (metrics["segment_type"] == segment_type)
                & (metrics["protocol"] == protocol) & (metrics["metric"] == metric) & (metrics["k"] == k)]
    segments = list(dict.fromkeys(m.sort_values("segment")["segment"]))
    models = list(dict.fromkeys(m.sort_values("model")["model"]))
    fig, ax = plotting.new_figure(figsize=(10, 4.2))
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(segments))
    for i, (model, color) in enumerate(zip(models, plotting.colors(len(models)))):
        g = m[m["model"] == model].set_index("segment").reindex(segments)
        err = np.vstack([g["value"] - g["ci_low"], g["ci_high"] - g["value"]]).clip(min=0)
        ax.bar(x + i * width - 0.4 + width / 2, g["value"], width, yerr=err, label=LABELS.get(model, model),
               color=color, capsize=2, error_kw={"linewidth": 0.7})
    sizes = m.drop_duplicates("segment").set_index("segment").reindex(segments)["n_customers"]
    ax.set_xticks(x, [f"{s}\n(n={int(n)})" for s, n in zip(segments, sizes)], fontsize=8)
    plotting.label(ax, f"NDCG@{k} by {segment_type.replace('_', ' ')} (protocol '{protocol}', test)",
                   f"{segment_type.replace('_', ' ')} (customers evaluated)", f"NDCG@{k} (0-1)")
    ax.legend(fontsize=8, ncols=min(4, len(models)))
    return plotting.save_figure(fig, key, reports_dir)
