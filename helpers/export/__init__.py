"""The storefront export (:mod:`.production`), its reasons, file layouts and writers."""

from helpers.export.production import (  # noqa: F401
    MAX_K,
    ProductionModel,
    default_export_dir,
    export,
    fit_production,
    label_reasons,
    model_version,
    reason_label,
    recommendations_schema,
    similar_products_schema,
)
