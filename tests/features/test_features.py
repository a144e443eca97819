"""Known-answer, leakage and monotonicity tests for helpers.features.customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.features import customers as F

T = pd.Timestamp


def fact(rows) -> pd.DataFrame:
    """Rows ``(basket, customer, product, timestamp, quantity, sales_value, on_promotion)``."""
    df = pd.DataFrame(rows, columns=["basket_id", "customer_id", "product_id", "timestamp", "quantity",
                                     "sales_value", "on_promotion"])
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    df["date"] = df["timestamp"].dt.normalize()
    df["on_promotion"] = df["on_promotion"].astype(bool)
    df["is_return"] = df["quantity"] < 0
    for c in ("basket_id", "customer_id", "product_id"):
        df[c] = df[c].astype("int64")
    return df


def random_tables(n_customers=80, n_products=40, n_baskets=600, days=90, seed=0, extra_customers=5) -> dict:
    """A random star schema (with customers lacking history and demographics)."""
    rng = np.random.default_rng(seed)
    start = T("2021-01-01")
    b_cust = rng.integers(1, n_customers + 1, n_baskets)
    b_ts = start + pd.to_timedelta(rng.uniform(0, days, n_baskets), unit="D")
    sizes = rng.integers(1, 6, n_baskets)
    idx = np.repeat(np.arange(n_baskets), sizes)
    qty = rng.choice([1.0, 1.0, 2.0, 3.0, -1.0, 0.0], len(idx), p=[0.5, 0.2, 0.15, 0.1, 0.03, 0.02])
    price = rng.uniform(0.5, 20, len(idx)).round(2)
    fx = pd.DataFrame({
        "basket_id": (idx + 1000).astype("int64"),
        "customer_id": b_cust[idx].astype("int64"),
        "product_id": rng.integers(1, n_products + 1, len(idx)).astype("int64"),
        "timestamp": b_ts[idx],
        "quantity": qty,
        "sales_value": np.where(qty > 0, qty * price, np.where(qty < 0, -price, 0.0)),
        "on_promotion": rng.random(len(idx)) < 0.3,
    })
    fx["date"] = fx["timestamp"].dt.normalize()
    fx["is_return"] = fx["quantity"] < 0
    ids = np.arange(1, n_customers + extra_customers + 1)
    has = rng.random(len(ids)) < 0.6
    ages = np.array(["19-24", "25-34", "35-44", "45-54", "55-64", "65+"], dtype=object)
    incomes = np.array(["Under 15K", "15-24K", "35-49K", "50-74K", "75-99K", "125-149K", "150-174K", "250K+"],
                       dtype=object)
    cust = pd.DataFrame({
        "customer_id": ids.astype("int64"),
        "age_band": np.where(has, ages[rng.integers(0, len(ages), len(ids))], None),
        "gender": None,
        "income_band": np.where(has, incomes[rng.integers(0, len(incomes), len(ids))], None),
        "has_demographics": has,
    })
    prod = pd.DataFrame({"product_id": np.arange(1, n_products + 1, dtype="int64"),
                         "department": np.where(np.arange(n_products) % 3 == 0, "A", "B").astype(object)})
    n_ev = 150
    exp = pd.DataFrame({
        "customer_id": rng.integers(1, len(ids) + 1, n_ev).astype("int64"),
        "event": rng.choice(["campaign_received", "coupon_redeemed"], n_ev),
        "campaign_id": pd.array(rng.integers(1, 8, n_ev), dtype="Int64"),
        "date": (start + pd.to_timedelta(rng.integers(0, days, n_ev), unit="D")),
    })
    return {"fact_transactions": fx, "dim_customer": cust, "dim_product": prod, "customer_exposure": exp}


def with_future(tables: dict, as_of, seed=1) -> dict:
    """Copy of ``tables`` with extra transactions at and after ``as_of`` (also new
    products, big spends, new customers' first purchases) and future exposure events."""
    rng = np.random.default_rng(seed)
    fx = tables["fact_transactions"]
    as_of = T(as_of)
    n = 300
    ts = (as_of + pd.to_timedelta(rng.uniform(0, 20, n), unit="D")).to_numpy()
    ts[:5] = as_of.to_datetime64()  # exactly at the cut-off: excluded too
    cust_ids = tables["dim_customer"]["customer_id"].to_numpy()
    fut = pd.DataFrame({
        "basket_id": (10_000_000 + np.arange(n) // 3).astype("int64"),
        "customer_id": rng.choice(cust_ids, n).astype("int64"),
        "product_id": rng.integers(1, 200, n).astype("int64"),
        "timestamp": ts,
        "quantity": rng.choice([1.0, 5.0, -1.0], n),
        "sales_value": rng.uniform(1, 500, n).round(2),
        "on_promotion": rng.random(n) < 0.9,
    })
    fut["date"] = fut["timestamp"].dt.normalize()
    fut["is_return"] = fut["quantity"] < 0
    out = dict(tables)
    out["fact_transactions"] = pd.concat([fx, fut[fx.columns]], ignore_index=True).sample(frac=1, random_state=3)
    exp = tables["customer_exposure"]
    fut_ev = pd.DataFrame({
        "customer_id": rng.choice(cust_ids, 60).astype("int64"),
        "event": rng.choice(["campaign_received", "coupon_redeemed"], 60),
        "campaign_id": pd.array(rng.integers(50, 60, 60), dtype="Int64"),
        "date": as_of.floor("D") + pd.to_timedelta(rng.integers(0, 10, 60), unit="D"),
    })
    out["customer_exposure"] = pd.concat([exp, fut_ev], ignore_index=True)
    return out


AS_OF = T("2021-03-01")


@pytest.fixture(scope="module")
def tables():
    return random_tables()


# ------------------------------------------------------------ known answers
def test_rfm_known_answer():
    fx = fact([
        (1, 1, 10, "2020-01-01 10:00", 1, 5.0, False),
        (1, 1, 11, "2020-01-01 10:00", 1, 3.0, True),
        (2, 1, 10, "2020-01-05 10:00", 2, 2.0, False),
        (3, 2, 12, "2020-01-08 00:00", 1, 10.0, False),
        (4, 2, 12, "2020-01-09 00:00", -1, -4.0, False),  # a return: not a purchase, reduces spend
        (5, 2, 12, "2020-01-10 00:00", 1, 99.0, False),  # at as_of: excluded
    ])
    r = F.rfm(fx, "2020-01-10").set_index("customer_id")
    assert r.loc[1, "recency_days"] == pytest.approx(4 + 14 / 24)
    assert r.loc[2, "recency_days"] == pytest.approx(2.0)
    assert r["frequency"].to_dict() == {1: 2, 2: 1}
    assert r["monetary"].to_dict() == pytest.approx({1: 10.0, 2: 6.0})
    # two customers: percentile ranks 0.5 and 1.0 -> scores 3 and 5
    assert r["r_score"].to_dict() == {1: 3, 2: 5}
    assert r["f_score"].to_dict() == {1: 5, 2: 3}
    assert r["m_score"].to_dict() == {1: 5, 2: 3}
    assert r["rfm_score"].to_dict() == {1: 13, 2: 11}


def test_quantile_scores_ties_and_range():
    s = F.quantile_scores(pd.Series([1, 1, 1, 1, 2, 3, 4, 5, 6, 7]))
    assert s.between(1, 5).all()
    assert s.iloc[:4].nunique() == 1  # ties share a score
    assert s.is_monotonic_increasing
    assert F.quantile_scores(pd.Series([3.0, 2.0, 1.0]), higher_is_better=False).tolist() == [2, 4, 5]


def test_interpurchase_interval_and_tenure_known_answer():
    fx = fact([
        (1, 7, 1, "2020-02-01 00:00", 1, 1.0, False),
        (1, 7, 2, "2020-02-01 00:00", 1, 1.0, False),  # same basket: one basket
        (2, 7, 1, "2020-02-03 00:00", 1, 1.0, False),
        (3, 7, 1, "2020-02-11 00:00", 1, 1.0, False),
        (4, 8, 1, "2020-02-05 12:00", 1, 1.0, False),
    ])
    t = F.purchase_timing(fx, "2020-02-15").set_index("customer_id")
    assert t.loc[7, "n_baskets"] == 3
    assert t.loc[7, "mean_interpurchase_days"] == pytest.approx(5.0)  # gaps 2 and 8
    assert t.loc[7, "tenure_days"] == pytest.approx(14.0)
    assert t.loc[7, "recency_days"] == pytest.approx(4.0)
    assert np.isnan(t.loc[8, "mean_interpurchase_days"])  # a single basket
    assert t.loc[8, "tenure_days"] == pytest.approx(9.5)


def test_product_repeat_rate_price_and_promo_known_answer():
    fx = fact([
        (1, 1, 5, "2020-01-01", 1, 2.0, True),
        (2, 1, 5, "2020-01-02", 2, 6.0, False),  # customer 1: two baskets -> repeat buyer
        (3, 2, 5, "2020-01-03", 1, 4.0, False),
        (4, 3, 5, "2020-01-04", 1, 4.0, True),
        (4, 3, 5, "2020-01-04", 1, 4.0, False),  # customer 3: two lines, one basket -> not a repeat
        (5, 3, 6, "2020-01-04", 1, 1.0, False),
        (6, 3, 6, "2020-01-06", -1, -1.0, False),  # return: not a purchase line
    ])
    p = F.product_features(fx, "2020-02-01").set_index("product_id")
    assert p.loc[5, "n_buyers"] == 3
    assert p.loc[5, "n_baskets"] == 4
    assert p.loc[5, "repeat_rate"] == pytest.approx(1 / 3)
    assert p.loc[5, "median_unit_price"] == pytest.approx(4.0)  # unit prices 2, 3, 4, 4, 4
    assert p.loc[5, "promo_rate"] == pytest.approx(2 / 5)
    assert p.loc[6, "repeat_rate"] == 0.0
    assert p.loc[6, "price_band"] < p.loc[5, "price_band"]


def test_interaction_stats_known_answer():
    fx = fact([
        (1, 1, 1, "2020-01-01", 1, 1.0, False),
        (2, 1, 1, "2020-01-02", 1, 1.0, False),
        (2, 1, 2, "2020-01-02", 1, 1.0, False),
        (3, 2, 1, "2020-01-03", 1, 1.0, False),
    ])
    s = F.interaction_stats(fx, "2020-02-01")
    assert (s["n_customers"], s["n_products"], s["n_pairs"]) == (2, 2, 3)
    assert s["density"] == pytest.approx(3 / 4)
    assert s["repeat_pair_share"] == pytest.approx(1 / 3)
    assert s["repeat_purchase_share"] == pytest.approx(1 / 4)


def test_popularity_curve_top_share():
    fx = fact([(i, 1, i, "2020-01-01", 1, v, False) for i, v in enumerate([60.0, 20.0, 10.0, 5.0, 5.0], 1)])
    curve = F.popularity_curve(fx, None)
    assert curve["cumulative_sales_share"].iloc[-1] == pytest.approx(1.0)
    assert F.top_share(curve, 0.01) == pytest.approx(0.6)  # at least one product
    assert F.top_share(curve, 0.4) == pytest.approx(0.8)


def test_holiday_uplift_known_answer_counts_empty_days():
    fx = fact([
        (1, 1, 1, "2020-11-17 10:00", 1, 10.0, False),
        (2, 1, 1, "2020-11-19 10:00", 1, 20.0, False),
        (3, 1, 1, "2020-11-20 10:00", 1, 30.0, False),
        (4, 1, 1, "2020-11-21 10:00", 1, 50.0, False),
        (5, 1, 1, "2020-11-22 10:00", 1, 900.0, False),  # after as_of
    ])
    h = F.holiday_uplift(fx, "2020-11-22")
    assert h["n_other_days"] == 3 and h["n_holiday_days"] == 2
    assert h["other_daily_sales"] == pytest.approx(10.0)  # (10 + 0 + 20) / 3
    assert h["holiday_daily_sales"] == pytest.approx(40.0)
    assert h["uplift"] == pytest.approx(3.0)
    dates = pd.DataFrame({"date": pd.date_range("2020-11-17", "2020-11-21"),
                          "is_holiday_period": [False, False, False, True, True]})
    assert F.holiday_uplift(fx, "2020-11-22", dates) == h


def test_department_seasonal_index_known_answer():
    fx = fact([
        (1, 1, 1, "2020-01-10", 1, 30.0, False),  # dept A: all in January
        (2, 1, 2, "2020-01-10", 1, 10.0, False),  # dept B: half / half
        (3, 1, 2, "2020-02-10", 1, 10.0, False),
    ])
    prod = pd.DataFrame({"product_id": [1, 2], "department": ["A", "B"]})
    idx = F.department_seasonal_index(fx, prod, None)
    # overall: Jan 40/50 = 0.8, Feb 0.2
    assert idx.loc["A", 1] == pytest.approx(1 / 0.8)
    assert idx.loc["A", 2] == pytest.approx(0.0)
    assert idx.loc["B", 1] == pytest.approx(0.5 / 0.8)
    assert idx.loc["B", 2] == pytest.approx(0.5 / 0.2)
    assert list(idx.index) == ["A", "B"]  # largest department first


def test_sales_over_time_weeks_start_monday_and_flag_partial():
    fx = fact([
        (1, 1, 1, "2020-01-01 09:00", 1, 5.0, True),  # Wednesday
        (2, 1, 1, "2020-01-07 09:00", 1, 7.0, False),  # next Tuesday
        (3, 1, 1, "2020-01-12 09:00", 1, 1.0, False),  # Sunday
    ])
    w = F.sales_over_time(fx, "2020-01-13", "W")
    assert w["period_start"].tolist() == [T("2019-12-30"), T("2020-01-06")]
    assert w["sales"].tolist() == [5.0, 8.0]
    assert w["n_days"].tolist() == [5, 7] and w["complete"].tolist() == [False, True]
    assert w["promo_sales_share"].tolist() == pytest.approx([1.0, 0.0])
    m = F.sales_over_time(fx, "2020-01-13", "M")
    assert m["period_start"].tolist() == [T("2020-01-01")] and not m["complete"].iloc[0]
    d = F.weekday_profile(fx, "2020-01-13")
    assert d.loc[d.day_name == "Wednesday", "mean_daily_sales"].item() == pytest.approx(2.5)  # 5 and 0
    assert d["sales_share"].sum() == pytest.approx(1.0)


def test_promotion_exposure_counts_and_cutoff():
    fx = fact([
        (1, 1, 1, "2020-01-01", 1, 1.0, True),
        (2, 1, 1, "2020-01-02", 1, 1.0, False),
        (3, 2, 1, "2020-01-02", 1, 1.0, False),
    ])
    exp = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2, 3],
        "event": ["campaign_received", "campaign_received", "campaign_received", "coupon_redeemed",
                  "coupon_redeemed", "campaign_received"],
        "campaign_id": [1, 1, 2, 1, 2, 1],
        "date": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-05", "2020-01-04", "2020-01-10",
                                "2020-01-02"]),
    })
    # as_of mid-day on the 5th: events dated the 5th are not wholly before as_of
    p = F.promotion_exposure(fx, "2020-01-05 12:00", exp).set_index("customer_id")
    assert p.loc[1, "promo_share"] == pytest.approx(0.5)
    assert p.loc[1, "campaigns_received"] == 1 and p.loc[1, "coupons_redeemed"] == 1
    assert p.loc[2, "coupons_redeemed"] == 0
    assert not p.loc[3, "has_history"] and p.loc[3, "promo_band"] == F.NO_HISTORY_BAND
    assert p.loc[1, "promo_band"] == "high" and p.loc[2, "promo_band"] == "low"


