"""Chapter helpers: the tuning prose generated from the grid that ran, the export's examples,
the Code map, the Performance page's run timings."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.report import codemap, export_chapter, model_chapter, performance, run_timings


def test_grid_text_states_what_was_searched_and_chosen():
    table = pd.DataFrame([
        {"model": "als", "factors": 64, "weighting": "none", "reg": r, "protocol": p, "value": v, "fit_seconds": 1}
        for r, v in ((10.0, 0.1), (30.0, 0.3)) for p in ("all", "new")])
    text = model_chapter.grid_text(table, "als", {"all": {"factors": 64, "weighting": "none", "reg": 30.0},
                                                  "new": {"factors": 64, "weighting": "none", "reg": 10.0}})
    assert "searched reg over 10, 30 (2 candidates)" in text
    assert "factors fixed at 64" in text and "weighting fixed at none" in text
    assert "protocol all: reg=30" in text and "protocol new: reg=10" in text
    assert "weighting=" not in text  # a fixed value is not presented as a choice


def test_grid_text_single_candidate():
    table = pd.DataFrame([{"model": "x", "k": 5, "protocol": "all", "value": 0.1, "fit_seconds": 0}])
    assert model_chapter.grid_text(table, "x", {"all": {"k": 5}}).startswith("Nothing was searched")


def test_tuning_table_one_row_per_candidate():
    table = pd.DataFrame([{"model": "m", "w": w, "protocol": p, "value": v, "fit_seconds": 0}
                          for w, v in ((None, 0.1), (7, 0.2)) for p in ("all", "new")])
    wide = model_chapter.tuning_table(table, "m")
    assert list(wide.columns) == ["w", "NDCG@5 (all)", "NDCG@5 (new)"] and wide["w"].tolist() == ["none", "7"]


def test_informative_products_skip_copies_of_the_same_item():
    names = pd.Series({1: "milk", 2: "milk", 3: "bread", 4: "eggs", 5: "jam"})
    sim = pd.DataFrame({"product_id": [1, 1, 3, 3], "rank": [1, 2, 1, 2], "similar_product_id": [2, 3, 4, 5],
                        "score": [1.0, 0.5, 0.6, 0.4]})
    assert export_chapter.informative_products(sim, names, n=1, depth=2) == [3]
    assert export_chapter.informative_products(sim, names, n=2, depth=2) == [3, 1]


def test_reason_shares_fixed_order():
    shares = export_chapter.reason_shares({"recommendations": {"trending": 1, "buy_again": 3},
                                           "recommendations_new": {"similar_to": 2, "trending": 2}})
    assert list(shares.index) == ["buy_again", "similar_to", "trending"]
    assert shares.iloc[:, 0].tolist() == [0.75, 0.0, 0.25] and shares.iloc[:, 1].tolist() == [0.0, 0.5, 0.5]


def test_code_map_tree_from_docstrings(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""The package. More text."""\n')
    (pkg / "b.py").write_text('"""Module b: holds\n   things. Second sentence."""\n')
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "__init__.py").write_text('"""Sub package."""\n')
    (pkg / "sub" / "c.py").write_text('"""C does ``this``."""\n')
    rows = codemap.code_map(pkg, "pkg")
    assert rows["module"].tolist() == ["pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"]
    assert rows["depth"].tolist() == [0, 1, 1, 1, 2]
    assert rows["summary"].tolist() == ["The package.", "", "Module b: holds things.", "Sub package.", "C does ``this``."]
    html = codemap.code_map_html(rows)
    assert "<code>this</code>" in html and "<code>sub/</code>" in html and "<code>c.py</code>" in html


def test_code_map_of_helpers_has_every_module():
    rows = codemap.code_map()
    assert {"helpers.report.codemap", "helpers.features.describe", "helpers.tuning.workflow"} <= set(rows["module"])
    assert rows.loc[rows["kind"] == "module", "summary"].str.len().gt(0).all()  # every module has a docstring


MANIFEST = {"jobs": 2, "dataset": "synthetic", "wall_time_s": 30.0, "finished_at": "today",
            "notebooks": {"00_a.ipynb": 10.0, "01_b.ipynb": 12.0, "02_c.ipynb": 8.0},
            "schedule_s": {"00_a.ipynb": [0.0, 10.0], "01_b.ipynb": [10.0, 22.0], "02_c.ipynb": [10.0, 18.0]},
            "reused_from_cache": ["02_c.ipynb"]}


def test_schedule_in_start_order():
    assert [r[0] for r in run_timings.schedule(MANIFEST)] == ["00_a.ipynb", "01_b.ipynb", "02_c.ipynb"]
    no_sched = {"notebooks": {"b.ipynb": 2.0, "a.ipynb": 1.0}}
    assert run_timings.schedule(no_sched) == [("a.ipynb", 0.0, 1.0), ("b.ipynb", 1.0, 3.0)]


def test_performance_page_from_the_manifest_and_the_bench(tmp_path):
    bench = tmp_path / "reports" / "benchmarks"
    assert not performance.page_listed(bench)
    assert not performance.write_page(bench)
    assert "No benchmark has been run" in (bench / performance.PAGE_MD).read_text()
    (tmp_path / "reports" / "run_manifest.json").write_text(json.dumps(MANIFEST))
    assert performance.page_listed(bench) and performance.write_page(bench)
    page = (bench / performance.PAGE_MD).read_text()
    assert "| 01_b.ipynb | 12.0 s | 10.0 s | 22.0 s | no |" in page and "| 02_c.ipynb | 8.0 s" in page
    assert "run_schedule.png" in page and (bench / run_timings.GANTT_PNG).stat().st_size > 1000
    (bench / "bench.json").write_text(json.dumps({"machine": {"cpus": 2}, "generated_at": "x"}))
    performance.write_page(bench)
    page = (bench / performance.PAGE_MD).read_text()
    assert "## Benchmarks" in page and "Machine: 2 CPUs" in page and "No benchmark has been run" not in page


def test_a_model_chapter_refuses_an_unknown_engine_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="engine must be one of"):
        model_chapter.run(["als"], tmp_path / "missing", tmp_path, engine="gpu")
    assert not any(tmp_path.iterdir())
