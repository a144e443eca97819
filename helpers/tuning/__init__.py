"""Tuning: the stages of the split (``stages``), the grids (``grids``), fitting the registered
models (``fits``), the tuning files, one per model (``files``), the fit windows shared between
notebooks (``windows``) and the model cache (``model_cache``), scoring on a stage
(``scoring``), the hybrid's weight search (``weights``) and chapter (``hybrid_workflow``), the
production stage (``production``) and a model chapter's workflow (``workflow``).

The names a notebook calls are re-exported here (and by :mod:`helpers.tuning.workflow`).
"""

from helpers.models.registry import HYBRID_COMPONENTS, HYBRID_EXTRAS, LABELS, MODELS, PROTOCOLS, base_model
from helpers.tuning.files import load_ranker, load_tuning, save_ranker, save_tuning, tuning_path
from helpers.tuning.fits import fit_components, fit_tuned, grid, make_model, tune
from helpers.tuning.hybrid_workflow import evaluate_hybrid, hybrid_from_config, run_hybrid, tuned_hybrids
from helpers.tuning.scoring import evaluate_models, headline
from helpers.tuning.stages import Stage, best_params, expand_grid, grid_search, make_stage, score_model
from helpers.tuning.weights import CandidatePool, search_weights
from helpers.tuning.windows import PRODUCTION_STAGE, LaterFit, earlier_stages, later_fits, prefit, prepare_stages
from helpers.tuning.workflow import run_chapter

__all__ = [
    "HYBRID_COMPONENTS", "HYBRID_EXTRAS", "LABELS", "MODELS", "PRODUCTION_STAGE", "PROTOCOLS", "CandidatePool",
    "LaterFit", "Stage", "base_model", "best_params", "earlier_stages", "evaluate_hybrid", "evaluate_models",
    "expand_grid", "fit_components", "fit_tuned", "grid", "grid_search", "headline", "hybrid_from_config",
    "later_fits", "load_ranker", "load_tuning", "make_model", "make_stage", "prefit", "prepare_stages",
    "run_chapter", "run_hybrid", "save_ranker", "save_tuning", "score_model", "search_weights", "tune",
    "tuned_hybrids", "tuning_path",
]
