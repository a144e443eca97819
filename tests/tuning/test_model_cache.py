"""Fitted models shared between notebooks through the on-disk model cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.models.base import make_fit_data
from helpers.tuning import model_cache
from helpers.tuning import workflow as models


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
    models.make_model("global_popularity", {"window_days": 7.0}, fit)  # as read back from a tuning file
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
    from helpers.evaluation.metrics import temporal_split
    from helpers.tuning.stages import make_stage

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


@pytest.fixture()
def processed(tmp_path):
    from helpers.data.star import build_star_schema, load_tables

    folder = tmp_path / "processed"
    build_star_schema("synthetic", output_dir=folder, n_customers=120, n_products=90, n_days=150, seed=3)
    return folder, load_tables(folder, names=("fact_transactions", "dim_customer", "dim_product",
                                              "customer_exposure", "dim_date"))


def test_prefit_fills_the_cache_that_the_hybrid_and_the_export_read(processed, tmp_path, monkeypatch):
    from helpers.data.star import load_meta
    from helpers.evaluation.metrics import temporal_split
    from helpers.export.production import fit_production
    from helpers.models.als import ALS
    from helpers.models.buy_again import BuyAgain

    folder, tables = processed
    split = temporal_split(tables["fact_transactions"], test_days=28, valid_days=28)
    later = models.later_fits(tables, split, 28, weight_windows=2, processed_dir=folder)
    assert [t.production for t in later] == [False, True]
    assert model_cache.stage_label(later[0].fit).startswith("valid-1-")
    assert model_cache.stage_label(later[1].fit).startswith(models.PRODUCTION_STAGE)
    als = {"factors": 8, "iterations": 3, "regularization": 0.1, "weighting": "bm25", "alpha": 1.0}
    chosen = {"als": {"all": als, "new": als}, "buy_again": {"all": {"half_life_days": 30.0, "repeat_beta": 0.5}}}
    tables_dir = tmp_path / "tables"
    models.save_tuning(chosen, tables_dir)
    tuned = models.load_tuning(tables_dir)
    # per window: one ALS (both protocols share it), buy again and its two fixed hybrid extras
    assert models.prefit(tuned, later, seed=0) == 8
    assert models.prefit(tuned, later, seed=0) == 0  # already there

    calls = _count_fits(monkeypatch, ALS) + _count_fits(monkeypatch, BuyAgain)
    # the hybrid notebook builds its own earlier stage and fits its components there: all loaded
    earlier = models.earlier_stages(tables, split, 28, 1, folder)
    comps = models.fit_components(tuned, earlier[0].fit, "all", ("buy_again", "buy_again_recent",
                                                                 "buy_again_long", "als"))
    assert set(comps) == {"buy_again", "buy_again_recent", "buy_again_long", "als"} and calls == []
    # the export's all-data fit (ALS seeded as the export seeds it) is loaded too, and scores as a fresh fit
    hybrid = {p: {"weights": {"als": 0.5, "buy_again": 0.5} if p == "all" else {"als": 1.0}, "rules": {},
                  "light_max_baskets": 3, "components": ["als", "buy_again"] if p == "all" else ["als"]}
              for p in ("all", "new")}
    save = dict(tuned, hybrid=hybrid)
    fingerprint = load_meta(folder)["fingerprint"]
    model = fit_production(tables, save, fingerprint, seed=0, tables_dir=tables_dir, cache_dir=folder)
    assert not [c for c in calls if c == "ALS"]
    fresh = fit_production(tables, save, None, seed=0, tables_dir=tables_dir)
    rows = np.arange(model.fit.n_customers)
    for protocol in ("all", "new"):
        a, b = model.components(protocol), fresh.components(protocol)
        for name in a:
            assert np.array_equal(a[name].score(rows), b[name].score(rows)), (protocol, name)


def test_prefit_ranks_the_exports_similar_products_ahead(processed, monkeypatch):
    from helpers.data.products import ProductLookup
    from helpers.evaluation.metrics import temporal_split
    from helpers.export.production import fit_production
    from helpers.models.content import ContentTFIDF
    from helpers.tuning.production import N_SIMILAR, similar_products

    folder, tables = processed
    split = temporal_split(tables["fact_transactions"], test_days=28, valid_days=28)
    later = models.later_fits(tables, split, 28, weight_windows=2, processed_dir=folder)
    content = {"half_life_days": 30.0, "popularity_weight": 1e-3}
    tuned = {"content": {"all": content, "new": content}}
    models.prefit(tuned, later, seed=0)
    hybrid = {p: {"weights": {"content": 1.0}, "rules": {}, "light_max_baskets": 3, "components": ["content"]}
              for p in ("all", "new")}
    from helpers.data.star import load_meta

    model = fit_production(tables, dict(tuned, hybrid=hybrid), load_meta(folder)["fingerprint"], seed=0,
                           cache_dir=folder)
    ids = ProductLookup(tables["dim_product"]).ids  # what the export asks for
    fresh = model.content.similar_products(ids, k=N_SIMILAR, include_new=True)

    def refuse(*args, **kwargs):
        raise AssertionError("ranked again instead of loaded")

    monkeypatch.setattr(ContentTFIDF, "similar_products", refuse)
    params = model.tuning["content"]["all"]
    cached = similar_products(model.content, params, ids, N_SIMILAR)
    assert all(np.array_equal(a, b) for a, b in zip(cached, fresh))
    with pytest.raises(AssertionError, match="ranked again"):  # another depth or other products: not a hit
        similar_products(model.content, params, ids, N_SIMILAR + 1)
    with pytest.raises(AssertionError, match="ranked again"):
        similar_products(model.content, params, ids[1:], N_SIMILAR)


def test_no_later_fits_without_a_data_fingerprint(tiny_tables, tmp_path):
    from helpers.evaluation.metrics import temporal_split

    split = temporal_split(tiny_tables["fact_transactions"], test_days=7, valid_days=7)
    assert models.later_fits(tiny_tables, split, 7, 2, processed_dir=tmp_path / "nothing") == []


def test_segments_of_a_window_are_computed_once_per_run(processed, monkeypatch):
    import helpers.tuning.windows as windows
    from helpers.features.segments import compute_segments

    folder, tables = processed
    calls = []
    monkeypatch.setattr(windows, "compute_segments", lambda t, as_of: calls.append(as_of) or compute_segments(t, as_of))
    _, valid, test = models.prepare_stages(tables, 28, 28, folder)
    assert len(calls) == 2
    _, valid2, test2 = models.prepare_stages(tables, 28, 28, folder)  # another notebook of the run
    assert len(calls) == 2
    for a, b in ((valid, valid2), (test, test2)):
        pd.testing.assert_frame_equal(a.fit.segments, b.fit.segments)
        assert a.fit.segments.attrs == b.fit.segments.attrs and a.fit.segments.attrs
    # the tables a window's segments read are part of the key
    models.prepare_stages({k: v for k, v in tables.items() if k != "customer_exposure"}, 28, 28, folder)
    assert len(calls) == 4
    # a folder without a data fingerprint computes every time, and writes nothing
    before = sorted(p.name for p in (folder / model_cache.SUBDIR).rglob("*.pkl"))
    windows.segments_of(folder / "elsewhere")(tables, valid.fit.as_of)
    assert len(calls) == 5 and sorted(p.name for p in (folder / model_cache.SUBDIR).rglob("*.pkl")) == before
