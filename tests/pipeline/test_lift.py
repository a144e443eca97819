"""The synthetic-retailer table: each run's glued comparison read back, the table written for
the Methods chapter, and the 'not run yet' text when no table exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.pipeline import lift as lift_run
from helpers.report import lift


def glued_notebook(path: Path, values: dict) -> Path:
    """An executed notebook whose outputs hold ``values`` as myst-nb glue (``display=False``)."""
    prefix = "application/papermill.record/"
    outputs = [{"output_type": "display_data", "metadata": {"scrapbook": {"name": k, "mime_prefix": prefix}},
                "data": {prefix + "text/plain": repr(v)}} for k, v in values.items()]
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": outputs, "execution_count": 1}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


def values(seed: int, n: int) -> dict:
    out = {}
    for i, p in enumerate(("all", "new")):
        base = 0.01 * seed + n / 1e6 + i
        out |= {f"hybrid_{p}_ndcg5": base + 0.05, f"best_other_{p}": "EASE", f"best_other_{p}_ndcg5": base,
                f"diff_{p}": 0.05, f"diff_{p}_low": 0.02 - i * 0.03, f"diff_{p}_high": 0.08, f"n_eval_{p}": n // 2,
                f"verdict_{p}": "better" if i == 0 else "not separated"}
    return out


def test_comparison_rows_read_the_glued_values(tmp_path):
    nb = glued_notebook(tmp_path / "07.ipynb", values(1, 3000))
    rows = lift_run.comparison_rows(nb, 1, 3000)
    assert [r["protocol"] for r in rows] == ["all", "new"]
    assert rows[0]["hybrid_ndcg5"] == pytest.approx(0.01 + 0.003 + 0.05) and rows[0]["best_other"] == "EASE"
    assert rows[1]["diff_low"] == pytest.approx(-0.01) and rows[1]["n_evaluated"] == 1500


def test_comparison_rows_name_the_missing_value(tmp_path):
    v = values(1, 3000)
    del v["diff_new_high"]
    with pytest.raises(KeyError, match="diff_new_high"):
        lift_run.comparison_rows(glued_notebook(tmp_path / "07.ipynb", v), 1, 3000)


def test_run_lift_runs_every_seed_and_size_and_writes_the_table(tmp_path):
    calls = []

    def runner(dataset, data_dir, output_dir, params, **kw):
        calls.append((dataset, params, kw["only"]))
        glued_notebook(Path(output_dir) / "reports" / "executed" / "07_evaluation.ipynb",
                       values(params["seed"], params["n_customers"]))

    res = lift_run.run_lift((1, 2), (3000, 10000), work_dir=tmp_path / "work", bench_dir=tmp_path / "bench",
                            runner=runner, log=lambda *_: None)
    assert [(c[1]["seed"], c[1]["n_customers"]) for c in calls] == [(1, 3000), (1, 10000), (2, 3000), (2, 10000)]
    assert all(c[0] == "synthetic" and c[2] == list(lift_run.NOTEBOOKS) for c in calls)
    assert len(res["rows"]) == 8
    md = (tmp_path / "bench" / lift.LIFT_MD).read_text()
    assert "| 2 | 10,000 | new | 1.0800 | EASE | 1.0300 | +0.0500 [-0.0100, +0.0800] | not separated |" in md
    assert "excludes zero in 4 of 8 rows" in md
    assert json.loads((tmp_path / "bench" / lift.LIFT_JSON).read_text())["rows"] == res["rows"]


def test_page_says_how_to_fill_it_when_not_run(tmp_path):
    text = lift.write_page(tmp_path).read_text()
    assert "Not run here yet" in text and "make synthetic-lift" in text