def test_promotion_share_without_flag_is_nan():
    fx = fact([(1, 1, 1, "2020-01-01", 1, 1.0, True)]).drop(columns="on_promotion")
    s = F.promotion_share(fx, None)
    assert np.isnan(s["line_share"]) and np.isnan(s["sales_share"])
    assert F.promotion_exposure(fx, None)["promo_band"].iloc[0] in F.EXPOSURE_BANDS


# ---------------------------------------------------------------- leakage
def _frames_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], nan_ok=True), k
    else:
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("as_of", [AS_OF, AS_OF + pd.Timedelta(hours=13)])
def test_future_rows_change_no_feature(tables, as_of):
    fut = with_future(tables, as_of)
    fx, fx2 = tables["fact_transactions"], fut["fact_transactions"]
    prod = tables["dim_product"]
    calls = [
        lambda f, t: F.rfm(f, as_of),
        lambda f, t: F.loyalty_tiers(f, as_of),
        lambda f, t: F.purchase_timing(f, as_of),
        lambda f, t: F.basket_table(f, as_of),
        lambda f, t: F.promotion_exposure(f, as_of, t["customer_exposure"]),
        lambda f, t: F.promotion_share(f, as_of),
        lambda f, t: F.sales_over_time(f, as_of, "W"),
        lambda f, t: F.sales_over_time(f, as_of, "M"),
        lambda f, t: F.weekday_profile(f, as_of),
        lambda f, t: F.department_seasonal_index(f, prod, as_of),
        lambda f, t: F.holiday_uplift(f, as_of),
        lambda f, t: F.product_features(f, as_of),
        lambda f, t: F.popularity_curve(f, as_of),
        lambda f, t: F.interaction_stats(f, as_of),
        lambda f, t: F.customer_features(t, as_of),
    ]
    for call in calls:
        _frames_equal(call(fx, tables), call(fx2, fut))
    a, b = F.customer_features(tables, as_of), F.customer_features(fut, as_of)
    assert a.attrs["tier_thresholds"] == b.attrs["tier_thresholds"]
    assert a.attrs["band_thresholds"] == b.attrs["band_thresholds"]


