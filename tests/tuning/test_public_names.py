"""The names other packages and the notebooks import from models, tuning, evaluation and features
stay importable where they are imported from, and every subpackage's ``__all__`` is real."""

from __future__ import annotations

import importlib

import pytest

#: module -> names imported from it outside these four subpackages (helpers/, notebooks/, tests/)
USED_ELSEWHERE = {
    "helpers.models.base": ["FitData", "Recommender", "make_fit_data", "n_threads", "top_k"],
    "helpers.models.hybrid": ["Hybrid", "Rules", "diversify", "item_attribute", "minmax_rows"],
    "helpers.evaluation.metrics": ["SUMMARY_COLUMNS", "Split", "compute_metrics", "evaluation_set",
                                   "paired_bootstrap", "relevance_matrix", "select_window", "temporal_split"],
    "helpers.tuning.workflow": ["HYBRID_EXTRAS", "LABELS", "PROTOCOLS", "PRODUCTION_STAGE", "base_model",
                                "earlier_stages", "evaluate_hybrid", "fit_components", "headline",
                                "hybrid_from_config", "later_fits", "load_ranker", "load_tuning", "make_model",
                                "prepare_stages", "run_chapter", "run_hybrid", "save_tuning"],
    "helpers.tuning.stages": ["Stage"],
    "helpers.features.customers": ["EXPOSURE_BANDS", "TIERS", "basket_table", "customer_features",
                                   "department_seasonal_index", "holiday_uplift", "interaction_stats",
                                   "popularity_curve", "product_features", "products_per_customer",
                                   "promotion_share", "purchases", "sales_over_time", "top_share",
                                   "weekday_profile", "window", "write_parquet"],
    "helpers.features.segments": ["UNKNOWN", "compute_segments", "demographics_coverage", "segment_order",
                                  "segment_sizes", "segment_types", "segments_from_features", "wide"],
}


@pytest.mark.parametrize("module", sorted(USED_ELSEWHERE))
def test_names_used_elsewhere_stay_importable(module):
    mod = importlib.import_module(module)
    assert [n for n in USED_ELSEWHERE[module] if not hasattr(mod, n)] == []


@pytest.mark.parametrize("package", ["helpers.models", "helpers.tuning", "helpers.evaluation", "helpers.features",
                                     "helpers.data.split"])
def test_every_name_in_all_exists_and_is_documented(package):
    mod = importlib.import_module(package)
    assert mod.__doc__ and mod.__all__
    assert [n for n in mod.__all__ if not hasattr(mod, n)] == []
    assert len(set(mod.__all__)) == len(mod.__all__)


def test_the_subpackages_export_the_names_a_user_calls():
    from helpers import evaluation, models, tuning

    assert {"top_k", "FitData", "make_fit_data", "n_threads"} <= set(models.__all__)
    assert {"compute_metrics", "temporal_split", "summarize", "evaluation_set"} <= set(evaluation.__all__)
    assert {"run_chapter", "save_tuning", "load_tuning", "prepare_stages", "run_hybrid", "search_weights"} \
        <= set(tuning.__all__)
