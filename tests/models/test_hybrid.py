"""The hybrid: normalization, business rules, weight search, every customer served."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.evaluation.metrics import temporal_split
from helpers.models.base import Recommender, make_fit_data, top_k
from helpers.models.buy_again import BuyAgain
from helpers.models.hybrid import CandidatePool, Hybrid, Rules, diversify, minmax_at, minmax_rows, search_weights
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


def test_weight_search_is_deterministic_and_not_worse_than_components(tiny_stage):
    comps = {"pop": GlobalPopularity().fit(tiny_stage.fit), "buy": BuyAgain(half_life_days=30).fit(tiny_stage.fit)}
    pool = CandidatePool(comps, tiny_stage.fit, tiny_stage.relevance, "all", pool_size=20)
    w1, log1 = search_weights(pool, n_trials=30, seed=3)
    w2, _ = search_weights(pool, n_trials=30, seed=3)
    assert w1 == w2
    best = log1["value"].max()
    singles = [pool.evaluate(np.eye(2)[j]) for j in range(2)]
    assert best >= max(singles) - 1e-12


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


@pytest.mark.parametrize("rules", [Rules(), Rules(availability_days=10), Rules(max_per_category=1),
                                   Rules(promo_boost=0.5), Rules(margin_weight=1.0)])
def test_rules_on_a_full_pool_equal_the_hybrid_on_the_catalog(tiny_stage, rules):
    """With a pool as wide as the catalog, pricing a rule on the pool is exactly the full hybrid."""
    fd = tiny_stage.fit
    comps = {"pop": GlobalPopularity().fit(fd), "buy": BuyAgain(half_life_days=30).fit(fd)}
    weights = {"light": {"pop": 0.8, "buy": 0.2}, "heavy": {"pop": 0.3, "buy": 0.7}}
    for protocol in ("all", "new"):
        pool = CandidatePool(comps, fd, tiny_stage.relevance, protocol, pool_size=fd.n_items)
        h = Hybrid(comps, weights, rules, light_max_baskets=3).fit(fd)
        want = score_model(h, tiny_stage, (protocol,))[protocol]
        assert pool.evaluate_rules(weights, rules, fd, light_max_baskets=3) == pytest.approx(want, abs=1e-9)


def test_score_model_shared_scoring_equals_per_protocol_evaluation(tiny_stage):
    from helpers.evaluation.metrics import evaluate_model
    from helpers.models.als import ALS
    from helpers.models.content import ContentTFIDF

    fd = tiny_stage.fit
    for model in (GlobalPopularity().fit(fd), BuyAgain(half_life_days=30).fit(fd),
                  ALS(factors=8, iterations=5, random_state=0).fit(fd), ContentTFIDF(min_df=1).fit(fd),
                  Hybrid({"pop": GlobalPopularity().fit(fd), "buy": BuyAgain().fit(fd)}, {"pop": 0.5, "buy": 0.5},
                         Rules(max_per_category=1)).fit(fd)):
        got = score_model(model, tiny_stage, ("all", "new"), chunk_size=37)
        for protocol in ("all", "new"):
            pc, *_ = evaluate_model(model, fd, tiny_stage.relevance, protocol, ks=(5,), top_n=5)
            assert got[protocol] == pytest.approx(float(np.mean(pc[("ndcg", 5)])), abs=1e-12), (model, protocol)


def test_concatenated_pool_scores_the_mean_over_its_windows(tiny_tables):
    """A pool over two windows (different catalogs) evaluates each row against its own
    window: its mean is the customer-weighted mean of the two pools' means."""
    from helpers.tuning import workflow as models

    split = temporal_split(tiny_tables["fact_transactions"], test_days=14, valid_days=14)
    valid = make_stage(tiny_tables, split, "valid")
    (early,) = models.earlier_stages(tiny_tables, split, 14, 1)
    assert early.name == "valid-1" and early.eval_end == valid.fit.as_of
    assert early.fit.as_of == valid.fit.as_of - pd.Timedelta(days=14)
    assert early.fit.transactions["timestamp"].max() < early.fit.as_of  # nothing of its own window is fitted
    pools = []
    for st in (valid, early):
        comps = {"pop": GlobalPopularity().fit(st.fit), "buy": BuyAgain(half_life_days=30).fit(st.fit)}
        pools.append(CandidatePool(comps, st.fit, st.relevance, "all", pool_size=10))
    both = CandidatePool.concat(pools)
    assert len(both.baskets) == sum(len(p.rows) for p in pools)
    for w in (np.array([1.0, 0.0]), np.array([0.3, 0.7])):
        want = sum(p.evaluate(w) * len(p.rows) for p in pools) / sum(len(p.rows) for p in pools)
        assert abs(both.evaluate(w) - want) < 1e-12
    weights, _ = search_weights(both, n_trials=20, seed=1, by_history=True)
    assert set(weights) == {"light", "heavy"}
    with pytest.raises(ValueError, match="too little training data"):
        models.earlier_stages(tiny_tables, split, 14, 20)


