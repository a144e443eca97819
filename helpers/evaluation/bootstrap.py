"""Macro averages with percentile bootstrap confidence intervals over customers.

Conventions: 95% percentile bootstrap over customers, seeded; every metric of a
group shares the same resamples. For groups above ``BIG_N`` customers the number
of resamples shrinks to ``max(200, n_boot * BIG_N // n)`` to bound time (the CI is
then very narrow anyway). :func:`summarize` writes the long table of
``SUMMARY_COLUMNS``, overall and per segment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.arrays import unique

__all__ = ["BIG_N", "SUMMARY_COLUMNS", "paired_bootstrap", "summarize"]

SUMMARY_COLUMNS = [
    "model", "protocol", "split", "segment_type", "segment", "k", "metric",
    "value", "ci_low", "ci_high", "n_customers", "small_segment",
]
BIG_N = 200_000  # bootstrap groups above this size use fewer resamples
_BOOT_CELLS = 4_000_000  # resample-count cells held in memory at once


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means ``(n_boot, m)`` of ``values (n, m)`` over resamples of the rows.

    Each resample is a vector of draw counts (bincount of ``n`` uniform draws),
    so a chunk of resamples is one matrix product and memory stays bounded.
    """
    n, m = values.shape
    out = np.empty((n_boot, m))
    step = max(1, _BOOT_CELLS // max(n, 1))
    for b0 in range(0, n_boot, step):
        b = min(step, n_boot - b0)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b, dtype=np.int64) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out[b0:b0 + b] = counts @ values / n
    return out


def _n_boot_for(n: int, n_boot: int) -> int:
    return n_boot if n <= BIG_N else max(200, n_boot * BIG_N // n)


def paired_bootstrap(a, b, n_boot: int = 2000, seed: int = 0) -> dict:
    """Bootstrap of ``mean(a - b)`` over customers (same resamples for both arrays).

    ``p_value_two_sided = min(1, 2 * min(P*(diff <= 0), P*(diff >= 0)))`` with the
    add-one correction ``(1 + count) / (1 + n_boot)``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("a and b must be non-empty 1-D arrays of the same customers")
    n_boot = _n_boot_for(len(a), n_boot)
    means = _bootstrap_means(np.column_stack([a, b]), n_boot, np.random.default_rng(seed))
    diff = means[:, 0] - means[:, 1]
    lo, hi = np.percentile(diff, [2.5, 97.5])
    p_le = (1 + np.count_nonzero(diff <= 0)) / (1 + n_boot)
    p_ge = (1 + np.count_nonzero(diff >= 0)) / (1 + n_boot)
    return {"mean_diff": float(np.mean(a - b)), "ci_low": float(lo), "ci_high": float(hi),
            "p_value_two_sided": float(min(1.0, 2 * min(p_le, p_ge)))}


def summarize(per_customer: dict, customer_ids, segments: pd.DataFrame | None, model: str,
              protocol: str, split: str, n_boot: int = 1000, seed: int = 0, min_segment: int = 30,
              coverage: dict | None = None) -> pd.DataFrame:
    """Long table of macro averages with 95% bootstrap CIs, overall and per segment.

    ``per_customer`` maps ``(metric, k)`` to arrays aligned with ``customer_ids``;
    ``segments`` is long (``customer_id, segment_type, segment``); customers absent
    from a segment type (or with a null segment) are left out of its rows.
    ``coverage`` (``{k: value}``) adds ``metric="coverage"`` rows with NaN CIs.
    """
    customer_ids = np.asarray(customer_ids, dtype=np.int64)
    keys = list(per_customer)
    values = np.column_stack([np.asarray(per_customer[k], dtype=np.float64) for k in keys]) \
        if keys else np.empty((len(customer_ids), 0))
    if values.shape[0] != len(customer_ids):
        raise ValueError("per-customer arrays and customer_ids differ in length")
    groups = [("overall", "all", np.arange(len(customer_ids)))]
    if segments is not None and len(segments):
        pos = pd.Index(customer_ids).get_indexer(segments["customer_id"].to_numpy(np.int64))
        seg = segments.assign(_pos=pos).loc[pos >= 0]
        for (stype, sname), g in seg.groupby(["segment_type", "segment"], sort=True, observed=True):
            groups.append((stype, sname, unique(g["_pos"].to_numpy())))
    records = []
    for gi, (stype, sname, idx) in enumerate(groups):
        n = len(idx)
        if n == 0:
            continue
        vals = values[idx]
        mean = vals.mean(axis=0)
        boots = _bootstrap_means(vals, _n_boot_for(n, n_boot), np.random.default_rng([seed, gi]))
        lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
        for j, (metric, k) in enumerate(keys):
            records.append((model, protocol, split, stype, sname, int(k), metric, mean[j], lo[j],
                            hi[j], n, n < min_segment))
    for k, cov in (coverage or {}).items():
        records.append((model, protocol, split, "overall", "all", int(k), "coverage", float(cov),
                        np.nan, np.nan, len(customer_ids), len(customer_ids) < min_segment))
    return pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)
