"""Tests of the synthetic RC-hobby retailer (helpers/sources/synthetic.py), on tiny sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.data.schema import TABLES
from helpers.data.sources.synthetic import (
    CONSUMABLE_GROUPS,
    FAMILIES,
    PRODUCT_TYPES,
    STORES,
    generate,
    product_type_families,
    product_type_groups,
)

N_CUSTOMERS, N_PRODUCTS = 400, 200
TABLE_NAMES = ("fact_transactions", "dim_customer", "dim_product", "dim_promotion", "customer_exposure")


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return generate(n_customers=N_CUSTOMERS, n_products=N_PRODUCTS, seed=0)


@pytest.fixture(scope="module")
def lines(data) -> pd.DataFrame:
    """Purchase lines (no returns) with the product's group, family and price."""
    p = data["dim_product"]
    fams = p["product_type"].map(product_type_families())
    prod = pd.DataFrame({
        "product_id": p["product_id"],
        "group": p["product_type"].map(product_type_groups()),
        "family": fams.map(lambda t: t[0] if len(t) == 1 else None),
        "unit_price": p["unit_price"],
    })
    f = data["fact_transactions"]
    return f[~f["is_return"]].merge(prod, on="product_id", how="left")


def _is_holiday(dates: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    d = pd.DatetimeIndex(dates)
    return np.asarray((d.month == 12) | ((d.month == 11) & (d.day >= 20)))


# --------------------------------------------------------------------------- #
# determinism and contract
# --------------------------------------------------------------------------- #


def test_same_seed_gives_identical_frames(data):
    again = generate(n_customers=N_CUSTOMERS, n_products=N_PRODUCTS, seed=0)
    assert set(again) == set(TABLE_NAMES)
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(data[name], again[name])


def test_different_seed_gives_different_data(data):
    other = generate(n_customers=N_CUSTOMERS, n_products=N_PRODUCTS, seed=1)
    assert not data["fact_transactions"].equals(other["fact_transactions"])
    assert not data["dim_product"]["description"].equals(other["dim_product"]["description"])


def test_returns_exactly_the_schema_tables_and_no_dim_date(data):
    assert set(data) == set(TABLE_NAMES)
    assert "dim_date" not in data


_INT_NULLABLE = {"Int64"}


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_columns_and_dtypes_follow_the_schema(data, name):
    df = data[name]
    table = TABLES[name]
    assert list(df.columns) == table.column_names
    for col in table.columns:
        dtype = df[col.name].dtype
        if col.dtype == "int":
            if col.nullable and df[col.name].isna().any():
                assert str(dtype) in _INT_NULLABLE, (name, col.name, dtype)
            else:
                assert dtype == np.int64 or str(dtype) == "Int64", (name, col.name, dtype)
        elif col.dtype == "float":
            assert dtype == np.float64, (name, col.name, dtype)
        elif col.dtype == "bool":
            assert pd.api.types.is_bool_dtype(dtype) and dtype.kind == "b", (name, col.name, dtype)
        elif col.dtype in ("datetime", "date"):
            assert dtype == np.dtype("datetime64[ns]"), (name, col.name, dtype)
        elif col.dtype == "string":
            assert pd.api.types.is_object_dtype(dtype), (name, col.name, dtype)
            values = df[col.name].dropna()
            assert values.map(lambda v: isinstance(v, str)).all(), (name, col.name)
        if not col.nullable:
            assert df[col.name].notna().all(), (name, col.name)


def test_ids_keys_and_foreign_keys(data):
    f, c, p = data["fact_transactions"], data["dim_customer"], data["dim_product"]
    assert c["customer_id"].tolist() == list(range(1, N_CUSTOMERS + 1))
    assert p["product_id"].tolist() == list(range(100001, 100001 + N_PRODUCTS))
    assert c["customer_id"].is_unique and p["product_id"].is_unique
    assert f["customer_id"].isin(c["customer_id"]).all()
    assert f["product_id"].isin(p["product_id"]).all()
    assert data["dim_promotion"]["product_id"].isin(p["product_id"]).all()
    assert data["customer_exposure"]["customer_id"].isin(c["customer_id"]).all()
    assert f["store_id"].isin(list(STORES)).all()
    # a basket is one customer, one store, one moment
    per_basket = f.groupby("basket_id").agg(
        c=("customer_id", "nunique"), s=("store_id", "nunique"), t=("timestamp", "nunique"))
    assert (per_basket == 1).all().all()


def test_timestamps_dates_and_opening_hours(data):
    f = data["fact_transactions"]
    assert (f["date"] == f["timestamp"].dt.normalize()).all()
    assert f["date"].min() >= pd.Timestamp("2023-01-01")
    assert f["date"].max() <= pd.Timestamp("2023-12-31")
    hours = f["timestamp"].dt.hour
    physical = f["store_id"] != 6
    assert hours[physical].between(10, 19).all()
    assert hours[~physical].between(7, 23).all()
    # weekends are busier than weekdays
    per_dow = f.groupby(f["date"].dt.dayofweek).size() / f.groupby(f["date"].dt.dayofweek)["date"].nunique()
    assert per_dow.loc[[5, 6]].mean() > per_dow.loc[[0, 1, 2, 3]].mean()


def test_start_date_and_n_days_are_honoured():
    d = generate(n_customers=50, n_products=120, n_days=60, start_date="2024-03-15", seed=3)
    f = d["fact_transactions"]
    assert f["date"].min() >= pd.Timestamp("2024-03-15")
    assert f["date"].max() < pd.Timestamp("2024-03-15") + pd.Timedelta(days=60)
    assert (d["dim_promotion"]["end_date"] <= pd.Timestamp("2024-03-15") + pd.Timedelta(days=60)).all()
    assert (d["dim_promotion"]["start_date"] < d["dim_promotion"]["end_date"]).all()


@pytest.mark.parametrize(("n_customers", "n_products"), [(1, 1), (20, 10), (60, 45)])
def test_tiny_catalogues_and_customer_bases_work(n_customers, n_products):
    d = generate(n_customers=n_customers, n_products=n_products, seed=7)
    f = d["fact_transactions"]
    assert len(d["dim_product"]) == n_products and len(d["dim_customer"]) == n_customers
    assert len(f) > 0
    assert f["product_id"].isin(d["dim_product"]["product_id"]).all()
    assert f["basket_id"].min() >= 1


def test_progress_bar_option_gives_the_same_data():
    a = generate(n_customers=30, n_products=100, seed=5)
    b = generate(n_customers=30, n_products=100, seed=5, progress=True)
    pd.testing.assert_frame_equal(a["fact_transactions"], b["fact_transactions"])


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError):
        generate(n_customers=0)
    with pytest.raises(ValueError):
        generate(n_customers=10, lines_per_customer=0)