# ----------------------------------------------------------- monotonicity
def test_loyalty_tiers_monotone_in_rfm(tables):
    cf = F.customer_features(tables, AS_OF)
    h = cf[cf.has_history]
    rank = h["loyalty_tier"].map({t: i for i, t in enumerate(F.TIERS)}).to_numpy()
    assert not np.isnan(rank).any()
    # tier is non-decreasing in the combined score ...
    order = np.argsort(h["rfm_score"].to_numpy(), kind="stable")
    assert np.all(np.diff(rank[order]) >= 0)
    # ... and a customer at least as good on R, F and M is at least as high a tier
    rec, fr, mo = (h[c].to_numpy() for c in ("recency_days", "frequency", "monetary"))
    dominates = (rec[:, None] <= rec[None, :]) & (fr[:, None] >= fr[None, :]) & (mo[:, None] >= mo[None, :])
    assert dominates.sum() > len(h)  # the property is not vacuous
    i, j = dominates.nonzero()
    assert np.all(rank[i] >= rank[j])
    for c in ("r_score", "f_score", "m_score"):
        assert h[c].between(1, 5).all()
    assert set(h["loyalty_tier"]) == set(F.TIERS)


def test_tier_thresholds_are_the_documented_quantiles(tables):
    t = F.loyalty_tiers(tables["fact_transactions"], AS_OF)
    q = np.quantile(t["rfm_score"], F.TIER_QUANTILES)
    assert list(t.attrs["thresholds"].values()) == pytest.approx(q)
    assert (t.loc[t.rfm_score >= q[2], "loyalty_tier"] == "Platinum").all()
    assert (t.loc[t.rfm_score < q[0], "loyalty_tier"] == "Bronze").all()


