"""Known-answer and property tests for helpers.evaluation (relevance, metrics, bootstrap) and the split."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers.evaluation.metrics as ev
from helpers.data.split import Split, select_window, temporal_split
from helpers.evaluation import (
    SUMMARY_COLUMNS,
    Relevance,
    catalog_coverage,
    compute_metrics,
    evaluate_model,
    evaluation_set,
    hit_matrix,
    paired_bootstrap,
    predictions_frame,
    relevance_matrix,
    summarize,
)
from helpers.models import Recommender, make_fit_data

D = [1.0 / math.log2(i + 1) for i in range(1, 12)]  # D[i-1] = discount of rank i


def rel_csr(rows_items: list[set], n_items: int) -> sp.csr_matrix:
    r = [u for u, s in enumerate(rows_items) for _ in s]
    c = [i for s in rows_items for i in sorted(s)]
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows_items), n_items))


def metrics_for(topk, rows_items, n_items, n_relevant=None, ks=(5, 10)):
    n_rel = [len(s) for s in rows_items] if n_relevant is None else n_relevant
    return compute_metrics(np.array(topk), rel_csr(rows_items, n_items), np.array(n_rel), ks)


# ------------------------------------------------------------------ metrics
def test_perfect_ranking_scores_one_when_relevant_fit_in_k():
    m = metrics_for([[4, 2, 7, -1, -1, -1, -1, -1, -1, -1]], [{2, 4, 7}], 10)
    for k in (5, 10):
        assert m[("recall", k)][0] == 1.0
        assert m[("ndcg", k)][0] == pytest.approx(1.0, abs=1e-15)
        assert m[("hit_rate", k)][0] == 1.0
        assert m[("precision", k)][0] == pytest.approx(3 / k)  # precision divides by K, always


def test_no_hit_is_zero():
    m = metrics_for([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], [{10, 11}], 12)
    assert all(v[0] == 0.0 for v in m.values())


def test_worked_example_by_hand():
    # relevant {0, 3, 7, 9} (4 items); ranking 3,1,7,2,5 | 0,4,6,8,11 -> hits at ranks 1, 3 (K=5), + 6 (K=10)
    # @5 : precision = 2/5 = 0.4 ; recall = 2/4 = 0.5 ; hit_rate = 1
    #      DCG = 1/log2(2) + 1/log2(4) = 1 + 0.5 = 1.5
    #      IDCG over min(5, 4) = 4 ranks = 1 + 0.6309298 + 0.5 + 0.4306766 = 2.5616064
    #      ndcg = 1.5 / 2.5616064 = 0.5855700   (IDCG over K=5 would give 1.5 / 2.9484592 = 0.5087)
    # @10: precision = 3/10 = 0.3 ; recall = 3/4 = 0.75
    #      DCG = 1.5 + 1/log2(7) = 1.5 + 0.3562072 = 1.8562072 ; ndcg = 1.8562072 / 2.5616064 = 0.7246263
    m = metrics_for([[3, 1, 7, 2, 5, 0, 4, 6, 8, 11]], [{0, 3, 7, 9}], 12)
    assert m[("precision", 5)][0] == pytest.approx(0.4)
    assert m[("recall", 5)][0] == pytest.approx(0.5)
    assert m[("ndcg", 5)][0] == pytest.approx(0.5855700, abs=1e-7)
    assert m[("hit_rate", 5)][0] == 1.0
    assert m[("precision", 10)][0] == pytest.approx(0.3)
    assert m[("recall", 10)][0] == pytest.approx(0.75)
    assert m[("ndcg", 10)][0] == pytest.approx(0.7246263, abs=1e-7)
    assert m[("ndcg", 5)][0] == pytest.approx((D[0] + D[2]) / sum(D[:4]))


def test_fewer_relevant_than_k():
    # 2 relevant, both at the top of a 5-list: recall 1 (not 2/5), ndcg 1 (IDCG over 2 ranks, not 5)
    m = metrics_for([[2, 4, 0, 1, 3]], [{2, 4}], 6, ks=(5,))
    assert m[("recall", 5)][0] == 1.0
    assert m[("ndcg", 5)][0] == pytest.approx(1.0)
    assert m[("precision", 5)][0] == pytest.approx(0.4)
    # one relevant at rank 2: ndcg = (1/log2 3) / 1
    m = metrics_for([[0, 1, 2, 3, 4]], [{1}], 6, ks=(5,))
    assert m[("ndcg", 5)][0] == pytest.approx(D[1])


def test_short_lists_and_empty_slots_are_padded():
    m = metrics_for([[1, -1, 2]], [{1, 2}], 4, ks=(5,))
    assert m[("precision", 5)][0] == pytest.approx(2 / 5)
    assert m[("ndcg", 5)][0] == pytest.approx((D[0] + D[2]) / (D[0] + D[1]))


def test_unsorted_duplicate_csr_and_bad_n_relevant():
    rel = sp.csr_matrix((np.ones(3), np.array([5, 1, 5]), np.array([0, 3])), shape=(1, 6))
    assert hit_matrix(np.array([[5, 1, 0]]), rel).tolist() == [[True, True, False]]
    m = compute_metrics(np.array([[5, 1, 0]]), rel, np.array([2]), ks=(3,))
    assert m[("recall", 3)][0] == 1.0
    with pytest.raises(ValueError):
        compute_metrics(np.array([[5, 1, 0]]), rel, np.array([1]), ks=(3,))


# ---------------------------------------------------- hit matrix (block-dense)
def random_hits_case(seed, n=700, n_items=40, k=10, density=0.1):
    """Top-k rows (distinct items, ~15% empty slots), a 0/1 relevance matrix and its row sets."""
    rng = np.random.default_rng(seed)
    topk = np.stack([rng.choice(n_items, size=k, replace=False) for _ in range(n)])
    topk[rng.random(topk.shape) < 0.15] = -1
    dense = rng.random((n, n_items)) < density
    dense[rng.random(n) < 0.1] = False  # customers without relevant catalog items
    rows_items = [set(np.flatnonzero(r).tolist()) for r in dense]
    return topk, sp.csr_matrix(dense.astype(np.float32)), rows_items


def brute_hits(topk, rows_items):
    return np.array([[bool(item >= 0 and item in s) for item in row] for row, s in zip(topk.tolist(), rows_items)])


@pytest.mark.parametrize("block_rows", [1, 2, 3, 7, 64, 699, 700, None])
def test_hits_equal_set_membership(block_rows):
    # 700 rows in blocks of 1: 700 blocks, the stamps wrap around twice
    topk, rel, rows_items = random_hits_case(block_rows or 0)
    expected = brute_hits(topk, rows_items)
    got = ev._hits(topk, rel, block_rows=block_rows)
    assert got.dtype == bool and got.shape == topk.shape
    np.testing.assert_array_equal(got, expected)
    assert expected.any() and (~expected).any()


def test_hits_stale_stamps_never_count():
    # One row per block: every customer uses the same buffer row. Customer j's one relevant
    # item is j % 300 (no other customer in between writes that cell); it also recommends
    # the items of customers j - 1 and j - 255 (the block with the same stamp before the
    # stamps wrap), which are not its own.
    n, m = 700, 300
    j = np.arange(n)
    rel = sp.csr_matrix((np.ones(n), j % m, np.arange(n + 1)), shape=(n, m))
    topk = np.stack([(j - 1) % m, (j - 255) % m, j % m], axis=1)
    want = np.zeros(topk.shape, dtype=bool)
    want[:, 2] = True
    np.testing.assert_array_equal(brute_hits(topk, [{i % m} for i in j]), want)
    np.testing.assert_array_equal(ev._hits(topk, rel, block_rows=1), want)


def test_hits_empty_slots_and_bounds():
    rel = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=np.float32))
    topk = np.array([[3, -1, 0], [-5, 1, -1], [-1, -1, -1]])  # any negative value is an empty slot
    want = [[True, False, True], [False, True, False], [False, False, False]]
    for block_rows in (1, 2, None):
        assert ev._hits(topk, rel, block_rows=block_rows).tolist() == want
    assert hit_matrix(topk, rel).tolist() == want
    assert not ev._hits(topk, sp.csr_matrix((3, 4), dtype=np.float32)).any()
    assert ev._hits(np.zeros((3, 0), dtype=np.int64), rel).shape == (3, 0)
    with pytest.raises(ValueError, match="outside the catalog"):
        hit_matrix(np.array([[4, 0], [0, 0], [0, 0]]), rel)
    with pytest.raises(ValueError, match="one row per relevance row"):
        hit_matrix(np.array([[0, 1]]), rel)


def test_hits_reuse_the_buffer_across_calls_and_threads():
    # alternate catalogs and block sizes: a reused buffer holds stamps of another
    # layout, and the stamps wrap within and across calls
    cases = [random_hits_case(seed, n=300, n_items=m) for seed, m in ((11, 40), (12, 12), (13, 90))]
    for i in range(12):
        topk, rel, rows_items = cases[i % 3]
        np.testing.assert_array_equal(ev._hits(topk, rel, block_rows=1 + (i % 2)), brute_hits(topk, rows_items))
    check_spare_buffers()
    # concurrent callers never share a buffer
    cases = [random_hits_case(seed, n=400, n_items=30 + seed) for seed in range(8)]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda c: ev._hits(c[0], c[1], block_rows=2), cases * 3))
    for (topk, _, rows_items), h in zip(cases * 3, got):
        np.testing.assert_array_equal(h, brute_hits(topk, rows_items))
    check_spare_buffers()


def test_a_reused_buffer_is_zeroed_whole_when_the_stamps_wrap(monkeypatch):
    monkeypatch.setattr(ev, "_SPARE_BUFFERS", [])
    big = random_hits_case(21, n=200, n_items=99, density=0.3)  # 100-byte buffer rows
    small = random_hits_case(22, n=56, n_items=10)  # 11 bytes: reuses the big buffer
    for topk, rel, rows_items in (big, small, big):  # stamps 1..200, 201..255 then 1, 2..201
        np.testing.assert_array_equal(ev._hits(topk, rel, block_rows=1), brute_hits(topk, rows_items))
        check_spare_buffers()
    assert len(ev._SPARE_BUFFERS) == 1 and ev._SPARE_BUFFERS[0][0].size == 100


def check_spare_buffers():
    """Kept buffers are distinct and hold no stamp newer than their last one (else a later
    call could read a stale cell as a hit)."""
    spares = list(ev._SPARE_BUFFERS)
    assert 1 <= len(spares) <= ev._MAX_SPARE
    assert len({id(buf) for buf, _ in spares}) == len(spares)
    for buf, stamp in spares:
        assert 1 <= stamp <= 255 and int(buf.max()) <= stamp


def non_canonical(rel: sp.csr_matrix, seed: int) -> sp.csr_matrix:
    """The same relevant set as 0/1 ``rel``, stored with split duplicates, unsorted indices,
    explicit zeros and entries that cancel out."""
    rng = np.random.default_rng(seed)
    r, c = rel.nonzero()
    n, n_items = rel.shape
    zr, zc = rng.integers(0, n, size=200), rng.integers(0, n_items, size=200)
    zc = np.where(np.asarray(rel[zr, zc]).ravel() > 0, (zc + 1) % n_items, zc)  # try to avoid relevant cells
    keep = np.asarray(rel[zr, zc]).ravel() == 0
    zr, zc = zr[keep], zc[keep]
    rows = np.r_[r, r, zr, zr[:50], zr[:50]]
    cols = np.r_[c, c, zc, zc[:50], zc[:50]]
    data = np.r_[np.full(len(r), 0.25), np.full(len(r), 0.75), np.zeros(len(zr)), np.ones(50), -np.ones(50)]
    order = rng.permutation(len(rows))
    rows, cols, data = rows[order], cols[order], data[order]
    # a CSR built by hand keeps the order of the triples (duplicates and all)
    by_row = np.argsort(rows, kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n))]
    out = sp.csr_matrix((data[by_row], cols[by_row], indptr), shape=rel.shape)
    assert not out.has_canonical_format
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_non_canonical_relevance_gives_the_canonical_result(seed):
    topk, rel, rows_items = random_hits_case(seed, n=300)
    n_rel = np.array([len(s) for s in rows_items]) + 1
    messy = non_canonical(rel, seed)
    before = (messy.data.copy(), messy.indices.copy(), messy.indptr.copy())
    assert ev._relevance_csr(rel) is rel  # canonical with positive values: used as is
    assert ev._relevance_csr(messy) is not messy
    want = compute_metrics(topk, rel, n_rel, ks=(5, 10))
    for variant in (messy, messy.tocoo(), sp.csr_array(messy), messy.tocsc()):
        np.testing.assert_array_equal(hit_matrix(topk, variant), brute_hits(topk, rows_items))
        got = compute_metrics(topk, variant, n_rel, ks=(5, 10))
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    for a, b in zip(before, (messy.data, messy.indices, messy.indptr)):
        np.testing.assert_array_equal(a, b)  # the input is not modified
    # a canonical matrix with a stored zero is not taken as is
    zero = rel.copy()
    zero.data[0] = 0.0
    assert zero.has_canonical_format and ev._relevance_csr(zero) is not zero
    rows_items_zero = [set(s) for s in rows_items]
    r0 = int(np.searchsorted(zero.indptr, 0, side="right") - 1)
    rows_items_zero[r0].discard(int(zero.indices[0]))
    np.testing.assert_array_equal(hit_matrix(topk, zero), brute_hits(topk, rows_items_zero))


def cumsum_metrics(topk, rel, n_rel, ks):
    """The former formulation: hits and DCG as cumulative sums along each row."""
    kmax = max(ks)
    topk = np.hstack([topk[:, :kmax], np.full((len(topk), max(0, kmax - topk.shape[1])), -1)])
    dense = rel.toarray() > 0
    hits = np.array([[c >= 0 and dense[u, c] for c in row] for u, row in enumerate(topk)], dtype=bool)
    n_rel = np.asarray(n_rel, dtype=np.float64)
    cum_hits = np.cumsum(hits, axis=1, dtype=np.float64)
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    cum_dcg = np.cumsum(hits * disc, axis=1)
    cum_disc = np.concatenate([[0.0], np.cumsum(disc)])
    has_rel = n_rel > 0
    out = {}
    for k in ks:
        h = cum_hits[:, k - 1]
        idcg = cum_disc[np.minimum(k, n_rel).astype(np.int64)]
        out[("precision", k)] = h / k
        out[("recall", k)] = np.where(has_rel, h / np.where(has_rel, n_rel, 1.0), 0.0)
        out[("ndcg", k)] = np.where(has_rel, cum_dcg[:, k - 1] / np.where(has_rel, idcg, 1.0), 0.0)
        out[("hit_rate", k)] = (h > 0).astype(np.float64)
    return out


@pytest.mark.parametrize("ks", [(5, 10), (10,), (1, 3, 5, 10), (3, 12)])
def test_metrics_equal_the_cumulative_sum_formulation(ks):
    topk, rel, rows_items = random_hits_case(7, n=500, n_items=30)
    rng = np.random.default_rng(7)
    topk[rng.random(len(topk)) < 0.2, 6:] = -1  # short lists
    n_rel = np.array([len(s) for s in rows_items]) + rng.integers(0, 3, size=len(topk))
    n_rel[rng.random(len(topk)) < 0.1] = 0
    rel = rel.multiply((n_rel > 0)[:, None]).tocsr()  # customers with n_relevant 0 have no relevant item
    rel.eliminate_zeros()
    want = cumsum_metrics(topk, rel, n_rel, ks)
    got = compute_metrics(topk, rel, n_rel, ks)  # (3, 12): 10 slots, padded to 12
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-12)
    assert (got[("ndcg", max(ks))][n_rel == 0] == 0).all() and got[("ndcg", max(ks))].max() > 0


def test_catalog_coverage():
    assert catalog_coverage(np.array([[0, 1, -1], [1, 2, 3]]), 8) == pytest.approx(4 / 8)


# ---------------------------------------------------------------- relevance
def tx(rows):
    return pd.DataFrame(rows, columns=["customer_id", "product_id", "quantity"])


def test_off_catalog_items_count_in_denominator():
    # customer 1 buys 10 (catalog, twice), 99 (off catalog), 20 as a return only; customer 7 unknown
    ev = tx([(1, 10, 1), (1, 10, 2), (1, 99, 1), (1, 20, -1), (2, 20, 0), (7, 10, 1)])
    rel = relevance_matrix(ev, [1, 2], [10, 20])
    assert rel.n_relevant.tolist() == [2, 0]
    assert rel.matrix.toarray().tolist() == [[1, 0], [0, 0]]
    m = compute_metrics(np.array([[0, 1]]), rel.matrix[:1], rel.n_relevant[:1], ks=(5,))
    assert m[("recall", 5)][0] == 0.5  # 1 hit / 2 relevant, off-catalog 99 can never be hit
    assert m[("ndcg", 5)][0] == pytest.approx(1.0 / (D[0] + D[1]))  # IDCG over min(5, 2)


def test_protocols_all_and_new():
    fit = rel_csr([{0, 1}, {2}, set()], 4)  # c2 has no fit history
    rel = Relevance(rel_csr([{0, 3}, {2}, {1}], 4), np.array([3, 1, 1]))  # c0 has 1 off-catalog item
    es = evaluation_set(fit, rel, "all")
    assert es.rows.tolist() == [0, 1] and es.exclude is None
    assert es.relevance.n_relevant.tolist() == [3, 1]
    es = evaluation_set(fit, rel, "new")
    assert es.rows.tolist() == [0]  # c1 only re-bought item 2 -> dropped
    assert es.relevance.matrix.toarray().tolist() == [[0, 0, 0, 1]]
    assert es.relevance.n_relevant.tolist() == [2]  # item 0 removed, 3 and off-catalog kept
    assert es.exclude.toarray().tolist() == [[1, 1, 0, 0]]
    with pytest.raises(ValueError):
        evaluation_set(fit, rel, "repeat")


# -------------------------------------------------------------------- split
def cj_like():
    ts = pd.to_datetime(["2016-01-01 09:30:00", "2017-11-06 23:59:59", "2017-11-07 00:00:00",
                         "2017-12-04 23:59:59", "2017-12-05 00:00:00", "2018-01-01 04:01:00"])
    return pd.DataFrame({"timestamp": ts, "customer_id": 1, "product_id": 1, "quantity": 1.0})


def test_split_complete_journey_dates(tmp_path):
    s = temporal_split(cj_like())
    assert s.to_dict() == {"start": "2016-01-01", "valid_start": "2017-11-07",
                           "test_start": "2017-12-05", "end": "2018-01-02"}
    assert s.windows("valid") == (s.valid_start, s.valid_start, s.test_start)
    assert s.windows("test") == (pd.Timestamp("2017-12-05"), pd.Timestamp("2017-12-05"),
                                 pd.Timestamp("2018-01-02"))
    with pytest.raises(ValueError):
        s.windows("train")
    s.write(tmp_path / "split.json")
    assert Split.from_dict(json.loads((tmp_path / "split.json").read_text())) == s
    assert [p.name for p in tmp_path.iterdir()] == ["split.json"]  # no temp file left


def test_split_half_open_at_midnight():
    t = cj_like()
    s = temporal_split(t)
    f, a, b = s.windows("valid")
    valid = select_window(t, a, b)["timestamp"].astype(str).tolist()
    assert valid == ["2017-11-07 00:00:00", "2017-12-04 23:59:59"]
    test = select_window(t, *s.windows("test")[1:])["timestamp"].astype(str).tolist()
    assert test == ["2017-12-05 00:00:00", "2018-01-01 04:01:00"]
    assert (t["timestamp"] < f).sum() == 2  # train
    # last timestamp exactly at midnight still ends the day after
    t2 = t.iloc[:-1].copy()
    t2.loc[len(t2)] = [pd.Timestamp("2018-01-01 00:00"), 1, 1, 1.0]
    assert temporal_split(t2).end == pd.Timestamp("2018-01-02")
    with pytest.raises(ValueError):
        temporal_split(t, test_days=400, valid_days=400)


# ---------------------------------------------------------------- property
@st.composite
def ranking_case(draw):
    n_items = draw(st.integers(1, 8))
    n = draw(st.integers(1, 5))
    kmax = draw(st.integers(1, 6))
    ks = tuple(sorted(draw(st.sets(st.integers(1, kmax), min_size=1))))
    items = st.integers(0, n_items - 1)
    topk, rels, n_rel = [], [], []
    for _ in range(n):
        row = draw(st.lists(items, unique=True, max_size=kmax))
        topk.append(row + [-1] * (kmax - len(row)))
        r = draw(st.sets(items))
        rels.append(r)
        n_rel.append(len(r) + draw(st.integers(0 if r else 1, 3)))  # off-catalog extras
    return topk, rels, n_rel, n_items, ks


@settings(max_examples=150, deadline=None)
@given(ranking_case())
def test_property_metrics_in_unit_interval(case):
    topk, rels, n_rel, n_items, ks = case
    m = metrics_for(topk, rels, n_items, n_rel, ks)
    for (metric, k), v in m.items():
        assert np.all((v >= 0) & (v <= 1 + 1e-12)), (metric, k, v)
    for k in ks:
        hits = [len(set(row[:k]) & r) for row, r in zip(topk, rels)]
        assert np.allclose(m[("precision", k)] * k, hits)
        assert np.array_equal(m[("hit_rate", k)], (np.array(hits) > 0).astype(float))


# --------------------------------------------------------------- reference
def reference_metrics(topk, rels, n_rel, ks):
    rows = []
    for u, (row, r) in enumerate(zip(topk, rels)):
        for k in ks:
            ranks = [i + 1 for i, item in enumerate(row[:k]) if item >= 0 and item in r]
            dcg = sum(1 / math.log2(i + 1) for i in ranks)
            idcg = sum(1 / math.log2(i + 1) for i in range(1, min(k, n_rel[u]) + 1))
            for metric, v in (("precision", len(ranks) / k), ("recall", len(ranks) / n_rel[u]),
                              ("ndcg", dcg / idcg), ("hit_rate", float(bool(ranks)))):
                rows.append({"u": u, "k": k, "metric": metric, "value": v})
    return pd.DataFrame(rows).set_index(["metric", "k", "u"])["value"]


def test_matches_slow_reference_implementation():
    rng = np.random.default_rng(42)
    n, n_items, kmax, ks = 400, 60, 10, (1, 3, 5, 10)
    topk = np.array([rng.choice(n_items, kmax, replace=False) for _ in range(n)])
    topk[rng.random(topk.shape) < 0.1] = -1
    rels = [set(rng.choice(n_items, rng.integers(1, 15), replace=False).tolist()) for _ in range(n)]
    n_rel = [len(r) + int(rng.integers(0, 3)) for r in rels]
    got = metrics_for(topk, rels, n_items, n_rel, ks)
    ref = reference_metrics(topk.tolist(), rels, n_rel, ks).sort_index()
    for (metric, k), v in got.items():
        np.testing.assert_allclose(v, ref.loc[(metric, k)].to_numpy(), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- bootstrap
def per_customer_fixture(n=100, seed=1):
    rng = np.random.default_rng(seed)
    return {("recall", 10): rng.random(n), ("hit_rate", 10): (rng.random(n) < 0.3).astype(float)}


def test_summarize_columns_ci_and_small_segments():
    pc = per_customer_fixture()
    ids = np.arange(1000, 1100)
    seg = pd.DataFrame({"customer_id": np.r_[ids, 5], "segment_type": "tier",
                        "segment": ["big"] * 90 + ["small"] * 10 + ["ghost"]})
    out = summarize(pc, ids, seg, "pop", "all", "valid", n_boot=500, seed=3, coverage={10: 0.25})
    assert list(out.columns) == SUMMARY_COLUMNS
    again = summarize(pc, ids, seg, "pop", "all", "valid", n_boot=500, seed=3, coverage={10: 0.25})
    pd.testing.assert_frame_equal(out, again)  # seeded: deterministic
    other = summarize(pc, ids, seg, "pop", "all", "valid", n_boot=500, seed=4)
    assert not np.allclose(other["ci_low"], out["ci_low"].iloc[: len(other)])
    stats = out[out.metric != "coverage"]
    assert ((stats.ci_low <= stats.value) & (stats.value <= stats.ci_high)).all()
    assert (stats.ci_low < stats.ci_high).all()
    overall = stats[stats.segment_type == "overall"].set_index("metric")
    assert overall.loc["recall", "value"] == pytest.approx(pc[("recall", 10)].mean())
    assert overall.loc["recall", "n_customers"] == 100 and overall.loc["recall", "segment"] == "all"
    by_seg = stats[stats.segment_type == "tier"].groupby("segment")[["n_customers", "small_segment"]].first()
    assert by_seg.to_dict("index") == {"big": {"n_customers": 90, "small_segment": False},
                                       "small": {"n_customers": 10, "small_segment": True}}
    cov = out[out.metric == "coverage"].iloc[0]
    assert cov.value == 0.25 and np.isnan(cov.ci_low) and cov.segment_type == "overall"
    assert summarize(pc, ids, None, "pop", "all", "valid").segment_type.unique().tolist() == ["overall"]


def test_paired_bootstrap():
    a = per_customer_fixture()[("recall", 10)]
    same = paired_bootstrap(a, a.copy())
    assert same == {"mean_diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value_two_sided": 1.0}
    r1, r2 = paired_bootstrap(a, a - 0.05, seed=7), paired_bootstrap(a, a - 0.05, seed=7)
    assert r1 == r2 and r1["mean_diff"] == pytest.approx(0.05)
    noisy = paired_bootstrap(a, a * 0.8, n_boot=1000)
    assert noisy["ci_low"] <= noisy["mean_diff"] <= noisy["ci_high"]
    assert noisy["p_value_two_sided"] < 0.01


# ------------------------------------------------------------------- runner
class FixedScores(Recommender):
    name = "fixed"

    def fit(self, data):
        self.data = data
        self.pop = np.asarray(data.user_items.sum(axis=0)).ravel().astype(np.float32)
        return self

    def score(self, rows):
        return np.tile(self.pop + np.arange(len(self.pop))[::-1] * 1e-3, (len(rows), 1))


def test_evaluate_model_and_predictions_frame():
    t = pd.to_datetime("2020-01-01")
    lines = [  # customer, product, day
        (1, 100, 0), (1, 200, 0), (2, 100, 1), (2, 300, 1), (3, 100, 2),  # fit window
        (1, 100, 10), (1, 300, 10), (1, 999, 10), (2, 200, 11), (3, 100, 12), (4, 100, 12),  # eval
    ]
    trans = pd.DataFrame({"basket_id": np.arange(len(lines)), "customer_id": [c for c, _, _ in lines],
                          "product_id": [p for _, p, _ in lines], "quantity": 1.0,
                          "timestamp": [t + pd.Timedelta(days=d) for _, _, d in lines]})
    customers = pd.DataFrame({"customer_id": [1, 2, 3, 4]})
    fd = make_fit_data(trans, customers, pd.DataFrame({"product_id": [100, 200, 300, 999]}), t + pd.Timedelta(days=5))
    rel = relevance_matrix(select_window(trans, t + pd.Timedelta(days=5), t + pd.Timedelta(days=20)),
                           fd.customer_ids, fd.item_ids)
    model = FixedScores().fit(fd)  # ranking: 100 (3 buyers), 200, 300
    pc, ids, scores, cust = evaluate_model(model, fd, rel, "all", ks=(1, 2), top_n=3)
    assert cust.tolist() == [1, 2, 3]  # 4 has no fit history
    assert ids.tolist() == [[100, 200, 300]] * 3
    assert pc[("recall", 2)].tolist() == [1 / 3, 1 / 1, 1 / 1]  # c1: 100 hit, 300 at rank 3, 999 off-catalog
    pc, ids, scores, cust = evaluate_model(model, fd, rel, "new", ks=(1, 2), top_n=3)
    assert cust.tolist() == [1, 2]  # c3 only re-bought 100
    assert ids.tolist() == [[300, -1, -1], [200, -1, -1]]  # history excluded, -inf slots emptied
    assert pc[("precision", 1)].tolist() == [1.0, 1.0] and pc[("recall", 1)].tolist() == [0.5, 1.0]
    assert catalog_coverage(fd.item_columns(ids[:, :2]), fd.n_items) == pytest.approx(2 / 3)
    pf = predictions_frame("fixed", "new", cust, ids, scores)
    assert list(pf.columns) == ["model", "protocol", "customer_id", "rank", "product_id", "score"]
    assert pf[["customer_id", "rank", "product_id"]].values.tolist() == [[1, 1, 300], [2, 1, 200]]
    assert (pf.model == "fixed").all() and (pf.protocol == "new").all()


@pytest.mark.parametrize("ks", [(5,), (5, 10), (1, 3, 12), (2, 7)])
def test_mask_table_lookup_equals_the_running_sums_bit_for_bit(ks, monkeypatch):
    rng = np.random.default_rng(11)
    hits = rng.random((3000, 12)) < 0.3
    hits[:50] = True  # every rank a hit
    hits[50:100] = False
    n_rel = rng.integers(0, 15, size=len(hits))
    looked_up = ev.metrics_from_hits(hits, n_rel, ks)
    monkeypatch.setattr(ev, "_TABLE_MAX_K", 0)  # every k through the running sums
    summed = ev.metrics_from_hits(hits, n_rel, ks)
    assert looked_up.keys() == summed.keys()
    for key in summed:
        np.testing.assert_array_equal(looked_up[key], summed[key])  # identical, not just close
    assert looked_up[("hit_rate", max(ks))][:50].min() == 1.0 and looked_up[("ndcg", max(ks))][50:100].max() == 0.0
