"""Ranking from score parts (:func:`top_k_parts`, ``Recommender.rank_rows``) equals the
dense ranking (:func:`top_k` of the scores with exclusions at ``-inf``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from helpers.models.base import excluded_matrix, top_k, top_k_parts
from helpers.models.buy_again import BuyAgain
from helpers.models.popularity import GlobalPopularity, SegmentedPopularity
from helpers.tuning.stages import score_model


def dense(table, groups, boost, excluded):
    s = table[groups].astype(np.float32).copy()
    if boost is not None:
        b = boost.tocoo()
        s[b.row, b.col] = b.data
    if excluded is not None:
        e = excluded.tocoo()
        s[e.row, e.col] = -np.inf
    return s


def order_of(table):
    order = np.argsort(-table, axis=1, kind="stable")
    inverse = np.empty_like(order)
    np.put_along_axis(inverse, order, np.arange(table.shape[1])[None, :], axis=1)
    return order, inverse


def random_csr(rng, n, m, density, values):
    pattern = sp.random(n, m, density=density, format="csr", random_state=rng, data_rvs=lambda size: values(size))
    pattern.sort_indices()
    return pattern


@pytest.mark.parametrize("seed", range(12))
def test_top_k_parts_equals_dense_top_k_with_ties_boosts_and_exclusions(seed):
    rng = np.random.default_rng(seed)
    n, m, g = int(rng.integers(1, 40)), int(rng.integers(5, 60)), int(rng.integers(1, 4))
    k = int(rng.integers(1, 12))
    # few distinct values: ties everywhere, between the table and the boosts too
    table = rng.integers(0, 4, size=(g, m)).astype(np.float32)
    groups = rng.integers(0, g, size=n)
    boost = random_csr(rng, n, m, rng.uniform(0, 0.4), lambda s: rng.integers(0, 6, size=s).astype(np.float32))
    excluded = random_csr(rng, n, m, rng.uniform(0, 0.4), lambda s: np.ones(s, np.float32))
    for b, e in ((boost, excluded), (None, excluded), (boost, None), (None, None)):
        order, inverse = order_of(table)
        got = top_k_parts(table, order, inverse, groups, b, e, k)
        s = dense(table, groups, b, e)
        allowed = np.isfinite(s).sum(axis=1)
        if (allowed < min(k, m)).any():
            assert got is None  # the caller ranks those densely
            continue
        want_idx, want_val = top_k(s, k)
        np.testing.assert_array_equal(got[0], want_idx)
        np.testing.assert_array_equal(got[1], want_val)
        assert got[1].dtype == np.float32


@pytest.fixture(scope="module")
def stage(tiny_tables, tmp_path_factory):
    from helpers.tuning import workflow as models

    split, valid, test = models.prepare_stages(tiny_tables, 28, 28, processed_dir=tmp_path_factory.mktemp("processed"))
    return valid


FACTORIES = {
    "global": lambda: GlobalPopularity(),
    "global_recent": lambda: GlobalPopularity(window_days=14),
    "segmented": lambda: SegmentedPopularity(segment_type="loyalty_tier", min_segment_size=5, blend=0.5),
    "buy_again": lambda: BuyAgain(half_life_days=30, repeat_beta=0.5),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("exclude", [None, True])
def test_models_rank_from_parts_as_from_dense_scores(stage, name, exclude):
    model = FACTORIES[name]().fit(stage.fit)
    ids = np.concatenate([stage.fit.customer_ids, [-5]])  # a cold-start id too
    rows = stage.fit.customer_rows(ids)
    assert model.parts(rows) is not None
    excl = excluded_matrix(stage.fit, rows, exclude, slice(0, len(rows)))
    k = 10
    got = model.rank_rows(rows, excl, k)
    s = np.array(model.score(rows), dtype=np.float32)
    if excl is not None:
        s[excl.nonzero()] = -np.inf
    want = top_k(s, k)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    # recommend (blocks) and the grid search's scoring go through the parts as well
    dense_model = FACTORIES[name]().fit(stage.fit)
    dense_model.parts = lambda rows: None
    for a, b in ((model.recommend(ids, k=k, exclude=exclude, chunk_size=7),
                  dense_model.recommend(ids, k=k, exclude=exclude, chunk_size=7)),):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert score_model(model, stage) == score_model(dense_model, stage)


def test_rank_rows_scores_densely_without_parts_or_with_a_custom_rank(stage):
    class Custom(GlobalPopularity):
        def rank(self, scores, k):  # reversed ranking: parts must not be used
            idx, val = top_k(-scores, k)
            return idx, -val

    model = Custom().fit(stage.fit)
    rows = np.arange(5)
    idx, _ = model.rank_rows(rows, None, 3)
    np.testing.assert_array_equal(idx, top_k(-model.score(rows), 3)[0])


def test_parts_cache_is_not_pickled(stage):
    import pickle

    model = GlobalPopularity().fit(stage.fit)
    model.rank_rows(np.arange(3), None, 2)
    assert hasattr(model, "_parts_order")
    assert not hasattr(pickle.loads(pickle.dumps(model)), "_parts_order")
