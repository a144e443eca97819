"""The evaluation dashboard: collect every chapter's test results, compare two models on the same
customers, chart every segment type in one loop."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display as show

from helpers.evaluation.metrics import SUMMARY_COLUMNS, compute_metrics, evaluation_set, paired_bootstrap
from helpers.features.segments import SEGMENT_TYPES
from helpers.report import palette, plotting
from helpers.report.comparison import PROTOCOL_TITLES
from helpers.report.display import note
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


def segment_chart(metrics: pd.DataFrame, segment_type: str, key: str | None = None, reports_dir=None,
                  metric: str = "ndcg", k: int = 5, protocols=("all", "new")):
    """NDCG@k by segment for every model (test split) with 95% whiskers, one panel per protocol:
    segments in their natural order, each model in its palette colour (hybrid emphasised), one
    legend outside the data. Saved under ``key`` when given; returns the figure (still open)."""
    m = metrics[(metrics["split"] == "test") & (metrics["segment_type"] == segment_type)
                & (metrics["metric"] == metric) & (metrics["k"] == k)]
    segments = palette.segment_order(segment_type, m["segment"].unique())
    models = palette.order_models(m["model"].unique())
    label = segment_type.replace("_", " ")
    fig, axes = plotting.new_figure(1, len(protocols), figsize=(12, 4.0), squeeze=False, sharey=True)
    for ax, protocol in zip(axes[0], protocols):
        mp = m[m["protocol"] == protocol]
        shown = [mo for mo in models if mo in set(mp["model"])]
        width = 0.8 / max(len(shown), 1)
        x = np.arange(len(segments))
        for i, model in enumerate(shown):
            g = mp[mp["model"] == model].set_index("segment").reindex(segments)
            err = np.vstack([g["value"] - g["ci_low"], g["ci_high"] - g["value"]]).clip(min=0)
            ax.bar(x + i * width - 0.4 + width / 2, g["value"], width, yerr=np.nan_to_num(err),
                   label=LABELS.get(model, model), capsize=1.5, error_kw={"linewidth": 0.6}, gid=model,
                   **palette.model_style(model))
        sizes = mp.drop_duplicates("segment").set_index("segment").reindex(segments)["n_customers"]
        ax.set_xticks(x, [f"{s}\n(n={int(n):,})" if n == n else f"{s}\n(n/a)" for s, n in zip(segments, sizes)],
                      fontsize=8)
        plotting.label(ax, f"{PROTOCOL_TITLES.get(protocol, protocol)}", f"{label} (customers evaluated)",
                       f"test NDCG@{k} (0-1)")
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=9, title="model")
    fig.suptitle(f"NDCG@{k} by {label}, with 95% intervals", fontweight="bold")
    if key:
        plotting.save_figure(fig, key, reports_dir, glue=False, close=False)
    return fig


def segment_details(metrics: pd.DataFrame, reports_dir=None, types=SEGMENT_TYPES) -> None:
    """One chart per segment type (both protocols), shown in order; a note for a type the
    data source does not have. Figures are also written as ``segment_<type>.png``."""
    present = set(metrics.loc[metrics["split"] == "test", "segment_type"])
    for segment_type in types:
        if segment_type not in present:
            show(note(f"This data source has no {segment_type.replace('_', ' ')} information, "
                      "so there is no chart for it."))
            continue
        fig = segment_chart(metrics, segment_type, f"segment_{segment_type}", reports_dir)
        show(fig)
        plt.close(fig)