# --------------------------------------------------------------------------- #
# dimensions
# --------------------------------------------------------------------------- #


def test_products_cover_the_hobby_catalogue(data):
    p = data["dim_product"]
    assert p["in_source_catalog"].all()
    assert set(p["product_type"]) == {t.product_type for t in PRODUCT_TYPES}  # one of each at least
    assert {"Vehicles", "Power", "Electronics", "Spare Parts", "Workshop & Supplies"} <= set(p["department"])
    assert {"RC Airplanes", "RC Cars", "RC Helicopters", "Drones", "RC Boats", "Batteries", "Chargers",
            "Radios", "Propellers", "Tools", "Glue & Adhesives", "Paint"} <= set(p["category"])
    assert p["description"].str.len().gt(40).all()
    assert p["brand"].notna().all() and p["manufacturer_id"].gt(0).all()
    assert p["margin"].between(0.15, 0.55).all()
    group = p["product_type"].map(product_type_groups())
    price = p["unit_price"]
    assert price[group == "vehicle"].between(80, 900).all()
    assert price[group == "battery"].between(15, 90).all()
    assert price[group == "parts"].between(3, 45).all()
    assert p.loc[group == "parts", "margin"].mean() > p.loc[group == "vehicle", "margin"].mean()


def test_descriptions_use_words_shared_within_a_family(data):
    p = data["dim_product"]
    cars = p[p["product_type"].eq("Short Course Trucks")]
    assert cars["description"].str.contains("short course truck").all()
    tied = p[p["product_type"].isin(["Car Tires & Wheels", "Drone Propellers", "Boat LiPo Batteries"])]
    assert tied["description"].str.contains(r"for (?:RC cars|drones|RC boats)").all()


def test_customer_demographics(data):
    c = data["dim_customer"]
    share_without = 1 - c["has_demographics"].mean()
    assert 0.08 < share_without < 0.25
    demo_cols = [col for col in c.columns if col not in ("customer_id", "has_demographics")]
    assert c.loc[~c["has_demographics"], demo_cols].isna().all().all()
    known = c[c["has_demographics"]]
    assert set(known["gender"]) == {"F", "M"}
    assert (known["gender"] == "M").mean() > 0.7
    assert set(known["age_band"]) <= {"19-24", "25-34", "35-44", "45-54", "55-64", "65+"}
    assert known["income_band"].notna().all()


# --------------------------------------------------------------------------- #
# fact behaviour
# --------------------------------------------------------------------------- #


