"""The Spark export: every customer's top-N as partitioned Parquet, rows valid against the local JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pandas as pd
import pytest

from helpers.export.production import REC_COLUMNS, recommendations_schema
from helpers.spark.engine import export_recommendations

PARAMS = {"export_model": "als", "factors": 16, "iterations": 5, "top_n": 5, "export_partitions": 3}


@pytest.fixture(scope="module")
def exported(spark, spark_tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("spark-export") / "exports"
    manifest = export_recommendations(spark, spark_tables, out, PARAMS)
    return out, manifest


def test_every_customer_gets_top_n_rows_valid_against_the_schema(exported, small_tables):
    out, manifest = exported
    recs = pd.read_parquet(out / "recommendations.parquet")
    assert list(recs.columns) == REC_COLUMNS
    assert len(list((out / "recommendations.parquet").glob("part-*.parquet"))) >= 1
    n_customers = small_tables["dim_customer"]["customer_id"].nunique()
    assert recs["customer_id"].nunique() == n_customers
    assert (recs.groupby("customer_id")["rank"].max() == PARAMS["top_n"]).all()
    assert manifest["rows"]["recommendations"] == len(recs)
    schema = json.loads((out / "recommendations.schema.json").read_text())
    assert schema == recommendations_schema(PARAMS["top_n"])
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    sample = recs.sort_values(["customer_id", "rank"]).groupby("reason", group_keys=False).head(50)
    for row in sample.astype(object).where(sample.notna(), None).to_dict("records"):
        validator.validate(row)
    assert "buy_again" in set(recs["reason"]) and recs["reason"].str.startswith("similar_to:").any()


def test_new_variant_excludes_past_purchases(exported, small_tables):
    out, _ = exported
    new = pd.read_parquet(out / "recommendations_new.parquet")
    fact = small_tables["fact_transactions"]
    bought = fact.loc[fact["quantity"] > 0, ["customer_id", "product_id"]].drop_duplicates()
    assert new.merge(bought, on=["customer_id", "product_id"]).empty
    assert "buy_again" not in set(new["reason"])


def test_export_replaces_the_previous_one_atomically(spark, spark_tables, exported):
    out, first = exported
    again = export_recommendations(spark, spark_tables, out, PARAMS)
    assert again["model_version"] == first["model_version"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    a = pd.read_parquet(out / "recommendations.parquet").drop(columns="generated_at")
    assert len(a) == first["rows"]["recommendations"]
