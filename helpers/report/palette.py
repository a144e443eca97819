"""The book's visual language, defined once: a fixed colour per model, the hybrid emphasised,
segments in their natural order.

Every figure that shows models takes its colours from :func:`model_color` (and its bar /
marker style from :func:`model_style`), so a model has the same colour in every chapter and
both protocols. Models are listed in :data:`MODEL_ORDER` (baselines first, the hybrid last).
Segments are ordered by :func:`segment_order`: tiers by rank, bands by value, ``unknown``
last (the order documented in :mod:`helpers.features.segments`).
"""

from __future__ import annotations

from helpers.features import segments as seg

#: Models in display order: simple baselines, collaborative and content models, the hybrid.
MODEL_ORDER = ("global_popularity", "segmented_popularity", "buy_again", "als", "ease", "itemknn", "content",
               "hybrid")

#: One colour per model (seaborn's colour-blind palette, hex); the hybrid alone is vermilion.
MODEL_COLORS = {
    "global_popularity": "#949494",     # grey: the "most popular" reference
    "segmented_popularity": "#ca9161",  # brown
    "buy_again": "#0173b2",             # blue
    "als": "#029e73",                   # green
    "ease": "#56b4e9",                  # light blue
    "itemknn": "#cc78bc",               # purple
    "content": "#ece133",               # yellow
    "hybrid": "#d55e00",                # vermilion, emphasised
}
OTHER_COLOR = "#bbbbbb"
HYBRID = "hybrid"

#: Colours of the two evaluation protocols (tuning charts, reason shares).
PROTOCOL_COLORS = {"all": "#0173b2", "new": "#de8f05"}
#: One accent colour for single-series charts (histograms, lines).
ACCENT = "#0173b2"
SECOND = "#de8f05"
THIRD = "#029e73"


def model_color(model: str) -> str:
    """The fixed colour of a model (hex); unknown names get a neutral grey."""
    return MODEL_COLORS.get(model, OTHER_COLOR)


def model_style(model: str) -> dict:
    """Matplotlib keyword arguments of a model's bars / markers: the hybrid is drawn
    opaque with a dark edge and on top, the other models lighter."""
    if model == HYBRID:
        return {"color": model_color(model), "edgecolor": "black", "linewidth": 1.2, "alpha": 1.0, "zorder": 3}
    return {"color": model_color(model), "edgecolor": "none", "linewidth": 0.0, "alpha": 0.75, "zorder": 2}


def order_models(models) -> list[str]:
    """The given model names in :data:`MODEL_ORDER` (unknown names after it, sorted)."""
    models = list(dict.fromkeys(models))
    return [m for m in MODEL_ORDER if m in models] + sorted(m for m in models if m not in MODEL_ORDER)


def segment_order(segment_type: str, values) -> list:
    """Natural display order of one segment type's values (``unknown`` last)."""
    out = seg.segment_order(segment_type, values)
    return [v for v in out if v != seg.UNKNOWN] + ([seg.UNKNOWN] if seg.UNKNOWN in out else [])
