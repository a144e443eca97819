"""The hybrid's weight search: candidate pools, their metric, the search itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers.data.split import temporal_split
from helpers.evaluation import compute_metrics, evaluate_model
from helpers.models import top_k
from helpers.models.als import ALS
from helpers.models.buy_again import BuyAgain
from helpers.models.content import ContentTFIDF
from helpers.models.hybrid import Hybrid, Rules
from helpers.models.popularity import GlobalPopularity
from helpers.tuning import earlier_stages
from helpers.tuning.stages import make_stage, score_model
from helpers.tuning.weights import CandidatePool, _View, search_weights


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
    fd = tiny_stage.fit
    for model in (GlobalPopularity().fit(fd), BuyAgain(half_life_days=30).fit(fd),
                  ALS(factors=8, iterations=5, random_state=0).fit(fd), ContentTFIDF(min_df=1).fit(fd),
                  Hybrid({"pop": GlobalPopularity().fit(fd), "buy": BuyAgain().fit(fd)}, {"pop": 0.5, "buy": 0.5},
                         Rules(max_per_category=1)).fit(fd)):
        got = score_model(model, tiny_stage, ("all", "new"), chunk_size=37)
        for protocol in ("all", "new"):
            pc, *_ = evaluate_model(model, fd, tiny_stage.relevance, protocol, ks=(5,), top_n=5)
            assert got[protocol] == pytest.approx(float(np.mean(pc[("ndcg", 5)])), abs=1e-12), (model, protocol)


def test_concatenated_pool_scores_the_mean_over_its_windows(tiny_tables, tmp_path):
    """A pool over two windows (different catalogs) evaluates each row against its own
    window: its mean is the customer-weighted mean of the two pools' means."""
    split = temporal_split(tiny_tables["fact_transactions"], test_days=14, valid_days=14)
    valid = make_stage(tiny_tables, split, "valid")
    (early,) = earlier_stages(tiny_tables, split, 14, 1, tmp_path)  # not the checkout's data/processed
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
        earlier_stages(tiny_tables, split, 14, 20)


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
