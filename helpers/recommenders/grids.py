"""Default tuning grids: every model is tuned on the validation stage with a small,
comparable budget (``helpers.experiment.expand_grid`` + ``grid_search``).

``GRIDS[name]`` is a ``{constructor_param: values}`` dict for the model class
registered under ``name``; knobs absent from a grid keep their constructor
default. Baselines are defined here; the ALS and content-based grids are added
below by their authors (same conventions). Keep every grid at most ~16
candidates so that no model gets a larger search budget than the hybrid.
"""

from __future__ import annotations

from helpers.experiment import expand_grid

GRIDS: dict[str, dict[str, list]] = {
    # ---------------------------------------------------------------- baselines
    "global_popularity": {"window_days": [None, 7, 14, 28, 56]},
    "segmented_popularity": {
        "segment_type": ["loyalty_tier", "age_band", "income_band", "promo_exposure", "history_length"],
        "blend": [0.0, 0.5],
    },
    "buy_again": {"half_life_days": [7, 14, 30, 60, 120, 365]},
    "ease": {"l2": [100.0, 300.0, 1000.0, 3000.0], "max_items": [2000, 5000]},
    "itemknn": {"k_neighbors": [20, 50, 100, 200], "weighting": ["none", "tfidf", "bm25"]},
    # ----------------------------------------------- ALS, content (added by their authors)
}


def candidates(name: str) -> list[dict]:
    """Every parameter combination of ``GRIDS[name]``, in a stable order."""
    return expand_grid(GRIDS[name])
