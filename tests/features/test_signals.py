"""Known-answer tests of the timing, season, promotion and sequence signals, and a leak test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.features.cycles import CYCLE_FEATURES, RepeatCycles
from helpers.features.events import PurchaseEvents, group_median
from helpers.features.promotions import promoted_items, promotion_responsiveness
from helpers.features.seasonality import Seasonality
from helpers.features.sequences import Sequences

AS_OF = pd.Timestamp("2024-06-01")


def tx(rows: list[tuple[int, int, int]], quantity: float = 1.0, **extra) -> pd.DataFrame:
    """Transactions from (customer, product, days before AS_OF); one basket per (customer, day)."""
    df = pd.DataFrame(rows, columns=["customer_id", "product_id", "days"])
    df["timestamp"] = AS_OF - pd.to_timedelta(df.pop("days"), unit="D") + pd.Timedelta(hours=10)
    df["basket_id"] = df["customer_id"] * 10_000 + (AS_OF - df["timestamp"]).dt.days
    df["quantity"] = quantity
    for k, v in extra.items():
        df[k] = v
    return df


def events(df, customers=(1, 2, 3, 4), items=(10, 20, 30, 40), as_of=AS_OF):
    return PurchaseEvents.from_window(df, as_of, np.array(list(customers)), np.array(items))


def test_group_median_known_answers():
    g = np.array([0, 0, 0, 1, 1, 3])
    v = np.array([5, 1, 3, 2, 4, 7])
    np.testing.assert_array_equal(group_median(g, v, 4), [3.0, 3.0, np.nan, 7.0])


def test_events_drop_returns_adjustments_and_the_future():
    df = pd.concat([tx([(1, 10, 3)]), tx([(1, 20, 3)], quantity=-1.0), tx([(1, 30, 3)], quantity=0.0),
                    tx([(1, 40, 0)]), tx([(1, 40, -5)])])  # today and the future are not history
    ev = events(df)
    assert list(zip(ev.rows, ev.cols, ev.age)) == [(0, 0, 3)]


def test_a_seven_day_cycle_is_due_after_seven_days():
    # customer 1 buys product 10 every 7 days, last 7 days ago; product 20 once, 3 days ago
    df = tx([(1, 10, 28), (1, 10, 21), (1, 10, 14), (1, 10, 7), (1, 20, 3)])
    f = RepeatCycles.from_events(events(df), min_gaps=1).features(np.array([0, 0, 1]), np.array([0, 1, 0]))
    assert list(f) == list(CYCLE_FEATURES)
    assert f["own_gap"][0] == 7 and f["days_since_last"][0] == 7 and f["cycle_ratio"][0] == pytest.approx(1.0)
    assert f["n_occasions"].tolist() == [4, 1, 0]
    assert np.isnan(f["own_gap"][1]) and np.isnan(f["cycle_ratio"][1])  # one purchase: no cycle of its own
    assert np.isnan(f["days_since_last"][2])  # customer 2 never bought it
    assert f["product_gap"][2] == 7 and f["expected_gap"][2] == 7  # the population's cycle still applies


def test_product_gap_falls_back_to_the_group_and_ratio_compares_customer_to_population():
    df = tx([(1, 10, 20), (1, 10, 10), (2, 10, 30), (2, 10, 10), (3, 20, 30), (3, 20, 26)])
    groups = np.array([0, 0, 1, 1])  # 10 and 20 share a group
    c = RepeatCycles.from_events(events(df), item_groups=groups, min_gaps=2)
    # product 10 has gaps 10 and 20 (two >= min_gaps): median 15; product 20 has one gap: the group's median
    assert c.item_gap[0] == 15 and c.item_gap[1] == pytest.approx(np.median([10, 20, 4]))
    f = c.features(np.array([0]), np.array([0]))
    assert f["gap_ratio"][0] == pytest.approx(10 / 15)


def test_a_durable_is_suppressed_for_its_owner_and_for_owners_of_its_group():
    # product 30 (a grill) is bought once by each of its twelve buyers; product 10 is bought again
    rows = [(c, 30, 40 + c) for c in range(1, 13)] + [(c, 10, d) for c in (1, 2, 3) for d in (30, 20, 10)]
    groups = np.array([0, -1, 1, 1])  # 30 and 40 are both grills
    ev = events(tx(rows), customers=range(1, 14))
    c = RepeatCycles.from_events(ev, item_groups=groups, prior=1.0)
    assert c.item_repeat[2] < 0.1 < c.item_repeat[0]
    mask = c.owned_durable(np.array([0, 0, 0, 12]), np.array([2, 3, 0, 2]))
    # owner of grill 30: suppressed for 30 and the other grill 40, not for the consumable; customer 13 owns none
    assert mask.tolist() == [True, True, False, False]


def test_trend_and_absent_season_on_a_short_history():
    rows = [(c, 10, 5) for c in (1, 2, 3)] + [(c, 20, 100) for c in (1, 2, 3, 4)] + [(4, 10, 100)]
    s = Seasonality.from_events(events(tx(rows)), prior=0.0)
    assert s.trend[0] > 1 > s.trend[1]  # 10 rises in the last 28 days, 20 does not sell there
    assert not s.has_season and np.isnan(s.season).all()


def test_season_reads_the_same_weeks_a_year_earlier():
    rows = [(c, 40, 364 - 7) for c in (1, 2, 3)] + [(c, 20, 200) for c in (1, 2, 3)] + [(4, 20, 400)]
    s = Seasonality.from_events(events(tx(rows)), prior=0.0)
    assert s.has_season
    assert s.season[3] > 1 and s.season[1] == 0  # 40 sold in those weeks last year, 20 did not


def test_promotion_calendar_covers_the_target_window_only():
    promos = pd.DataFrame({"product_id": [10, 20, 30, 99],
                           "start_date": pd.to_datetime(["2024-06-05", "2024-05-01", "2024-06-20", "2024-06-01"]),
                           "end_date": pd.to_datetime(["2024-06-12", "2024-06-01", "2024-07-20", "2024-06-29"])})
    f = promoted_items(promos, np.array([10, 20, 30, 40]), AS_OF, AS_OF + pd.Timedelta(days=28))
    assert f["promoted"].tolist() == [1, 0, 1, 0]  # 20 ended the day before (end_date exclusive), 99 not sold
    assert f["promo_days"].tolist() == pytest.approx([7 / 28, 0, 9 / 28, 0])
    off = promoted_items(promos, np.array([10, 20, 30, 40]), AS_OF, AS_OF + pd.Timedelta(days=28), use_calendar=False)
    assert off["promoted"].sum() == 0


def test_promotion_responsiveness_is_smoothed_and_absent_without_flags():
    df = tx([(1, 10, 3), (1, 20, 4), (2, 10, 5), (2, 20, 6)], on_promotion=[True, True, False, False])
    r = promotion_responsiveness(df, AS_OF, np.array([1, 2, 3]), prior=0.0)
    assert r[0] == 1.0 and r[1] == 0.0 and np.isnan(r[2])  # customer 3 has no lines (prior 0: undefined)
    assert np.isnan(promotion_responsiveness(tx([(1, 10, 3)]), AS_OF, np.array([1]))).all()


def test_a_complement_is_raised_by_a_recent_purchase_and_not_the_other_way():
    # many customers buy 10 (a grill) and 20 (charcoal) a few days later; 30 is bought independently
    rows = []
    for c in range(1, 41):
        start = 200 + c
        rows += [(c, 10, start), (c, 20, start - 3), (c, 30, start + 20)]  # 30 comes before, never after
    rows += [(99, 10, 2)]  # customer 99 bought a grill two days ago
    customers = list(range(1, 41)) + [99]
    ev = events(tx(rows), customers=customers)
    s = Sequences.from_events(ev, window_days=7, prior=1.0)
    assert s.item_lift[0, 1] > 0 and s.item_lift[1, 0] == 0  # directional
    f = s.features(np.array([40, 0]), np.array([[1, 2], [1, 2]]))
    assert f["complement"][0, 0] > 0 and f["complement"][0, 1] == 0
    assert f["complement"][1].tolist() == [0, 0]  # customer 1 bought nothing in the last 7 days


def _world(seed: int):
    rng = np.random.default_rng(seed)
    n = 400
    df = pd.DataFrame({"customer_id": rng.integers(1, 30, n), "product_id": rng.choice([10, 20, 30, 40], n),
                       "days": rng.integers(-30, 400, n)})
    out = tx(list(df.itertuples(index=False, name=None)), on_promotion=rng.random(n) < 0.3)
    return out


def _all_signals(df: pd.DataFrame) -> dict[str, np.ndarray]:
    customers, items, groups = np.arange(1, 30), np.array([10, 20, 30, 40]), np.array([0, 0, 1, 1])
    ev = PurchaseEvents.from_window(df, AS_OF, customers, items)
    rows = np.repeat(np.arange(len(customers)), 4)
    cols = np.tile(np.arange(4), len(customers))
    out = RepeatCycles.from_events(ev, groups).features(rows, cols)
    out |= Seasonality.from_events(ev, groups).features(cols)
    out |= Sequences.from_events(ev, groups, window_days=10).features(rows, cols.reshape(len(customers), 4))
    out["responsiveness"] = promotion_responsiveness(df, AS_OF, customers)
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.integers(0, 40), qty=st.floats(-3, 50))
def test_no_signal_reads_the_target_window(seed, shift, qty):
    """Changing, adding or removing any line at or after the cut-off changes no feature."""
    df = _world(seed)
    before = _all_signals(df)
    future = df["timestamp"] >= AS_OF
    changed = df.copy()
    changed.loc[future, "timestamp"] += pd.Timedelta(days=shift)
    changed.loc[future, "quantity"] = qty
    changed.loc[future, "on_promotion"] = ~changed.loc[future, "on_promotion"]
    extra = tx([(5, 30, -3), (6, 10, -1)], on_promotion=True)  # new lines after the cut-off
    after = _all_signals(pd.concat([changed, extra], ignore_index=True))
    dropped = _all_signals(df.loc[~future])
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
        np.testing.assert_array_equal(before[name], dropped[name], err_msg=name)


def test_sequence_features_are_the_same_with_repeated_rows():
    rows = [(c, 10, 200 + c) for c in range(1, 30)] + [(c, 20, 197 + c) for c in range(1, 30)] + [(5, 10, 2)]
    s = Sequences.from_events(events(tx(rows), customers=range(1, 30)), window_days=7, prior=1.0)
    cands = np.array([[1, 2, 3], [0, 1, 2]])
    once = s.features(np.array([4, 7]), cands)
    slots = s.features(np.array([4, 4, 4, 7, 7, 7]), cands.reshape(-1, 1))  # one row per candidate slot
    for k in once:
        np.testing.assert_array_equal(once[k].ravel(), slots[k].ravel(), err_msg=k)
    assert once["complement"][0, 0] > 0
