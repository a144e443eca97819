"""Default tuning grids: every model is tuned on the validation stage with a small,
comparable budget (``helpers.tuning.stages.expand_grid`` + ``grid_search``).

``GRIDS[name]`` is a ``{constructor_param: values}`` dict for the model class
registered under ``name``; knobs absent from a grid keep their constructor
default. Baselines are defined here; the ALS and content-based grids are added
below by their authors (same conventions). Grids stay small (at most ~30
candidates, each a fit of seconds) and cover every knob that moved validation
NDCG@5 in either protocol; ``helpers.tuning.workflow`` picks the best candidate per
protocol.
"""

from __future__ import annotations

from helpers.tuning.stages import expand_grid

GRIDS: dict[str, dict[str, list]] = {
    # ---------------------------------------------------------------- baselines
    "global_popularity": {"window_days": [None, 3, 7, 14, 28, 56, 112]},
    # on Complete Journey validation the whole history (window None) trailed 14 days in "all"
    # and 56 days in "new" for every segment type and blend
    "segmented_popularity": {
        "segment_type": ["loyalty_tier", "age_band", "income_band", "promo_exposure", "history_length"],
        "window_days": [14, 56],
        "blend": [0.0, 0.5],
    },
    "buy_again": {"half_life_days": [14, 30, 60, 120, 365], "repeat_beta": [0.0, 0.5, 1.0]},
    # on Complete Journey validation l2 = 10000 trailed every other value in both protocols,
    # and 100 and 3000 were never best (all: 300 with 5000 items; new: 1000 with 2000)
    "ease": {"l2": [300.0, 1000.0], "max_items": [2000, 5000]},
    # on Complete Journey validation 20 neighbours trailed 100 and 400 for every weighting; 400
    # gained at most 0.006 NDCG@5 over 100 (all: bm25 + dot 0.284 vs 0.278; new: tfidf + cosine
    # 0.044 vs 0.044) for 1.7x the fit time and 4x the similarity matrix that every scoring
    # multiplies, so the budget keeps 100; the "none" weighting was never best
    "itemknn": {"k_neighbors": [100], "weighting": ["tfidf", "bm25"], "similarity": ["cosine", "dot"]},
    # ----------------------------------------------- ALS, content (added by their authors)
}


def candidates(name: str) -> list[dict]:
    """Every parameter combination of ``GRIDS[name]``, in a stable order."""
    return expand_grid(GRIDS[name])
