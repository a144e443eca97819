"""Known-answer tests of the baselines: popularity, segmented popularity, buy-again,
EASE and item-kNN, on tiny hand-made data."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers.evaluation.metrics import Split
from helpers.models.base import make_fit_data
from helpers.models.buy_again import BuyAgain, decayed_history, repeat_rate
from helpers.models.ease import EASE
from helpers.models.itemknn import ItemKNN
from helpers.models.popularity import GlobalPopularity, SegmentedPopularity, popularity_prior
from helpers.tuning.grids import GRIDS, candidates
from helpers.tuning.stages import expand_grid, grid_search, make_stage

T0 = pd.Timestamp("2020-01-01")
AS_OF = T0 + pd.Timedelta(days=60)
UNKNOWN = 999  # a customer id outside dim_customer


def frame(lines) -> pd.DataFrame:
    """``(basket, customer, product, day[, quantity])`` tuples -> a transactions frame."""
    rows = [tuple(x) + (1.0,) * (5 - len(x)) for x in lines]
    df = pd.DataFrame(rows, columns=["basket_id", "customer_id", "product_id", "day", "quantity"])
    df["timestamp"] = T0 + pd.to_timedelta(df.pop("day"), unit="D")
    return df.astype({"basket_id": np.int64, "customer_id": np.int64, "product_id": np.int64})


def fit_data(lines, customers=None, segments=None, as_of=AS_OF):
    tx = frame(lines)
    ids = sorted(set(tx["customer_id"]) | set(customers or []))
    cust = pd.DataFrame({"customer_id": np.array(ids, dtype=np.int64)})
    prods = pd.DataFrame({"product_id": np.unique(tx["product_id"])})
    return make_fit_data(tx, cust, prods, as_of, segments=segments)


def seg_frame(mapping: dict, segment_type="loyalty_tier") -> pd.DataFrame:
    return pd.DataFrame({"customer_id": np.array(list(mapping), dtype=np.int64),
                         "segment_type": segment_type, "segment": list(mapping.values())})


def first(model, customer_ids, k=1, exclude=None):
    ids, _ = model.recommend(customer_ids, k=k, exclude=exclude)
    return ids[:, 0] if k == 1 else ids


# ------------------------------------------------------------- popularity
# product 10: 3 distinct buyers once each (old); 20: one buyer, 6 baskets;
# 30: 2 buyers in the last week; 40: 2 buyers, 1 basket each (old); 50: 2 buyers, 3 baskets (old)
POP_LINES = [
    (1, 1, 10, 1), (2, 2, 10, 2), (3, 3, 10, 3),
    *[(10 + b, 4, 20, 5 + b) for b in range(6)],
    (30, 5, 30, 57), (31, 6, 30, 58),
    (40, 1, 40, 4), (41, 2, 40, 4),
    (50, 3, 50, 6), (51, 4, 50, 7), (52, 4, 50, 8),
]


def test_global_popularity_counts_distinct_buyers_not_baskets():
    data = fit_data(POP_LINES)
    ids, scores = GlobalPopularity().fit(data).recommend([1], k=5)
    assert ids[0, 0] == 10  # 3 buyers beats 6 baskets of one buyer
    # 30, 40, 50 have 2 buyers each: 50 has more baskets -> first; 30 and 40 tie -> lower index (30)
    assert list(ids[0, 1:4]) == [50, 30, 40]
    assert ids[0, 4] == 20
    assert np.all(np.diff(scores[0]) <= 0)


def test_recent_popularity_uses_window_and_whole_window_tie_break():
    data = fit_data(POP_LINES)
    model = GlobalPopularity(window_days=7).fit(data)
    ids, _ = model.recommend([1], k=5)
    assert ids[0, 0] == 30  # the only product bought in the last 7 days
    assert list(ids[0, 1:]) == [10, 50, 40, 20]  # unsold in the window: whole-window order
    assert model.buyers_[data.item_columns([30])[0]] == 2


def test_nan_window_means_whole_window():  # a grid-search table stores None as NaN
    data = fit_data(POP_LINES)
    assert GlobalPopularity(window_days=float("nan")).window_days is None
    assert np.array_equal(GlobalPopularity(float("nan")).fit(data).recommend([1], k=5)[0],
                          GlobalPopularity().fit(data).recommend([1], k=5)[0])


def test_popularity_prior_in_unit_interval_and_strictly_ordered():
    data = fit_data(POP_LINES)
    prior = popularity_prior(data)
    assert np.all((prior >= 0) & (prior < 1))
    col = {p: c for c, p in enumerate(data.item_ids)}
    assert prior[col[10]] > prior[col[50]] > prior[col[40]] > prior[col[20]]


def test_global_popularity_same_list_for_everyone_and_deterministic():
    data = fit_data(POP_LINES, customers=[7])
    a = GlobalPopularity().fit(data).recommend([1, 7, UNKNOWN], k=3)[0]
    b = GlobalPopularity().fit(data).recommend([1, 7, UNKNOWN], k=3)[0]
    assert np.array_equal(a, b) and (a == a[0]).all()


# --------------------------------------------------- segmented popularity
# segment "gold" (customers 1-3) buys 100, segment "silver" (4-6) buys 200;
# 300 is bought by everyone in the small segment and by the unknowns, making it
# the global favourite.
SEG_LINES = [
    (1, 1, 100, 1), (2, 2, 100, 1), (3, 3, 100, 1),
    (4, 4, 200, 1), (5, 5, 200, 1), (6, 6, 200, 1),
    (7, 7, 300, 1), (8, 8, 300, 1), (9, 9, 300, 1), (10, 10, 300, 1),
    (11, 1, 300, 2), (12, 4, 300, 2),
]
SEGS = {1: "gold", 2: "gold", 3: "gold", 4: "silver", 5: "silver", 6: "silver",
        7: "bronze", 8: "unknown", 9: None}  # 10 has no row


def seg_data(**kw):
    return fit_data(SEG_LINES, customers=[11], segments=seg_frame(SEGS), **kw)


def test_segmented_popularity_differs_per_segment_and_falls_back():
    model = SegmentedPopularity("loyalty_tier", min_segment_size=2).fit(seg_data())
    top = dict(zip([1, 2, 4, 5, 7, 8, 9, 10, 11, UNKNOWN],
                   first(model, [1, 2, 4, 5, 7, 8, 9, 10, 11, UNKNOWN])))
    assert top[1] == top[2] == 100 and top[4] == top[5] == 200
    # bronze (1 customer < 2), 'unknown', null, no segment row, no history, unknown id: global
    assert {top[c] for c in (7, 8, 9, 10, 11, UNKNOWN)} == {300}
    assert model.segment_sizes_ == {"bronze": 1, "gold": 3, "silver": 3}
    assert model.segments_ == ["gold", "silver"]


def test_segmented_popularity_min_size_and_blend():
    data = seg_data()
    big = SegmentedPopularity("loyalty_tier", min_segment_size=4).fit(data)
    assert set(first(big, [1, 4])) == {300}  # every segment too small: global
    blended = SegmentedPopularity("loyalty_tier", min_segment_size=2, blend=1.0).fit(data)
    assert set(first(blended, [1, 4])) == {300}  # blend=1: global share only
    half = SegmentedPopularity("loyalty_tier", min_segment_size=2, blend=0.5).fit(data)
    # gold: share 100 = 1, share 300 = 1/3; global 100 = 3/10, 300 = 6/10 -> 100 wins at blend .5
    assert first(half, [1])[0] == 100
    with pytest.raises(ValueError):
        SegmentedPopularity(blend=1.5)


def test_segmented_popularity_recent_window():
    lines = SEG_LINES + [(20, 1, 400, 58), (21, 2, 400, 59), (22, 4, 500, 58), (23, 5, 500, 59),
                         (24, 6, 500, 59)]
    data = fit_data(lines, segments=seg_frame(SEGS))
    model = SegmentedPopularity("loyalty_tier", min_segment_size=2, window_days=7).fit(data)
    assert list(first(model, [1, 4, 7])) == [400, 500, 500]  # gold, silver, global (recent)
    assert model.segment_sizes_ == {"bronze": 0, "gold": 2, "silver": 3}  # active in the window
    assert first(SegmentedPopularity("loyalty_tier", min_segment_size=3, window_days=7).fit(data),
                 [1])[0] == 500  # gold has 2 recent buyers < 3: global


def test_segmented_popularity_without_segments_or_type_is_global():
    data = fit_data(SEG_LINES)
    g = GlobalPopularity().fit(data).recommend([1, 4, 7], k=3)[0]
    s = SegmentedPopularity().fit(data).recommend([1, 4, 7], k=3)[0]
    assert np.array_equal(g, s)
    other = SegmentedPopularity("age_band", min_segment_size=1).fit(seg_data())  # type absent
    assert np.array_equal(other.recommend([1, 4, 7], k=3)[0], g)


# --------------------------------------------------------------- buy again
# customer 1: product 10 in 3 baskets 50-52 days ago, product 20 in one basket yesterday
BA_LINES = [
    (1, 1, 10, 8), (2, 1, 10, 9), (3, 1, 10, 10), (4, 1, 20, 59),
    (4, 1, 20, 59),  # repeated line of the same basket: counts once
    (5, 2, 30, 1), (6, 3, 30, 2), (7, 4, 30, 3), (8, 4, 40, 3),
]


def test_buy_again_recent_product_first_with_short_half_life():
    data = fit_data(BA_LINES)
    assert first(BuyAgain(half_life_days=7).fit(data), [1])[0] == 20
    assert first(BuyAgain(half_life_days=1000).fit(data), [1])[0] == 10  # ~3 baskets vs ~1


def test_buy_again_decay_formula_and_distinct_baskets():
    data = fit_data(BA_LINES)
    m = decayed_history(data, 30.0).toarray()
    r, c10, c20 = data.customer_rows([1])[0], *data.item_columns([10, 20])
    expected = sum(np.exp(-np.log(2) * age / 30.0) for age in (52, 51, 50))
    assert m[r, c10] == pytest.approx(expected)
    assert m[r, c20] == pytest.approx(np.exp(-np.log(2) * 1 / 30.0))


def test_buy_again_half_lives_share_the_window_purchases():
    """Fits of one window reuse its distinct purchases; each half-life still gets its own
    weights, equal to a fit on a fresh copy of the window."""
    from dataclasses import replace

    data = fit_data(BA_LINES)
    short = BuyAgain(half_life_days=7).fit(data)
    shared = data.extras["basket_purchases"]
    long = BuyAgain(half_life_days=1000, repeat_beta=1.0).fit(data)
    assert data.extras["basket_purchases"] is shared
    assert not any(a.flags.writeable for a in shared)  # nobody can change them under another fit
    rows = data.customer_rows([1, 2, 3, 4])
    for model, kwargs in ((short, dict(half_life_days=7)), (long, dict(half_life_days=1000, repeat_beta=1.0))):
        alone = BuyAgain(**kwargs).fit(replace(data, extras={}))
        np.testing.assert_array_equal(alone.score(rows), model.score(rows))
    assert first(short, [1])[0] == 20 and first(long, [1])[0] == 10


def test_repeat_rate_known_answer_and_habitual_product_first():
    # (basket, customer, product, day): customer 2 rebuys product 10 in 5 baskets; product 20 is
    # bought once by each of 4 customers; customer 1 bought 10 on day 40 and 20 on day 50
    lines = [(b, 2, 10, 10 + b) for b in range(1, 6)] + [(6, 1, 10, 40), (7, 1, 20, 50), (8, 3, 20, 30),
                                                        (9, 4, 20, 31), (10, 5, 20, 32)]
    data = fit_data(lines)
    c10, c20 = data.item_columns([10, 20])
    raw = repeat_rate(data.user_items, prior=0.0)
    assert raw[c10] == pytest.approx(4 / 6) and raw[c20] == pytest.approx(1e-6)  # 6 baskets, 2 buyers
    mean = (10 - 6) / 10
    smooth = repeat_rate(data.user_items, prior=2.0)
    assert smooth[c10] == pytest.approx((4 + 2 * mean) / 8) and smooth[c20] == pytest.approx(2 * mean / 6)
    # plain buy-again: the more recent product; with the repeat weight: the habitual one
    assert first(BuyAgain(half_life_days=30.0).fit(data), [1])[0] == 20
    assert first(BuyAgain(half_life_days=30.0, repeat_beta=1.0, repeat_prior=2.0).fit(data), [1])[0] == 10


def test_buy_again_backfill_never_outranks_history():
    data = fit_data(BA_LINES + [(9, 5, 40, 0)])  # customer 5: one very old basket
    model = BuyAgain(half_life_days=3, backfill_weight=1e-3).fit(data)
    ids, scores = model.recommend([5, 1], k=4)
    assert ids[0, 0] == 40 and list(ids[0, 1:]) == [30, 10, 20]  # then by popularity
    assert set(ids[1, :2]) == {10, 20} and np.all(scores[1, :2] > scores[1, 2:].max())
    # cold start and no-history customers: global popularity
    pop = GlobalPopularity().fit(data).recommend([UNKNOWN], k=4)[0]
    assert np.array_equal(model.recommend([UNKNOWN], k=4)[0], pop)


# ---------------------------------------------------------- EASE / item-kNN
def pair_lines():
    """Products 1 and 2 always bought together (10 customers); 3 and 4 bought alone by
    many others, so they are the most popular; customer 100 bought 1 only."""
    lines, b = [], 0
    for c in range(10):
        b += 1
        lines += [(b, c, 1, 5), (b, c, 2, 5)]
    for c in range(10, 40):
        b += 1
        lines += [(b, c, 3 + c % 2, 6)]
    lines += [(b + 1, 100, 1, 7), (b + 2, 200, 3, 7), (b + 3, 200, 4, 8)]
    return lines


MODELS = [
    ("ease", lambda: EASE(l2=1.0)),
    ("knn_bm25", lambda: ItemKNN(k_neighbors=10, weighting="bm25")),
    ("knn_tfidf", lambda: ItemKNN(k_neighbors=10, weighting="tfidf")),
    ("knn_none", lambda: ItemKNN(k_neighbors=10, weighting="none", values="binary")),
    ("knn_bm25_dot", lambda: ItemKNN(k_neighbors=10, weighting="bm25", similarity="dot")),
]


@pytest.mark.parametrize("name,factory", MODELS)
def test_correlated_pair_is_recommended(name, factory):
    data = fit_data(pair_lines(), customers=[300])
    model = factory().fit(data)
    assert first(model, [100], exclude=True)[0] == 2
    pop = GlobalPopularity().fit(data).recommend([300, UNKNOWN], k=4)[0]
    assert np.array_equal(model.recommend([300, UNKNOWN], k=4)[0], pop)  # no history: popularity


def test_ease_matches_closed_form_and_restricts_items():
    data = fit_data(pair_lines())
    x = (data.user_items.toarray() > 0).astype(np.float64)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    model = EASE(l2=3.0, backfill_weight=0.0).fit(data)
    np.testing.assert_allclose(model.B_, b, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(data.n_customers)), x @ b, atol=1e-5)
    small = EASE(l2=3.0, max_items=2, backfill_weight=0.0).fit(data)
    assert list(data.item_ids[small.items_]) == [3, 4]  # the two most popular products
    s = small.score(data.customer_rows([100, 200]))
    assert np.all(s[:, data.item_columns([1, 2])] == 0.0)
    assert EASE(values="log").fit(data).B_.shape == (4, 4)


def test_ease_fits_sharing_a_window_gram_equal_fits_on_their_own():
    """A window's Gram is computed once per input type for its largest item set; smaller sets
    are its sub-matrix, and every fit's B equals a fit on fresh data, bit for bit."""
    rng = np.random.default_rng(5)
    lines = [(b, int(rng.integers(0, 60)), int(p), int(rng.integers(1, 9)))
             for b in range(300) for p in rng.choice(40, size=int(rng.integers(1, 6)), replace=False)]
    shared = fit_data(lines)
    order = [(1.0, 10, "binary"), (1.0, 30, "binary"), (5.0, 10, "binary"), (2.0, 20, "log"), (2.0, 25, "binary")]
    for l2, n, values in order:
        model = EASE(l2=l2, max_items=n, values=values).fit(shared)
        alone = EASE(l2=l2, max_items=n, values=values).fit(fit_data(lines))
        np.testing.assert_array_equal(model.B_, alone.B_)
        np.testing.assert_array_equal(model.items_, alone.items_)
    kept = shared.extras["ease_gram"]
    assert len(kept["binary"][0]) == 30 and len(kept["log"][0]) == 20  # the largest set asked for, per input


