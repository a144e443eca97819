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


def test_missing_table_and_column(spark, small_tables, tmp_path):
    raw = _raw(small_tables)
    _write({k: v for k, v in raw.items() if k != "dim_product"}, tmp_path / "missing")
    with pytest.raises(DataValidationError, match="rule 'present'"):
        load_star(spark, tmp_path / "missing")
    raw["fact_transactions"] = raw["fact_transactions"].drop(columns=["quantity"])
    local, remote = _both(spark, raw, tmp_path / "column")
    assert (remote.column, remote.rule) == ("quantity", "required-column")


@pytest.mark.parametrize("table, column, dtype, value, fmt, expected", [
    # text in a numeric column (CSV): a dtype error
    ("fact_transactions", "quantity", object, "abc", "csv", ("fact_transactions", "quantity", "dtype")),
    # identifiers may be text: a customer renamed "abc" is valid, the old id's fact lines are orphans
    ("dim_customer", "customer_id", object, "abc", "csv", ("fact_transactions", "customer_id", "foreign-key")),
    # numeric identifiers must be whole numbers
    ("dim_product", "product_id", "float64", 7.5, "parquet", ("dim_product", "product_id", "dtype")),
], ids=["text-in-a-number", "text-id", "fractional-id"])
def test_one_changed_value_is_named_alike_by_both_engines(spark, small_tables, tmp_path, table, column, dtype,
                                                          value, fmt, expected):
    raw = _raw(small_tables)
    df = raw[table].astype({column: dtype})
    df.loc[df.index[2], column] = value
    raw[table] = df
    local, remote = _both(spark, raw, tmp_path / "case", fmt=fmt)
    assert (remote.table, remote.column, remote.rule) == expected
    assert _first_line(remote) == _first_line(local)