def test_lines_per_customer_is_near_the_target(data):
    f = data["fact_transactions"]
    assert 30 < len(f) / N_CUSTOMERS < 50
    basket_sizes = f[~f["is_return"]].groupby("basket_id").size()
    assert basket_sizes.between(1, 6).all()
    per_customer = f.groupby("customer_id").size()
    assert per_customer.quantile(0.9) > 3 * per_customer.quantile(0.1)  # heavy and light buyers
    small = generate(n_customers=100, n_products=150, seed=2, lines_per_customer=10)
    assert 6 < len(small["fact_transactions"]) / 100 < 14


def test_sales_value_and_discounts(data, lines):
    f = data["fact_transactions"]
    for col in ("retail_disc", "coupon_disc", "coupon_match_disc", "discount"):
        assert (f[col] >= 0).all()
    np.testing.assert_allclose(f["discount"], f["retail_disc"] + f["coupon_disc"] + f["coupon_match_disc"])
    np.testing.assert_allclose(
        lines["sales_value"], lines["quantity"] * lines["unit_price"] - lines["discount"], atol=1e-6)
    assert (lines["quantity"] >= 1).all() and (lines["sales_value"] > 0).all()
    # retail discounts only on promoted lines; promoted lines do carry discounts
    assert not ((f["retail_disc"] > 0) & ~f["on_promotion"]).any()
    assert (f.loc[f["on_promotion"], "retail_disc"] > 0).any()


def test_returns_are_negative_and_follow_an_earlier_purchase(data):
    f = data["fact_transactions"]
    r = f[f["is_return"]]
    assert 0.001 < len(r) / len(f) < 0.015
    assert (r["quantity"] < 0).all() and (r["sales_value"] < 0).all()
    assert (f.loc[~f["is_return"], "quantity"] > 0).all()
    first_buy = f[~f["is_return"]].groupby(["customer_id", "product_id"])["timestamp"].min()
    bought_at = first_buy.reindex(pd.MultiIndex.from_frame(r[["customer_id", "product_id"]]))
    assert bought_at.notna().all()
    assert (bought_at.to_numpy() < r["timestamp"].to_numpy()).all()


def test_vehicles_are_one_off_and_consumables_are_rebought(lines):
    x = lines.sort_values(["customer_id", "timestamp"])
    x = x.assign(repeat=x.duplicated(["customer_id", "product_id"]))
    rate = x.groupby("group")["repeat"].mean()
    assert rate["vehicle"] == 0.0
    for g in CONSUMABLE_GROUPS:
        assert rate[g] > 0.15
        assert rate[g] > rate["vehicle"] + 0.1
    assert rate[list(CONSUMABLE_GROUPS)].min() > rate[["charger", "radio", "gear"]].max()


def test_holiday_period_sells_more_and_more_vehicles(data, lines):
    f = data["fact_transactions"]
    daily = f.groupby("date")["sales_value"].sum()
    hol = _is_holiday(daily.index)
    assert daily[hol].mean() > 1.3 * daily[~hol].mean()
    is_veh = lines["group"].eq("vehicle")
    hol_lines = _is_holiday(lines["date"])
    assert is_veh[hol_lines].mean() > is_veh[~hol_lines].mean()


def test_promoted_products_sell_more_while_promoted(data, lines):
    promo = data["dim_promotion"]
    promo = promo[promo["promo_type"].isin(["mailer", "discount"])]
    n_days = (promo["end_date"] - promo["start_date"]).dt.days.to_numpy()
    rows = np.repeat(np.arange(len(promo)), n_days)
    offs = np.arange(rows.size) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    on_days = pd.DataFrame({
        "product_id": promo["product_id"].to_numpy()[rows],
        "date": promo["start_date"].to_numpy()[rows] + offs * np.timedelta64(1, "D"),
    }).drop_duplicates()
    days_total = 365
    on_count = on_days.groupby("product_id").size()
    x = lines[lines["product_id"].isin(on_count.index)]
    x = x.merge(on_days.assign(on=True), on=["product_id", "date"], how="left")
    x["on"] = x["on"].eq(True)
    sold_on = x[x["on"]].groupby("product_id").size().reindex(on_count.index, fill_value=0)
    sold_off = x[~x["on"]].groupby("product_id").size().reindex(on_count.index, fill_value=0)
    off_rate = sold_off / (days_total - on_count)
    expected_on = (off_rate * on_count).sum()  # what the promoted days would sell without a lift
    assert sold_on.sum() > 1.3 * expected_on
    # and the flag marks lines bought in a matching promotion
    assert x.loc[x["on"], "on_promotion"].all()


