"""The storefront export of the Spark engine: partitioned Parquet plus the local JSON Schema.

* ``recommendations.parquet/`` (protocol ``all``) and ``recommendations_new.parquet/``
  (past purchases excluded): Parquet datasets (one part file per hash partition of
  ``customer_id``, rows sorted by customer and rank) whose rows have exactly the columns
  and types of :data:`helpers.export.production.REC_SCHEMA`, so
  ``recommendations.schema.json`` (written by
  :func:`helpers.export.production.recommendations_schema`) describes every row.
* **Reasons**: ``buy_again`` for a product the customer bought; for ALS
  ``similar_to:<j>``, ``j`` the customer's past product (among their ``max_history``
  most bought) with the largest ``baskets[u, j] * dot(y_j, y_i)`` of the item factors
  (ties: lower id); ``popular_in_segment:<type>=<segment>`` for segment popularity in a
  segment with its own ranking; ``trending`` otherwise (popularity, cold start). The
  labels are :func:`helpers.export.production.reason_label`'s sentences.
* ``manifest.json``: model version (short sha256 of the parameters, the split and the
  row counts), row counts, parameters. Written into a temporary sibling folder and
  swapped into place when complete: a failed export leaves the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from helpers.export.production import REC_COLUMNS, REC_SCHEMA, SCORE_DECIMALS, recommendations_schema

LABELS = {"buy_again": "Buy it again: you have bought this before",
          "trending": "Trending: popular with all customers"}


def short_name(description: F.Column, product_id: F.Column, max_len: int = 80) -> F.Column:
    """:meth:`helpers.data.products.ProductLookup.name` as a column expression."""
    text = F.trim(F.coalesce(description, F.lit("")))
    first = F.split(F.split(text, ", ", 2)[0], r"\. ", 2)[0]
    short = F.when(F.length(first) <= max_len, first).otherwise(
        F.concat(F.rtrim(F.substring(first, 1, max_len - 1)), F.lit("\u2026")))
    return F.when(text == "", F.concat(F.lit("product "), product_id.cast("string"))).otherwise(short)


def als_reasons(recs: DataFrame, user_items: DataFrame, factors: DataFrame, max_history: int = 100) -> DataFrame:
    """``customer_id, product_id, reason_item``: the past product that explains each ALS pick."""
    hist = user_items.withColumn("_r", F.row_number().over(
        Window.partitionBy("customer_id").orderBy(F.col("baskets").desc(), F.col("product_id").asc())))
    hist = hist.filter(F.col("_r") <= max_history).select("customer_id", F.col("product_id").alias("j"),
                                                          "baskets")
    fi = factors.select(F.col("product_id"), F.col("features").alias("fi"))
    fj = factors.select(F.col("product_id").alias("j"), F.col("features").alias("fj"))
    pairs = recs.select("customer_id", "product_id").join(fi, "product_id").join(hist, "customer_id").join(fj, "j")
    dot = F.aggregate(F.zip_with("fi", "fj", lambda a, b: a.cast("double") * b.cast("double")), F.lit(0.0),
                      lambda acc, x: acc + x)
    pairs = pairs.withColumn("w", F.col("baskets") * dot)
    best = F.row_number().over(Window.partitionBy("customer_id", "product_id").orderBy(F.col("w").desc(),
                                                                                    F.col("j").asc()))
    return pairs.withColumn("_b", best).filter("_b = 1").select("customer_id", "product_id",
                                                                F.col("j").alias("reason_item"))


def with_reasons(recs: DataFrame, user_items: DataFrame, model: str, als_factors: DataFrame | None = None,
                 segment_reason: DataFrame | None = None, max_history: int = 100) -> DataFrame:
    """``recs`` plus ``reason`` (see the module doc)."""
    bought = user_items.select("customer_id", "product_id", F.lit(True).alias("_bought"))
    out = recs.join(bought, ["customer_id", "product_id"], "left")
    reason = F.lit("trending")
    if model == "als" and als_factors is not None:
        expl = als_reasons(recs.join(bought, ["customer_id", "product_id"], "left_anti"), user_items, als_factors,
                           max_history)
        out = out.join(expl, ["customer_id", "product_id"], "left")
        reason = F.when(F.col("reason_item").isNotNull(),
                        F.concat(F.lit("similar_to:"), F.col("reason_item").cast("string"))).otherwise(reason)
    if segment_reason is not None:  # customer_id, seg_reason
        out = out.join(segment_reason, "customer_id", "left")
        reason = F.coalesce(F.col("seg_reason"), reason)
    if model in ("buy_again", "als"):
        reason = F.when(F.col("_bought").isNotNull(), F.lit("buy_again")).otherwise(reason)
    return out.withColumn("reason", reason).select("customer_id", "rank", "product_id", "score", "reason")


def rows(recs: DataFrame, products: DataFrame, version: str, generated_at: str) -> DataFrame:
    """Every export column (:data:`~helpers.export.production.REC_COLUMNS`) with its type."""
    prod = products.select("product_id", "description", "category", "brand")
    names = products.select(F.col("product_id").alias("_j"), short_name(F.col("description"),
                                                                        F.col("product_id")).alias("_name"))
    out = recs.join(prod, "product_id", "left")
    item = F.when(F.col("reason").startswith("similar_to:"),
                  F.substring_index(F.col("reason"), ":", -1).cast("long"))
    out = out.withColumn("_j", item).join(F.broadcast(names), "_j", "left")
    seg = F.substring_index(F.col("reason"), ":", -1)
    label = (F.when(F.col("reason") == "buy_again", F.lit(LABELS["buy_again"]))
             .when(F.col("reason") == "trending", F.lit(LABELS["trending"]))
             .when(F.col("reason").startswith("similar_to:"), F.concat(F.lit("Because you bought "), F.col("_name")))
             .when(F.col("reason").startswith("popular_in_segment:"),
                   F.concat(F.lit("Popular with customers like you ("),
                            F.regexp_replace(F.substring_index(seg, "=", 1), "_", " "), F.lit(": "),
                            F.substring_index(seg, "=", -1), F.lit(")")))
             .otherwise(F.col("reason")))
    types = {f.name: f.type for f in REC_SCHEMA}
    cast = {"int64": "long", "int32": "int", "double": "double", "string": "string"}
    out = (out.withColumn("score", F.round(F.col("score").cast("double"), SCORE_DECIMALS))
           .withColumn("reason_label", label)
           .withColumn("model_version", F.lit(version)).withColumn("generated_at", F.lit(generated_at)))
    return out.select(*[F.col(c).cast(cast[str(types[c])]).alias(c) for c in REC_COLUMNS])


def model_version(params: dict, split: dict, counts: dict) -> str:
    blob = json.dumps({"params": params, "split": split, "rows": counts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_export(variants: dict[str, DataFrame], products: DataFrame, export_dir, top_n: int, params: dict,
                 split: dict, counts: dict, n_partitions: int = 8) -> dict:
    """Write ``{"recommendations": recs, "recommendations_new": recs}`` (with reasons) atomically."""
    export_dir = Path(export_dir)
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    version = model_version(params, split, counts)
    generated_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    tmp = Path(tempfile.mkdtemp(prefix=f".{export_dir.name}-", dir=export_dir.parent))
    manifest = {"engine": "spark", "model_version": version, "generated_at": generated_at, "top_n": top_n,
                "params": params, "split": split, "rows": {}, "files": {}}
    try:
        for stem, recs in variants.items():
            df = rows(recs, products, version, generated_at)
            (df.repartition(int(n_partitions), "customer_id").sortWithinPartitions("customer_id", "rank")
             .write.mode("overwrite").parquet(str(tmp / f"{stem}.parquet")))
            manifest["rows"][stem] = int(df.sparkSession.read.parquet(str(tmp / f"{stem}.parquet")).count())
            manifest["files"][stem] = f"{stem}.parquet"
        (tmp / "recommendations.schema.json").write_text(json.dumps(recommendations_schema(top_n), indent=2))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        swap(tmp, export_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def swap(tmp: Path, target: Path) -> None:
    """Put the folder ``tmp`` in place of ``target`` (the old one removed only afterwards)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
