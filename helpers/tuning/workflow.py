"""The model registry and the tune -> refit -> evaluate workflow the notebooks call.

Every model is tuned on the validation stage (fit on train, score validation)
with its grid from :mod:`helpers.tuning.grids`, separately for each
protocol; the chosen parameters are written to ``tables/tuning.json`` so that
later notebooks (hybrid, evaluation, export) read them instead of retyping
them. Final numbers come from refitting on train + validation and scoring the
test window once (:func:`evaluate_models`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import writelog
from helpers.atomic import atomic_path, write_json
from helpers.config import processed_dir as resolve
from helpers.data.products import ProductLookup
from helpers.data.star import load_meta
from helpers.evaluation.metrics import (
    Split,
    catalog_coverage,
    evaluate_model,
    predictions_frame,
    summarize,
    temporal_split,
)
from helpers.features.segments import compute_segments
from helpers.models.als import ALS
from helpers.models.base import FitData, Recommender
from helpers.models.buy_again import BuyAgain
from helpers.models.content import ContentTFIDF
from helpers.models.ease import EASE
from helpers.models.hybrid import CandidatePool, Hybrid, Rules, search_weights
from helpers.models.itemknn import ItemKNN
from helpers.models.popularity import GlobalPopularity, SegmentedPopularity
from helpers.models.ranker import PairHistory, Ranker, pool_examples
from helpers.tuning import model_cache
from helpers.tuning.grids import GRIDS
from helpers.tuning.production import N_SIMILAR, production_fit_data, production_tuning, similar_products
from helpers.tuning.stages import Stage, best_params, expand_grid, grid_search, make_stage

PROTOCOLS = ("all", "new")

# name -> (class, protocols it is reported in, human label)
MODELS: dict[str, tuple[type, tuple[str, ...], str]] = {
    "global_popularity": (GlobalPopularity, PROTOCOLS, "Global popularity"),
    "segmented_popularity": (SegmentedPopularity, PROTOCOLS, "Segmented popularity"),
    "buy_again": (BuyAgain, ("all",), "Buy again"),
    "als": (ALS, PROTOCOLS, "ALS (implicit)"),
    "itemknn": (ItemKNN, PROTOCOLS, "Item-kNN"),
    "ease": (EASE, PROTOCOLS, "EASE"),
    "content": (ContentTFIDF, PROTOCOLS, "Content (TF-IDF)"),
}
LABELS = {name: spec[2] for name, spec in MODELS.items()} | {"hybrid": "Hybrid"}

#: Extra hybrid components: a registered model at fixed parameters (not tuned, not
#: reported on their own). Two more buy-again horizons bracket the tuned one, so the
#: weight search can mix a customer's recent routine (two weeks, habitual products
#: first) with their long-run staples (a year): fixed a priori at the ends of the
#: buy-again grid.
HYBRID_EXTRAS: dict[str, tuple[str, dict]] = {
    "buy_again_recent": ("buy_again", {"half_life_days": 14.0, "repeat_beta": 1.0}),
    "buy_again_long": ("buy_again", {"half_life_days": 365.0, "repeat_beta": 0.5}),
}


def base_model(name: str) -> str:
    """The registered model behind a component name (itself, or an extra's base)."""
    return HYBRID_EXTRAS[name][0] if name in HYBRID_EXTRAS else name


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


def _jsonable(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def _restore(params: dict) -> dict:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()}


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


def save_tuning(best: dict[str, dict], tables_dir) -> Path:
    """Merge ``{model: {protocol: params}}`` into ``tables_dir/tuning.json``.

    The read-modify-write holds an exclusive lock (``.tuning.json.lock`` beside it), so
    notebooks tuning different models at the same time all end up in the file; the
    file itself is replaced atomically."""
    import fcntl


    path = Path(tables_dir) / "tuning.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".tuning.json.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        current = json.loads(path.read_text()) if path.exists() else {}
        for name, by_protocol in best.items():
            current[name] = {p: _jsonable(v) if isinstance(v, dict) else v for p, v in by_protocol.items()}
        write_json(path, current)
    writelog.note_keys(path, best)
    return path


def load_tuning(tables_dir) -> dict:
    path = Path(tables_dir) / "tuning.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the model notebooks (03-06) first")
    raw = json.loads(path.read_text())
    return {name: {p: (_restore(v) if isinstance(v, dict) else v) for p, v in by.items()} for name, by in raw.items()}


