"""Default tuning grids: every model is tuned on the validation stage with a small,
comparable budget (``helpers.experiment.expand_grid`` + ``grid_search``).

``GRIDS[name]`` is a ``{constructor_param: values}`` dict for the model class
registered under ``name``; knobs absent from a grid keep their constructor
default. Baselines are defined here; the ALS and content-based grids are added
below by their authors (same conventions). Grids stay small (at most ~30
candidates, each a fit of seconds) and cover every knob that moved validation
NDCG@5 in either protocol; ``helpers.models`` picks the best candidate per
protocol.
"""

from __future__ import annotations

from helpers.experiment import expand_grid

GRIDS: dict[str, dict[str, list]] = {
    # ---------------------------------------------------------------- baselines
    "global_popularity": {"window_days": [None, 3, 7, 14, 28, 56, 112]},
    "segmented_popularity": {
        "segment_type": ["loyalty_tier", "age_band", "income_band", "promo_exposure", "history_length"],
        "window_days": [None, 14, 56],
        "blend": [0.0, 0.5],
    },
    "buy_again": {"half_life_days": [14, 30, 60, 120, 365], "repeat_beta": [0.0, 0.5, 1.0]},
    # l2 = 10000 trailed every other value in both protocols on Complete Journey validation
    "ease": {"l2": [100.0, 300.0, 1000.0, 3000.0], "max_items": [2000, 5000]},
    # 20 neighbours trailed 100 and 400 for every weighting on Complete Journey validation
    "itemknn": {"k_neighbors": [100, 400], "weighting": ["none", "tfidf", "bm25"],
                "similarity": ["cosine", "dot"]},
    # ----------------------------------------------- ALS, content (added by their authors)
}


def candidates(name: str) -> list[dict]:
    """Every parameter combination of ``GRIDS[name]``, in a stable order."""
    return expand_grid(GRIDS[name])
