"""Features computed strictly before a cut-off: the window conventions (``windows``), customer
features (``customers``: RFM, loyalty tiers, timing, promotion exposure), sales over time and
seasonality (``sales``), product features (``products``) and customer segments (``segments``).

The public names of ``customers`` (which re-exports those of ``windows``, ``sales`` and
``products``) and the main ones of ``segments`` are re-exported here.
"""

from helpers.features.customers import (
    CUSTOMER_FEATURES,
    EXPOSURE_BANDS,
    NO_HISTORY_BAND,
    NO_HISTORY_TIER,
    TIER_QUANTILES,
    TIERS,
    assign_loyalty_tiers,
    basket_table,
    customer_features,
    department_seasonal_index,
    holiday_uplift,
    interaction_stats,
    loyalty_tiers,
    popularity_curve,
    product_features,
    products_per_customer,
    promotion_exposure,
    promotion_share,
    purchase_timing,
    purchases,
    quantile_scores,
    rfm,
    sales_over_time,
    top_share,
    weekday_profile,
    window,
    write_parquet,
)
from helpers.features.segments import (
    SEGMENT_TYPES,
    UNKNOWN,
    compute_segments,
    demographics_coverage,
    segment_order,
    segment_sizes,
    segment_types,
    segments_from_features,
    wide,
)

__all__ = [
    "CUSTOMER_FEATURES", "EXPOSURE_BANDS", "NO_HISTORY_BAND", "NO_HISTORY_TIER", "SEGMENT_TYPES", "TIERS",
    "TIER_QUANTILES", "UNKNOWN", "assign_loyalty_tiers", "basket_table", "compute_segments", "customer_features",
    "demographics_coverage", "department_seasonal_index", "holiday_uplift", "interaction_stats", "loyalty_tiers",
    "popularity_curve", "product_features", "products_per_customer", "promotion_exposure", "promotion_share",
    "purchase_timing", "purchases", "quantile_scores", "rfm", "sales_over_time", "segment_order", "segment_sizes",
    "segment_types", "segments_from_features", "top_share", "weekday_profile", "wide", "window", "write_parquet",
]
