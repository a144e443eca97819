"""The thread budgets (the project's pools, native solvers), and results that do not depend on them."""

from __future__ import annotations

import os

import pytest
from threadpoolctl import threadpool_info

from helpers.data.split import temporal_split
from helpers.models import THREADS_ENV, blas_limits, n_threads
from helpers.models.hybrid import Hybrid, Rules
from helpers.models.registry import MODELS
from helpers.models.threads import NATIVE_THREADS_ENV, native_threads
from helpers.tuning.stages import make_stage, score_model
from helpers.tuning.weights import CandidatePool, search_weights


def test_n_threads_is_requested_then_environment_then_every_core(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert n_threads() == max(1, os.cpu_count() or 1)
    assert n_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV, "5")
    assert n_threads() == 5 and n_threads(0) == 5 and n_threads(2) == 2  # a request wins over the budget
    for unset in ("", "0", " 0 "):
        monkeypatch.setenv(THREADS_ENV, unset)
        assert n_threads() == max(1, os.cpu_count() or 1)
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ValueError, match=THREADS_ENV):
        n_threads()


def test_native_threads_are_requested_then_their_own_budget_then_the_pools_budget(monkeypatch):
    monkeypatch.delenv(NATIVE_THREADS_ENV, raising=False)
    monkeypatch.setenv(THREADS_ENV, "6")
    assert native_threads() == 6 and native_threads(2) == 2
    monkeypatch.setenv(NATIVE_THREADS_ENV, "3")
    assert native_threads() == 3 and native_threads(0) == 3 and native_threads(5) == 5
    assert n_threads() == 6  # the pools keep their own budget
    monkeypatch.setenv(NATIVE_THREADS_ENV, "0")
    assert native_threads() == 6
    monkeypatch.setenv(NATIVE_THREADS_ENV, "x")
    with pytest.raises(ValueError, match=NATIVE_THREADS_ENV):
        native_threads()


def test_blas_limits_follow_the_native_budget(monkeypatch):
    if not any(i.get("user_api") == "blas" for i in threadpool_info()):
        pytest.skip("no BLAS pool loaded")
    monkeypatch.setenv(THREADS_ENV, "2")
    monkeypatch.setenv(NATIVE_THREADS_ENV, "1")
    with blas_limits():
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}


@pytest.fixture(scope="module")
def stage(tiny_tables):
    split = temporal_split(tiny_tables["fact_transactions"], test_days=14, valid_days=14)
    return make_stage(tiny_tables, split, "valid")


def _everything(stage) -> dict:
    """Every registered model's fit, lists and validation score, a hybrid over them and its
    weight search, under the current thread budget."""
    fd = stage.fit
    out, comps = {}, {}
    small = {"als": {"factors": 8, "iterations": 5, "random_state": 0}, "content": {"min_df": 1},
             "ease": {"max_items": 100}, "itemknn": {"k_neighbors": 20}}
    for name, (cls, protocols, _) in MODELS.items():
        model = comps[name] = cls(**small.get(name, {})).fit(fd)
        ids, scores = model.recommend(fd.customer_ids, k=10, exclude=True, chunk_size=37)
        out[name] = (ids.tolist(), scores.tobytes(), score_model(model, stage, protocols, chunk_size=37))
    hybrid = Hybrid(comps, {name: 1.0 / len(comps) for name in comps}, Rules(max_per_category=2)).fit(fd)
    ids, scores = hybrid.recommend(fd.customer_ids, k=10, chunk_size=37)
    out["hybrid"] = (ids.tolist(), scores.tobytes())
    pool = CandidatePool(comps, fd, stage.relevance, "all", pool_size=15, chunk_size=37)
    out["weights"] = search_weights(pool, n_trials=25, seed=2, by_history=True)[0]
    return out


def test_results_do_not_depend_on_the_thread_count(stage, monkeypatch):
    runs = []
    for budget, native in (("1", "1"), ("2", "1"), ("3", "2")):
        monkeypatch.setenv(THREADS_ENV, budget)
        monkeypatch.setenv(NATIVE_THREADS_ENV, native)
        runs.append(_everything(stage))
    assert runs[0] == runs[1] == runs[2]
