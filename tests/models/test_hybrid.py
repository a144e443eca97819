"""The hybrid: normalization, business rules, history-dependent weights, every customer served."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.data.split import temporal_split
from helpers.models import Recommender, make_fit_data
from helpers.models.buy_again import BuyAgain
from helpers.models.hybrid import Hybrid, Rules, diversify, minmax_at, minmax_rows
from helpers.models.popularity import GlobalPopularity
from helpers.tuning.stages import make_stage, score_model


def test_minmax_rows_known_answer():
    s = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0], [0.0, -np.inf, 4.0]], dtype=np.float32)
    out = minmax_rows(s)
    np.testing.assert_allclose(out[0], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(out[1], [0.0, 0.0, 0.0])
    assert out[2, 0] == 0.0 and out[2, 2] == 1.0 and out[2, 1] == -np.inf


def test_diversify_caps_items_per_category():
    scores = np.array([[9, 8, 7, 6, 5, 4]], dtype=np.float32)
    cats = np.array([0, 0, 0, 1, 1, 2])
    idx, val = diversify(scores, cats, k=4, max_per_category=2)
    assert idx.tolist() == [[0, 1, 3, 4]]  # the third item of category 0 is skipped
    idx, _ = diversify(scores, cats, k=4, max_per_category=1)
    assert idx[0, :3].tolist() == [0, 3, 5] and not np.isfinite(_[0, 3])  # only 3 categories exist


class _Const(Recommender):
    def __init__(self, vec):
        self.vec = np.asarray(vec, np.float32)

    def fit(self, data):
        self.data = data
        return self

    def score(self, rows):
        return np.tile(self.vec, (len(rows), 1))


def _tiny():
    tx = pd.DataFrame({
        "basket_id": [1, 2, 3, 4, 5], "customer_id": [1, 1, 2, 3, 3], "product_id": [10, 11, 12, 13, 13],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-03-01", "2024-01-02", "2024-02-20"]),
        "quantity": [1.0] * 5, "sales_value": [1.0] * 5,
    })
    prod = pd.DataFrame({"product_id": [10, 11, 12, 13], "category": ["a", "a", "b", "b"],
                         "margin": [0.1, 0.5, np.nan, 0.2]})
    promo = pd.DataFrame({"product_id": [12], "start_date": pd.to_datetime(["2024-03-10"]),
                          "end_date": pd.to_datetime(["2024-03-20"])})
    return make_fit_data(tx, pd.DataFrame({"customer_id": [1, 2, 3, 4]}), prod, "2024-03-15", promotions=promo)


def test_weights_blend_and_rules():
    fd = _tiny()
    a, b = _Const([4, 3, 2, 1]).fit(fd), _Const([1, 2, 3, 4]).fit(fd)
    only_a = Hybrid({"a": a, "b": b}, {"a": 1.0, "b": 0.0}).fit(fd)
    assert only_a.recommend([1], k=4)[0][0].tolist() == [10, 11, 12, 13]
    only_b = Hybrid({"a": a, "b": b}, {"a": 0.0, "b": 1.0}).fit(fd)
    assert only_b.recommend([1], k=1)[0][0, 0] == 13
    # availability: only products sold in the last 30 days before 2024-03-15 (11, 12, 13)
    avail = Hybrid({"a": a}, {"a": 1.0}, Rules(availability_days=30)).fit(fd)
    ids, sc = avail.recommend([1], k=4)
    assert 10 not in ids[0][np.isfinite(sc[0])]
    # promotion active on as_of boosts product 12 over 11
    flat = _Const([0.0, 1.0, 1.0, 0.0]).fit(fd)
    boosted = Hybrid({"f": flat}, {"f": 1.0}, Rules(promo_boost=0.5)).fit(fd)
    assert boosted.recommend([1], k=1)[0][0, 0] == 12
    # margin-aware: 11 (margin .5) beats 10 (margin .1) at equal score
    eq = _Const([1.0, 1.0, 0.0, 0.0]).fit(fd)
    margin = Hybrid({"e": eq}, {"e": 1.0}, Rules(margin_weight=1.0)).fit(fd)
    assert margin.recommend([1], k=1)[0][0, 0] == 11


def test_history_dependent_weights():
    fd = _tiny()
    a, b = _Const([4, 3, 2, 1]).fit(fd), _Const([1, 2, 3, 4]).fit(fd)
    h = Hybrid({"a": a, "b": b}, {"light": {"a": 1.0}, "heavy": {"b": 1.0}}, light_max_baskets=1).fit(fd)
    ids, _ = h.recommend([2, 3], k=1)  # customer 2: one basket (light); customer 3: two baskets (heavy)
    assert ids[:, 0].tolist() == [10, 13]


@pytest.fixture(scope="module")
def tiny_stage(tiny_tables):
    split = temporal_split(tiny_tables["fact_transactions"], test_days=14, valid_days=14)
    return make_stage(tiny_tables, split, "valid")


def test_hybrid_serves_every_customer_including_cold_start(tiny_stage, tiny_tables):
    fd = tiny_stage.fit
    comps = {"pop": GlobalPopularity().fit(fd), "buy": BuyAgain().fit(fd)}
    h = Hybrid(comps, {"light": {"pop": 0.7, "buy": 0.3}, "heavy": {"pop": 0.2, "buy": 0.8}}).fit(fd)
    everyone = np.r_[tiny_tables["dim_customer"]["customer_id"].to_numpy(), [10**9]]
    ids, scores = h.recommend(everyone, k=10)
    assert ids.shape == (len(everyone), 10) and np.isfinite(scores).all()
    assert all(len(set(r)) == 10 for r in ids.tolist())
    assert score_model(h, tiny_stage, ("all",))["all"] >= 0


def test_minmax_rows_edge_rows_match_reference():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(6, 50)).astype(np.float32)
    s[1, ::3] = -np.inf          # excluded items
    s[2] = -np.inf               # nothing left
    s[3] = 2.5                   # constant
    s[4, 5] = np.nan             # invalid value
    s[5, :49] = -np.inf          # a single finite value
    out = minmax_rows(s)
    for i, row in enumerate(s):
        fin = np.isfinite(row)
        want = np.full(row.shape, -np.inf, dtype=np.float32)
        if fin.any():
            lo, hi = row[fin].min(), row[fin].max()
            want[fin] = (row[fin] - lo) / (hi - lo) if hi > lo else 0.0
        np.testing.assert_allclose(out[i], want, rtol=1e-6, atol=1e-7, err_msg=str(i))
    assert out.dtype == np.float32 and not np.isnan(out).any()
    assert ((out >= 0) | (out == -np.inf)).all()  # what the blend's max(x, 0) relies on
    s[0, 7] = np.inf  # an infinite score
    cols = rng.integers(0, 50, size=(6, 12))
    at = minmax_at(s, cols)  # the explanations' gather, without normalizing every column
    np.testing.assert_array_equal(at, np.take_along_axis(minmax_rows(s), cols, axis=1))
    assert at.dtype == np.float32 and minmax_at(s[:0], cols[:0]).shape == (0, 12)


def test_minmax_rows_block_by_block_and_in_place_only_on_a_writable_array():
    rng = np.random.default_rng(4)
    s = rng.normal(size=(100, 40_000)).astype(np.float32)  # 8-row blocks of the 1 MiB budget
    s[3, ::7] = -np.inf
    s[50, 2] = np.nan
    s[97] = 1.0
    before = s.copy()
    ref = minmax_rows(s)
    np.testing.assert_array_equal(s, before)  # not in place unless asked
    lo = np.where(np.isfinite(s), s, np.inf).min(axis=1, keepdims=True)
    hi = np.where(np.isfinite(s), s, -np.inf).max(axis=1, keepdims=True)
    want = np.where(np.isfinite(s), (s - lo) / np.where(hi > lo, hi - lo, 1.0), -np.inf)
    np.testing.assert_allclose(ref, want, rtol=1e-5, atol=1e-6)
    own = s.copy()
    out = minmax_rows(own, inplace=True)
    assert out is own
    np.testing.assert_array_equal(out, ref)
    shared = s.copy()
    shared.flags.writeable = False  # e.g. the export's memoized block
    out = minmax_rows(shared, inplace=True)
    assert out is not shared
    np.testing.assert_array_equal(shared, before)
    np.testing.assert_array_equal(out, ref)
