"""Validation on Spark: the local engine's rules, rule names and messages."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.data.validate import DataValidationError, validate_star_schema
from helpers.spark.tables import load_star


def _write(tables: dict, folder, fmt: str = "parquet") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False)


def _raw(small_tables) -> dict:
    return {n: small_tables[n].copy() for n in ("fact_transactions", "dim_customer", "dim_product")}


def _both(spark, raw: dict, folder, fmt="parquet"):
    with pytest.raises(DataValidationError) as local:
        validate_star_schema({k: v.copy() for k, v in raw.items()})
    _write(raw, folder, fmt)
    with pytest.raises(DataValidationError) as remote:
        load_star(spark, folder)
    return local.value, remote.value


def _first_line(err: DataValidationError) -> str:
    return str(err).split(" First offending rows")[0]


def test_valid_tables_load_with_the_contract_types(spark, spark_tables, small_tables):
    fact = spark_tables["fact_transactions"]
    assert fact.count() == len(small_tables["fact_transactions"])
    types = dict(fact.dtypes)
    assert types["timestamp"] == "timestamp" and types["customer_id"] == "bigint" and types["quantity"] == "double"
    first = fact.orderBy("basket_id", "product_id").first()
    want = small_tables["fact_transactions"].sort_values(["basket_id", "product_id"]).iloc[0]
    assert pd.Timestamp(first["timestamp"]) == want["timestamp"]


def test_unknown_product_is_a_foreign_key_error_with_the_local_message(spark, small_tables, tmp_path):
    raw = _raw(small_tables)
    raw["fact_transactions"].loc[raw["fact_transactions"].index[:3], "product_id"] = 999_999_999
    local, remote = _both(spark, raw, tmp_path / "fk")
    assert (remote.table, remote.column, remote.rule) == ("fact_transactions", "product_id", "foreign-key")
    assert _first_line(remote) == _first_line(local)
    assert "(of 3)" in str(remote) and "999999999" in str(remote)


def test_negative_discount_and_duplicate_keys_name_the_rule(spark, small_tables, tmp_path):
    raw = _raw(small_tables)
    raw["fact_transactions"].loc[raw["fact_transactions"].index[5], "retail_disc"] = -1.0
    local, remote = _both(spark, raw, tmp_path / "disc")
    assert (remote.column, remote.rule) == ("retail_disc", "non-negative")
    assert _first_line(remote) == _first_line(local)
    raw = _raw(small_tables)
    raw["dim_customer"] = pd.concat([raw["dim_customer"], raw["dim_customer"].iloc[:2]])
    local, remote = _both(spark, raw, tmp_path / "dup")
    assert (remote.table, remote.rule) == ("dim_customer", "unique-key")
    assert _first_line(remote) == _first_line(local)


def test_csv_text_in_a_numeric_column_is_a_dtype_error(spark, small_tables, tmp_path):
    raw = _raw(small_tables)
    fact = raw["fact_transactions"].astype({"quantity": object})
    fact.loc[fact.index[3], "quantity"] = "abc"
    raw["fact_transactions"] = fact
    local, remote = _both(spark, raw, tmp_path / "csv", fmt="csv")
    assert (remote.table, remote.column, remote.rule) == ("fact_transactions", "quantity", "dtype")
    assert _first_line(remote) == _first_line(local)


def test_text_in_an_id_column_is_a_text_id_as_in_the_local_engine(spark, small_tables, tmp_path):
    """Identifiers may be text: a customer renamed "abc" in dim_customer is a valid id, and the
    fact lines of the old id are a foreign-key error, named alike by both engines."""
    raw = _raw(small_tables)
    cust = raw["dim_customer"].astype({"customer_id": object})
    cust.loc[cust.index[0], "customer_id"] = "abc"
    raw["dim_customer"] = cust
    local, remote = _both(spark, raw, tmp_path / "text-id", fmt="csv")
    assert (remote.table, remote.column, remote.rule) == ("fact_transactions", "customer_id", "foreign-key")
    assert _first_line(remote) == _first_line(local)


def test_missing_table_and_column(spark, small_tables, tmp_path):
    raw = _raw(small_tables)
    _write({k: v for k, v in raw.items() if k != "dim_product"}, tmp_path / "missing")
    with pytest.raises(DataValidationError, match="rule 'present'"):
        load_star(spark, tmp_path / "missing")
    raw["fact_transactions"] = raw["fact_transactions"].drop(columns=["quantity"])
    local, remote = _both(spark, raw, tmp_path / "column")
    assert (remote.column, remote.rule) == ("quantity", "required-column")


def test_fractional_numeric_ids_are_a_dtype_error_as_in_the_local_engine(spark, small_tables, tmp_path):
    raw = _raw(small_tables)
    prod = raw["dim_product"].astype({"product_id": "float64"})
    prod.loc[prod.index[2], "product_id"] = 7.5
    raw["dim_product"] = prod
    local, remote = _both(spark, raw, tmp_path / "float-id")
    assert (remote.table, remote.column, remote.rule) == ("dim_product", "product_id", "dtype")
    assert _first_line(remote) == _first_line(local)
