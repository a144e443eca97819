"""The shared recommender plumbing: top-k selection, fit data, recommend()."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers.models import Recommender, make_fit_data, map_blocks, ranking, top_k


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 25)),
              elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, -np.inf])), st.integers(1, 30))
def test_top_k_equals_stable_sort_with_ties_by_lower_index(scores, k):
    idx, val = top_k(scores, k)
    ref = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, scores.shape[1])]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_array_equal(val, np.take_along_axis(scores, ref, axis=1))


class _Fixed(Recommender):
    def __init__(self, scores):
        self.scores = np.asarray(scores, np.float32)

    def fit(self, data):
        self.data = data
        return self

    def score(self, rows):
        return np.where(rows[:, None] >= 0, self.scores[np.maximum(rows, 0)], 0.0)


def _fit():
    tx = pd.DataFrame({
        "basket_id": [1, 1, 2, 3, 4], "customer_id": [10, 10, 20, 20, 30], "product_id": [100, 101, 101, 102, 103],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-03", "2024-02-01"]),
        "quantity": [1.0, 2.0, 1.0, -1.0, 1.0],
    })
    cust = pd.DataFrame({"customer_id": [30, 10, 20, 40]})
    prod = pd.DataFrame({"product_id": [100, 101, 102, 103]})
    return make_fit_data(tx, cust, prod, "2024-01-15")


def test_make_fit_data_window_and_returns():
    fd = _fit()
    np.testing.assert_array_equal(fd.customer_ids, [10, 20, 30, 40])
    np.testing.assert_array_equal(fd.item_ids, [100, 101])  # the return (102) and the future (103) are out
    assert fd.user_items.toarray().tolist() == [[1, 1], [0, 1], [0, 0], [0, 0]]
    np.testing.assert_array_equal(fd.customer_rows([20, 99, 10]), [1, -1, 0])


def test_recommend_excludes_history_and_serves_unknown_customers():
    fd = _fit()
    model = _Fixed([[5, 1], [5, 1], [0, 0], [0, 0]]).fit(fd)
    ids, scores = model.recommend([10, 20, 99], k=2, exclude=True)
    assert ids.shape == (3, 2)
    assert not np.isfinite(scores[0]).any()  # customer 10 bought both
    assert ids[1, 0] == 100 and not np.isfinite(scores[1, 1])
    assert np.isfinite(scores[2]).all()  # unknown id: cold-start row, nothing excluded


def test_top_k_block_path_matches_stable_sort_on_wide_rows():
    rng = np.random.default_rng(0)
    for trial in range(20):
        m = int(rng.integers(8 * 128 * 3, 8 * 128 * 6))
        s = rng.integers(0, 30 if trial % 2 else 10_000, (7, m)).astype(np.float32)
        if trial % 3 == 0:
            s[rng.random(s.shape) < 0.5] = -np.inf
        if trial % 4 == 0:
            s[0] = 0.0  # a row of ties only
            s[1, :] = -np.inf
        for k in (1, 3, 5, 8, 12):  # 8 and 12: the block path from 3 * 128 * k columns
            idx, val = top_k(s, k)
            ref = np.argsort(-s, axis=1, kind="stable")[:, :k]
            np.testing.assert_array_equal(idx, ref)
            np.testing.assert_array_equal(top_k(np.asfortranarray(s), k)[0], ref)  # column-major input


def test_map_blocks_covers_every_row_once_and_reraises():
    seen = np.zeros(103, dtype=np.int64)

    def fn(a, b):
        seen[a:b] += 1

    map_blocks(fn, 103, 10, threads=2)
    assert (seen == 1).all()
    map_blocks(fn, 0, 10, threads=2)  # nothing to do

    def bad(a, b):
        if a == 50:
            raise ValueError("block 50")

    try:
        map_blocks(bad, 103, 10, threads=2)
    except ValueError as e:
        assert "block 50" in str(e)
    else:
        raise AssertionError("a failing block must raise")


def test_argmax_passes_equal_the_partition_with_ties_infinities_and_nan():
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        s = rng.integers(0, 6, (400, 40)).astype(dtype)  # many ties
        s[rng.random(s.shape) < 0.3] = -np.inf
        s[rng.random(s.shape) < 0.02] = np.inf
        s[5] = -np.inf  # nothing finite
        s[6, :3] = -0.0
        s[7, 10] = np.nan  # NaN rows go to the partition
        s[8] = np.nan
        for k in (1, 2, 5, 10, 16):
            fast = ranking._top_k_argmax(s, k)
            want = ranking._top_k_partition(s, k)
            np.testing.assert_array_equal(fast[0], want[0])
            np.testing.assert_array_equal(fast[1], want[1])
            assert ranking._top_k_exact(s, k)[0].tolist() == want[0].tolist()
        finite = ~np.isnan(s).any(axis=1)
        np.testing.assert_array_equal(ranking._top_k_argmax(s, 5)[0][finite],
                                      np.argsort(-s[finite], axis=1, kind="stable")[:, :5])
    ints = rng.integers(0, 9, (50, 30))
    np.testing.assert_array_equal(top_k(ints, 4)[0], np.argsort(-ints, axis=1, kind="stable")[:, :4])


def test_user_items_count_distinct_baskets_per_pair_like_a_groupby():
    """Random lines (repeated lines of a basket, returns, customers without purchases): the
    matrix holds, per (customer, item), the number of distinct baskets with a purchase."""
    rng = np.random.default_rng(3)
    n = 5_000
    tx = pd.DataFrame({"customer_id": rng.integers(0, 60, n) * 7, "product_id": rng.integers(0, 90, n) * 11 + 5,
                       "basket_id": rng.integers(0, 400, n), "quantity": rng.choice([1.0, 2.0, 0.0, -1.0], n),
                       "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="D")})
    cust = pd.DataFrame({"customer_id": np.arange(70) * 7})  # ten without lines
    fd = make_fit_data(tx, cust, pd.DataFrame({"product_id": np.arange(90) * 11 + 5}), "2024-01-25")
    buys = tx[(tx["timestamp"] < "2024-01-25") & (tx["quantity"] > 0)]
    expected = buys.groupby(["customer_id", "product_id"])["basket_id"].nunique()
    np.testing.assert_array_equal(fd.item_ids, np.sort(buys["product_id"].unique()))
    ui = fd.user_items.tocoo()
    got = pd.Series(ui.data, index=pd.MultiIndex.from_arrays([fd.customer_ids[ui.row], fd.item_ids[ui.col]]))
    pd.testing.assert_series_equal(got.sort_index(), expected.astype(np.float32).sort_index(), check_names=False)
    assert fd.user_items.has_canonical_format and fd.user_items.shape == (70, len(fd.item_ids))
