"""The production stage: every transaction, with the tuned parameters as the export fits them.

The model notebooks fit the production models ahead (:func:`helpers.tuning.windows.later_fits`),
the export (:mod:`helpers.export.production`) loads them: both build the stage here.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd

from helpers.features.segments import compute_segments
from helpers.models.base import FitData, make_fit_data
from helpers.tuning import model_cache

N_SIMILAR = 10  # default number of similar products per product (the content notebook ranks them ahead)


def _clean_value(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def production_tuning(tuning: dict, seed: int = 0) -> dict:
    """The tuned parameters as the export fits them: NaN (a grid table's None) -> None;
    ALS seeded with ``seed`` unless tuning fixed ``random_state``."""
    out = {}
    for name, by_protocol in tuning.items():
        if name == "hybrid":
            out[name] = by_protocol
            continue
        out[name] = {}
        for protocol, params in by_protocol.items():
            params = {k: _clean_value(v) for k, v in params.items()} if isinstance(params, dict) else params
            if name == "als" and isinstance(params, dict):
                params.setdefault("random_state", int(seed))
            out[name][protocol] = params
    return out


def production_fit_data(tables: dict, with_promotions: bool = False, segments_fn=None) -> FitData:
    """The fit data of the production model: every transaction, scored from the day after the last.

    Segments are computed on the same data (by ``segments_fn(tables, as_of)``, default
    :func:`~helpers.features.segments.compute_segments`). Promotions (needed
    only by the promotion rule) are attached with ``with_promotions``; no model's fit reads them."""
    fact = tables["fact_transactions"]
    as_of = pd.Timestamp(fact["timestamp"].max()).normalize() + pd.Timedelta(days=1)
    return make_fit_data(fact, tables["dim_customer"], tables["dim_product"], as_of,
                         segments=(segments_fn or compute_segments)(tables, as_of),
                         promotions=tables.get("dim_promotion") if with_promotions else None)


def similar_products(content, params: dict | None, product_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``content.similar_products(product_ids, k, include_new=True)``, kept in the model cache
    beside the content model (:mod:`helpers.tuning.model_cache`) when ``params`` (the parameters it
    was made with) are given and its fit data is cached. The content notebook ranks them for
    the export's all-data fit while the other model notebooks run (:func:`helpers.tuning.windows.prefit`);
    the export then loads them. The key holds the parameters, ``k`` and a digest of the ids."""
    ids = np.ascontiguousarray(product_ids, dtype=np.int64)
    if params is None:
        return content.similar_products(ids, k=k, include_new=True)
    key = {**params, "similar_k": int(k), "similar_ids": hashlib.sha256(ids.tobytes()).hexdigest()}
    return model_cache.fit_model("content_similar", key, content.data,
                                 lambda: content.similar_products(ids, k=k, include_new=True))