def test_purchases_concentrate_in_the_favourite_family(lines):
    y = lines.dropna(subset=["family"])
    counts = y.groupby(["customer_id", "family"]).size().unstack(fill_value=0)
    total = counts.sum(axis=1)
    share = (counts.max(axis=1) / total)[total >= 8]
    assert len(share) > 50
    assert share.mean() > 0.45  # uniform over five families would give about 0.3 at this size
    assert set(counts.columns) == set(FAMILIES)


def test_parts_follow_a_vehicle_of_the_same_family(lines):
    """After buying a vehicle, a customer's parts/batteries lean to that vehicle's family."""
    x = lines.sort_values(["customer_id", "timestamp"])
    veh = x[x["group"].eq("vehicle")].groupby(["customer_id", "family"])["timestamp"].min()
    tied = x[x["group"].isin(["battery", "parts"])].dropna(subset=["family"])
    first = veh.reindex(pd.MultiIndex.from_frame(tied[["customer_id", "family"]])).to_numpy()
    owned_family = ~pd.isna(first) & (first < tied["timestamp"].to_numpy())
    owners = tied["customer_id"].isin(veh.index.get_level_values(0))
    # share of tied lines matching an owned vehicle family is well above 1/5
    assert owned_family[owners.to_numpy()].mean() > 0.35


def test_demographics_shift_family_tastes(data, lines):
    c = data["dim_customer"][["customer_id", "age_band"]]
    big = generate(n_customers=1500, n_products=200, seed=4)
    p = big["dim_product"]
    fam = p["product_type"].map(product_type_families()).map(lambda t: t[0] if len(t) == 1 else None)
    f = big["fact_transactions"].merge(pd.DataFrame({"product_id": p["product_id"], "family": fam}))
    f = f.dropna(subset=["family"]).merge(big["dim_customer"][["customer_id", "age_band"]])
    young = f[f["age_band"].isin(["19-24", "25-34"])]
    old = f[f["age_band"].isin(["55-64", "65+"])]
    assert young["family"].eq("drone").mean() > old["family"].eq("drone").mean()
    assert old["family"].eq("airplane").mean() > young["family"].eq("airplane").mean()
    assert len(c) == N_CUSTOMERS


def test_campaign_exposure_and_coupon_redemptions(data):
    e = data["customer_exposure"]
    f = data["fact_transactions"]
    assert set(e["event"]) == {"campaign_received", "coupon_redeemed"}
    received = e[e["event"] == "campaign_received"]
    redeemed = e[e["event"] == "coupon_redeemed"]
    assert received["coupon_id"].isna().all() and redeemed["coupon_id"].notna().all()
    # a redemption follows a received campaign of the same customer
    pairs = set(zip(received["customer_id"], received["campaign_id"]))
    assert all(pair in pairs for pair in zip(redeemed["customer_id"], redeemed["campaign_id"]))
    # every redemption is one coupon line in the fact, on that day
    coupon_lines = f[f["coupon_disc"] > 0]
    assert len(coupon_lines) == len(redeemed)
    got = coupon_lines.groupby(["customer_id", "date"]).size()
    want = redeemed.groupby(["customer_id", "date"]).size()
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False)
    # the campaigns are in dim_promotion with their id
    promo = data["dim_promotion"]
    camp = promo[promo["promo_type"] == "campaign"]
    assert set(camp["campaign_id"].astype(int)) == set(e["campaign_id"])
    assert promo.loc[promo["promo_type"] != "campaign", "campaign_id"].isna().all()
    # redeemers buy more
    per_customer = f.groupby("customer_id").size()
    is_redeemer = per_customer.index.isin(redeemed["customer_id"])
    assert per_customer[is_redeemer].mean() > per_customer[~is_redeemer].mean()


def test_promotion_table(data):
    promo = data["dim_promotion"]
    assert set(promo["promo_type"]) == {"display", "mailer", "discount", "campaign"}
    assert (promo["start_date"] < promo["end_date"]).all()
    display = promo[promo["promo_type"] == "display"]
    assert display["store_id"].notna().all()
    assert promo.loc[promo["promo_type"] == "mailer", "store_id"].isna().all()


def test_compact_sink_grows_and_offsets_basket_ids():
    from helpers.data.sources.synthetic import _COMPACT, _Sink

    sink = _Sink(capacity=2, basket_dtype=np.int32, seconds_dtype=np.int32)
    for n in (3, 4):
        part = {k: np.ones(n, dtype=d) for k, d in _COMPACT.items()}
        part["basket"] = np.arange(1, n + 1)
        part["n_baskets"] = n
        sink.append(part)
    assert sink.size == 7 and sink.n_baskets == 7
    assert sink.cols["basket"][: sink.size].tolist() == [1, 2, 3, 4, 5, 6, 7]
