"""A tiny export shared by the export and serving tests: synthetic star schema, tuning files, export."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from helpers.data.star import build_star_schema
from helpers.export.production import export
from helpers.export.versioned import resolve
from helpers.tuning import save_tuning

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
        # NaN is how a grid table stores None (no decay): the export must read it back as None
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


def build(root: Path, chunk_size: int = 64) -> dict:
    """Star schema (plus two customers without purchases: one in a big segment, one without
    demographics), the tuning files and one export under ``root``: ``export_root`` the versioned
    export root, ``out`` its current version folder (the export's files)."""
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
    save_tuning(tuning(), tables)  # json writes NaN as NaN
    export_root = root / "exports"
    manifest = export(processed, tables, export_root, top_n=TOP_N, n_similar=5, seed=0, api_top_n=30,
                      chunk_size=chunk_size)
    out = resolve(export_root)  # the version just published (export_root/current)
    assert out == Path(manifest["path"])
    return {"root": root, "processed": processed, "tables": tables, "export_root": export_root, "out": out,
            "manifest": manifest, "cold_ids": extra["customer_id"].tolist()}