def test_itemknn_scores_equal_implicit_recommend():
    from implicit.nearest_neighbours import CosineRecommender

    data = fit_data(pair_lines())
    ours = ItemKNN(k_neighbors=3, weighting="none", similarity="cosine", values="count",
                   backfill_weight=0.0).fit(data)
    ref = CosineRecommender(K=3, num_threads=1)
    ui = sp.csr_matrix(data.user_items, dtype=np.float64)
    with pytest.warns(Warning):  # implicit warns about its own COO conversion
        ref.fit(ui, show_progress=False)
    rows = np.arange(data.n_customers)
    ids, scores = ref.recommend(rows, ui, N=data.n_items, filter_already_liked_items=False)
    dense = ours.score(rows)
    for r in rows:
        ok = scores[r] > -1e30
        np.testing.assert_allclose(dense[r, ids[r][ok]], scores[r][ok], rtol=1e-5)


def test_itemknn_rejects_bad_knobs():
    data = fit_data(pair_lines())
    with pytest.raises(ValueError):
        ItemKNN(weighting="idf").fit(data)
    with pytest.raises(ValueError):
        ItemKNN(similarity="jaccard").fit(data)


# --------------------------------------------------------- every baseline
ALL = [
    ("global", GlobalPopularity),
    ("recent", lambda: GlobalPopularity(window_days=7)),
    ("segmented", lambda: SegmentedPopularity(min_segment_size=1)),
    ("buy_again", BuyAgain),
    ("ease", EASE),
    ("itemknn", ItemKNN),
]