def fit_tuned(tuning: dict, fit_data: FitData, names=None) -> dict[tuple[str, str], Recommender]:
    """Fit every model with its tuned parameters per protocol; identical params share one fit."""
    out: dict[tuple[str, str], Recommender] = {}
    cache: dict[tuple[str, str], Recommender] = {}
    for name in names or MODELS:
        if name not in tuning:
            continue
        for protocol in MODELS[name][1]:
            params = tuning[name][protocol]
            key = (name, json.dumps(_jsonable(params), sort_keys=True))
            if key not in cache:
                cache[key] = make_model(name, params, fit_data)
            out[(name, protocol)] = cache[key]
    return out


def evaluate_models(models: dict[tuple[str, str], Recommender], stage: Stage, segments: pd.DataFrame | None,
                    split: str = "test", ks=(5, 10), top_n: int = 10, n_boot: int = 1000, seed: int = 0):
    """Score every (model, protocol) on a stage.

    Returns ``(metrics, predictions, per_customer)``: the long metrics table
    (``helpers.evaluation.metrics.SUMMARY_COLUMNS``), the top-``top_n`` predictions of every
    evaluated customer, and ``{(model, protocol): (customer_ids, {(metric, k): values})}``
    for paired comparisons.
    """
    frames, preds, per = [], [], {}
    for (name, protocol), model in models.items():
        pc, ids, scores, cust = evaluate_model(model, stage.fit, stage.relevance, protocol, ks=ks, top_n=top_n)
        cov = {k: catalog_coverage(np.where(ids[:, :k] >= 0, stage.fit.item_columns(ids[:, :k]), -1),
                                   stage.fit.n_items) for k in ks}
        frames.append(summarize(pc, cust, segments, name, protocol, split, n_boot=n_boot, seed=seed, coverage=cov))
        preds.append(predictions_frame(name, protocol, cust, ids[:, :top_n], scores[:, :top_n]))
        per[(name, protocol)] = (cust, pc)
    metrics = pd.concat(frames, ignore_index=True)
    predictions = pd.concat(preds, ignore_index=True)
    for col in ("model", "protocol"):
        predictions[col] = predictions[col].astype(str)
    return metrics, predictions, per


def headline(metrics: pd.DataFrame, split: str = "test", k: int = 5) -> pd.DataFrame:
    """Overall P/R/NDCG@k with CIs, one row per model x protocol."""
    m = metrics[(metrics["split"] == split) & (metrics["segment_type"] == "overall") & (metrics["k"] == k)
                & metrics["metric"].isin(["precision", "recall", "ndcg", "hit_rate"])]
    wide = m.pivot_table(index=["model", "protocol"], columns="metric", values=["value", "ci_low", "ci_high"])
    wide.columns = [f"{metric}_{what}" if what != "value" else metric for what, metric in wide.columns]
    return wide.reset_index()


def prepare_stages(tables: dict, test_days: int = 28, valid_days: int = 28, processed_dir=None,
                   names=("valid", "test")):
    """The split (also written to ``split.json``) and its stages with segments: ``(split, valid,
    test)``, or ``(split, *stages)`` in the order of ``names``. Their fits go through the model
    cache, so a notebook loads the fits another one made on the same window."""
    split = temporal_split(tables["fact_transactions"], test_days=test_days, valid_days=valid_days)
    split.write(resolve(processed_dir) / "split.json")
    stages = [make_stage(tables, split, name, compute_segments) for name in names]
    _share_fits([(st.fit, st.name) for st in stages], processed_dir)
    return (split, *stages)


def _data_fingerprint(processed_dir) -> str | None:
    """The data fingerprint of a processed folder (None: no metadata, or none recorded)."""
    try:
        return load_meta(processed_dir).get("fingerprint") or None
    except FileNotFoundError:
        return None


