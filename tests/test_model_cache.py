"""Fitted models shared between notebooks through the on-disk model cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import model_cache, models
from helpers.recommenders.base import make_fit_data


@pytest.fixture()
def fit(tiny_tables):
    fact = tiny_tables["fact_transactions"]
    as_of = fact["timestamp"].max().normalize() - pd.Timedelta(days=20)
    return make_fit_data(fact, tiny_tables["dim_customer"], tiny_tables["dim_product"], as_of)


def _count_fits(monkeypatch, cls):
    calls = []
    original = cls.fit

    def counting(self, data):
        calls.append(type(self).__name__)
        return original(self, data)

    monkeypatch.setattr(cls, "fit", counting)
    return calls


@pytest.mark.parametrize("name, params", [
    ("als", {"factors": 8, "iterations": 3, "regularization": 1.0}),
    ("content", {"half_life_days": 30}),
    ("itemknn", {"k_neighbors": 20, "weighting": "bm25", "similarity": "dot"}),
    ("buy_again", {"half_life_days": 14, "repeat_beta": 0.5}),
])
def test_cached_model_scores_exactly_like_the_fitted_one(tmp_path, fit, monkeypatch, name, params):
    model_cache.enable(fit, tmp_path, "fp1", "valid")
    first = models.make_model(name, params, fit)
    calls = _count_fits(monkeypatch, models.MODELS[name][0])
    again = models.make_model(name, params, fit)
    assert calls == [] and again is not first  # loaded from disk, not refitted
    assert again.data is fit  # the stage's own fit data is put back, not a copy
    rows = np.arange(-1, fit.n_customers)
    assert np.array_equal(first.score(rows), again.score(rows))


def test_keys_params_and_stages(tmp_path, fit, monkeypatch):
    model_cache.enable(fit, tmp_path, "fp1", "valid")
    models.make_model("global_popularity", {"window_days": 7}, fit)
    calls = _count_fits(monkeypatch, models.MODELS["global_popularity"][0])
    models.make_model("global_popularity", {"window_days": 7.0}, fit)  # as read back from tuning.json
    assert calls == []
    models.make_model("global_popularity", {"window_days": 14}, fit)
    assert len(calls) == 1
    model_cache.enable(fit, tmp_path, "fp1", "test")  # another stage label: another key
    models.make_model("global_popularity", {"window_days": 7}, fit)
    assert len(calls) == 2


def test_uncached_fit_data_always_fits_and_writes_nothing(tmp_path, fit, monkeypatch):
    calls = _count_fits(monkeypatch, models.MODELS["global_popularity"][0])
    models.make_model("global_popularity", {}, fit)
    models.make_model("global_popularity", {}, fit)
    assert len(calls) == 2
    assert model_cache.model_path(fit, "global_popularity", {}) is None


def test_new_data_replaces_older_folders_and_clear_empties(tmp_path, fit):
    model_cache.enable(fit, tmp_path, "old", "valid")
    models.make_model("global_popularity", {}, fit)
    old_folder = model_cache.model_path(fit, "global_popularity", {}).parent
    assert old_folder.exists()
    model_cache.enable(fit, tmp_path, "new", "valid")
    models.make_model("global_popularity", {}, fit)
    assert not old_folder.exists()
    assert model_cache.model_path(fit, "global_popularity", {}).exists()
    model_cache.clear(tmp_path)
    assert not (tmp_path / model_cache.SUBDIR).exists()


def test_a_corrupt_file_is_a_miss(tmp_path, fit, monkeypatch):
    model_cache.enable(fit, tmp_path, "fp1", "valid")
    models.make_model("global_popularity", {}, fit)
    model_cache.model_path(fit, "global_popularity", {}).write_bytes(b"not a pickle")
    calls = _count_fits(monkeypatch, models.MODELS["global_popularity"][0])
    models.make_model("global_popularity", {}, fit)
    assert len(calls) == 1


def test_tune_stores_the_best_candidate_per_protocol(tmp_path, tiny_tables, monkeypatch):
    from helpers.evaluation import temporal_split
    from helpers.experiment import make_stage

    split = temporal_split(tiny_tables["fact_transactions"], test_days=14, valid_days=14)
    stage = make_stage(tiny_tables, split, "valid")
    model_cache.enable(stage.fit, tmp_path, "fp1", "valid")
    cands = [{"window_days": w} for w in (None, 7, 28)]
    table, best = models.tune("global_popularity", stage, cands)
    calls = _count_fits(monkeypatch, models.MODELS["global_popularity"][0])
    for protocol in ("all", "new"):
        loaded = models.make_model("global_popularity", best[protocol], stage.fit)
        assert loaded.window_days == best[protocol]["window_days"] or (
            loaded.window_days is None and pd.isna(best[protocol]["window_days"]))
    assert calls == []  # both protocols' winners came from the tuning fits
    stored = sorted(p.name for p in model_cache.model_path(stage.fit, "x", {}).parent.glob("*.pkl"))
    assert len(stored) == len({str(b) for b in best.values()})  # only the winners are kept
