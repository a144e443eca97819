"""A tiny export (synthetic data, fixed small parameters) and its text-id twin, built once per session.

The export is written by :func:`helpers.export.production.export` as in
``tests/export/test_export_api.py``. The twin relabels every customer id ``c`` as
``C{c:05d}`` and every product id ``p`` as ``HBZ-{p}-BL`` in every file the API reads
(lists, reasons, products, catalog arrays): what an export of a retailer with text ids holds.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")

from helpers.tuning import save_tuning  # noqa: E402

TOP_N = 10
COMPONENTS = ["global_popularity", "buy_again", "als", "itemknn", "ease", "content"]


def tuning() -> dict:
    both = ("all", "new")
    return {
        "global_popularity": {"all": {"window_days": 28.0}, "new": {"window_days": math.nan}},
        "segmented_popularity": {p: {"segment_type": "age_band", "min_segment_size": 5, "blend": 0.5,
                                     "window_days": math.nan} for p in both},
        "buy_again": {"all": {"half_life_days": 30}},
        "als": {p: {"factors": 8, "iterations": 3, "regularization": 0.1, "weighting": w, "alpha": 1.0}
                for p, w in (("all", "bm25"), ("new", "log"))},
        "itemknn": {p: {"k_neighbors": 20, "weighting": "bm25", "similarity": "cosine"} for p in both},
        "ease": {p: {"l2": 50.0, "max_items": 80} for p in both},
        "content": {p: {"half_life_days": math.nan, "use_frequency": True, "ngram_range": [1, 1]} for p in both},
        "hybrid": {
            "all": {"weights": {"light": {"global_popularity": 0.1, "buy_again": 0.1, "als": 0.3, "itemknn": 0.2,
                                          "ease": 0.1, "content": 0.2},
                                "heavy": {"global_popularity": 0.0, "buy_again": 0.5, "als": 0.2, "itemknn": 0.2,
                                          "ease": 0.0, "content": 0.1}},
                    "rules": {"availability_days": None, "promo_boost": 0.0, "margin_weight": 0.0,
                              "max_per_category": None},
                    "light_max_baskets": 3, "components": COMPONENTS},
            "new": {"weights": {"global_popularity": 0.1, "als": 0.4, "itemknn": 0.2, "ease": 0.1, "content": 0.2},
                    "rules": {"availability_days": None, "promo_boost": 0.0, "margin_weight": 0.0,
                              "max_per_category": 3},
                    "light_max_baskets": 3, "components": [c for c in COMPONENTS if c != "buy_again"]},
        },
    }


def customer_text(c) -> str:
    return f"C{int(c):05d}"


def product_text(p) -> str:
    return f"HBZ-{int(p)}-BL"


def _relabel_reason(r):
    if isinstance(r, str) and r.startswith("similar_to:"):
        return "similar_to:" + product_text(r.split(":", 1)[1])
    return r


def relabel_export(src: Path, dst: Path) -> None:
    """Copy an integer-id export with text ids in every file the API reads."""
    shutil.copytree(src, dst)
    m = dst / "model"
    for path in [m / "top_all.parquet", m / "top_new.parquet", m / "cold_start_all.parquet",
                 m / "cold_start_new.parquet", m / "products.parquet", dst / "similar_products.parquet"]:
        df = pd.read_parquet(path)
        if "customer_id" in df:
            df["customer_id"] = df["customer_id"].map(customer_text)
        for col in ("product_id", "similar_product_id"):
            if col in df:
                df[col] = df[col].map(product_text)
        if "reason" in df:
            df["reason"] = df["reason"].map(_relabel_reason)
        df.to_parquet(path, index=False)
    for path in [m / "items.npy", m / "components" / "content_product_ids.npy"]:
        ids = np.load(path)
        np.save(path, np.array([product_text(p) for p in ids]))  # a fixed-width text array: no pickle


@pytest.fixture(scope="session")
def export_world(tmp_path_factory):
    """``{"processed", "tables", "out" (integer ids), "text" (text ids), "cold_ids", "manifest"}``."""
    from helpers.data.star import build_star_schema
    from helpers.export.production import export

    root = tmp_path_factory.mktemp("serving")
    processed = root / "processed"
    build_star_schema("synthetic", output_dir=processed, n_customers=200, n_products=150, n_days=120, seed=1)
    cust = pd.read_parquet(processed / "dim_customer.parquet")
    extra = cust.iloc[:2].copy()
    extra["customer_id"] = [cust["customer_id"].max() + 1, cust["customer_id"].max() + 2]
    for col in extra.columns:
        if col not in ("customer_id", "has_demographics"):
            extra[col] = None
    extra["age_band"] = [cust["age_band"].dropna().value_counts().index[0], None]
    extra["has_demographics"] = [True, False]
    pd.concat([cust, extra], ignore_index=True).to_parquet(processed / "dim_customer.parquet", index=False)
    tables = root / "tables"
    tables.mkdir()
    save_tuning(tuning(), tables)
    out = root / "exports"
    manifest = export(processed, tables, out, top_n=TOP_N, n_similar=5, seed=0, api_top_n=30, chunk_size=64)
    relabel_export(out, root / "exports_text")
    return {"root": root, "processed": processed, "tables": tables, "out": out, "text": root / "exports_text",
            "manifest": manifest, "cold_ids": extra["customer_id"].tolist()}


def make_client(folder, **settings):
    """A TestClient (lifespan run) of an app serving ``folder`` with the given settings."""
    from fastapi.testclient import TestClient

    from helpers.serving.api import create_app
    from helpers.serving.settings import Settings

    defaults = {"reload_seconds": 0.0}
    return TestClient(create_app(settings=Settings.from_env(folder, **{**defaults, **settings})))