def _share_fits(fits: list[tuple[FitData, str]], processed_dir) -> None:
    """Fits on these ``(fit data, stage label)`` are shared between notebooks
    (:mod:`helpers.tuning.model_cache`) when the processed folder has a data fingerprint."""
    fingerprint = _data_fingerprint(processed_dir)
    if fingerprint:
        for fit, stage in fits:
            model_cache.enable(fit, resolve(processed_dir), fingerprint, stage)


def earlier_stages(tables: dict, split, valid_days: int, n: int, processed_dir=None) -> list[Stage]:
    """``n`` validation stages before the validation window (rolling origin).

    Stage ``valid-i`` fits on the data before ``valid_start - i * valid_days`` and
    scores the ``valid_days`` after that date; segments are computed on its own fit
    window. Nothing of the validation or test windows is seen.
    """
    stages = []
    for i in range(1, n + 1):
        start = split.valid_start - pd.Timedelta(days=i * valid_days)
        if start <= split.start + pd.Timedelta(days=valid_days):
            raise ValueError(f"{n} earlier windows of {valid_days} days leave too little training data "
                             f"before {start.date()} (data start {split.start.date()})")
        shifted = Split(split.start, start, start + pd.Timedelta(days=valid_days), split.end)
        stage = make_stage(tables, shifted, "valid", compute_segments)
        stage.name = f"valid-{i}"
        stages.append(stage)
    _share_fits([(st.fit, st.name) for st in stages], processed_dir)
    return stages


#: Stage label of the export's all-data fits (:func:`helpers.export.production.fit_production`).
PRODUCTION_STAGE = "production"


@dataclass
class LaterFit:
    """A fit window used after the model notebooks: one of the hybrid's earlier validation
    windows (06) or the export's all-data fit (08). The chosen models are fitted there ahead,
    into the model cache, so that those notebooks load them (:func:`prefit`)."""

    fit: FitData
    production: bool = False  # fitted with the export's parameters (helpers.tuning.production.production_tuning)


def later_fits(tables: dict, split, valid_days: int = 28, weight_windows: int = 2,
               processed_dir=None) -> list[LaterFit]:
    """The fit windows of the hybrid's ``weight_windows - 1`` earlier validation windows
    (:func:`earlier_stages`, the same stages as the hybrid notebook) and of the export
    (:func:`helpers.tuning.production.production_fit_data`), each with its model cache location.

    Empty when the processed folder has no data fingerprint (nothing would be shared).
    Earlier windows that do not fit in the data are left out (the hybrid notebook says so
    when it asks for them)."""

    if _data_fingerprint(processed_dir) is None:
        return []
    try:
        earlier = earlier_stages(tables, split, valid_days, weight_windows - 1, processed_dir)
    except ValueError:
        earlier = []
    production = production_fit_data(tables)
    _share_fits([(production, PRODUCTION_STAGE)], processed_dir)
    return [LaterFit(st.fit) for st in earlier] + [LaterFit(production, production=True)]


def prefit(best: dict[str, dict], later: list[LaterFit], seed: int = 0, log=None) -> int:
    """Fit every chosen ``{model: {protocol: params}}`` (and buy-again's fixed hybrid extras,
    :data:`HYBRID_EXTRAS`) on each later fit window into the model cache; fits already there
    are skipped. Returns the number of fits made. The hybrid and export notebooks load them
    instead of fitting: same parameters and fit data, hence the same models."""

    made = 0
    for target in later:
        tuned = production_tuning(best, seed) if target.production else best  # as the export fits them
        specs: dict[tuple[str, str], dict] = {}
        for name, by_protocol in tuned.items():
            entries = list(by_protocol.values())
            entries += [params for base, params in HYBRID_EXTRAS.values() if base == name]  # fixed, as given
            for params in entries:
                specs[(name, json.dumps(_jsonable(params), sort_keys=True))] = params
        for (name, _), params in specs.items():
            path = model_cache.model_path(target.fit, name, params)
            if path is None or path.exists():
                continue
            make_model(name, params, target.fit)  # fitted and stored, then dropped
            made += 1
            if log:
                log(f"{name} {params} fitted ahead on {model_cache.stage_label(target.fit)}")
        if target.production and "all" in tuned.get("content", {}):
            _similar_ahead(tuned["content"]["all"], target.fit, log)
    return made


