"""Fast tests of the benchmark helpers (no timing assertions)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers.bench import stages, suite
from helpers.evaluation.metrics import compute_metrics
from helpers.report import performance


# ------------------------------------------------------------ growth exponent
def test_growth_exponent_known_answer():
    g = suite.growth_exponents([1, 10, 100], [1, 10, 100])
    assert g["pairs"] == pytest.approx([1.0, 1.0])
    assert g["overall"] == pytest.approx(1.0)


def test_growth_exponent_quadratic_then_linear_and_unsorted_input():
    g = suite.growth_exponents([100, 1, 10], [1000, 1, 100])  # 1 -> 10: x100 (2.0), 10 -> 100: x10 (1.0)
    assert g["pairs"] == pytest.approx([2.0, 1.0])
    assert g["overall"] == pytest.approx(1.5)


def test_growth_exponent_skips_missing_points():
    g = suite.growth_exponents([1, 10, 100], [2, None, 200])
    assert g["pairs"] == pytest.approx([1.0])
    assert g["overall"] == pytest.approx(1.0)
    assert suite.growth_exponents([5], [1.0]) == {"pairs": [], "overall": None}


# -------------------------------------------------- pandas reference metrics
def _random_eval(rng, n=300, n_items=80, k=10):
    topk = np.stack([rng.choice(n_items, size=k, replace=False) for _ in range(n)])
    topk[rng.random((n, k)) < 0.05] = -1  # some empty slots
    for row in topk:  # empty slots only trail, like a short list
        vals = row[row >= 0]
        row[:] = -1
        row[: len(vals)] = vals
    dense = rng.random((n, n_items)) < 0.06
    dense[0] = False  # a customer without catalog relevant items
    rel = sp.csr_matrix(dense.astype(np.float32))
    n_rel = np.asarray(dense.sum(axis=1)).ravel() + rng.integers(0, 3, size=n)  # + off-catalog items
    n_rel[0] = 2
    return topk, rel, n_rel


def _long(topk, rel, n_rel, customer_ids, item_ids):
    n, k = topk.shape
    valid = topk >= 0
    pred = pd.DataFrame({"customer_id": np.repeat(customer_ids, k)[valid.ravel()],
                         "rank": np.tile(np.arange(1, k + 1), n)[valid.ravel()],
                         "product_id": item_ids[np.where(valid, topk, 0)].ravel()[valid.ravel()]})
    r, c = rel.nonzero()
    relevant = pd.DataFrame({"customer_id": customer_ids[r], "product_id": item_ids[c]})
    return pred, relevant, pd.Series(n_rel, index=customer_ids)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_metrics_agree_with_compute_metrics(seed):
    rng = np.random.default_rng(seed)
    topk, rel, n_rel = _random_eval(rng)
    customer_ids = np.sort(rng.choice(10_000, size=len(topk), replace=False)) + 1
    item_ids = np.sort(rng.choice(100_000, size=rel.shape[1], replace=False)) + 100_001
    pred, relevant, n_rel_s = _long(topk, rel, n_rel, customer_ids, item_ids)
    ref = stages.reference_metrics(pred, relevant, n_rel_s, k=10)
    got = compute_metrics(topk, rel, n_rel, ks=(10,))
    for name in ("precision", "recall", "ndcg"):
        np.testing.assert_allclose(got[(name, 10)], ref[name].to_numpy(), rtol=0, atol=1e-9)
    assert (ref["precision"] > 0).any() and (ref["ndcg"] > 0).any()


def test_reference_metrics_customer_without_predictions_scores_zero():
    pred = pd.DataFrame({"customer_id": [1, 1], "rank": [1, 2], "product_id": [10, 11]})
    relevant = pd.DataFrame({"customer_id": [1, 2], "product_id": [11, 10]})
    out = stages.reference_metrics(pred, relevant, pd.Series([1, 1], index=[1, 2]), k=2)
    assert out.loc[1, "precision"] == pytest.approx(0.5)
    assert out.loc[1, "recall"] == pytest.approx(1.0)
    assert out.loc[1, "ndcg"] == pytest.approx(1 / math.log2(3))
    assert out.loc[2].tolist() == [0.0, 0.0, 0.0]


# ------------------------------------------------------------- top-k agreement
def test_topk_agreement_identical_ties_and_mismatch():
    ids_a = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]])
    sc_a = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    ids_b = np.array([[3, 2, 1], [1, 2, 4], [1, 2, 9]])
    sc_b = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [3.0, 2.0, 0.5]])
    a = stages.topk_agreement(ids_a, sc_a, ids_b, sc_b)
    assert (a["identical"], a["ties_only"], a["mismatched"]) == (1, 1, 1)
    assert a["example_mismatched_rows"] == [2] and not a["agree"]


# ---------------------------------------------------- implicit vs project top-N
@pytest.fixture(scope="module")
def small_als():
    from helpers.models.als import ALS
    from helpers.models.base import FitData

    rng = np.random.default_rng(3)
    n_users, n_items = 120, 60
    ui = sp.random(n_users, n_items, density=0.12, random_state=3, format="csr",
                   data_rvs=lambda s: rng.integers(1, 4, size=s).astype(np.float32))
    ui.data[:] = np.ceil(ui.data)
    keep = np.ones(n_users, dtype=np.float32)
    keep[5] = 0.0  # a cold customer (no history)
    ui = sp.csr_matrix(sp.diags(keep) @ ui)
    ui.eliminate_zeros()
    data = FitData(transactions=pd.DataFrame(), customers=pd.DataFrame(), products=pd.DataFrame(),
                   as_of=pd.Timestamp("2024-01-01"), customer_ids=np.arange(1, n_users + 1, dtype=np.int64),
                   item_ids=np.arange(1001, 1001 + n_items, dtype=np.int64), user_items=ui)
    params = dict(factors=8, iterations=3, regularization=0.05, random_state=0)
    return ALS(**params).fit(data), data, params


def test_implicit_batch_recommend_agrees_with_project_top_n(small_als):
    als, data, _ = small_als
    warm = np.flatnonzero(np.diff(data.user_items.indptr) > 0)
    p_ids, p_scores = als.recommend(data.customer_ids[warm], k=10, exclude=None)
    i_cols, i_scores = stages.implicit_recommend(als._model, warm, data.user_items, n=10)
    a = stages.topk_agreement(p_ids, p_scores, data.item_ids[i_cols], i_scores)
    assert a["agree"] and a["n_rows"] == len(warm)
    assert a["identical"] >= 0.9 * len(warm)


def test_als_from_factors_scores_like_the_fitted_model(small_als):
    als, data, params = small_als
    rebuilt = stages.als_from_factors(data, als.user_factors, als.item_factors, **params)
    rows = np.arange(data.n_customers)
    np.testing.assert_array_equal(rebuilt.score(rows), als.score(rows))  # incl. the cold row (popularity)
    np.testing.assert_array_equal(rebuilt._model.item_factors, als.item_factors)


# -------------------------------------------------------------- tables writer
def _fake_bench():
    stage = lambda t, rss: {"ok": True, "wall_s": t, "cpu_s": t, "peak_rss_gib": rss,  # noqa: E731
                            "wall_process_s": t + 1, "load_before": [1.0, 1.0, 1.0],
                            "result": {"timings": {}}}
    rung = lambda n, p, lines, t: {  # noqa: E731
        "n_customers": n, "n_products": p, "lines": lines, "load_before": [1.5, 1, 1],
        "stages": {"generate": stage(t, 0.5), "als_fit": stage(2 * t, 0.7),
                   "score_export": stage(3 * t, 0.9),
                   "export": {"ok": False, "skipped": True, "error": "skipped: above --export-max-customers 10,000"},
                   "metrics": {**stage(0.1 * t, 0.2), "result": {"evaluated_customers": n // 2, "means": {
                       "precision@10": 0.1, "recall@10": 0.2, "ndcg@10": 0.15}}}}}
    rungs = [rung(10_000, 5_000, 400_000, 1.0), rung(100_000, 20_000, 4_000_000, 12.0)]
    b = {"schema": suite.SCHEMA_VERSION, "generated_at": "2026-01-01T00:00:00+00:00",
         "machine": {"cpus": 2, "memory_gib": 24, "python": "3.11"}, "command": ["python", "-m", "helpers.bench"],
         "cj": {"targets": dict(suite.CJ_TARGETS), "cold_mode": "cache removed",
                "cold": {"pipeline": {"wall_process_s": 200.0, "peak_rss_gib": 3.0, "load_before": [1, 1, 1]},
                         "book": {"wall_process_s": 30.0, "peak_rss_gib": 0.5}, "total_s": 230.0, "ok": True,
                         "notebooks": {"00_data_model.ipynb": 20.0}, "reused_from_cache": []},
                "warm": {"pipeline": {"wall_process_s": 10.0}, "book": {"wall_process_s": 30.0}, "total_s": 40.0,
                         "ok": True, "notebooks": {"00_data_model.ipynb": 0.1},
                         "reused_from_cache": ["00_data_model.ipynb"]},
                "met": {"cold": True, "warm": True}},
         "scale": {"rungs": rungs},
         "ratios": {"data": "rung-100000",
                    "topn": {"ok": True, "result": {"users": 100, "project_s": 1.0, "reference_s": 0.5, "ratio": 0.5,
                                                     "agreement": {"identical": 99, "ties_only": 1, "mismatched": 0}}},
                    "metrics": {"ok": True, "result": {"customers": 100, "project_s": 0.01, "reference_s": 0.5,
                                                        "ratio": 50.0, "goal": 20.0, "agree": True,
                                                        "max_abs_diff": {"precision": 0.0, "recall": 0.0,
                                                                         "ndcg": 1e-16}}},
                    "content": {"ok": False, "result": None, "error": "boom"}},
         "api": {"available": False}}
    return suite.merge_results(None, b)


def test_tables_writer_produces_markdown(tmp_path):
    b = _fake_bench()
    assert b["scale"]["growth"]["als_fit"]["overall"] == pytest.approx(math.log(12) / math.log(10))
    b["plots"] = ["scale_time.png"]
    path = performance.write_markdown(b, tmp_path / "tables.md")
    text = path.read_text()
    assert "## Complete Journey end to end" in text and "## Scale ladder" in text
    assert "| 100,000 | 20,000 | 4,000,000 |" in text
    assert "skipped" in text and "50.0x" in text and "failed" in text
    assert "Not available" in text
    assert "```{image} ../reports/benchmarks/scale_time.png" in text
    header_lines = [ln for ln in text.splitlines() if ln.startswith("| ---")]
    assert len(header_lines) >= 5  # every table has its separator row


def test_placeholder_is_written_once(tmp_path):
    path = performance.write_placeholder(tmp_path)
    assert "benchmarks not run yet" in path.read_text()
    path.write_text("real tables\n")
    assert performance.write_placeholder(tmp_path).read_text() == "real tables\n"  # kept
    assert "not run yet" in performance.write_placeholder(tmp_path, force=True).read_text()


def test_merge_keeps_old_rungs_and_sections():
    old = _fake_bench()
    new = {"schema": suite.SCHEMA_VERSION, "scale": {"rungs": [
        {**old["scale"]["rungs"][1], "n_customers": 1_000_000, "lines": 40_000_000}]}}
    merged = suite.merge_results(old, new)
    assert [r["n_customers"] for r in merged["scale"]["rungs"]] == [10_000, 100_000, 1_000_000]
    assert "cj" in merged and "ratios" in merged
    assert len(merged["scale"]["growth"]["generate"]["pairs"]) == 2


def test_fixed_tuning_shape():
    t = stages.fixed_tuning()
    assert set(t["hybrid"]) == {"all", "new"}
    assert "buy_again" not in t["hybrid"]["new"]["weights"]
    assert t["als"]["all"]["factors"] == 64 and t["als"]["all"]["iterations"] == 10


def test_performance_tables_show_the_api_under_load():
    phase = {"requests": 1000, "errors": 0, "p50_ms": 5.0, "p99_ms": 25.5, "throughput_rps": 600.0,
             "server_cpu_ms_per_request": 0.2}
    b = {"api": {"available": True, "ok": True, "result": {"p50_ms": 1.0}, "measured_at": "x",
                 "locust": {"ok": True, "result": {"users": 32, "endpoints": {"basket": phase},
                                                   "target_p99_ms": {"recommendations": 30.0, "basket": 100.0}}}}}
    md = performance.render_markdown(b)
    assert "locust, 32 concurrent users" in md and "| basket | 1,000 | 0 | 5.0 | 25.5 | 600 | 0.20 |" in md


def test_the_complete_journey_export_is_kept_for_the_api_section(tmp_path):
    """The API section serves the export of the Complete Journey run (a versioned root, its
    ``current`` link intact), moved out of the snapshot before the snapshot is removed."""
    import os

    from helpers.bench.__main__ import keep_cj_export
    from helpers.export.versioned import resolve

    snap, api = tmp_path / "cj-snapshot", tmp_path / "work" / "api-export"
    version = snap / "data" / "exports" / "20261204T000000Z"
    version.mkdir(parents=True)
    (version / "manifest.json").write_text("{}")
    os.symlink(version.name, snap / "data" / "exports" / "current")
    assert keep_cj_export(snap, api)
    assert (resolve(api) / "manifest.json").exists() and not (snap / "data" / "exports").exists()
    assert not keep_cj_export(snap, api)  # nothing left to keep, and an export already kept stays
    assert (resolve(api) / "manifest.json").exists()


def _rung(n, lines, local_s, spark_s, spark_peak=3.0):
    stage = {"ok": True, "peak_rss_gib": 1.0}
    return {"n_customers": n, "n_products": 10, "lines": lines, "stages": {
        "als_fit": {**stage, "wall_s": local_s / 2}, "score_export": {**stage, "wall_s": local_s / 4, "peak_rss_gib": 2.0},
        "metrics": {**stage, "wall_s": local_s / 4, "result": {
            "evaluated_customers": 5, "means": {"precision@10": 0.1, "recall@10": 0.2, "ndcg@10": 0.3}}},
        "spark": {"ok": True, "wall_s": spark_s, "peak_rss_gib": spark_peak, "result": {"master": "local[2]"}}}}


def test_spark_column_sums_the_local_stages_and_fits_both_exponents():
    from helpers.report import engines

    b = suite.merge_results(None, {"schema": suite.SCHEMA_VERSION, "scale": {"rungs": [
        _rung(100_000, 4_000_000, 100.0, 300.0), _rung(1_000_000, 40_000_000, 1000.0, 1200.0)]}})
    exp = engines.exponents(b["scale"]["rungs"])
    assert exp["local"] == pytest.approx(1.0) and exp["spark"] == pytest.approx(math.log10(4.0))
    assert engines.local_engine(b["scale"]["rungs"][0]) == (100.0, 2.0)  # time summed, peak the largest
    md = performance.render_markdown(b)
    assert "| 100,000 | 4,000,000 | 100 s | 2.00 | 300 s | 3.00 | local[2] |" in md
    assert "local engine 1.00, Spark engine 0.60" in md
    assert b["scale"]["growth"]["spark"]["overall"] == pytest.approx(math.log10(4.0))  # a stage of the ladder too


def test_spark_column_and_agreement_are_skipped_with_the_reason_without_java(monkeypatch, tmp_path):
    monkeypatch.setattr(suite.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    rec = suite.spark_stage(tmp_path / "star", tmp_path / "out", "local[2]", "1g")
    assert rec["skipped"] and "no Java" in rec["error"]
    ag = suite.bench_spark_agreement(tmp_path / "cj", "local[2]", "1g")
    assert ag["skipped"]
    rung = _rung(10, 100, 1.0, 1.0)
    rung["stages"]["spark"] = rec
    b = {"scale": {"rungs": [rung]}, "spark_agreement": ag}
    md = performance.render_markdown(b)
    assert "| 10 | 100 | 1.0 s | 2.00 | skipped | skipped |  |" in md  # the local engine ran, Spark did not
    assert md.count("*skipped: no Java runtime") == 2  # under the ladder table and as the agreement section


def test_tuned_als_rows_show_each_engines_choice_and_the_verdict():
    row = {"protocol": "all", "local_params": {"factors": 128, "regularization": 30.0, "weighting": "none"},
           "spark_params": {"factors": 128, "regularization": 60.0, "weighting": "none"}, "valid_local": 0.2957,
           "valid_spark": 0.3061, "ndcg5_local": 0.3004, "ndcg5_spark": 0.3150, "agree": False}
    tuned = {"ok": True, "measured_at": "2026-12-07", "result": {
        "rows": [row], "grid": [{}, {}, {}], "master": "local[2]", "als_tolerance": 0.01}}
    ag = {"ok": True, "measured_at": "2026-12-07", "tuned_als": tuned, "result": {
        "rows": [], "params": {}, "master": "local[2]", "als_tolerance": 0.01}}
    md = performance.render_markdown({"spark_agreement": ag})
    assert ("| all | factors 128, regularization 30.0 | 0.2957 | 0.3004 | factors 128, regularization 60.0 | 0.3061 "
            "| 0.3150 | +0.0146 | **no** |") in md
    assert "same ALS grid (3 candidates)" in md
    tuned["ok"], tuned["error"] = False, "Py4JError: boom\nmore"
    assert "The tuned ALS run failed: Py4JError: boom" in performance.render_markdown({"spark_agreement": ag})
