"""Baskets scored together answer exactly as each basket scored alone, by the direct computation.

The reference below is the per-basket formulation of the basket scorer (each component's raw
scores from :meth:`BasketScorer.scores_of`, normalized and blended one basket at a time, the
reasons from column selections of the similarity matrices): the batched path must give the
same products, the same float32 scores bit for bit, the same ties and the same reasons.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers.export.production import COLLABORATIVE
from helpers.models.base import top_k
from helpers.models.hybrid import diversify, minmax_rows
from helpers.serving.basket import row_sum, row_sum_at, values_at
from helpers.serving.store import ExportStore


def reference(sc, pos, k):
    """The basket's top k, one basket at a time (the scorer's computation before batching)."""
    pos = np.unique(np.asarray(pos, dtype=np.int64))
    normed, total = {}, np.zeros(sc.n_items, dtype=np.float32)
    for name, s in sc.scores_of(pos).items():
        n = minmax_rows(s[None, :])[0]
        n[~np.isfinite(n)] = 0.0
        normed[name] = n
        total += np.float32(sc.weights[name]) * n
    total *= sc.multiplier
    total[~sc.allowed] = -np.inf
    total[sc.columns(pos)] = -np.inf
    k = min(k, sc.n_items)
    if sc.rules.get("max_per_category"):
        idx, val = diversify(total[None, :], sc.categories, k, int(sc.rules["max_per_category"]))
    else:
        idx, val = top_k(total[None, :], k)
    keep = np.isfinite(val[0])
    cols, val = idx[0][keep], val[0][keep]
    return sc.item_pos[cols], val, reference_reasons(sc, pos, cols, normed)


def reference_reasons(sc, pos, cols, normed):
    names = [n for n in normed if n != "buy_again"]
    out = ["trending"] * len(cols)
    if not names or not len(cols):
        return out
    contrib = np.stack([sc.weights[n] * normed[n][cols] for n in names], axis=1)
    top = np.argmax(contrib, axis=1)
    top_name = np.asarray(names, dtype=object)[top]
    top_name[~(contrib[np.arange(len(cols)), top] > 0)] = "trending"
    similar = np.flatnonzero(np.isin(top_name, (*COLLABORATIVE, "content")))
    if not len(similar):
        return out
    rcols, by_content = cols[similar], top_name[similar] == "content"
    knn_best = content_best = np.full(len(rcols), -1, dtype=np.int64)
    bcols = sc.columns(pos)
    if sc.knn is not None and len(bcols):
        sims = sc.knn[bcols][:, rcols].toarray()
        knn_best = np.where(sims.max(axis=0) > 0, sc.item_pos[bcols[np.argmax(sims, axis=0)]], -1)
    rows = sc.content_rows(pos)
    if len(rows):
        sims = np.asarray((sc.tfidf_all[rows] @ sc.tfidf_items.T.tocsr()[:, rcols]).todense())
        content_best = np.where(sims.max(axis=0) > 0, sc.tfidf_pos[rows[np.argmax(sims, axis=0)]], -1)
    first = np.where(by_content, content_best, knn_best)
    second = np.where(by_content, knn_best, content_best)
    past = np.where(first >= 0, first, np.where(second >= 0, second, int(pos[0])))
    for i, p in zip(similar.tolist(), past.tolist()):
        out[i] = p
    return out


def random_baskets(sc, n, seed):
    """1 to 5 products each: catalog items, with duplicates, and products outside the catalog."""
    rng = np.random.default_rng(seed)
    outside = np.setdiff1d(np.arange(len(sc.products)), sc.item_pos)
    out = []
    for i in range(n):
        b = rng.choice(sc.item_pos, int(rng.integers(1, 6)))  # with replacement: duplicates
        if i % 4 == 0 and len(outside):
            b = np.concatenate([b[:2], rng.choice(outside, 1)])
        if i % 9 == 0 and len(outside):
            b = rng.choice(outside, int(rng.integers(1, 3)))  # nothing in the catalog: the fallbacks
        out.append(b)
    return out


def assert_same(got, want):
    for (p, s, r), (p0, s0, r0) in zip(got, want, strict=True):
        assert p.tolist() == p0.tolist()
        assert s.dtype == s0.dtype and s.tobytes() == s0.tobytes()  # bit for bit
        assert list(r) == list(r0)


@pytest.fixture(scope="module")
def scorer(export_world):
    return ExportStore(export_world["out"]).basket


def test_the_fixture_exercises_every_component_and_both_kinds_of_reason(scorer, monkeypatch):
    assert set(scorer.names) >= {"global_popularity", "buy_again", "als", "itemknn", "ease", "content"}
    baskets = random_baskets(scorer, 40, 1)
    reasons = [r for b in baskets for r in reference(scorer, b, 10)[2]]
    assert all(r == "trending" or r in set(np.concatenate(baskets).tolist()) for r in reasons)
    assert any(r != "trending" for r in reasons)
    monkeypatch.setattr(scorer, "weights", {**scorer.weights, "global_popularity": 5.0})
    assert "trending" in {r for b in baskets for r in reference(scorer, b, 10)[2]}


def test_a_batch_answers_as_each_basket_alone(scorer, monkeypatch):
    monkeypatch.setattr(scorer, "als_block_rows", 64)  # several blocks of factors on the tiny catalog
    assert scorer.n_items > 2 * scorer.als_block_rows
    baskets = random_baskets(scorer, 60, 2)
    ks = [int(k) for k in np.random.default_rng(3).choice([1, 4, 10, 30, 500], len(baskets))]
    want = [reference(scorer, b, k) for b, k in zip(baskets, ks)]
    for size in (1, 7, 60):
        got = []
        for a in range(0, len(baskets), size):
            got += scorer.recommend_many(baskets[a:a + size], ks[a:a + size])
        assert_same(got, want)
    assert_same([scorer.recommend(b, k) for b, k in zip(baskets, ks)], want)
    assert_same(scorer.recommend_many(baskets[:5], 10), [reference(scorer, b, 10) for b in baskets[:5]])
    assert scorer.recommend_many([], 10) == []
    monkeypatch.setattr(scorer, "weights", {**scorer.weights, "global_popularity": 5.0})  # trending reasons
    assert_same(scorer.recommend_many(baskets, 10), [reference(scorer, b, 10) for b in baskets])


def test_a_batch_answers_as_each_basket_alone_with_category_caps(scorer, monkeypatch):
    monkeypatch.setattr(scorer, "rules", {**scorer.rules, "max_per_category": 1})
    baskets = random_baskets(scorer, 30, 4)
    want = [reference(scorer, b, 12) for b in baskets]
    assert_same(scorer.recommend_many(baskets, 12), want)
    cats = [scorer.categories[scorer.col_of[p]] for p, _s, _r in want]
    assert all(len(set(c.tolist())) == len(c) for c in cats)  # the cap applied


def test_factor_blocks_give_the_whole_product(scorer, monkeypatch):
    xs = np.random.default_rng(5).standard_normal((6, scorer.item_factors.shape[1])).astype(np.float32)
    whole = np.stack([scorer.item_factors @ x for x in xs])
    with ThreadPoolExecutor(1) as pool:
        for rows in (64, 128, 10 ** 6):
            monkeypatch.setattr(scorer, "als_block_rows", rows)
            assert scorer.als_many(xs).tobytes() == whole.tobytes()
            assert scorer.als_many(xs, pool).tobytes() == whole.tobytes()  # half of the blocks on the pool's thread
        baskets = random_baskets(scorer, 20, 8)
        assert_same(scorer.recommend_many(baskets, 10, pool), [reference(scorer, b, 10) for b in baskets])


def test_row_sum_at_is_row_sum_where_it_is_not_zero(scorer):
    rng = np.random.default_rng(9)
    for _ in range(10):
        rows = np.unique(rng.integers(0, scorer.n_items, rng.integers(1, 6)))
        dense = row_sum(scorer.knn, rows)
        cols, sums = row_sum_at(scorer.knn, rows)
        assert len(cols) and dense[cols].tobytes() == sums.tobytes()
        assert not np.delete(dense, cols).any()


def test_values_at_equals_column_selection(scorer):
    rng = np.random.default_rng(6)
    for _ in range(20):
        rows = np.unique(rng.integers(0, scorer.n_items, rng.integers(1, 6)))
        cols = rng.permutation(scorer.n_items)[: rng.integers(0, 15)]
        want = scorer.knn[rows][:, cols].toarray()
        got = values_at(scorer.knn, rows, cols)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    assert values_at(scorer.knn, rows, cols).any()  # not all zeros: the lookup finds entries