def _similar_ahead(params: dict, fit: FitData, log=None) -> None:
    """Rank the export's similar products (every product, :data:`helpers.tuning.production.N_SIMILAR`
    deep) with its content model into the model cache, as the export asks for them."""

    if model_cache.model_path(fit, "content", params) is None:
        return
    ids = ProductLookup(fit.products).ids  # the export's product list, so the cache key is the one it asks for
    similar_products(make_model("content", params, fit), params, ids, N_SIMILAR)
    if log:
        log(f"similar products ({N_SIMILAR} per product, content {params}) ranked ahead on "
            f"{model_cache.stage_label(fit)}")


def run_chapter(names: list[str], valid: Stage, test: Stage, tables_dir, overrides: dict | None = None,
                n_boot: int = 1000, seed: int = 0, log=None, later: list[LaterFit] = ()) -> dict:
    """Tune each model on validation, refit the chosen parameters on train + validation, score test once.

    Writes ``tuning.json`` (merged), ``metrics_<model>.csv`` and ``predictions_<model>.parquet``
    to ``tables_dir``; returns ``{"tuning": table, "best": {...}, "metrics": ..., "predictions": ...}``.
    The chosen models are also fitted on the ``later`` fit windows (:func:`later_fits`,
    :func:`prefit`): the hybrid and the export then load them from the model cache, and
    that work runs here, while the other model notebooks run, instead of in a later notebook.
    """
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    tuning_tables, best = [], {}
    for name in names:
        table, best[name] = tune(name, valid, grid(name, (overrides or {}).get(name)), log=log)
        tuning_tables.append(table)
    save_tuning(best, tables_dir)
    models = fit_tuned(best, test.fit, names)
    metrics, predictions, _ = evaluate_models(models, test, test.fit.segments, n_boot=n_boot, seed=seed)
    del models
    for name in names:
        metrics[metrics["model"] == name].to_csv(tables_dir / f"metrics_{name}.csv", index=False)
        predictions[predictions["model"] == name].to_parquet(tables_dir / f"predictions_{name}.parquet", index=False)
    if later:
        tuned = load_tuning(tables_dir)  # as the hybrid and the export read them back
        prefit({name: tuned[name] for name in names}, list(later), seed=seed, log=log)
    return {"tuning": pd.concat(tuning_tables, ignore_index=True), "best": best, "metrics": metrics,
            "predictions": predictions}


HYBRID_COMPONENTS = ("global_popularity", "buy_again", "buy_again_recent", "buy_again_long", "als", "itemknn",
                     "ease", "content")


def fit_components(tuning: dict, fit_data: FitData, protocol: str, names=HYBRID_COMPONENTS,
                   cache: dict | None = None) -> dict[str, Recommender]:
    """The hybrid's components for a protocol, each with its parameters tuned for that protocol.

    Extras (:data:`HYBRID_EXTRAS`) are fitted with their fixed parameters. Models not
    reported in the protocol (buy again in ``new``) are left out. ``cache``
    (keyed by model and parameters) lets both protocols share identical fits.
    """
    cache = {} if cache is None else cache
    out = {}
    for name in names:
        base = base_model(name)
        if base not in tuning or protocol not in MODELS[base][1]:
            continue
        params = HYBRID_EXTRAS[name][1] if name in HYBRID_EXTRAS else tuning[name][protocol]
        key = (base, json.dumps(_jsonable(params), sort_keys=True))
        if key not in cache:
            cache[key] = make_model(base, params, fit_data)
        out[name] = cache[key]
    return out


