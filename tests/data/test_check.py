"""The data check: one clear finding per broken rule, never a traceback; exit 1 only on errors."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from helpers.data import check
from helpers.data.sample import string_flavour, write_sample
from helpers.data.sources import synthetic
from tests.data.test_files_reading import CUST, FACT, PROD, folder


def findings(d, **kw):
    return check.check_folder(d, **kw).findings()


def one(f: pd.DataFrame, rule: str) -> pd.Series:
    hit = f[f["rule"] == rule]
    assert len(hit) >= 1, f.to_string()
    return hit.iloc[0]


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("s") / "sample", n_customers=150, n_products=80, n_days=120)


def test_sample_folder_checks_clean_and_names_its_ids(sample_dir, capsys):
    rep = check.check_folder(sample_dir)
    assert rep.ok, rep.text()
    assert rep.id_types["customer_id"] == "text" and rep.id_types["manufacturer_id"] == "integer"
    assert "promotion_id" in rep.sizes.set_index("table").loc["dim_promotion", "extra columns"]
    assert check.main(["--data-dir", str(sample_dir)]) == 0
    assert "OK: the folder can be built" in capsys.readouterr().out
    assert "| table" in rep.markdown()


def test_missing_file(tmp_path):
    r = one(findings(folder(tmp_path, cust=None)), "present")
    assert r["table"] == "dim_customer" and "[tables]" in r["fix"]


def test_missing_required_column_names_the_config_key(tmp_path):
    r = one(findings(folder(tmp_path, prod=PROD.replace("product_id", "sku"))), "required-column")
    assert r["column"] == "product_id" and "[columns.dim_product]" in r["fix"] and '= "product_id"' in r["fix"]


def test_unparseable_date_names_the_format(tmp_path):
    r = one(findings(folder(tmp_path, fact=FACT.replace("2024-01-03 11:30:00", "3rd Jan"))), "dtype")
    assert r["column"] == "timestamp" and "ISO8601" in r["message"] and "timestamp_format" in r["fix"]


def test_duplicate_key(tmp_path):
    r = one(findings(folder(tmp_path, cust=CUST + "C01,35-44\n")), "unique-key")
    assert r["table"] == "dim_customer" and "C01" in r["rows"]


def test_orphan_foreign_keys_both_reported(tmp_path):
    fact = FACT + "B3,C99,999,S01,2024-01-04 10:00:00,1,1.0\n"
    f = findings(folder(tmp_path, fact=fact))
    fk = f[f["rule"] == "foreign-key"]
    assert set(fk["column"]) == {"customer_id", "product_id"}
    assert "C99" in fk.set_index("column").loc["customer_id", "rows"]


def test_non_numeric_quantity_and_decimal_comma_hint(tmp_path):
    r = one(findings(folder(tmp_path, fact=FACT.replace(",1,2.50\n", ",one,2.50\n", 1))), "dtype")
    assert r["column"] == "quantity" and "decimal" in r["fix"]


def test_several_columns_reported_in_one_run(tmp_path):
    fact = FACT.replace(",1,2.50\n", ",one,2.50\n", 1).replace("5.00", "five")
    f = findings(folder(tmp_path, fact=fact))
    assert set(f.loc[f["rule"] == "dtype", "column"]) == {"quantity", "sales_value"}


def test_empty_fact_table(tmp_path):
    r = one(findings(folder(tmp_path, fact=FACT.splitlines()[0] + "\n")), "non-empty")
    assert r["table"] == "fact_transactions"


def test_corrupt_parquet(tmp_path):
    d = folder(tmp_path, prod=None)
    pd.DataFrame({"product_id": ["007", "070"], "department": ["a", "b"]}).to_parquet(d / "dim_product.parquet")
    data = (d / "dim_product.parquet").read_bytes()
    (d / "dim_product.parquet").write_bytes(data[: len(data) // 2])
    r = one(findings(d), "readable")
    assert "dim_product.parquet" in r["message"] and "re-export" in r["fix"]
    assert check.main(["--data-dir", str(d)]) == 1


def test_range_too_short_for_the_windows(tmp_path):
    r = one(findings(folder(tmp_path)), "date-range")
    assert r["level"] == "error" and "at least 84 days" in r["fix"]


def test_short_range_warning_states_the_minimum(tmp_path):
    fact = FACT.replace("2024-01-02", "2023-11-01")  # 64 days: 8 training days
    r = one(findings(folder(tmp_path, fact=fact)), "date-range")
    assert r["level"] == "warning" and "84 days" in r["fix"]


def test_inclusive_end_date_hint(tmp_path):
    promo = "product_id,start_date,end_date,promo_type\n007,2024-01-02,2024-01-02,display\n"
    r = one(findings(folder(tmp_path, **{"dim_promotion.csv": promo})), "period")
    assert 'end_date = "inclusive"' in r["fix"]


def test_business_rules_and_coverage_warnings(tmp_path):
    fact = FACT + "B3,C02,070,S01,2024-01-04 10:00:00,-1,5.0\nB4,C02,070,S01,2024-01-04 10:00:00,5000,9.0\n"
    prod = PROD + "700,Toys,never sold\n"
    f = findings(folder(tmp_path, fact=fact, prod=prod, cust=CUST + "C03,\n"))
    assert {"return-value", "extreme-quantity", "never-sold", "no-purchase", "minimum-size"} <= set(
        f.loc[f["level"] == "warning", "rule"])
    neg = findings(folder(tmp_path, prod="product_id,department,unit_price\n007,T,-1\n070,T,2\n"))
    assert one(neg, "non-negative")["column"] == "unit_price"


def test_one_customer_is_an_error(tmp_path):
    fact = FACT.replace("C02", "C01")
    assert one(findings(folder(tmp_path, fact=fact)), "minimum-size")["level"] == "error"


def test_mapped_but_empty_and_unmapped_columns(tmp_path):
    prod = "product_id,department,package_size,size\n007,T,,1 EA\n070,T,,2 EA\n"
    f = findings(folder(tmp_path, prod=prod, toml=""))
    assert one(f, "mapped-but-empty")["column"] == "package_size"
    prod = "product_id,department,size\n007,T,1 EA\n070,T,2 EA\n"
    r = one(findings(folder(tmp_path, prod=prod)), "unmapped")
    assert 'size = "' in r["fix"]


def test_leading_zero_twins_named(tmp_path):
    fact = FACT.replace("070", "0007")
    prod = PROD.replace("070", "0007")
    r = one(findings(folder(tmp_path, fact=fact, prod=prod)), "leading-zero-twins")
    assert "'0007'" in r["message"] and "'007'" in r["message"]


def test_wrong_delimiter_is_named(tmp_path):
    d = folder(tmp_path, fact=FACT.replace(",", ";"), toml='[csv]\ndelimiter = ","\n')
    r = one(findings(d), "delimiter")
    assert "';'" in r["fix"]


def test_check_is_fast_on_200k_lines(tmp_path):
    raw = synthetic.generate(
        n_customers=5000, n_products=1000, n_days=200, seed=3)
    files = string_flavour(raw)
    d = tmp_path / "big"
    d.mkdir()
    files["sales"].to_csv(d / "fact_transactions.csv", index=False)
    files["customers"].to_parquet(d / "dim_customer.parquet")
    files["products"].rename(columns={"sku": "product_id", "size": "package_size"}).to_csv(
        d / "dim_product.csv", index=False)
    t = time.perf_counter()
    rep = check.check_folder(d)
    assert rep.ok, rep.text()
    assert rep.sizes.set_index("table").loc["fact_transactions", "rows"] > 150_000
    assert time.perf_counter() - t < 30  # a few seconds idle; the bound leaves room for a shared machine


def test_check_source_reports_a_generated_source():
    rep = check.check_source("synthetic", n_customers=150, n_products=80, n_days=120, seed=2)
    assert rep.ok, rep.text()
    assert rep.id_types["customer_id"] == "integer"
    assert set(rep.sizes["table"]) >= {"fact_transactions", "dim_customer", "dim_product"}
    assert rep.date_range[1] > rep.date_range[0]


def test_check_source_on_built_tables_reads_nothing(tiny_tables):
    rep = check.check_source("synthetic", tables=tiny_tables)
    assert rep.ok and rep.sizes.set_index("table").loc["fact_transactions", "rows"] == len(
        tiny_tables["fact_transactions"])
