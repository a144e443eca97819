"""The hybrid chapter: search the weights (and offer a learned re-ranker) on validation, write
the ``hybrid`` tuning file, rebuild the tuned hybrids, score them on test once."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import config
from helpers.atomic import atomic_path
from helpers.models.base import FitData, Recommender
from helpers.models.hybrid import Hybrid
from helpers.models.ranker import Ranker, pool_examples
from helpers.models.registry import HYBRID_COMPONENTS, PROTOCOLS
from helpers.models.rules import Rules
from helpers.tuning import ledger as test_ledger
from helpers.tuning.files import load_ranker, load_tuning, save_ranker, save_tuning, tuning_path
from helpers.tuning.fits import fit_components
from helpers.tuning.scoring import evaluate_models
from helpers.tuning.stages import Stage
from helpers.tuning.weights import CandidatePool, search_weights

__all__ = ["evaluate_hybrid", "hybrid_from_config", "run_hybrid", "stage_pools", "tuned_hybrids"]


def run_hybrid(valid: Stage, tables_dir, names=HYBRID_COMPONENTS, rules=None, rule_variants=None,
               pool_size: int = 100, n_trials: int = 300, by_history: bool = True, light_max_baskets: int = 5,
               seed: int = 0, log=None, earlier: list[Stage] | tuple = (), ranker: dict | None = None,
               ranker_protocols=("all",)) -> dict:
    """Search the hybrid weights on validation per protocol and measure each business rule.

    ``earlier`` (see :func:`earlier_stages`) adds validation windows before the
    validation window: the components are fitted on each one's own past with the same
    parameters, and the weights maximize the mean NDCG@5 over the customers of every
    window (rolling origin), so that they do not fit one month's noise. Rules are
    priced on the validation window.

    ``ranker`` (keyword arguments of :class:`~helpers.models.ranker.Ranker`, its retail
    signal groups included; None: off) offers a learned re-ranker of the candidates in each
    protocol of ``ranker_protocols``. It is chosen on validation, never on test: a ranker
    trained on the earlier windows and a blend whose weights are searched on the same
    earlier windows both rank the validation window's candidates, and the ranker is used
    only if it scores higher (``selection`` in the result). The kept ranker is then
    retrained on every window, validation included, and pickled to
    ``hybrid_ranker_<protocol>.pkl``. It needs ``earlier``.

    ``rules`` (a :class:`~helpers.models.rules.Rules`) is applied to the final model;
    ``rule_variants`` (name -> Rules) are each measured on validation against no rule.
    Writes the ``hybrid`` tuning file (:func:`~helpers.tuning.files.tuning_path`: weights, rules and components per
    protocol) and the rankers; the test window is scored once, by :func:`evaluate_hybrid`
    (the evaluation notebook), not here.
    """
    if ranker is not None and not earlier:
        raise ValueError("the ranker is chosen on validation after training on earlier windows: "
                         "pass earlier stages (weight_windows >= 2)")
    tables_dir = Path(tables_dir)
    tuning = load_tuning(tables_dir)
    rules = rules or Rules()
    weights, trials, rule_rows, selection, rankers = {}, [], [], [], {}
    caches: dict = {stage.name: {} for stage in (valid, *earlier)}
    search = dict(n_trials=n_trials, seed=seed, by_history=by_history, light_max_baskets=light_max_baskets)
    pools = stage_pools(tuning, (valid, *earlier), names, pool_size, caches=caches)
    def history(st: Stage):  # a stage's ranker features (computed once per window: Ranker.history)
        return Ranker(**ranker).history(st.fit)

    for protocol in PROTOCOLS:
        pool = pools[valid.name][protocol]
        early = [pools[st.name][protocol] for st in earlier]
        search_pool = CandidatePool.concat([pool] + early) if earlier else pool
        weights[protocol], log_table = search_weights(search_pool, **search)
        log_table.insert(0, "protocol", protocol)
        trials.append(log_table)
        base = None
        train = ([pool_examples(p, history(st)) for p, st in zip(early, earlier)]
                 if ranker is not None and protocol in ranker_protocols else [])
        labels = np.concatenate([ex.y[ex.valid] for ex in train]) if train else np.zeros(0, dtype=bool)
        if train and (labels.all() or not labels.any()):  # nothing to learn from: this protocol keeps the blend
            if log:
                log(f"{protocol}: the earlier windows' candidates are all bought or none is: no re-ranker")
            train = []
        if train:
            held_out = Ranker(**ranker).fit(train)
            valid_examples = pool_examples(pool, history(valid))
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


def stage_pools(tuning: dict, stages, names=HYBRID_COMPONENTS, pool_size: int = 100, protocols=PROTOCOLS,
                caches: dict | None = None) -> dict[str, dict[str, CandidatePool]]:
    """``{stage name: {protocol: pool}}`` of the tuned components on each stage, both protocols at
    once (shared fits are scored once); ``caches[stage name]`` keeps the fitted components."""
    caches = caches if caches is not None else {st.name: {} for st in stages}
    return {st.name: CandidatePool.for_protocols(
        {p: fit_components(tuning, st.fit, p, names, caches[st.name]) for p in protocols}, st.fit, st.relevance,
        pool_size=pool_size) for st in stages}


def hybrid_from_config(cfg: dict, components: dict[str, Recommender], fit_data: FitData, ranker=None):
    """The hybrid that one protocol's entry of the ``hybrid`` tuning file describes (weights,
    rules, light/heavy threshold, pool size), over fitted ``components``, fitted on ``fit_data``."""
    return Hybrid(components, cfg["weights"], Rules(**cfg.get("rules", {})), int(cfg.get("light_max_baskets", 5)),
                  ranker=ranker, pool_size=int(cfg.get("pool_size", 100))).fit(fit_data)


def tuned_hybrids(tables_dir, fit_data: FitData) -> dict[tuple[str, str], Recommender]:
    """``{("hybrid", protocol): model}``: the hybrids that :func:`run_hybrid` tuned (the
    ``hybrid`` tuning file and its rankers), fitted on ``fit_data``."""
    tuning = load_tuning(tables_dir)
    if "hybrid" not in tuning:
        raise KeyError(f"{tuning_path(tables_dir, 'hybrid')} is missing: run the hybrid notebook (06)")
    cache: dict = {}
    out = {}
    for protocol in PROTOCOLS:
        cfg = tuning["hybrid"][protocol]
        comps = fit_components(tuning, fit_data, protocol, cfg["components"], cache)
        out[("hybrid", protocol)] = hybrid_from_config(cfg, comps, fit_data, load_ranker(cfg, tables_dir))
    return out


def evaluate_hybrid(test: Stage, tables_dir, n_boot: int = 1000, seed: int = 0, dataset: str = "unknown",
                    fingerprint: str | None = None, ledger=config.TEST_LEDGER) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the tuned hybrids (:func:`tuned_hybrids`, refitted on the test stage's fit window)
    on the test window once; writes and returns ``metrics_hybrid.csv`` and
    ``predictions_hybrid.parquet`` (the same tables as every model chapter writes), and
    ``test_ledger.csv``: every configuration scored on test so far plus this one
    (:mod:`helpers.tuning.ledger`; ``ledger`` is the committed history)."""
    tables_dir = Path(tables_dir)
    metrics, predictions, _ = evaluate_models(tuned_hybrids(tables_dir, test.fit), test, test.fit.segments,
                                              n_boot=n_boot, seed=seed)
    metrics.to_csv(tables_dir / "metrics_hybrid.csv", index=False)
    predictions.to_parquet(tables_dir / "predictions_hybrid.parquet", index=False)
    overall = metrics.loc[metrics["segment_type"] == "overall"]
    entries = test_ledger.with_run(test_ledger.read(ledger), dataset, load_tuning(tables_dir), fingerprint, overall)
    with atomic_path(tables_dir / "test_ledger.csv") as tmp:
        entries.to_csv(tmp, index=False)
    return metrics, predictions
