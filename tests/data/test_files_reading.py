"""The files source reads what retailers send, as recbook.toml declares it."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
import tomllib

from helpers.data import recbook
from helpers.data.sources import files
from helpers.data.star import build_star_schema, decode_ids, load_ids, load_meta, load_tables
from helpers.data.validate import DataValidationError

FACT = ("basket_id,customer_id,product_id,store_id,timestamp,quantity,sales_value\n"
        "B1,C01,007,S01,2024-01-02 10:00:00,1,2.50\n"
        "B1,C01,070,S01,2024-01-02 10:00:00,2,5.00\n"
        "B2,C02,007,WEB,2024-01-03 11:30:00,1,2.50\n")
CUST = "customer_id,age_band\nC01,25-34\nC02,\n"
PROD = 'product_id,department,description\n007,Toys,"Red car, small"\n070,Toys,"Blue boat, large"\n'


def folder(tmp_path, fact=FACT, cust=CUST, prod=PROD, toml=None, **more):
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    for name, text in {"fact_transactions.csv": fact, "dim_customer.csv": cust, "dim_product.csv": prod,
                       **more}.items():
        if text is not None:
            (d / name).write_text(text)
    if toml is not None:
        (d / "recbook.toml").write_text(toml)
    return d


def load(d):
    return files.load(d)


def test_default_names_and_text_ids_keep_leading_zeros(tmp_path):
    t = load(folder(tmp_path))
    assert list(t["dim_product"]["product_id"]) == ["007", "070"]
    assert list(t["fact_transactions"]["basket_id"]) == ["B1", "B1", "B2"]
    assert t["dim_product"]["description"].iloc[0] == "Red car, small"  # quoted field with a comma


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path, sep):
    t = load(folder(tmp_path, fact=FACT.replace(",", sep)))
    assert t["fact_transactions"].shape == (3, 7)
    assert t["fact_transactions"]["sales_value"].tolist() == [2.5, 5.0, 2.5]


def test_bom_and_windows_line_endings(tmp_path):
    d = folder(tmp_path)
    (d / "dim_product.csv").write_bytes(b"\xef\xbb\xbf" + PROD.replace("\n", "\r\n").encode())
    t = load(d)
    assert list(t["dim_product"].columns[:2]) == ["product_id", "department"]
    assert t["dim_product"]["description"].tolist() == ["Red car, small", "Blue boat, large"]


def test_gzip_and_parquet(tmp_path):
    d = folder(tmp_path, fact=None, cust=None)
    with gzip.open(d / "fact_transactions.csv.gz", "wt") as f:
        f.write(FACT)
    pd.DataFrame({"customer_id": ["C01", "C02"], "household_size": pd.array([2, None], dtype="Int64")}).to_parquet(
        d / "dim_customer.parquet")
    meta = build_star_schema("files", d, tmp_path / "star")
    star = load_tables(tmp_path / "star")
    assert meta["rows"]["fact_transactions"] == 3
    assert star["dim_customer"]["household_size"].tolist() == ["2", None]


def test_decimal_comma(tmp_path):
    fact = FACT.replace(",", ";").replace("2.50", "2,50").replace("5.00", "5,00")
    t = load(folder(tmp_path, fact=fact, toml='[csv]\ndecimal = ","\n'))
    assert t["fact_transactions"]["sales_value"].tolist() == [2.5, 5.0, 2.5]


def test_renames_and_extra_columns_kept_aside(tmp_path):
    prod = 'sku,department,description,size,colour\n007,Toys,car,1 EA,red\n070,Toys,boat,2 EA,blue\n'
    d = folder(tmp_path, prod=prod, toml='[columns.dim_product]\nsku = "product_id"\nsize = "package_size"\n')
    build_star_schema("files", d, tmp_path / "star")
    star = load_tables(tmp_path / "star")
    assert star["dim_product"]["package_size"].tolist() == ["1 EA", "2 EA"]
    extra = pd.read_parquet(tmp_path / "star" / "extra_dim_product.parquet")
    assert extra.to_dict("list") == {"product_id": ["007", "070"], "colour": ["red", "blue"]}


def test_tables_key_names_files_and_marks_absent(tmp_path):
    d = folder(tmp_path, fact=None, **{"sales.csv": FACT})
    (d / "customer_exposure.csv").write_text("garbage\n")
    t = load(folder(tmp_path, fact=None, toml='[tables]\nfact_transactions = "sales"\ncustomer_exposure = false\n'))
    assert not (d / "fact_transactions.csv").exists()
    assert len(t["fact_transactions"]) == 3 and "customer_exposure" not in t


def test_dates_formats_and_inclusive_end_date_and_promo_types(tmp_path):
    fact = FACT.replace("2024-01-02 10:00:00", "02.01.2024 10:00").replace("2024-01-03 11:30:00", "03.01.2024 11:30")
    promo = ("promotion_id,product_id,start_date,end_date,promo_type\n"
             "P1,007,20240102,20240102,coupon\nP2,070,20240101,20240103,endcap\n")
    toml = ('[dates]\ntimestamp_format = "%d.%m.%Y %H:%M"\n[dates.columns]\n'
            '"dim_promotion.start_date" = "%Y%m%d"\n"dim_promotion.end_date" = "%Y%m%d"\n'
            '[promotions]\nend_date = "inclusive"\n[promotions.types]\ncoupon = "discount"\n')
    d = folder(tmp_path, fact=fact, toml=toml, **{"dim_promotion.csv": promo})
    build_star_schema("files", d, tmp_path / "star")
    star = load_tables(tmp_path / "star")
    assert star["fact_transactions"]["timestamp"].iloc[2] == pd.Timestamp("2024-01-03 11:30")
    p = star["dim_promotion"]
    assert p["end_date"].tolist() == [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-04")]  # made exclusive
    assert p["promo_type"].tolist() == ["discount", "endcap"]  # mapped; an unknown type kept
    assert p["detail"].iloc[0] == "coupon"


def test_timezone_converts_aware_timestamps(tmp_path):
    fact = FACT.replace("2024-01-02 10:00:00", "2024-01-02T10:00:00+01:00").replace(
        "2024-01-03 11:30:00", "2024-01-03T11:30:00+00:00")
    with pytest.raises(DataValidationError, match="different UTC offsets") as exc:
        load(folder(tmp_path, fact=fact))
    assert "timezone" in exc.value.fix
    t = load(folder(tmp_path, fact=fact, toml='[dates]\ntimezone = "Europe/London"\n'))
    assert t["fact_transactions"]["timestamp"].tolist()[::2] == [pd.Timestamp("2024-01-02 09:00"),
                                                                 pd.Timestamp("2024-01-03 11:30")]


def test_ids_integer_and_text_modes(tmp_path):
    fact = FACT.replace("007", "100001").replace("070", "0100001")
    prod = PROD.replace("007", "100001").replace("070", "0100001")
    t = load(folder(tmp_path, fact=fact, prod=prod))  # auto: leading zeros, so text; both kept apart
    assert t["dim_product"]["product_id"].tolist() == ["100001", "0100001"]
    with pytest.raises(DataValidationError, match="100001") as exc:
        load(folder(tmp_path, fact=fact, prod=prod, toml='[ids]\nproduct_id = "integer"\n'))
    assert exc.value.rule == "leading-zeros" and "text" in exc.value.fix
    ints = load(folder(tmp_path, fact=FACT.replace("007", "7").replace("070", "70"),
                       prod=PROD.replace("007", "7").replace("070", "70"), toml=""))
    assert ints["dim_product"]["product_id"].dtype == "int64"
    text = load(folder(tmp_path, toml='[ids]\nproduct_id = "text"\n'))
    assert text["dim_product"]["product_id"].tolist() == ["007", "070"]


def test_corrupt_parquet_and_bad_config_are_named(tmp_path):
    d = folder(tmp_path, cust=None)
    (d / "dim_customer.parquet").write_bytes(b"PAR1\x00\x01garbage")
    with pytest.raises(DataValidationError, match="dim_customer.parquet is not a readable Parquet"):
        load(d)
    with pytest.raises(DataValidationError, match="unknown key"):
        recbook.load_config(folder(tmp_path, toml='colour = "red"\n'))
    with pytest.raises(DataValidationError, match="inclusive"):
        recbook.load_config(folder(tmp_path, toml='[promotions]\nend_date = "last"\n'))


def test_currency_recorded_and_text_ids_decoded(tmp_path):
    d = folder(tmp_path, toml='currency = "EUR"\n')
    meta = build_star_schema("files", d, tmp_path / "star")
    assert load_meta(tmp_path / "star")["config"]["currency"] == "EUR" == meta["config"]["currency"]
    ids = load_ids(tmp_path / "star")
    star = load_tables(tmp_path / "star")
    assert ids["product_id"].decode(star["dim_product"]["product_id"]).tolist() == ["007", "070"]
    assert ids["store_id"].decode(star["fact_transactions"]["store_id"].astype("int64")).tolist() == [
        "S01", "S01", "WEB"]


def test_template_names_files_and_unmapped_columns(tmp_path):
    prod = 'sku,department,description\n007,Toys,car\n'
    text = recbook.template(folder(tmp_path, prod=prod))
    assert 'fact_transactions = "fact_transactions"' in text
    assert '# your_column = "product_id"   # REQUIRED' in text and "# sku" in text
    assert recbook.parse(tomllib.loads(text)).end_date == "exclusive"  # the template is valid TOML


def test_encoding_delimiter_and_date_format_keys(tmp_path):
    cust = "customer_id\tage_band\nC01\tJosé\nC02\t\n"
    d = folder(tmp_path, cust=None,
               fact=FACT.replace("2024-01-02 10:00:00", "2024-01-02").replace("2024-01-03 11:30:00", "2024-01-03"),
               toml='[csv]\ndelimiter = "tab"\nencoding = "cp1252"\n[dates]\ntimestamp_format = "%Y-%m-%d"\n')
    (d / "dim_customer.csv").write_bytes(cust.encode("cp1252"))
    for name in ("fact_transactions.csv", "dim_product.csv"):
        text = (d / name).read_text().replace(",", "\t").replace('"Red car\t small"', "Red car small").replace(
            '"Blue boat\t large"', "Blue boat large")
        (d / name).write_bytes(text.encode("cp1252"))
    t = load(d)
    assert t["dim_customer"]["age_band"].iloc[0] == "José"
    assert t["fact_transactions"]["timestamp"].iloc[2] == pd.Timestamp("2024-01-03")
    promo = "product_id,start_date,end_date,promo_type\n007,02/01/2024,03/01/2024,display\n"
    (tmp_path / "b").mkdir()
    d2 = folder(tmp_path / "b", toml='[dates]\nformat = "%d/%m/%Y"\n', **{"dim_promotion.csv": promo})
    assert load(d2)["dim_promotion"]["start_date"].iloc[0] == pd.Timestamp("2024-01-02")


def test_a_later_integer_build_removes_the_lookups_and_decode_ids(tmp_path):
    out = tmp_path / "star"
    build_star_schema("files", folder(tmp_path, prod=PROD + '700,Toys,"x"\n'), out)
    star = load_tables(out)
    shown = decode_ids(star["fact_transactions"].head(2), load_ids(out))
    assert shown["customer_id"].tolist() == ["C01", "C01"] and shown["product_id"].tolist() == ["007", "070"]
    assert (out / "id_product_id.parquet").exists()
    build_star_schema("synthetic", output_dir=out, n_customers=30, n_products=20, n_days=90, seed=1)
    assert not list(out.glob("id_*.parquet")) and all(m.is_identity for m in load_ids(out).values())


def test_parquet_float_ids_with_nulls_are_integers(tmp_path):
    d = folder(tmp_path, prod=None)
    pd.DataFrame({"product_id": ["007", "070"], "department": ["T", "T"],
                  "manufacturer_id": [5.0, None]}).to_parquet(d / "dim_product.parquet")
    build_star_schema("files", d, tmp_path / "star")
    assert load_tables(tmp_path / "star")["dim_product"]["manufacturer_id"].tolist() == [5, pd.NA]
