"""Model comparison figures and tables of the evaluation chapter and the landing page.

* :func:`model_chart`: every model's test metric with its 95% interval, one panel per
  protocol, each model in its palette colour, the hybrid emphasised and on top.
* :func:`segment_lift`: the hybrid minus the best other model (the best baseline of the
  protocol, by overall NDCG@5) in every segment, with a paired-bootstrap 95% interval on
  the same customers.
* :func:`coverage_novelty`: catalog coverage@10 and novelty@10 (mean self-information
  ``-log2(share of fit-window customers who bought the item)`` of the recommended
  products, in bits: higher = less obvious products).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.arrays import unique
from helpers.evaluation.metrics import paired_bootstrap
from helpers.report import palette
from helpers.report import plotting as P
from helpers.tuning.workflow import LABELS

PROTOCOL_TITLES = {"all": "Buy it again (protocol 'all')", "new": "Discovery (protocol 'new')"}
METRIC_LABELS = {"ndcg": "NDCG", "hit_rate": "hit rate", "recall": "recall", "precision": "precision"}


def overall(metrics: pd.DataFrame, metric: str = "ndcg", k: int = 5, split: str = "test") -> pd.DataFrame:
    """Overall rows of one metric: ``model, protocol, value, ci_low, ci_high``."""
    m = metrics[(metrics["split"] == split) & (metrics["segment_type"] == "overall") & (metrics["metric"] == metric)
                & (metrics["k"] == k)]
    return m[["model", "protocol", "value", "ci_low", "ci_high"]].reset_index(drop=True)


def model_chart(metrics: pd.DataFrame, key: str, reports_dir=None, metric: str = "ndcg", k: int = 5,
                protocols=("all", "new"), title: str | None = None):
    """:func:`model_figure`, saved and glued under ``key``; returns the saved path."""
    return P.save_figure(model_figure(metrics, metric, k, protocols, title), key, reports_dir)


def model_figure(metrics: pd.DataFrame, metric: str = "ndcg", k: int = 5, protocols=("all", "new"),
                 title: str | None = None):
    """Horizontal bars with 95% whiskers, one panel per protocol (the hybrid at the bottom, by the axis)."""
    o = overall(metrics, metric, k)
    name = f"{METRIC_LABELS.get(metric, metric)}@{k}"
    fig, axes = P.new_figure(1, len(protocols), figsize=(10, 4.6), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        g = o[o["protocol"] == protocol].set_index("model")
        order = palette.order_models(g.index)[::-1]  # drawn from the bottom: the hybrid first, by the axis
        g = g.reindex(order)
        y = np.arange(len(order))
        err = np.vstack([g["value"] - g["ci_low"], g["ci_high"] - g["value"]]).clip(min=0)
        for i, model in enumerate(order):
            ax.barh(y[i], g.loc[model, "value"], xerr=err[:, [i]], height=0.7, capsize=3,
                    error_kw={"linewidth": 1.0}, gid=model, **palette.model_style(model))
            ax.text(g.loc[model, "ci_high"], y[i], f" {g.loc[model, 'value']:.3f}", va="center", fontsize=11,
                    fontweight="bold" if model == palette.HYBRID else "normal")
        ax.set_yticks(y, [LABELS.get(m, m) for m in order], fontsize=12)
        ax.tick_params(axis="x", labelsize=11)
        for tick, model in zip(ax.get_yticklabels(), order):
            tick.set_fontweight("bold" if model == palette.HYBRID else "normal")
        ax.set_xlim(0, max(1e-9, float(g["ci_high"].max())) * 1.25)
        P.label(ax, PROTOCOL_TITLES.get(protocol, protocol), f"test {name} (0-1, 95% interval)", "model")
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig


def segment_lift_table(per_customer, segments: pd.DataFrame, baseline: str, protocol: str, n_boot: int = 2000,
                       seed: int = 0, order=None) -> pd.DataFrame:
    """Hybrid minus ``baseline`` per segment, paired bootstrap on the same customers.

    ``per_customer(model, protocol) -> (customer_ids, values)`` gives each model's per-customer
    metric on the same evaluated customers; ``segments`` is long (``customer_id, segment_type,
    segment``). Rows in ``order`` (a list of segment types), segments in their natural order."""
    cust, a = per_customer(palette.HYBRID, protocol)
    cust_b, b = per_customer(baseline, protocol)
    if not np.array_equal(cust, cust_b):
        raise ValueError("the hybrid and the baseline are evaluated on different customers")
    pos = pd.Index(cust).get_indexer(segments["customer_id"].to_numpy(np.int64))
    seg = segments.assign(_pos=pos).loc[pos >= 0]
    rows = []
    types = order or list(dict.fromkeys(seg["segment_type"]))
    for stype in types:
        g = seg[seg["segment_type"] == stype]
        for i, name in enumerate(palette.segment_order(stype, g["segment"].unique())):
            idx = unique(g.loc[g["segment"] == name, "_pos"].to_numpy())
            res = paired_bootstrap(a[idx], b[idx], n_boot=n_boot, seed=seed + i)
            rows.append({"protocol": protocol, "segment_type": stype, "segment": name, "baseline": baseline,
                         "n_customers": len(idx), "lift": res["mean_diff"], "ci_low": res["ci_low"],
                         "ci_high": res["ci_high"]})
    return pd.DataFrame(rows)


def segment_lift_chart(lift: pd.DataFrame, key: str, reports_dir=None, metric_label: str = "NDCG@5"):
    """Dot plot of the hybrid's lift over the best baseline per segment, one panel per protocol."""
    protocols = list(dict.fromkeys(lift["protocol"]))
    rows = list(dict.fromkeys(zip(lift["segment_type"], lift["segment"])))
    fig, axes = P.new_figure(1, len(protocols), figsize=(10, 0.28 * len(rows) + 1.8), squeeze=False, sharey=True)
    y = {r: i for i, r in enumerate(rows[::-1])}
    for ax, protocol in zip(axes[0], protocols):
        g = lift[lift["protocol"] == protocol]
        ys = [y[(t, s)] for t, s in zip(g["segment_type"], g["segment"])]
        err = np.vstack([g["lift"] - g["ci_low"], g["ci_high"] - g["lift"]]).clip(min=0)
        ax.errorbar(g["lift"], ys, xerr=err, fmt="o", color=palette.model_color(palette.HYBRID), ecolor="#555555",
                    elinewidth=1, capsize=2, markersize=5, gid=palette.HYBRID)
        ax.axvline(0, color="black", linewidth=1)
        baseline = LABELS.get(g["baseline"].iloc[0], g["baseline"].iloc[0]) if len(g) else "n/a"
        P.label(ax, f"{PROTOCOL_TITLES.get(protocol, protocol)}\nvs {baseline}",
                f"hybrid minus best baseline, {metric_label} (95% interval)", "segment (customers evaluated in the first panel)")
    sizes = lift.drop_duplicates(["segment_type", "segment"]).set_index(["segment_type", "segment"])["n_customers"]
    axes[0][0].set_yticks(list(y.values()), [f"{t.replace('_', ' ')}: {s} ({int(sizes[(t, s)]):,})"
                                             for t, s in y], fontsize=8)
    return P.save_figure(fig, key, reports_dir)