def run_hybrid(valid: Stage, tables_dir, names=HYBRID_COMPONENTS, rules=None, rule_variants=None,
               pool_size: int = 100, n_trials: int = 300, by_history: bool = True, light_max_baskets: int = 5,
               seed: int = 0, log=None, earlier: list[Stage] | tuple = (), ranker: dict | None = None) -> dict:
    """Search the hybrid weights on validation per protocol and measure each business rule.

    ``earlier`` (see :func:`earlier_stages`) adds validation windows before the
    validation window: the components are fitted on each one's own past with the same
    parameters, and the weights maximize the mean NDCG@5 over the customers of every
    window (rolling origin), so that they do not fit one month's noise. Rules are
    priced on the validation window.

    ``ranker`` (keyword arguments of :class:`~helpers.models.ranker.Ranker`; None:
    off) offers a learned re-ranker of the candidates in protocol ``all`` (repeat purchases,
    where its timing features exist). It is chosen on validation, never on test: a ranker
    trained on the earlier windows and a blend whose weights are searched on the same
    earlier windows both rank the validation window's candidates, and the ranker is used
    only if it scores higher (``selection`` in the result). The kept ranker is then
    retrained on every window, validation included, and pickled to
    ``hybrid_ranker_<protocol>.pkl``. It needs ``earlier``.

    ``rules`` (a :class:`~helpers.models.hybrid.Rules`) is applied to the final model;
    ``rule_variants`` (name -> Rules) are each measured on validation against no rule.
    Writes the ``hybrid`` entry of ``tuning.json`` (weights, rules and components per
    protocol) and the rankers; the test window is scored once, by :func:`evaluate_hybrid`
    (the evaluation notebook), not here.
    """
    from dataclasses import asdict


    if ranker is not None and not earlier:
        raise ValueError("the ranker is chosen on validation after training on earlier windows: "
                         "pass earlier stages (weight_windows >= 2)")
    tables_dir = Path(tables_dir)
    tuning = load_tuning(tables_dir)
    rules = rules or Rules()
    weights, trials, rule_rows, selection, rankers = {}, [], [], [], {}
    caches: dict = {stage.name: {} for stage in (valid, *earlier)}
    search = dict(n_trials=n_trials, seed=seed, by_history=by_history, light_max_baskets=light_max_baskets)
    pools = {st.name: CandidatePool.for_protocols(  # both protocols at once: shared fits are scored once
        {p: fit_components(tuning, st.fit, p, names, caches[st.name]) for p in PROTOCOLS}, st.fit, st.relevance,
        pool_size=pool_size) for st in (valid, *earlier)}
    for protocol in PROTOCOLS:
        pool = pools[valid.name][protocol]
        early = [pools[st.name][protocol] for st in earlier]
        search_pool = CandidatePool.concat([pool] + early) if earlier else pool
        weights[protocol], log_table = search_weights(search_pool, **search)
        log_table.insert(0, "protocol", protocol)
        trials.append(log_table)
        base = None
        if ranker is not None and protocol == "all":
            histories = [PairHistory.from_fit(st.fit) for st in earlier]
            train = [pool_examples(p, h) for p, h in zip(early, histories)]
            labels = np.concatenate([ex.y[ex.valid] for ex in train])
            if labels.all() or not labels.any():
                raise ValueError("the earlier windows' candidates are all bought or none is: "
                                 "too little data to train the ranker (turn it off)")
            held_out = Ranker(**ranker).fit(train)
            valid_examples = pool_examples(pool, PairHistory.from_fit(valid.fit))
            held_scores = valid_examples.predict_slots(held_out).reshape(pool.cands.shape)
            early_weights, _ = search_weights(CandidatePool.concat(early) if len(early) > 1 else early[0], **search)
            blend_value = pool.evaluate(pool.weight_matrix(early_weights, light_max_baskets))
            ranker_value = pool.evaluate_scores(held_scores)
            use = ranker_value > blend_value
            selection += [{"protocol": protocol, "method": "weighted blend", "valid NDCG@5": blend_value,
                           "chosen": not use},
                          {"protocol": protocol, "method": "learned re-ranker", "valid NDCG@5": ranker_value,
                           "chosen": use}]
            if use:
                base = held_scores
                rankers[protocol] = Ranker(**ranker).fit(train + [valid_examples])
            if log:
                log(f"{protocol}: held-out validation NDCG@5 blend {blend_value:.4f}, ranker {ranker_value:.4f}")
        for label, variant in {"no rule": Rules(), **(rule_variants or {})}.items():
            value = pool.evaluate_rules(weights[protocol], variant, valid.fit, light_max_baskets, base=base)
            rule_rows.append({"rule": label, "protocol": protocol, "valid NDCG@5": value})
        if log:
            log(f"{protocol}: weights {weights[protocol]}")
    config = {}
    for p in PROTOCOLS:
        config[p] = {"weights": weights[p], "rules": asdict(rules), "light_max_baskets": light_max_baskets,
                     "components": list(fit_components(tuning, valid.fit, p, names, caches[valid.name])),
                     "pool_size": pool_size, "ranker": None}
        file = f"hybrid_ranker_{p}.pkl"
        if p not in rankers:
            (tables_dir / file).unlink(missing_ok=True)  # a previous run's ranker is not this config's
        else:
            save_ranker(rankers[p], tables_dir / file)
            config[p]["ranker"] = {"file": file, "params": dict(ranker), "trained_pairs": rankers[p].n_train_}
    save_tuning({"hybrid": config}, tables_dir)
    return {"weights": weights, "trials": pd.concat(trials, ignore_index=True), "rules": pd.DataFrame(rule_rows),
            "selection": pd.DataFrame(selection, columns=["protocol", "method", "valid NDCG@5", "chosen"]),
            "config": config}


