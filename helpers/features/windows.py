"""The window conventions every feature shares, and small helpers over it.

Conventions
-----------
* **Window.** Every feature takes the ``fact_transactions`` frame and an ``as_of``
  timestamp and uses only rows with ``timestamp < as_of`` (``None`` means "all
  rows"). Appending rows at or after ``as_of`` never changes a result.
* **Purchases.** A purchase line has ``quantity > 0`` (returns and zero-quantity
  price adjustments are not purchases), as in the evaluation. A customer *has
  history* when they have at least one purchase line in the window.
* **Scores.** :func:`quantile_scores` gives ``ceil(n * percentile_rank)`` with tied
  values sharing their average rank (so equal values get equal scores and qcut's
  duplicate-edge problem cannot occur); :func:`quantile_band` labels by quantile thresholds,
  ties with a threshold going up.

All computations are vectorized group-bys: no Python loop over customers or products.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DAY", "N_SCORES", "as_of_time", "distinct_per_group", "promo_flag", "purchases", "quantile_band",
           "quantile_scores", "reference_time", "window"]

N_SCORES = 5
DAY = pd.Timedelta(days=1)


def as_of_time(as_of) -> pd.Timestamp | None:
    """``as_of`` as a timestamp (None stays None: every row)."""
    return None if as_of is None else pd.Timestamp(as_of)


def window(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Rows with ``timestamp < as_of`` (all rows when ``as_of`` is None)."""
    as_of = as_of_time(as_of)
    if as_of is None:
        return transactions
    keep = transactions["timestamp"].to_numpy() < as_of.to_datetime64()
    return transactions if keep.all() else transactions.loc[keep]


def purchases(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Purchase lines (``quantity > 0``) before ``as_of``."""
    w = window(transactions, as_of)
    return w.loc[w["quantity"].to_numpy() > 0]


def reference_time(transactions: pd.DataFrame, as_of) -> pd.Timestamp:
    """``as_of``, or (when None) the midnight after the last transaction."""
    as_of = as_of_time(as_of)
    if as_of is not None:
        return as_of
    return transactions["timestamp"].max().normalize() + DAY


def promo_flag(lines: pd.DataFrame) -> pd.Series:
    """``on_promotion`` as float (1/0, NaN when unknown or absent)."""
    if "on_promotion" not in lines:
        return pd.Series(np.nan, index=lines.index, dtype="float64")
    return lines["on_promotion"].astype("float64")


def quantile_scores(values: pd.Series, n: int = N_SCORES, higher_is_better: bool = True) -> pd.Series:
    """Scores ``1..n`` from average percentile ranks (ties share a score)."""
    if len(values) == 0:
        return pd.Series(np.zeros(0, dtype=np.int64), index=values.index)
    pct = values.rank(method="average", pct=True, ascending=higher_is_better)
    return np.ceil(pct * n).clip(1, n).astype(np.int64)


def quantile_band(score: pd.Series, quantiles, labels) -> tuple[pd.Series, np.ndarray]:
    """Label by the thresholds ``quantile(score, q)``: ties with a threshold go up."""
    thresholds = np.quantile(score.to_numpy(float), quantiles) if len(score) else np.full(len(quantiles), np.nan)
    idx = np.searchsorted(thresholds, score.to_numpy(float), side="right")
    return pd.Series(np.asarray(labels, dtype=object)[idx], index=score.index), thresholds


def distinct_per_group(df: pd.DataFrame, group: str, value: str) -> pd.Series:
    """Distinct ``value`` per ``group`` (faster than ``groupby().nunique()``)."""
    return df[[group, value]].drop_duplicates().groupby(group, sort=True).size()
