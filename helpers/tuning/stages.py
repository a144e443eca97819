"""Glue between the star schema, the split, the models and the evaluation engine.

A :class:`Stage` is one fit/evaluate pair of the protocol: ``valid`` fits on
train and scores validation (for tuning), ``test`` fits on train + validation
and scores test (once, for the reported numbers). Segments are computed on the
fit window of each stage only.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.arrays import unique
from helpers.data.split import Split, select_window
from helpers.evaluation import Relevance, compute_metrics, evaluate_model, evaluation_set, relevance_matrix
from helpers.models import FitData, Recommender, excluded_matrix, make_fit_data, map_blocks, mask_excluded


@dataclass
class Stage:
    name: str  # "valid", "test", or "valid-i" (an earlier validation window)
    fit: FitData
    relevance: Relevance
    eval_start: pd.Timestamp
    eval_end: pd.Timestamp


def make_stage(tables: dict[str, pd.DataFrame], split: Split, name: str,
               segments_fn: Callable[[dict, pd.Timestamp], pd.DataFrame] | None = None) -> Stage:
    """Fit data (window before the evaluation window) and relevance of one stage."""
    fit_end, eval_start, eval_end = split.windows(name)
    segments = segments_fn(tables, fit_end) if segments_fn else None
    fit = make_fit_data(tables["fact_transactions"], tables["dim_customer"], tables["dim_product"], fit_end,
                        segments=segments, promotions=tables.get("dim_promotion"))
    ev = select_window(tables["fact_transactions"], eval_start, eval_end)
    rel = relevance_matrix(ev, fit.customer_ids, fit.item_ids)
    return Stage(name, fit, rel, eval_start, eval_end)


def expand_grid(grid: dict[str, Iterable]) -> list[dict]:
    """Cartesian product of a ``{param: values}`` grid, in a stable order."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(list(grid[k]) for k in keys))]


def score_model(model: Recommender, stage: Stage, protocols=("all", "new"), metric: str = "ndcg",
                k: int = 5, chunk_size: int = 512, threads: int = 0) -> dict[str, float]:
    """Macro-average of one metric per protocol on a stage (model already fitted).

    Models that use the base class's ``recommend`` (ranking through their ``rank``)
    are scored once for the union of the protocols' evaluated customers (the dense
    scores are the expensive part); each protocol then masks its exclusions and ranks. Models with
    score parts (:meth:`~helpers.models.base.Recommender.parts`) skip the dense scores and rank
    each protocol's rows from their parts (:meth:`~helpers.models.base.Recommender.rank_rows`). Same lists, hence same
    values, as :func:`~helpers.evaluation.metrics.evaluate_model` per protocol (tested). Blocks of
    ``chunk_size`` customers are scored on ``threads`` threads (0 = every core).
    """
    protocols = tuple(protocols)
    if len(protocols) < 2 or type(model).recommend is not Recommender.recommend:
        out = {}
        for protocol in protocols:
            per_customer, *_ = evaluate_model(model, stage.fit, stage.relevance, protocol, ks=(k,), top_n=k)
            values = per_customer[(metric, k)]
            out[protocol] = float(np.mean(values)) if len(values) else 0.0
        return out
    fit = stage.fit
    sets = {p: evaluation_set(fit.user_items, stage.relevance, p) for p in protocols}
    union = unique(np.concatenate([es.rows for es in sets.values()]))
    k_eff = min(k, fit.n_items)
    top = {p: np.full((len(es.rows), k_eff), -1, dtype=np.int64) for p, es in sets.items()}

    parts = type(model).rank is Recommender.rank and model.parts(union[:1]) is not None

    def block(a, b):  # every protocol's rows of this block are written by this block only
        rows = union[a:b]
        s = None if parts else np.asarray(model.score(rows), dtype=np.float32)
        for p, es in sets.items():
            lo, hi = np.searchsorted(es.rows, [rows[0], rows[-1] + 1])
            if hi <= lo:
                continue
            pos = np.searchsorted(rows, es.rows[lo:hi])
            if parts:  # ranked from the model's score parts, without dense scores
                idx, val = model.rank_rows(rows[pos], excluded_matrix(fit, rows[pos], es.exclude, slice(lo, hi)),
                                           k_eff)
            else:
                sub = s[pos]  # a copy: exclusions below do not leak into the other protocol
                mask_excluded(sub, fit, rows[pos], es.exclude, slice(lo, hi))
                idx, val = model.rank(sub, k_eff)
            top[p][lo:hi] = np.where(np.isfinite(val), idx, -1)

    map_blocks(block, len(union), chunk_size, threads)
    out = {}
    for p, es in sets.items():
        res = compute_metrics(top[p], es.relevance.matrix, es.relevance.n_relevant, (k,))
        values = res[(metric, k)]
        out[p] = float(np.mean(values)) if len(values) else 0.0
    return out


def grid_search(factory: Callable[..., Recommender], candidates: list[dict], stage: Stage,
                protocols=("all", "new"), metric: str = "ndcg", k: int = 5, log=None,
                on_model: Callable[[dict, Recommender, dict], None] | None = None) -> pd.DataFrame:
    """Fit ``factory(**params)`` for each candidate on ``stage.fit`` and score it.

    Returns one row per (candidate, protocol): the parameters, ``protocol``,
    ``value`` (``metric@k``) and ``fit_seconds``. Use :func:`best_params` to pick.
    ``on_model(params, model, {protocol: value})`` sees every fitted candidate.
    """
    rows = []
    for params in candidates:
        t0 = time.perf_counter()
        model = factory(**params).fit(stage.fit)
        fit_s = time.perf_counter() - t0
        values = score_model(model, stage, protocols, metric, k)
        for protocol, value in values.items():
            rows.append({**params, "protocol": protocol, "value": value, "fit_seconds": round(fit_s, 3)})
        if on_model:
            on_model(params, model, values)
        del model
        if log:
            log(f"{params} -> " + ", ".join(f"{r['protocol']}={r['value']:.4f}" for r in rows[-len(protocols):]))
    return pd.DataFrame(rows)


def best_params(results: pd.DataFrame, protocol: str) -> dict:
    """Parameters of the best row for a protocol (first one on ties: stable)."""
    sub = results[results["protocol"] == protocol].reset_index(drop=True)
    best = sub.loc[int(np.argmax(sub["value"].to_numpy()))]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()
            if k not in ("protocol", "value", "fit_seconds")}