def hybrid_from_config(cfg: dict, components: dict[str, Recommender], fit_data: FitData, ranker=None):
    """The hybrid that one protocol's ``hybrid`` entry of ``tuning.json`` describes (weights,
    rules, light/heavy threshold, pool size), over fitted ``components``, fitted on ``fit_data``."""
    return Hybrid(components, cfg["weights"], Rules(**cfg.get("rules", {})), int(cfg.get("light_max_baskets", 5)),
                  ranker=ranker, pool_size=int(cfg.get("pool_size", 100))).fit(fit_data)


def tuned_hybrids(tables_dir, fit_data: FitData) -> dict[tuple[str, str], Recommender]:
    """``{("hybrid", protocol): model}``: the hybrids that :func:`run_hybrid` tuned (the
    ``hybrid`` entry of ``tuning.json`` and its rankers), fitted on ``fit_data``."""
    tuning = load_tuning(tables_dir)
    if "hybrid" not in tuning:
        raise KeyError(f"{Path(tables_dir) / 'tuning.json'} has no 'hybrid' entry: run the hybrid notebook (06)")
    cache: dict = {}
    out = {}
    for protocol in PROTOCOLS:
        cfg = tuning["hybrid"][protocol]
        comps = fit_components(tuning, fit_data, protocol, cfg["components"], cache)
        out[("hybrid", protocol)] = hybrid_from_config(cfg, comps, fit_data, load_ranker(cfg, tables_dir))
    return out


def evaluate_hybrid(test: Stage, tables_dir, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the tuned hybrids (:func:`tuned_hybrids`, refitted on the test stage's fit window)
    on the test window once; writes and returns ``metrics_hybrid.csv`` and
    ``predictions_hybrid.parquet`` (the same tables as every model chapter writes)."""
    tables_dir = Path(tables_dir)
    metrics, predictions, _ = evaluate_models(tuned_hybrids(tables_dir, test.fit), test, test.fit.segments,
                                              n_boot=n_boot, seed=seed)
    metrics.to_csv(tables_dir / "metrics_hybrid.csv", index=False)
    predictions.to_parquet(tables_dir / "predictions_hybrid.parquet", index=False)
    return metrics, predictions


def save_ranker(ranker, path) -> Path:
    """Pickle a fitted ranker (written to a temporary file, then renamed)."""
    import pickle


    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(ranker, protocol=pickle.HIGHEST_PROTOCOL))
    return Path(path)


def load_ranker(config: dict, tables_dir):
    """The ranker of a protocol's ``hybrid`` config (None when it has none)."""
    import pickle

    spec = config.get("ranker")
    if not spec:
        return None
    path = Path(tables_dir) / spec["file"]
    if not path.exists():
        raise FileNotFoundError(f"{path}: the hybrid's ranker is missing; rerun the hybrid notebook (06)")
    return pickle.loads(path.read_bytes())
