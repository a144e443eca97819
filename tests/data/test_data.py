"""The star-schema data layer: sources, validation rules, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.data.calendar import build_dim_date
from helpers.data.schema import TABLES, data_dictionary
from helpers.data.star import STAR_TABLES, build_star_schema, key_checks, load_tables, write_tables
from helpers.data.validate import DataValidationError, validate_star_schema


def _validate(raw):
    return validate_star_schema({k: v for k, v in raw.items() if not k.startswith("_")})


# ------------------------------------------------------------------ contract
def test_data_dictionary_covers_every_column():
    dd = data_dictionary()
    for name, table in TABLES.items():
        assert list(dd.loc[dd["table"] == name, "column"]) == table.column_names
    assert dd["description"].str.len().min() > 5


def test_dim_date_known_answers():
    d = build_dim_date("2017-11-18", "2018-01-01").set_index("date")
    assert len(d) == 45
    assert d.loc["2017-11-19", "is_holiday_period"] == np.False_
    assert d.loc["2017-11-20", "is_holiday_period"] == np.True_
    assert d.loc["2018-01-01", "is_holiday_period"] == np.False_
    assert d.loc["2017-12-25", "day_name"] == "Monday" and d.loc["2017-12-25", "day_of_week"] == 0
    assert d.loc["2017-12-23", "is_weekend"] == np.True_
    assert d.loc["2017-12-01", "season"] == "Winter" and d.loc["2017-11-30", "season"] == "Autumn"
    assert d.loc["2018-01-01", "week"] == 1 and d.loc["2018-01-01", "quarter"] == 1


# ------------------------------------------------------------------ sources
def test_synthetic_source_validates_and_round_trips(tiny_raw, tmp_path):
    tables = _validate(tiny_raw)
    assert set(tables) == set(STAR_TABLES)
    for name in STAR_TABLES:
        assert list(tables[name].columns) == TABLES[name].column_names
    assert key_checks(tables)["passed"].all()
    write_tables(tables, tmp_path, {"fingerprint": "x"})
    back = load_tables(tmp_path)
    pd.testing.assert_frame_equal(back["dim_product"], tables["dim_product"], check_dtype=False)
    assert len(back["fact_transactions"]) == len(tables["fact_transactions"])


def test_files_source_csv_and_parquet(tiny_tables, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    tiny_tables["fact_transactions"].drop(columns=["date", "discount", "is_return"]).to_csv(
        src / "fact_transactions.csv", index=False)
    tiny_tables["dim_customer"].to_parquet(src / "dim_customer.parquet", index=False)
    tiny_tables["dim_product"].to_csv(src / "dim_product.csv", index=False)
    meta = build_star_schema("files", data_dir=src, output_dir=tmp_path / "out")
    assert meta["rows"]["fact_transactions"] == len(tiny_tables["fact_transactions"])
    out = load_tables(tmp_path / "out")
    assert out["dim_promotion"].empty and out["customer_exposure"].empty
    # the fingerprint (hashed while the tables were written) is the one of the tables written
    from helpers.data.star import fingerprint, load_meta

    assert meta["fingerprint"] == load_meta(tmp_path / "out")["fingerprint"] == fingerprint(out)
    # derived columns are recomputed identically
    np.testing.assert_allclose(out["fact_transactions"]["discount"], tiny_tables["fact_transactions"]["discount"])
    assert (out["fact_transactions"]["date"] == out["fact_transactions"]["timestamp"].dt.normalize()).all()
    assert len(out["dim_date"]) == (out["fact_transactions"]["date"].max() - out["fact_transactions"]["date"].min()).days + 1


@pytest.mark.slow
def test_completejourney_source_keeps_every_line_and_household(tmp_path):
    from helpers.data.sources import completejourney

    raw = completejourney.load(include_promotions=False)
    tables = _validate(raw)
    assert len(tables["fact_transactions"]) == completejourney.N_TRANSACTIONS == 1_469_307
    cust = tables["dim_customer"]
    assert len(cust) == completejourney.N_HOUSEHOLDS
    assert int((~cust["has_demographics"]).sum()) == 1668
    assert cust["gender"].isna().all()
    assert (~tables["dim_product"]["in_source_catalog"]).sum() == raw["_meta"]["added_rows"][
        "dim_product (products sold but absent from the product table)"]
    assert key_checks(tables)["passed"].all()
    assert set(tables["customer_exposure"]["event"]) == {"campaign_received", "coupon_redeemed"}
    assert tables["fact_transactions"]["timestamp"].max() == pd.Timestamp("2018-01-01 04:01:20")


# ------------------------------------------------------------------ bad input
def _drop(name, col):
    def f(raw):
        raw[name] = raw[name].drop(columns=[col])
    return f


def _set(name, col, value, rows=slice(0, 3)):
    def f(raw):
        df = raw[name]
        if isinstance(value, float) and df[col].dtype.kind in "iu":
            df[col] = df[col].astype("float64")
        elif not (isinstance(value, float) or value is None):
            df[col] = df[col].astype(object)
        df.loc[df.index[rows], col] = value
    return f


def _dup_product(raw):
    p = raw["dim_product"]
    raw["dim_product"] = pd.concat([p, p.iloc[[0]]], ignore_index=True)


def _unknown_product(raw):
    raw["fact_transactions"].loc[raw["fact_transactions"].index[:2], "product_id"] = 999_999_999


def _unknown_customer(raw):
    raw["fact_transactions"].loc[raw["fact_transactions"].index[:2], "customer_id"] = 888_888_888


def _empty_fact(raw):
    raw["fact_transactions"] = raw["fact_transactions"].iloc[:0]


def _positive_qty_negative_sales(raw):
    f = raw["fact_transactions"]
    i = f.index[f["quantity"] > 0][:2]
    f.loc[i, "sales_value"] = -5.0


def _promo_backwards(raw):
    p = raw["dim_promotion"]
    p.loc[p.index[:1], "end_date"] = p.loc[p.index[:1], "start_date"] - pd.Timedelta(days=1)


def _missing_table(raw):
    del raw["dim_customer"]


def _dup_customer(raw):
    c = raw["dim_customer"]
    raw["dim_customer"] = pd.concat([c.iloc[[3]], c], ignore_index=True)


BAD_CASES = [
    ("missing required column", _drop("fact_transactions", "sales_value"), "fact_transactions", "sales_value",
     "required-column"),
    ("missing product column", _drop("dim_product", "department"), "dim_product", "department", "required-column"),
    ("duplicated product key", _dup_product, "dim_product", "product_id", "unique-key"),
    ("duplicated customer key", _dup_customer, "dim_customer", "customer_id", "unique-key"),
    ("unknown product", _unknown_product, "fact_transactions", "product_id", "foreign-key"),
    ("unknown customer", _unknown_customer, "fact_transactions", "customer_id", "foreign-key"),
    ("unparseable timestamp", _set("fact_transactions", "timestamp", "not a date"), "fact_transactions",
     "timestamp", "dtype"),
    ("text id absent from the dimension", _set("fact_transactions", "customer_id", "abc"), "fact_transactions",
     "customer_id", "foreign-key"),
    ("fractional id", _set("dim_product", "product_id", 1.5), "dim_product", "product_id", "dtype"),
    ("null key", _set("dim_customer", "customer_id", None), "dim_customer", "customer_id", "not-null"),
    ("non-numeric quantity", _set("fact_transactions", "quantity", "two"), "fact_transactions", "quantity", "dtype"),
    ("infinite quantity", _set("fact_transactions", "quantity", np.inf), "fact_transactions", "quantity", "finite"),
    ("negative discount", _set("fact_transactions", "retail_disc", -1.0), "fact_transactions", "retail_disc",
     "non-negative"),
    ("positive quantity, negative sales", _positive_qty_negative_sales, "fact_transactions", "sales_value", "sign"),
    ("promotion ends before it starts", _promo_backwards, "dim_promotion", "end_date", "period"),
    ("bad boolean", _set("fact_transactions", "on_promotion", "maybe"), "fact_transactions", "on_promotion", "dtype"),
    ("empty fact table", _empty_fact, "fact_transactions", None, "non-empty"),
    ("missing table", _missing_table, "dim_customer", None, "present"),
]


@pytest.mark.parametrize("label,corrupt,table,column,rule", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_names_table_column_and_rule(raw_copy, label, corrupt, table, column, rule):
    corrupt(raw_copy)
    with pytest.raises(DataValidationError) as exc:
        _validate(raw_copy)
    err = exc.value
    assert (err.table, err.column, err.rule) == (table, column, rule), str(err)
    msg = str(err)
    assert f"table '{table}'" in msg and f"rule '{rule}'" in msg
    if column:
        assert f"column '{column}'" in msg
    if err.rows is not None and len(err.rows):
        assert "First offending rows" in msg
        assert msg.count("\n") <= 5 + 2  # at most five rows shown, plus header


def test_failed_build_leaves_previous_output_untouched(tiny_tables, tmp_path, raw_copy):
    out = tmp_path / "processed"
    write_tables(tiny_tables, out, {"fingerprint": "good"})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    src = tmp_path / "bad"
    src.mkdir()
    raw_copy["dim_product"].iloc[1:].to_csv(src / "dim_product.csv", index=False)  # loses a sold product
    raw_copy["dim_customer"].to_csv(src / "dim_customer.csv", index=False)
    raw_copy["fact_transactions"].to_csv(src / "fact_transactions.csv", index=False)
    with pytest.raises(DataValidationError, match="foreign-key"):
        build_star_schema("files", data_dir=src, output_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert json.loads((out / "star_schema.json").read_text())["fingerprint"] == "good"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".star-")]


def test_returns_are_kept_and_flagged(tiny_tables):
    f = tiny_tables["fact_transactions"]
    assert f["is_return"].any()
    assert (f.loc[f["is_return"], "quantity"] < 0).all()


def test_validate_keeps_ready_columns_and_still_normalizes_and_types_the_others():
    """Columns already of their type skip parsing; a date column with times of day is still
    normalized, narrow and nullable integer ids are typed int64 / Int64, bad ids still fail."""
    from helpers.data.validate import validate_table

    ts = pd.to_datetime(["2024-01-01 10:30", "2024-01-02 00:00", "2024-01-02 23:59"])
    fact = pd.DataFrame({"basket_id": np.array([1, 2, 3], dtype=np.int32), "customer_id": [1, 1, 2],
                         "product_id": [5, 6, 5], "store_id": pd.array([1, None, 2], dtype="Int64"),
                         "timestamp": ts, "date": ts, "quantity": [1.0, 2.0, 1.0],
                         "sales_value": [1.0, 2.0, 3.0]})
    out = validate_table(fact, "fact_transactions")
    assert out["date"].tolist() == list(pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02"]))
    assert out["timestamp"].tolist() == list(ts)
    assert out["basket_id"].dtype == np.int64 and out["basket_id"].tolist() == [1, 2, 3]
    assert str(out["store_id"].dtype) == "Int64" and out["store_id"].isna().tolist() == [False, True, False]
    midnight = fact.assign(date=ts.normalize())
    assert validate_table(midnight, "fact_transactions")["date"].tolist() == out["date"].tolist()
    with pytest.raises(DataValidationError, match="whole numbers"):
        validate_table(fact.assign(product_id=[5.0, 6.5, 5.0]), "fact_transactions")