def mixed_data():
    lines = POP_LINES + [(b + 100, c, p, d) for b, c, p, d in pair_lines()]
    segs = seg_frame({1: "a", 2: "a", 3: "b", 4: "b", 5: "unknown"})
    return fit_data(lines, customers=[77], segments=segs)


@pytest.mark.parametrize("name,factory", ALL)
def test_contract_exclude_unknown_ids_shapes(name, factory):
    data = mixed_data()
    model = factory().fit(data)
    rows = np.array([-1, 0, 3, data.n_customers - 1])
    s = model.score(rows)
    assert s.shape == (4, data.n_items) and s.dtype == np.float32 and np.isfinite(s).all()
    ids = np.array([1, 4, 100, 77, UNKNOWN, -5])
    k = 5
    top, scores = model.recommend(ids, k=k, exclude=True)
    assert top.shape == (len(ids), k) and np.isfinite(scores).all()
    assert all(len(set(r)) == k for r in top)
    bought = data.user_items[data.customer_rows(ids[:4])].toarray() > 0
    for i in range(4):
        assert not set(top[i]) & set(data.item_ids[bought[i]])
    again, _ = factory().fit(data).recommend(ids, k=k, exclude=True)
    assert np.array_equal(top, again)  # deterministic


@pytest.mark.parametrize("name,factory", ALL)
def test_models_handle_empty_history_catalog(name, factory):
    data = fit_data([(1, 1, 10, 1)], customers=[2])
    ids, _ = factory().fit(data).recommend([1, 2, UNKNOWN], k=3)
    assert ids.shape == (3, 1) and (ids == 10).all()


