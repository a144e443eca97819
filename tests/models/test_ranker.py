"""The learned re-ranker: repurchase features, training, and the hybrid that uses it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.data.split import temporal_split
from helpers.models.base import Recommender, make_fit_data, top_k
from helpers.models.buy_again import BuyAgain
from helpers.models.hybrid import Hybrid
from helpers.models.popularity import GlobalPopularity
from helpers.models.ranker import FEATURES, Examples, PairHistory, Ranker, candidates, design, pool_examples
from helpers.tuning.stages import make_stage, score_model
from helpers.tuning.weights import CandidatePool


def _history_fit():
    # customer 1 buys product 10 at 21, 14 and 7 days before as_of (twice in the last basket: one basket),
    # and product 11 alone 3 days before; customer 2 buys 11 once, 40 days before
    day = pd.Timestamp("2024-03-01")
    tx = pd.DataFrame({
        "basket_id": [1, 2, 3, 3, 4, 5],
        "customer_id": [1, 1, 1, 1, 1, 2],
        "product_id": [10, 10, 10, 10, 11, 11],
        "timestamp": [day - pd.Timedelta(days=d) for d in (21, 14, 7, 7, 3, 40)],
        "quantity": [1.0] * 6, "sales_value": [1.0] * 6,
    })
    prod = pd.DataFrame({"product_id": [10, 11], "category": ["a", "a"]})
    return make_fit_data(tx, pd.DataFrame({"customer_id": [1, 2, 3]}), prod, day)


def test_pair_features_known_answer():
    fd = _history_fit()
    h = PairHistory.from_fit(fd, recent_days=28)
    rows = fd.customer_rows(np.array([1, 2, 3, 99]))
    cols = fd.item_columns(np.array([10, 11]))  # the catalog: products bought in the fit window
    assert fd.n_items == 2 and (cols >= 0).all()
    x = h.features(rows, np.tile(cols, (4, 1)))
    f = {name: x[:, j].reshape(4, 2) for j, name in enumerate(FEATURES)}
    # customer 1, product 10: 3 baskets, last 7 days ago, every 7 days -> due 1.0; 1 basket (product 11) since
    assert f["item_baskets"][0].tolist() == [3, 1] and f["item_baskets"][1].tolist() == [0, 1]
    assert f["item_days_since"][0].tolist() == [7, 3] and f["item_days_since"][1].tolist() == [-1, 40]
    assert f["item_interval_days"][0].tolist() == [7, -1]
    assert f["item_due"][0, 0] == pytest.approx(1.0)
    assert f["item_basket_share"][0, :2] == pytest.approx([0.75, 0.25])
    assert f["baskets_since_item"][0].tolist() == [1, 0] and f["baskets_since_item"][1].tolist() == [-1, 0]
    assert f["customer_baskets"][:, 0].tolist() == [4, 1, 0, 0]
    assert f["customer_days_since"][:, 0].tolist() == [3, 40, -1, -1]
    assert f["customer_interval_days"][:, 0].tolist() == [6, -1, -1, -1]  # (21 - 3) / 3
    # product 11: two buyers, one of them in the last 28 days
    assert f["log_buyers"][0].tolist() == pytest.approx(np.log1p([1, 2]).tolist())
    assert f["log_recent_buyers"][0].tolist() == pytest.approx(np.log1p([1, 1]).tolist())
    assert (x[6:8] == x[4:6]).all()  # an unknown customer (99) looks like one without history (3)


def test_candidates_union_marks_repeats():
    a = np.array([[0.9, 0.1, 0.5, 0.0]], dtype=np.float32)
    b = np.array([[0.8, 0.0, 0.1, 0.7]], dtype=np.float32)
    cands, stacked = candidates([a, b], 2)
    assert cands.tolist() == [[0, 0, 2, 3]]
    assert stacked[0, 0].tolist() == pytest.approx([0.9, 0.8]) and np.isneginf(stacked[0, 1]).all()
    assert stacked[0, 3].tolist() == pytest.approx([0.0, 0.7])


def test_ranker_is_deterministic_and_keeps_every_positive():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)).astype(np.float32)
    y = x[:, 0] + 0.5 * rng.normal(size=4000) > 1.0
    ex = Examples(x, y, np.ones(len(y), dtype=bool))
    a = Ranker(max_iter=20, negative_rate=0.3, seed=1).fit([ex])
    b = Ranker(max_iter=20, negative_rate=0.3, seed=1).fit([ex])
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    assert a.n_train_ == pytest.approx(y.sum() + 0.3 * (~y).sum(), rel=0.05)
    assert np.corrcoef(a.predict(x), x[:, 0])[0, 1] > 0.8  # it learned the signal
    with pytest.raises(ValueError, match="both bought and not-bought"):
        Ranker().fit([Examples(x, np.zeros(len(y), dtype=bool), np.ones(len(y), dtype=bool))])


class _ByFeature:
    """A stand-in ranker whose 'probability' is one feature column (duck-typed)."""

    def __init__(self, column):
        self.column = column

    def predict(self, x):
        return x[:, self.column].astype(np.float32)


@pytest.fixture(scope="module")
def tiny_stage(tiny_tables):
    split = temporal_split(tiny_tables["fact_transactions"], test_days=14, valid_days=14)
    return make_stage(tiny_tables, split, "valid")


def test_hybrid_with_ranker_orders_candidates_by_it(tiny_stage):
    fd = tiny_stage.fit
    comps = {"pop": GlobalPopularity().fit(fd), "buy": BuyAgain(half_life_days=30).fit(fd)}
    weights = {"pop": 0.5, "buy": 0.5}
    col = FEATURES.index("item_baskets")
    h = Hybrid(comps, weights, ranker=_ByFeature(col), pool_size=5, ranker_chunk=7).fit(fd)
    rows = np.arange(fd.n_customers)
    s = h.score(rows)
    normed = [h.component_scores(rows)[n] for n in comps]
    cands, _ = candidates(normed, 5)
    blend = Hybrid(comps, weights).fit(fd).score(rows)
    counts = fd.user_items.toarray()  # distinct baskets per (customer, product)
    for i in range(fd.n_customers):
        inside = np.zeros(fd.n_items, dtype=bool)
        inside[cands[i]] = True
        assert s[i, inside].min() > s[i, ~inside].max()  # every candidate above every other product
        np.testing.assert_allclose(s[i, inside], 2.0 + counts[i, inside], rtol=1e-6)  # offset 1 + sum(w)
        np.testing.assert_allclose(s[i, ~inside], blend[i, ~inside], rtol=1e-6)
    # chunking does not change the scores
    np.testing.assert_array_equal(s, Hybrid(comps, weights, ranker=_ByFeature(col), pool_size=5,
                                            ranker_chunk=1000).fit(fd).score(rows))


@pytest.mark.parametrize("k, pool_size", [(5, 5), (10, 3), (10, 40)])
@pytest.mark.parametrize("exclude", [None, True])
def test_ranked_candidates_give_the_dense_ranking(tiny_stage, k, pool_size, exclude, monkeypatch):
    """recommend ranks only each row's candidates (rows short of k allowed ones densely): the lists
    and scores of ranking the dense scores, with and without the fit-window purchases excluded."""
    fd = tiny_stage.fit
    dense_rows = []
    base = Recommender.rank_rows
    monkeypatch.setattr(Recommender, "rank_rows", lambda self, rows, ex, k: dense_rows.append(len(rows))
                        or base(self, rows, ex, k))
    comps = {"pop": GlobalPopularity().fit(fd), "buy": BuyAgain(half_life_days=30).fit(fd)}
    h = Hybrid(comps, {"pop": 0.5, "buy": 0.5}, ranker=_ByFeature(FEATURES.index("item_baskets")),
               pool_size=pool_size, ranker_chunk=7).fit(fd)
    ids = fd.customer_ids
    got_ids, got_scores = h.recommend(ids, k=k, exclude=exclude)
    s = h.score(np.arange(fd.n_customers))
    if exclude:
        r, c = fd.user_items.nonzero()
        s[r, c] = -np.inf
    idx, val = top_k(s, k)
    np.testing.assert_array_equal(got_ids, fd.item_ids[idx])
    np.testing.assert_array_equal(got_scores, val)
    if pool_size == 3:  # at most 6 candidates: every row is ranked densely
        assert sum(dense_rows) == fd.n_customers
    elif exclude is None:  # pool_size >= k: every row has k candidates
        assert sum(dense_rows) == 0


def test_pool_examples_label_the_bought_candidates(tiny_stage):
    fd = tiny_stage.fit
    comps = {"pop": GlobalPopularity().fit(fd), "buy": BuyAgain(half_life_days=30).fit(fd)}
    pool = CandidatePool(comps, fd, tiny_stage.relevance, "all", pool_size=8)
    ex = pool_examples(pool, PairHistory.from_fit(fd))
    n, c = pool.cands.shape
    assert ex.x.shape == (ex.valid.sum(), len(FEATURES) + 2)  # real candidates only
    full = design(PairHistory.from_fit(fd), pool.rows, pool.cands, pool.scores)
    np.testing.assert_array_equal(ex.x, full[ex.valid])
    rel = tiny_stage.relevance.matrix.toarray()[pool.rows]
    want = np.take_along_axis(rel, pool.cands, axis=1).ravel() > 0
    np.testing.assert_array_equal(ex.y, want)
    assert ex.valid.sum() == sum(len(set(r)) for r in pool.cands.tolist())
    # compacted: real candidates first in every row, as many columns as the fullest row needs
    assert pool.cands.shape[1] == max(len(set(r)) for r in pool.cands.tolist())
    assert all(not v[np.argmin(v):].any() for v in ex.valid.reshape(n, c) if not v.all())
    # the pool scores a ranker's predictions as the hybrid ranks them
    r = Ranker(max_iter=10, min_samples_leaf=5).fit([ex])
    p = ex.predict_slots(r).reshape(n, c)
    h = Hybrid(comps, {"pop": 0.5, "buy": 0.5}, ranker=r, pool_size=8).fit(fd)
    assert pool.evaluate_scores(p) == pytest.approx(score_model(h, tiny_stage, ("all",))["all"], abs=1e-9)


def test_run_hybrid_chooses_on_validation_and_saves_the_ranker(tiny_tables, tmp_path):
    from helpers.tuning import workflow as models

    split = temporal_split(tiny_tables["fact_transactions"], test_days=14, valid_days=14)
    valid, test = make_stage(tiny_tables, split, "valid"), make_stage(tiny_tables, split, "test")
    earlier = models.earlier_stages(tiny_tables, split, 14, 1, tmp_path)  # not the checkout's data/processed
    best = {"global_popularity": {p: {} for p in models.PROTOCOLS}, "buy_again": {"all": {"half_life_days": 30.0}}}
    models.save_tuning(best, tmp_path)
    names = ("global_popularity", "buy_again")
    with pytest.raises(KeyError, match="hybrid"):  # nothing tuned yet
        models.evaluate_hybrid(test, tmp_path, n_boot=20)
    out = models.run_hybrid(valid, tmp_path, names, n_trials=10, earlier=earlier,
                            ranker=dict(max_iter=10, min_samples_leaf=5), pool_size=10)
    assert not (tmp_path / "metrics_hybrid.csv").exists()  # the test window is not scored while tuning
    sel = out["selection"]
    assert sel["protocol"].eq("all").all() and sel["chosen"].sum() == 1 and len(sel) == 2
    cfg = models.load_tuning(tmp_path)["hybrid"]
    assert cfg["new"]["ranker"] is None
    uses = bool(sel.loc[sel["method"] == "learned re-ranker", "chosen"].iloc[0])
    assert (cfg["all"]["ranker"] is not None) == uses == (tmp_path / "hybrid_ranker_all.pkl").exists()
    metrics, predictions = models.evaluate_hybrid(test, tmp_path, n_boot=20)
    assert set(metrics["protocol"]) == set(models.PROTOCOLS) and set(metrics["split"]) == {"test"}
    assert (tmp_path / "metrics_hybrid.csv").exists() and (tmp_path / "predictions_hybrid.parquet").exists()
    # the saved config and ranker rebuild the model that was tuned: the same test score as an in-memory hybrid
    from helpers.report.tables import metric_value

    ranker = models.load_ranker(cfg["all"], tmp_path) if uses else None
    comps = models.fit_components(best, test.fit, "all", names)
    h = Hybrid(comps, out["weights"]["all"], ranker=ranker, pool_size=10).fit(test.fit)
    assert score_model(h, test, ("all",))["all"] == pytest.approx(metric_value(metrics, "hybrid", "all"), abs=1e-9)
    with pytest.raises(ValueError, match="earlier"):
        models.run_hybrid(valid, tmp_path, names, n_trials=5, ranker={})


def test_ranker_training_does_not_depend_on_pool_compaction(tiny_stage, monkeypatch):
    fd = tiny_stage.fit
    pop = GlobalPopularity().fit(fd)
    comps = {"pop": pop, "pop_again": pop, "buy": BuyAgain(half_life_days=30).fit(fd)}  # many repeats
    pool = CandidatePool(comps, fd, tiny_stage.relevance, "all", pool_size=8)
    monkeypatch.setattr(CandidatePool, "_compact", lambda self: None)
    wide = CandidatePool(comps, fd, tiny_stage.relevance, "all", pool_size=8)
    assert wide.cands.shape[1] > pool.cands.shape[1]  # repeated columns were dropped
    history = PairHistory.from_fit(fd)
    # one negative-sampling draw per slot of the uncompacted pool, as before compaction existed
    ea, eb = pool_examples(pool, history), pool_examples(wide, history)
    assert ea.draws == eb.draws == wide.cands.size and np.array_equal(ea.draw_at, eb.draw_at)
    a = Ranker(max_iter=10, min_samples_leaf=5, negative_rate=0.5).fit([pool_examples(pool, history)])
    b = Ranker(max_iter=10, min_samples_leaf=5, negative_rate=0.5).fit([pool_examples(wide, history)])
    assert a.n_train_ == b.n_train_  # the same negatives were drawn
    x = pool_examples(pool, history).x
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_signal_groups_add_their_columns_after_the_timing_features():
    from helpers.features.signals import SIGNAL_GROUPS

    fd = _history_fit()
    rows = fd.customer_rows(np.array([1, 2, 3, 99]))
    cands = np.tile(fd.item_columns(np.array([10, 11])), (4, 1))
    plain = PairHistory.from_fit(fd).features(rows, cands)
    h = Ranker(signal_groups=("calendar", "cycles")).history(fd)  # settings kept by the ranker
    x = h.features(rows, cands)
    names = [*FEATURES, *SIGNAL_GROUPS["cycles"], *SIGNAL_GROUPS["calendar"]]  # groups in their fixed order
    assert x.shape == (8, len(names))
    np.testing.assert_array_equal(x[:, :len(FEATURES)], plain)
    f = {n: x[:, j].reshape(4, 2) for j, n in enumerate(names)}
    assert f["n_occasions"][0].tolist() == [3, 1] and f["cycle_ratio"][0, 0] == pytest.approx(1.0)
    assert f["n_occasions"][3].tolist() == [0, 0]  # an unknown customer has no history
    assert (f["promoted"] == 0).all()  # no promotion table: not promoted
    with pytest.raises(ValueError, match="unknown signal groups"):
        Ranker(signal_groups=("astrology",)).history(fd)


def test_history_is_computed_once_per_window_and_setting():
    fd = _history_fit()
    a = Ranker(signal_groups=("cycles",)).history(fd)
    assert Ranker(signal_groups=("cycles",), max_iter=7).history(fd) is a  # the other protocol's ranker shares it
    other = Ranker(signal_groups=("cycles",), horizon_days=7).history(fd)
    assert other is not a and Ranker().history(fd) is not a  # another setting is its own
    assert Ranker().history(_history_fit()) is not Ranker().history(fd)  # another window too
