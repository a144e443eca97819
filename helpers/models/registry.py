"""The model registry: every reported model by name, its protocols and label, and the hybrid's components.

``MODELS[name] = (class, protocols it is reported in, human label)``; the names are the
keys of the tuning files, the metrics tables and the grids (:mod:`helpers.tuning.grids`).
``HYBRID_EXTRAS`` are extra hybrid components: a registered model at fixed parameters.
"""

from __future__ import annotations

from helpers.models.als import ALS
from helpers.models.buy_again import BuyAgain
from helpers.models.content import ContentTFIDF
from helpers.models.ease import EASE
from helpers.models.itemknn import ItemKNN
from helpers.models.popularity import GlobalPopularity, SegmentedPopularity

__all__ = ["HYBRID_COMPONENTS", "HYBRID_EXTRAS", "LABELS", "MODELS", "PROTOCOLS", "base_model"]

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

#: The hybrid's default components, in their blend order.
HYBRID_COMPONENTS = ("global_popularity", "buy_again", "buy_again_recent", "buy_again_long", "als", "itemknn",
                     "ease", "content")


def base_model(name: str) -> str:
    """The registered model behind a component name (itself, or an extra's base)."""
    return HYBRID_EXTRAS[name][0] if name in HYBRID_EXTRAS else name
