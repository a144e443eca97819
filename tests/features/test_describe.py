"""Known-answer tests of the EDA and segment aggregates."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from helpers.features import describe


def test_weekly_summary():
    weeks = pd.DataFrame({"period_start": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15"]),
                          "sales": [10.0, 30.0, 20.0], "customers": [1, 3, 2]})
    s = describe.weekly_summary(weeks)
    assert s["eda_n_weeks"] == 3 and s["eda_weekly_mean"] == 20.0 and s["eda_weekly_peak"] == "2024-01-08"
    assert s["eda_weekly_cv"] == pytest.approx(0.5) and s["eda_weekly_customers_mean"] == 2.0


def test_basket_summary():
    b = pd.DataFrame({"customer_id": [1, 1, 2], "n_items": [1, 3, 5], "value": [2.0, 4.0, 9.0]})
    s = describe.basket_summary(b)
    assert s["eda_basket_items_median"] == 3 and s["eda_basket_single_share"] == pytest.approx(1 / 3)
    assert s["eda_baskets_per_customer"] == 1.5


def _history():
    return pd.DataFrame({"customer_id": [1, 2, 3, 4], "loyalty_tier": ["Gold", "Bronze", "Bronze", "Silver"],
                         "rfm_score": [12, 4, 5, 8], "recency_days": [1.0, 20.0, 10.0, 5.0],
                         "frequency": [10, 1, 2, 4], "monetary": [100.0, 10.0, 30.0, 60.0],
                         "promo_band": ["high", "low", "low", "medium"], "promo_share": [0.5, 0.1, 0.3, 0.2],
                         "campaigns_received": [2, 0, 0, 1], "coupons_redeemed": [1, 0, 0, 0]})


def test_tier_table_by_rank_with_shares():
    t = describe.tier_table(_history())
    assert list(t.index) == ["Bronze", "Silver", "Gold"]
    assert t["customers"].tolist() == [2, 1, 1] and t["customer_share"].tolist() == [0.5, 0.25, 0.25]
    assert t.loc["Bronze", "spend_share"] == pytest.approx(0.2)
    s = describe.tier_summary(t, {"Silver": 6, "Gold": 10, "Platinum": 14})
    assert s["fs_top_tier"] == "Gold" and s["fs_bronze_spend_share"] == pytest.approx(0.2)


def test_promotion_bands_low_to_high():
    b = describe.promotion_bands(_history())
    assert list(b.index) == ["low", "medium", "high"] and b.loc["low", "promo_share"] == pytest.approx(0.2)
    s = describe.promotion_band_summary(b, _history())
    assert s["fs_promo_share_high"] == 0.5 and s["fs_customers_with_campaign"] == 0.5


def test_behaviour_ratios_rows_in_natural_order():
    h = _history().assign(avg_basket_value=1.0, n_products=2)
    segs = pd.DataFrame({"customer_id": [1, 2, 3, 4] * 1, "segment_type": "promo_exposure",
                         "segment": ["high", "low", "low", "medium"]})
    r = describe.behaviour_ratios(h, segs)
    assert list(r.index) == ["promo_exposure: low", "promo_exposure: medium", "promo_exposure: high"]
    assert r.loc["promo_exposure: high", "Promotion\nshare"] == pytest.approx(0.5 / 0.275)
    assert math.isnan(describe.behaviour_summary(r)["fs_heavy_frequency_ratio"])


def test_season_summary_and_month_names():
    season = describe.month_names(pd.DataFrame({1: [1.0, 2.5], 12: [0.5, 1.0]}, index=["A", "B"]))
    assert list(season.columns) == ["Jan", "Dec"]
    s = describe.season_summary(season)
    assert (s["eda_season_max_department"], s["eda_season_max_month"], s["eda_season_max_index"]) == ("B", "Jan", 2.5)
