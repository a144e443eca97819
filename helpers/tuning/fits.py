"""Fit the registered models: their grids, one model with given parameters (through the model
cache), the grid search of one model, every tuned model, and the hybrid's components.

Identical ``(model, parameters)`` pairs share one fit (:func:`~helpers.tuning.files.params_key`).
"""

from __future__ import annotations

import sys

import pandas as pd

from helpers.models.base import FitData, Recommender
from helpers.models.registry import HYBRID_COMPONENTS, HYBRID_EXTRAS, MODELS, base_model
from helpers.tuning import model_cache
from helpers.tuning.files import params_key
from helpers.tuning.grids import GRIDS
from helpers.tuning.stages import Stage, best_params, expand_grid, grid_search

__all__ = ["fit_components", "fit_tuned", "grid", "make_model", "tune"]


def grid(name: str, overrides: dict | None = None) -> list[dict]:
    """Candidates for a model: its default grid, with any ``{param: values}`` overrides."""
    module = sys.modules[MODELS[name][0].__module__]
    g = dict(GRIDS.get(name) or getattr(module, "GRID", {}))
    g.update(overrides or {})
    return expand_grid(g) if g else [{}]


def make_model(name: str, params: dict | None = None, fit_data: FitData | None = None, **extra) -> Recommender:
    """A model with ``params``; fitted on ``fit_data`` when given, through the on-disk
    model cache when that stage has one (:mod:`helpers.tuning.model_cache`)."""
    cls = MODELS[name][0]
    if fit_data is None:
        return cls(**{**(params or {}), **extra})
    if extra:
        return cls(**{**(params or {}), **extra}).fit(fit_data)
    return model_cache.fit_model(name, params or {}, fit_data, lambda: cls(**(params or {})).fit(fit_data))


def tune(name: str, stage: Stage, candidates: list[dict] | None = None, log=None) -> tuple[pd.DataFrame, dict]:
    """Grid search of one model on a (validation) stage; returns the table and best params per protocol."""
    protocols = MODELS[name][1]
    cands = candidates if candidates is not None else grid(name)
    kept: dict[str, tuple[float, Recommender]] = {}

    def keep(params, model, values):  # the first best per protocol, as best_params picks it
        for p, v in values.items():
            if p not in kept or v > kept[p][0]:
                kept[p] = (v, model)

    table = grid_search(lambda **p: make_model(name, p), cands, stage, protocols=protocols, log=log, on_model=keep)
    best = {p: best_params(table, p) for p in protocols}
    for p, (_, model) in kept.items():  # the hybrid notebook reuses these fits
        model_cache.store(model, stage.fit, name, best[p])
    kept.clear()
    table.insert(0, "model", name)
    return table, best


def fit_tuned(tuning: dict, fit_data: FitData, names=None) -> dict[tuple[str, str], Recommender]:
    """Fit every model with its tuned parameters per protocol; identical params share one fit."""
    out: dict[tuple[str, str], Recommender] = {}
    cache: dict[tuple[str, str], Recommender] = {}
    for name in names or MODELS:
        if name not in tuning:
            continue
        for protocol in MODELS[name][1]:
            params = tuning[name][protocol]
            key = (name, params_key(params))
            if key not in cache:
                cache[key] = make_model(name, params, fit_data)
            out[(name, protocol)] = cache[key]
    return out


def fit_components(tuning: dict, fit_data: FitData, protocol: str, names=HYBRID_COMPONENTS,
                   cache: dict | None = None) -> dict[str, Recommender]:
    """The hybrid's components for a protocol, each with its parameters tuned for that protocol.

    Extras (:data:`HYBRID_EXTRAS`) are fitted with their fixed parameters. Models not
    reported in the protocol (buy again in ``new``) are left out. ``cache``
    (keyed by model and parameters) lets both protocols share identical fits.
    """
    cache = {} if cache is None else cache
    if isinstance(names, dict):  # {protocol: names}: each protocol its own components
        names = names.get(protocol, ())
    out = {}
    for name in names:
        base = base_model(name)
        if base not in tuning or protocol not in MODELS[base][1]:
            continue
        params = HYBRID_EXTRAS[name][1] if name in HYBRID_EXTRAS else tuning[name][protocol]
        key = (base, params_key(params))
        if key not in cache:
            cache[key] = make_model(base, params, fit_data)
        out[name] = cache[key]
    return out
