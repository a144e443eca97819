"""Tests for helpers.features.segments: coverage, unknown classes, gender, leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.features import customers as F
from helpers.features import segments as S
from tests.features.test_features import AS_OF, random_tables, with_future

CJ_INCOME = ["Under 15K", "15-24K", "25-34K", "35-49K", "50-74K", "75-99K", "100-124K", "125-149K",
             "150-174K", "175-199K", "200-249K", "250K+"]


@pytest.fixture(scope="module")
def tables():
    return random_tables(seed=4)


def one_per_type(seg: pd.DataFrame, customers: pd.DataFrame) -> None:
    ids = set(customers["customer_id"])
    counts = seg.groupby(["segment_type", "customer_id"]).size()
    assert (counts == 1).all()
    for stype in seg["segment_type"].unique():
        assert set(seg.loc[seg.segment_type == stype, "customer_id"]) == ids, stype
    assert seg["segment"].notna().all()
    assert list(seg.columns) == S.COLUMNS


def test_every_customer_exactly_one_segment_per_type(tables):
    seg = S.compute_segments(tables, AS_OF)
    one_per_type(seg, tables["dim_customer"])
    assert S.segment_types(seg) == ["loyalty_tier", "age_band", "income_band", "promo_exposure", "history_length"]
    assert len(seg) == len(tables["dim_customer"]) * 5


def test_every_customer_one_segment_on_synthetic_source(tiny_tables):
    as_of = tiny_tables["fact_transactions"]["timestamp"].quantile(0.7)
    seg = S.compute_segments(tiny_tables, as_of)
    one_per_type(seg, tiny_tables["dim_customer"])


def test_missing_demographics_are_unknown(tables):
    seg = S.wide(S.compute_segments(tables, AS_OF))
    cust = tables["dim_customer"].set_index("customer_id")
    missing = cust.index[cust["age_band"].isna()]
    assert len(missing) > 0
    assert (seg.loc[missing, "age_band"] == S.UNKNOWN).all()
    assert (seg.loc[missing, "income_band"] == S.UNKNOWN).all()
    known = cust.index[cust["age_band"].notna()]
    assert (seg.loc[known, "age_band"] == cust.loc[known, "age_band"]).all()
    assert not (seg.loc[known, "income_band"] == S.UNKNOWN).any()


def test_gender_absent_when_all_null_present_when_known(tables):
    assert "gender" not in S.segment_types(S.compute_segments(tables, AS_OF))
    t = dict(tables)
    cust = tables["dim_customer"].copy()
    cust["gender"] = np.where(cust["has_demographics"], np.where(cust["customer_id"] % 2 == 0, "F", "M"), None)
    t["dim_customer"] = cust
    seg = S.compute_segments(t, AS_OF)
    one_per_type(seg, cust)
    assert S.segment_types(seg)[:3] == ["loyalty_tier", "age_band", "gender"]
    g = S.wide(seg)["gender"]
    assert set(g) == {"F", "M", S.UNKNOWN}
    assert (g.loc[cust.loc[~cust.has_demographics, "customer_id"]] == S.UNKNOWN).all()
    # no gender column at all -> no gender segment
    t["dim_customer"] = cust.drop(columns=["gender"])
    assert "gender" not in S.segment_types(S.compute_segments(t, AS_OF))


def test_income_bands_grouped_into_four():
    cj = S.wide_income_band(pd.Series(CJ_INCOME + [None, "", "n/a"]))
    assert cj.tolist() == ["<35K"] * 3 + ["35-74K"] * 2 + ["75-149K"] * 3 + ["150K+"] * 4 + [S.UNKNOWN] * 3
    syn = S.wide_income_band(pd.Series(["Under 35K", "35-49K", "50-74K", "75-99K", "100-149K", "150K+"]))
    assert syn.tolist() == ["<35K", "35-74K", "35-74K", "75-149K", "75-149K", "150K+"]


def test_history_length_and_loyalty_none_for_customers_without_history(tables):
    seg = S.compute_segments(tables, AS_OF)
    w = S.wide(seg)
    cf = F.customer_features(tables, AS_OF).set_index("customer_id")
    new = cf.index[~cf.has_history]
    assert len(new) >= 5
    assert (w.loc[new, "history_length"] == "new").all()
    assert (w.loc[new, "loyalty_tier"] == F.NO_HISTORY_TIER).all()
    assert (w.loc[new, "promo_exposure"] == F.NO_HISTORY_BAND).all()
    thr = seg.attrs["heavy_min_baskets"]
    h = cf[cf.has_history]
    assert thr == np.median(h["frequency"])
    assert (w.loc[h.index[h.frequency >= thr], "history_length"] == "heavy").all()
    assert (w.loc[h.index[h.frequency < thr], "history_length"] == "light").all()
    assert set(w.loc[h.index, "promo_exposure"]) == set(F.EXPOSURE_BANDS)


@pytest.mark.parametrize("as_of", [AS_OF, AS_OF + pd.Timedelta(hours=7)])
def test_future_rows_change_no_segment(tables, as_of):
    a = S.compute_segments(tables, as_of)
    b = S.compute_segments(with_future(tables, as_of), as_of)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs


def test_segment_sizes_and_order(tables):
    seg = S.compute_segments(tables, AS_OF)
    sizes = S.segment_sizes(seg)
    n = len(tables["dim_customer"])
    assert (sizes.groupby("segment_type")["customers"].sum() == n).all()
    assert sizes.groupby("segment_type")["share"].sum().to_numpy() == pytest.approx(1.0)
    tiers = sizes.loc[sizes.segment_type == "loyalty_tier", "segment"].tolist()
    assert tiers == [t for t in (F.NO_HISTORY_TIER, *F.TIERS) if t in tiers]
    ages = sizes.loc[sizes.segment_type == "age_band", "segment"].tolist()
    assert ages[-1] == S.UNKNOWN and ages[:-1] == sorted(ages[:-1])


def test_demographics_coverage():
    cust = pd.DataFrame({"customer_id": [1, 2, 3, 4], "age_band": ["25-34", None, None, "65+"],
                         "gender": [None] * 4})
    cov = S.demographics_coverage(cust).set_index("attribute")
    assert cov.loc["age_band", "known_share"] == 0.5 and cov.loc["gender", "customers_known"] == 0
