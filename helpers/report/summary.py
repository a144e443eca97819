"""Plain-language figures of the executive summary, computed from ``metrics.csv`` and the
paired comparison (glued by chapter 07, pasted on the landing page).

* :func:`in_five`: a hit rate as "N in 5" (or "1 in M" below one in ten: ``M = round(1/rate)``).
* :func:`verdict`: whether the hybrid is ahead of, behind or not distinguishable from the
  best other model, from the 95% interval of the paired difference.
* :func:`lift`: ratio of the hybrid's metric to the "most popular" baseline's.
"""

from __future__ import annotations

import math

from helpers.report.tables import metric_value
from helpers.tuning.workflow import LABELS

POPULAR = "global_popularity"


def in_five(rate: float) -> str:
    """``0.788 -> "4 in 5"``, ``0.198 -> "1 in 5"``, ``0.03 -> "1 in 33"``, ``0 -> "none"``."""
    if not (rate == rate) or rate <= 0:  # NaN or zero
        return "none"
    n = round(rate * 5)
    return f"{n} in 5" if n >= 1 else f"1 in {round(1 / rate):,}"


def verdict(model: str, other: str, low: float, high: float) -> str:
    other = LABELS.get(other, other)
    if low > 0:
        return f"ahead of {other}: the whole 95% interval of the difference is above zero"
    if high < 0:
        return f"behind {other}: the whole 95% interval of the difference is below zero"
    return (f"not distinguishable from {other} on this test window: the 95% interval of the difference "
            "includes zero")


def lift(metrics, protocol: str, metric: str = "hit_rate", k: int = 5, model: str = "hybrid",
         baseline: str = POPULAR) -> float:
    """``model``'s overall test metric divided by ``baseline``'s (NaN without a baseline value)."""
    try:
        base = metric_value(metrics, baseline, protocol, metric, k)
    except KeyError:
        return math.nan
    return metric_value(metrics, model, protocol, metric, k) / base if base > 0 else math.nan


def glue_values(metrics, comparisons: dict, test_days: int) -> dict:
    """Every glued figure of the landing page, by protocol (``comparisons[protocol]`` is the
    paired comparison of the hybrid with the best other model)."""
    out = {"test_days": int(test_days)}
    for protocol, cmp in comparisons.items():
        hit = metric_value(metrics, "hybrid", protocol, "hit_rate")
        other = cmp["baseline"]
        out |= {
            f"hybrid_{protocol}_ndcg5": metric_value(metrics, "hybrid", protocol),
            f"hybrid_{protocol}_hit5": hit,
            f"hybrid_{protocol}_hit5_low": metric_value(metrics, "hybrid", protocol, "hit_rate", column="ci_low"),
            f"hybrid_{protocol}_hit5_high": metric_value(metrics, "hybrid", protocol, "hit_rate", column="ci_high"),
            f"hybrid_{protocol}_in_five": in_five(hit),
            f"popular_{protocol}_hit5": _or_nan(metrics, POPULAR, protocol, "hit_rate"),
            f"lift_{protocol}_hit5": lift(metrics, protocol),
            f"lift_{protocol}_ndcg5": lift(metrics, protocol, "ndcg"),
            f"best_other_{protocol}": LABELS.get(other, other),
            f"best_other_{protocol}_ndcg5": metric_value(metrics, other, protocol),
            f"diff_{protocol}": cmp["mean_diff"], f"diff_{protocol}_low": cmp["ci_low"],
            f"diff_{protocol}_high": cmp["ci_high"], f"n_eval_{protocol}": cmp["n_customers"],
            f"verdict_{protocol}": verdict("hybrid", other, cmp["ci_low"], cmp["ci_high"]),
            f"hybrid_{protocol}_coverage10": metric_value(metrics, "hybrid", protocol, "coverage", 10),
        }
    return out


def _or_nan(metrics, model, protocol, metric):
    try:
        return metric_value(metrics, model, protocol, metric)
    except KeyError:
        return math.nan