# ----------------------------------------------------------------- grids
FACTORIES = {"global_popularity": GlobalPopularity, "segmented_popularity": SegmentedPopularity,
             "buy_again": BuyAgain, "ease": EASE, "itemknn": ItemKNN}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_grid_knobs_are_constructor_parameters(name):
    params = inspect.signature(FACTORIES[name]).parameters
    assert set(GRIDS[name]) <= set(params)
    assert 1 <= len(candidates(name)) <= 30
    assert candidates(name) == expand_grid(GRIDS[name])


def test_grid_search_runs_every_baseline_on_a_tiny_stage():
    lines = POP_LINES + [(b + 100, c, p, d) for b, c, p, d in pair_lines()]
    lines += [(500, 1, 2, 65), (501, 100, 2, 66), (502, 3, 3, 67), (503, 5, 30, 68)]
    tx = frame(lines)
    cust = pd.DataFrame({"customer_id": np.unique(tx["customer_id"])})
    segs = lambda tables, as_of: seg_frame({1: "a", 2: "a", 3: "b", 4: "b"})  # noqa: E731
    tables = {"fact_transactions": tx, "dim_customer": cust,
              "dim_product": pd.DataFrame({"product_id": np.unique(tx["product_id"])})}
    split = Split(T0, AS_OF, AS_OF + pd.Timedelta(days=10), AS_OF + pd.Timedelta(days=20))
    stage = make_stage(tables, split, "valid", segs)
    for name, factory in FACTORIES.items():
        grid = {k: v[:2] for k, v in GRIDS[name].items()}
        res = grid_search(factory, expand_grid(grid), stage)
        assert set(res["protocol"]) == {"all", "new"}
        assert res["value"].between(0, 1).all()