def novelty(predictions: pd.DataFrame, fit, k: int = 10) -> pd.DataFrame:
    """Mean self-information (bits) of the top-``k`` recommended products per model x protocol,
    popularity measured as the share of the fit window's customers who bought the product."""
    ui = fit.user_items
    buyers = np.asarray((ui > 0).sum(axis=0)).ravel().astype(float)
    share = buyers / max(ui.shape[0], 1)
    p = predictions[predictions["rank"] <= k]
    cols = fit.item_columns(p["product_id"].to_numpy())
    ok = (cols >= 0) & (share[np.clip(cols, 0, None)] > 0)
    bits = np.where(ok, -np.log2(np.where(ok, share[np.clip(cols, 0, None)], 1.0)), np.nan)
    out = p.assign(bits=bits).groupby(["model", "protocol"])["bits"].mean().rename(f"novelty@{k}").reset_index()
    return out


def coverage_novelty(metrics: pd.DataFrame, predictions: pd.DataFrame, fit, k: int = 10) -> pd.DataFrame:
    """Coverage@k and novelty@k of every model x protocol, models in palette order."""
    cov = metrics[(metrics["metric"] == "coverage") & (metrics["k"] == k) & (metrics["segment_type"] == "overall")]
    cov = cov[["model", "protocol", "value"]].rename(columns={"value": f"coverage@{k}"})
    out = cov.merge(novelty(predictions, fit, k), on=["model", "protocol"], how="outer")
    rank = {m: i for i, m in enumerate(palette.order_models(out["model"]))}
    out = out.assign(_r=out["model"].map(rank)).sort_values(["protocol", "_r"]).drop(columns="_r")
    return out.assign(model=out["model"].map(lambda m: LABELS.get(m, m))).reset_index(drop=True)