# ------------------------------------------------------- customer features
def test_customer_features_one_row_per_customer_and_no_history(tables):
    cf = F.customer_features(tables, AS_OF)
    ids = np.sort(tables["dim_customer"]["customer_id"].to_numpy())
    assert cf["customer_id"].tolist() == ids.tolist()
    assert list(cf.columns) == list(F.CUSTOMER_FEATURES)
    none = cf[~cf.has_history]
    assert len(none) >= 5  # the extra customers never bought
    assert none["recency_days"].isna().all() and none["tenure_days"].isna().all()
    assert (none["frequency"] == 0).all() and (none["monetary"] == 0).all() and (none["rfm_score"] == 0).all()
    assert (none["loyalty_tier"] == F.NO_HISTORY_TIER).all() and (none["promo_band"] == F.NO_HISTORY_BAND).all()
    h = cf[cf.has_history]
    assert (h["frequency"] >= 1).all() and h["recency_days"].gt(0).all()
    assert (h["tenure_days"] >= h["recency_days"]).all()
    # everything before the first ever transaction: nobody has history
    early = F.customer_features(tables, "2000-01-01")
    assert not early["has_history"].any() and (early["loyalty_tier"] == F.NO_HISTORY_TIER).all()


def test_write_parquet_atomic(tmp_path):
    df = pd.DataFrame({"a": [1, 2]})
    path = F.write_parquet(df, tmp_path / "sub" / "x.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), df)
    assert [p.name for p in path.parent.iterdir()] == ["x.parquet"]