def test_itemknn_similarity_does_not_depend_on_threads(tiny_tables):
    fact = tiny_tables["fact_transactions"]
    fd = make_fit_data(fact, tiny_tables["dim_customer"], tiny_tables["dim_product"], fact["timestamp"].max())
    a = ItemKNN(k_neighbors=20, weighting="bm25", similarity="dot", num_threads=1).fit(fd)
    b = ItemKNN(k_neighbors=20, weighting="bm25", similarity="dot", num_threads=2).fit(fd)
    assert a.similarity_.nnz > 0 and (a.similarity_ != b.similarity_).nnz == 0


def test_spd_inverse_matches_numpy_and_refuses_indefinite():
    from helpers.models.ease import spd_inverse

    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 12))
    g = a.T @ a + 0.5 * np.eye(12)
    np.testing.assert_allclose(spd_inverse(g.copy()), np.linalg.inv(g), rtol=1e-10, atol=1e-12)
    assert spd_inverse(np.diag([1.0, -1.0, 2.0])) is None


def test_mirror_upper_equals_triu_plus_its_transpose():
    from helpers.models.ease import mirror_upper

    rng = np.random.default_rng(2)
    for n, block in ((1, 4), (7, 3), (600, 256), (513, 128)):
        a = rng.normal(size=(n, n))
        want = np.triu(a) + np.triu(a, 1).T
        got = mirror_upper(a.copy(), block=block)
        np.testing.assert_array_equal(got, want)
        f = np.asfortranarray(a)  # LAPACK hands back Fortran-ordered arrays
        np.testing.assert_array_equal(mirror_upper(f, block=block), want)
