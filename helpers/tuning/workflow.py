"""The tune -> refit -> evaluate workflow of a model chapter, and the names the notebooks call.

Every model is tuned on the validation stage (fit on train, score validation)
with its grid from :mod:`helpers.tuning.grids`, separately for each protocol; the
chosen parameters are written to one tuning file per model
(:mod:`helpers.tuning.files`) so that later notebooks (hybrid, evaluation, export)
read them instead of retyping them. Final numbers come from refitting on train +
validation and scoring the test window once (:func:`run_chapter`).

The notebooks import this module as ``models`` (``models.prepare_stages``,
``models.run_chapter``, ``models.run_hybrid``, ...): the names of the registry,
fits, windows, scoring and hybrid modules are re-exported here, as by
:mod:`helpers.tuning` itself.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.models.registry import HYBRID_COMPONENTS, HYBRID_EXTRAS, LABELS, MODELS, PROTOCOLS, base_model
from helpers.tuning.files import load_ranker, load_tuning, save_ranker, save_tuning
from helpers.tuning.fits import fit_components, fit_tuned, grid, make_model, tune
from helpers.tuning.hybrid_workflow import evaluate_hybrid, hybrid_from_config, run_hybrid, tuned_hybrids
from helpers.tuning.scoring import evaluate_models, headline
from helpers.tuning.stages import Stage
from helpers.tuning.windows import PRODUCTION_STAGE, LaterFit, earlier_stages, later_fits, prefit, prepare_stages

__all__ = [
    "run_chapter",
    # re-exported from their own modules
    "HYBRID_COMPONENTS", "HYBRID_EXTRAS", "LABELS", "MODELS", "PRODUCTION_STAGE", "PROTOCOLS", "LaterFit",
    "base_model", "earlier_stages", "evaluate_hybrid", "evaluate_models", "fit_components", "fit_tuned", "grid",
    "headline", "hybrid_from_config", "later_fits", "load_ranker", "load_tuning", "make_model", "prefit",
    "prepare_stages", "run_hybrid", "save_ranker", "save_tuning", "tune", "tuned_hybrids",
]


def run_chapter(names: list[str], valid: Stage, test: Stage, tables_dir, overrides: dict | None = None,
                n_boot: int = 1000, seed: int = 0, log=None, later: list[LaterFit] = ()) -> dict:
    """Tune each model on validation, refit the chosen parameters on train + validation, score test once.

    Writes each model's tuning file (:mod:`helpers.tuning.files`), ``metrics_<model>.csv`` and ``predictions_<model>.parquet``
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