def test_pools_built_together_equal_pools_built_alone(tiny_stage):
    """Protocols built in one pass (shared component objects scored once per block, blocks
    over the union of customers) give each protocol the pool it gets when built alone."""
    fd = tiny_stage.fit
    shared = GlobalPopularity().fit(fd)
    comps = {"all": {"pop": shared, "buy": BuyAgain(half_life_days=30).fit(fd), "again": shared},
             "new": {"pop": shared, "recent": GlobalPopularity(window_days=14).fit(fd)}}
    together = CandidatePool.for_protocols(comps, fd, tiny_stage.relevance, pool_size=6, chunk_size=7)
    for protocol, c in comps.items():
        alone = CandidatePool(c, fd, tiny_stage.relevance, protocol, pool_size=6, chunk_size=11)
        got = together[protocol]
        assert got.names == alone.names and len(got.rows) > 0
        for attr in ("rows", "baskets", "cands", "scores", "slot_of"):
            np.testing.assert_array_equal(getattr(got, attr), getattr(alone, attr), err_msg=f"{protocol} {attr}")
        assert got.full_width == alone.full_width
        assert (got.relevance.matrix != alone.relevance.matrix).nnz == 0
    # either order: the protocol masking its exclusions works on its own copy of a shared matrix
    reverse = CandidatePool.for_protocols({"new": comps["new"], "all": comps["all"]}, fd, tiny_stage.relevance,
                                          pool_size=6, chunk_size=5)
    for protocol in comps:
        np.testing.assert_array_equal(reverse[protocol].scores, together[protocol].scores)
        np.testing.assert_array_equal(reverse[protocol].cands, together[protocol].cands)


def test_view_scores_trials_from_slot_hits_as_compute_metrics_does():
    """The weight search's metric (hits gathered from each candidate slot's relevance) equals
    compute_metrics on the chosen catalog columns, repeated and padded columns included."""
    import scipy.sparse as sp

    from helpers.evaluation.metrics import compute_metrics
    from helpers.models.hybrid import _View

    rng = np.random.default_rng(7)
    n, c, n_items, k = 60, 12, 40, 5
    cands = np.sort(rng.integers(0, n_items, size=(n, c)), axis=1)  # repeats and column 0 included
    relevance = sp.random(n, n_items, density=0.15, format="csr", random_state=rng)
    relevance.data[:] = 1.0
    n_relevant = np.diff(relevance.indptr) + rng.integers(0, 3, size=n)
    view = _View(rng.random((n, c, 2), dtype=np.float32), cands, relevance, n_relevant, k)
    for _ in range(5):
        blend = rng.integers(0, 4, size=(n, c)).astype(np.float32)  # ties
        idx, _ = top_k(blend, k)
        cols = np.take_along_axis(cands, idx, axis=1)
        for metric in ("ndcg", "precision", "recall"):
            want = float(np.mean(compute_metrics(cols, relevance, n_relevant, ks=(k,))[(metric, k)]))
            assert view.rank_and_score(blend, metric) == want


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
