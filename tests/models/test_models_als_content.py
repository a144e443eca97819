"""Known-answer tests for the ALS and TF-IDF content recommenders (tiny hand-made data)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers.models import als as als_mod
from helpers.models import content as content_mod
from helpers.models.als import ALS, baskets_to_user_items, global_popularity
from helpers.models.base import Recommender, make_fit_data
from helpers.models.content import ContentTFIDF
from helpers.tuning.stages import expand_grid

AS_OF = pd.Timestamp("2020-03-01")


def tx_frame(records) -> pd.DataFrame:
    """``records``: (customer_id, product_id, days_before_as_of, basket_id)."""
    df = pd.DataFrame(records, columns=["customer_id", "product_id", "days", "basket_id"])
    df["timestamp"] = AS_OF - pd.to_timedelta(df.pop("days"), unit="D") - pd.Timedelta(hours=1)
    df["quantity"] = 1.0
    return df


def products_frame(texts: dict[int, str], department=None) -> pd.DataFrame:
    return pd.DataFrame({
        "product_id": list(texts), "description": list(texts.values()),
        "department": department, "category": None, "product_type": None, "brand": None,
    })


# ------------------------------------------------------------- block data (ALS)
N_USERS, N_ITEMS = 24, 20  # users 0-11 buy items 0-9, users 12-23 buy items 10-19


@pytest.fixture(scope="module")
def block_data():
    rng = np.random.default_rng(7)
    records, basket = [], 0
    for u in range(N_USERS):
        block = 0 if u < N_USERS // 2 else 10
        for it in rng.choice(10, size=6, replace=False):
            for _ in range(rng.integers(1, 4)):  # 1-3 distinct baskets
                basket += 1
                records.append((u, block + int(it), int(rng.integers(1, 60)), basket))
    tx = tx_frame(records)
    customers = pd.DataFrame({"customer_id": np.arange(N_USERS + 1)})  # customer 24: no history
    products = products_frame({i: f"product {i}" for i in range(N_ITEMS)})
    return make_fit_data(tx, customers, products, AS_OF)


def in_block(user_or_block: int, ids: np.ndarray) -> np.ndarray:
    return (ids >= 10) == (user_or_block >= N_USERS // 2)


@pytest.mark.parametrize("weighting,alpha", [("bm25", 1.0), ("log", 20.0), ("none", 1.0)])
@pytest.mark.parametrize("regularization", [0.01, 1.0])
def test_als_recommends_in_block_items(block_data, weighting, alpha, regularization):
    # two disjoint blocks = a rank-2 matrix: 2 factors recover it exactly
    model = ALS(factors=2, regularization=regularization, alpha=alpha, weighting=weighting).fit(block_data)
    users = np.arange(N_USERS)
    ids, scores = model.recommend(users, k=4, exclude=True)
    assert ids.shape == (N_USERS, 4) and np.isfinite(scores).all()
    assert in_block(users[:, None], ids).all()  # the 4 unbought items of each user's block
    bought = block_data.user_items.toarray() > 0
    assert not bought[users[:, None], block_data.item_columns(ids)].any()


def test_als_score_shape_dtype_and_formula(block_data):
    model = ALS(factors=4).fit(block_data)
    rows = np.array([0, 13, 5])
    s = model.score(rows)
    assert s.shape == (3, N_ITEMS) and s.dtype == np.float32
    exact = model.user_factors[rows].astype(np.float64) @ model.item_factors.T.astype(np.float64)
    np.testing.assert_array_equal(s, exact.astype(np.float32))


def test_stable_dot_does_not_depend_on_the_block():
    from helpers.models.base import stable_dot

    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 64)).astype(np.float32)
    b = rng.standard_normal((2000, 64)).astype(np.float32)
    whole = stable_dot(a, b)
    assert whole.dtype == np.float32
    for start, stop in ((0, 1), (0, 97), (5, 262), (299, 300)):
        np.testing.assert_array_equal(stable_dot(a[start:stop], b), whole[start:stop])


def test_als_deterministic_across_fits_and_threads(block_data):
    a = ALS(factors=8, random_state=3, num_threads=1).fit(block_data)
    b = ALS(factors=8, random_state=3, num_threads=1).fit(block_data)
    c = ALS(factors=8, random_state=3, num_threads=2).fit(block_data)
    rows = np.arange(-1, N_USERS + 1)
    assert np.array_equal(a.score(rows), b.score(rows))
    assert np.array_equal(a.score(rows), c.score(rows))
    d = ALS(factors=8, random_state=4).fit(block_data)
    assert not np.array_equal(a.item_factors, d.item_factors)


def test_als_fit_does_not_warn_about_blas(block_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        als_mod.ALS(factors=4, iterations=2).fit(block_data)


def test_bm25_confidence_matches_implicit(block_data):
    from implicit.nearest_neighbours import bm25_weight

    model = ALS(factors=4, iterations=1, weighting="bm25", alpha=2.0, bm25_k1=50, bm25_b=0.5).fit(block_data)
    ours = model.confidence(block_data.user_items).toarray()
    ref = 2.0 * bm25_weight(block_data.user_items.T.tocoo(), K1=50, B=0.5).T.toarray()
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_log_and_none_confidence(block_data):
    ui = block_data.user_items
    log = ALS(weighting="log", alpha=3.0, iterations=1).fit(block_data).confidence(ui)
    np.testing.assert_allclose(log.data, 1 + 3.0 * np.log1p(ui.data), rtol=1e-6)
    none = ALS(weighting="none", alpha=3.0, iterations=1).fit(block_data).confidence(ui)
    np.testing.assert_allclose(none.data, 3.0 * ui.data)
    with pytest.raises(ValueError):
        ALS(weighting="tfidf")


def test_als_cold_start_gets_global_popularity(block_data):
    model = ALS(factors=4).fit(block_data)
    ids, scores = model.recommend([N_USERS, 999, -5], k=5)  # no history, unknown, unknown
    assert ids.shape == (3, 5) and np.isfinite(scores).all()
    pop = global_popularity(block_data.user_items)
    expected = block_data.item_ids[np.lexsort((np.arange(N_ITEMS), -pop))[:5]]
    assert (ids == expected).all()
    assert np.array_equal(model.score(np.array([-1]))[0], pop)


def test_global_popularity_orders_by_buyers_then_baskets():
    ui = sp.csr_matrix(np.array([[1, 3, 0, 1], [1, 0, 2, 1], [0, 1, 0, 1]], dtype=np.float32))
    pop = global_popularity(ui)  # buyers 2,2,1,3 ; baskets 2,4,2,3
    assert list(np.argsort(-pop, kind="stable")) == [3, 1, 0, 2]
    assert pop.max() == 1.0 and pop.dtype == np.float32


class FixedScores(Recommender):
    """Stub fallback: item index order reversed, remembers whether it was fitted."""

    name = "fixed"

    def fit(self, data):
        self.data = data
        self.fitted = getattr(self, "fitted", 0) + 1
        return self

    def score(self, rows):
        return np.tile(np.arange(self.data.n_items, dtype=np.float32), (len(rows), 1))


@pytest.mark.parametrize("cls,kwargs", [(ALS, {"factors": 4}), (ContentTFIDF, {"min_df": 1})])
def test_injected_fallback_and_min_history(block_data, cls, kwargs):
    fb = FixedScores()
    model = cls(fallback=fb, **kwargs).fit(block_data)
    assert fb.fitted == 1
    ids, _ = model.recommend([N_USERS, 12345], k=3)
    assert (ids == [[19, 18, 17], [19, 18, 17]]).all()
    model.fit(block_data)  # already fitted on this data: not refitted
    assert fb.fitted == 1
    if cls is ALS:  # every customer bought 6 items: min_history=7 makes them all cold
        cold = ALS(factors=4, fallback=FixedScores(), min_history=7).fit(block_data)
        assert (cold.recommend([0, 13], k=2)[0] == [[19, 18], [19, 18]]).all()


def test_fold_in_basket_gives_in_block_recommendations(block_data):
    model = ALS(factors=2, regularization=0.01, weighting="bm25").fit(block_data)
    f = model.fold_in([[0, 1, 2], [12, 13, 999999]])  # 999999: off-catalog, ignored
    assert f.shape == (2, 2) and f.dtype == np.float32
    ids, scores = model.recommend_baskets([[0, 1, 2], [12, 13, 999999]], k=5)
    assert (ids[0] < 10).all() and (ids[1] >= 10).all()
    assert not np.isin(ids[0], [0, 1, 2]).any() and not np.isin(ids[1], [12, 13]).any()
    # a flat list is one basket; an empty basket gets the cold-start ranking
    assert model.fold_in([0, 1, 2]).shape == (1, 2)
    np.testing.assert_array_equal(model.fold_in([0, 1, 2]), f[:1])
    empty_ids, empty_scores = model.recommend_baskets([[]], k=3)
    assert (empty_ids == model.recommend([999], k=3)[0]).all() and np.isfinite(empty_scores).all()
    # folding in a customer's own history reproduces (approximately) the fitted factors' ranking
    refold = model.score_baskets(block_data.user_items[[0, 20]])
    assert in_block(0, block_data.item_ids[np.argsort(-refold[0])[:10]]).all()
    assert in_block(20, block_data.item_ids[np.argsort(-refold[1])[:10]]).all()


def test_baskets_to_user_items():
    items = np.array([3, 5, 9])
    m = baskets_to_user_items([[5, 5, 3], [], [7, 9]], items)
    assert m.toarray().tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert baskets_to_user_items(np.array([9, 3]), items).toarray().tolist() == [[1, 0, 1]]
    with pytest.raises(ValueError):
        baskets_to_user_items(sp.csr_matrix((1, 4)), items)


# ------------------------------------------------------------- content data
TEXTS = {
    1: "whole milk organic",
    2: "skim milk organic",
    3: "dark chocolate bar",
    4: "milk chocolate bar",
    5: "tortilla chips salsa",
    6: "dog food chicken",
    7: "dog treats chicken",
    8: "apple juice",
    9: "orange juice",
    10: "tortilla chips lime",
    # 11 and 12 are in dim_product but nobody bought them (new products)
    11: "dark chocolate bar with sea salt",
    12: "kiwi smoothie",
}


@pytest.fixture(scope="module")
def content_data():
    records = [
        (100, 1, 3, 1), (100, 1, 10, 2), (100, 2, 20, 3),      # milk lover
        (101, 3, 5, 4),                                           # chocolate
        (102, 8, 200, 5), (102, 8, 190, 6), (102, 6, 2, 7),       # old juice (x2), recent dog food
        (103, 5, 1, 8), (103, 4, 1, 8), (103, 9, 50, 9), (103, 7, 40, 10), (103, 10, 30, 11),
    ]
    customers = pd.DataFrame({"customer_id": [100, 101, 102, 103, 104]})  # 104: no history
    return make_fit_data(tx_frame(records), customers, products_frame(TEXTS), AS_OF)


def test_content_recommends_textual_match(content_data):
    model = ContentTFIDF(min_df=1, ngram_range=(1, 1)).fit(content_data)
    ids, scores = model.recommend([100, 101], k=2, exclude=True)
    assert ids[0, 0] == 4  # the only other "milk" product
    assert ids[1, 0] == 4  # "milk chocolate bar" shares "chocolate bar"
    assert np.isfinite(scores).all()


def test_content_recency_half_life(content_data):
    # 2 old juice baskets vs 1 recent dog-food basket
    recent = ContentTFIDF(min_df=1, half_life_days=7).fit(content_data)
    assert recent.recommend([102], k=1, exclude=True)[0][0, 0] == 7  # dog treats
    no_decay = ContentTFIDF(min_df=1, half_life_days=None).fit(content_data)
    assert no_decay.recommend([102], k=1, exclude=True)[0][0, 0] == 9  # orange juice
    once = ContentTFIDF(min_df=1, half_life_days=None, use_frequency=False).fit(content_data)
    w = once.weights[content_data.customer_rows([102])[0]]
    assert sorted(w.data.tolist()) == [1.0, 1.0]  # each item once, no decay


def test_content_scores_are_cosines(content_data):
    model = ContentTFIDF(min_df=1, popularity_weight=0.0).fit(content_data)
    rows = content_data.customer_rows([100, 101, 102, 103])
    s = model.score(rows)
    assert s.dtype == np.float32 and s.shape == (4, content_data.n_items)
    assert (s >= -1e-6).all() and (s <= 1 + 1e-5).all()
    prof = model.profiles[rows].toarray()
    np.testing.assert_allclose(np.linalg.norm(prof, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(s, prof @ model.item_tfidf.toarray().T, rtol=1e-5, atol=1e-6)
    # chunking does not change the result
    small = ContentTFIDF(min_df=1, popularity_weight=0.0, chunk_size=1).fit(content_data)
    np.testing.assert_allclose(small.score(rows), s, rtol=1e-6)
    prior = ContentTFIDF(min_df=1, popularity_weight=0.1).fit(content_data)
    pop = global_popularity(content_data.user_items)
    np.testing.assert_allclose(prior.score(rows), s + 0.1 * pop, rtol=1e-5, atol=1e-6)


def test_content_vocabulary_fitted_on_catalog_only(content_data):
    model = ContentTFIDF(min_df=1, ngram_range=(1, 1)).fit(content_data)
    vocab = set(model.vectorizer.vocabulary_)
    assert {"milk", "chocolate", "dog"} <= vocab
    assert not {"kiwi", "smoothie", "sea", "salt"} & vocab  # only in never-bought products


def test_content_text_joins_columns(content_data):
    data = make_fit_data(content_data.transactions, content_data.customers,
                         products_frame(TEXTS, department="PANTRY"), AS_OF)
    model = ContentTFIDF(min_df=1).fit(data)
    assert "pantry" in model.vectorizer.vocabulary_
    only_desc = ContentTFIDF(min_df=1, text_columns=("description",)).fit(data)
    assert "pantry" not in only_desc.vectorizer.vocabulary_


def test_content_cold_start(content_data):
    model = ContentTFIDF(min_df=1).fit(content_data)
    ids, scores = model.recommend([104, 555], k=4)
    assert ids.shape == (2, 4) and np.isfinite(scores).all()
    assert np.array_equal(ids[0], ids[1])
    assert ids[0, 0] == 1  # most popular item: 1 buyer, 2 baskets (ties broken by baskets)


def test_similar_products_near_duplicate_first(content_data):
    model = ContentTFIDF(min_df=1).fit(content_data)
    ids, scores = model.similar_products([5, 1, 6], k=3, include_new=False)
    assert ids[:, 0].tolist() == [10, 2, 7]
    assert (ids != np.array([5, 1, 6])[:, None]).all()  # never itself
    finite = np.where(np.isfinite(scores), scores, -1.0)
    assert (np.diff(finite, axis=1) <= 0).all()
    assert np.isfinite(scores[:, 0]).all()


def test_similar_products_new_and_unknown(content_data):
    model = ContentTFIDF(min_df=1).fit(content_data)
    # product 11 was never bought: vectorised with the fitted vocabulary
    ids, scores = model.similar_products([11], k=2, include_new=False)
    assert ids[0, 0] == 3 and scores[0, 0] > 0.9  # "dark chocolate bar" (sea salt is unknown)
    ids, _ = model.similar_products([3], k=2, include_new=True)
    assert ids[0].tolist() == [11, 4]  # the new near-duplicate is a candidate too
    assert 11 not in model.similar_products([3], k=5, include_new=False)[0]
    # no known word / unknown product: empty slots
    ids, scores = model.similar_products([12, 424242], k=3)
    assert (ids == -1).all() and np.isneginf(scores).all()
    # fewer than k products share a word: padded
    ids, scores = model.similar_products([8], k=4, include_new=False)
    assert ids[0, 0] == 9 and (ids[0, 1:] == -1).all()


def test_similar_products_mixed_queries_equal_single_ones_and_the_text_vectors(content_data):
    model = ContentTFIDF(min_df=1).fit(content_data)
    queries = [11, 5, 424242, 3, 12, 1]  # not a candidate, candidate, unknown, ...
    ids, scores = model.similar_products(queries, k=3, include_new=False)
    for i, q in enumerate(queries):
        one_ids, one_scores = model.similar_products([q], k=3, include_new=False)
        assert ids[i].tolist() == one_ids[0].tolist()
        np.testing.assert_array_equal(scores[i], one_scores[0])
    # a candidate's row is its text's TF-IDF vector: the scores are the cosines of the texts
    cand = model.transform(content_data.item_ids)
    q = model.transform(np.array([5]))
    cos = (q @ cand.T).toarray()[0]
    col = content_data.item_columns(np.array([ids[1, 0]]))[0]
    assert scores[1, 0] == pytest.approx(cos[col], rel=1e-5)


def test_score_products_anonymous_basket(content_data):
    model = ContentTFIDF(min_df=1).fit(content_data)
    s = model.score_products([6])
    assert s.shape == (1, content_data.n_items)
    assert content_data.item_ids[np.argsort(-s[0], kind="stable")[1]] == 7
    assert np.array_equal(model.score_products([]), model.score(np.array([-1])))


def test_grids_are_small_and_valid(block_data, content_data):
    for mod, cls, data in ((als_mod, ALS, block_data), (content_mod, ContentTFIDF, content_data)):
        cands = expand_grid(mod.GRID)
        assert 1 <= len(cands) <= 16
        cls(**{**cands[0], **({"min_df": 1} if cls is ContentTFIDF else {})}).fit(data)


def test_content_popularity_weight_breaks_text_ties():
    texts = {1: "green tea", 2: "green tea", 3: "green tea", 4: "coffee beans"}
    # buyers: 1 -> one, 3 -> two, 4 -> one; customer 9 bought tea 2 only
    records = [(1, 4, 5, 1), (1, 1, 5, 1), (2, 3, 5, 2), (3, 3, 6, 3), (9, 2, 1, 4)]
    data_tea = make_fit_data(tx_frame(records), pd.DataFrame({"customer_id": [1, 2, 3, 9]}),
                             products_frame(texts), AS_OF)
    plain = ContentTFIDF(min_df=1, popularity_weight=0.0).fit(data_tea)
    assert plain.recommend([9], k=1, exclude=True)[0][0, 0] == 1  # exact tie: lower index wins
    prior = ContentTFIDF(min_df=1, popularity_weight=1e-3).fit(data_tea)
    ids, scores = prior.recommend([9], k=2, exclude=True)
    assert ids[0].tolist() == [3, 1]  # the popular twin first, text still dominates coffee
    np.testing.assert_allclose(scores[0, 0], 1.0, atol=2e-3)


def test_similar_products_equal_brute_force_with_duplicate_texts():
    """Ranking once per distinct text must give the per-product brute force exactly:
    cosine of TF-IDF rows, itself excluded, ties by the lower product id."""
    rng = np.random.default_rng(3)
    words = ["red", "blue", "paint", "brush", "wool", "yarn", "glue", "wood", "kit", "set"]
    base = [" ".join(rng.choice(words, size=3, replace=False)) for _ in range(12)]
    texts = {pid: base[int(rng.integers(len(base)))] for pid in range(1, 61)}  # many exact duplicates
    records = [(100 + c, int(p), 1 + (c * 7 + p) % 40, 1 + c) for c in range(15)
               for p in rng.choice(np.arange(1, 51), size=4, replace=False)]
    data = make_fit_data(tx_frame(records), pd.DataFrame({"customer_id": np.arange(100, 115)}),
                         products_frame(texts), AS_OF)
    model = ContentTFIDF(min_df=1, chunk_size=3, num_threads=2).fit(data)  # many blocks, two threads
    q = np.arange(1, 62)  # 51..60 never bought, 61 unknown
    ids, scores = model.similar_products(q, k=7, include_new=True)
    serial = ContentTFIDF(min_df=1, chunk_size=64, num_threads=1).fit(data)
    ids1, scores1 = serial.similar_products(q, k=7, include_new=True)
    assert np.array_equal(ids, ids1) and np.array_equal(scores, scores1)
    rows = np.arange(-1, 15)
    assert np.array_equal(model.score(rows), serial.score(rows))
    cand_ids, cand = model._candidates(True)
    dense = (cand @ model.transform(q).T).T.toarray()
    for i, pid in enumerate(q):
        s = dense[i].copy()
        s[cand_ids == pid] = -np.inf
        s[s <= 0] = -np.inf
        order = np.lexsort((np.arange(len(s)), -s))[:7]
        want = np.where(np.isfinite(s[order]), cand_ids[order], -1)
        assert ids[i].tolist() == want.tolist(), pid
        np.testing.assert_allclose(np.where(np.isfinite(scores[i]), scores[i], -9),
                                   np.where(np.isfinite(s[order]), s[order], -9), rtol=1e-5)


def test_content_text_fit_shared_across_weightings(content_data):
    """Models that differ only in the purchase weighting share one TF-IDF fit per window
    and score exactly as a model fitted on a fresh copy of the window."""
    from dataclasses import replace

    a = ContentTFIDF(min_df=1, half_life_days=7).fit(content_data)
    b = ContentTFIDF(min_df=1, half_life_days=None).fit(content_data)
    c = ContentTFIDF(min_df=1, half_life_days=7, sublinear_tf=False).fit(content_data)
    assert a.item_tfidf is b.item_tfidf and a.vectorizer is b.vectorizer
    assert c.item_tfidf is not a.item_tfidf  # another text setting, another fit
    fresh = replace(content_data, extras={})
    rows = content_data.customer_rows([100, 101, 102, 103, 104])
    for model, kwargs in ((b, dict(half_life_days=None)), (c, dict(half_life_days=7, sublinear_tf=False))):
        alone = ContentTFIDF(min_df=1, **kwargs).fit(fresh)
        assert alone.item_tfidf is not model.item_tfidf
        np.testing.assert_array_equal(alone.score(rows), model.score(rows))


def test_memo_vectorizer_equals_the_plain_one_with_its_memo_cold_and_warm():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from helpers.models.content import MemoTfidfVectorizer

    texts = ["Red apple juice", "green APPLE", "apple juice 1L", "", "juice box red", "red red apple"] * 3
    for ngram in ((1, 1), (1, 2)):
        plain = TfidfVectorizer(ngram_range=ngram, min_df=2, sublinear_tf=True, dtype=np.float32)
        want = plain.fit_transform(texts)
        for _ in range(2):  # the second fit reads every text's terms from the memo
            memo = MemoTfidfVectorizer(ngram_range=ngram, min_df=2, sublinear_tf=True, dtype=np.float32)
            got = memo.fit_transform(texts[::-1])[::-1]  # another order, the same documents
            assert memo.vocabulary_ == plain.vocabulary_
            np.testing.assert_array_equal(memo.idf_, plain.idf_)
            np.testing.assert_array_equal(got.toarray(), want.toarray())
            np.testing.assert_array_equal(memo.transform(["apple pie"]).toarray(),
                                          plain.transform(["apple pie"]).toarray())
