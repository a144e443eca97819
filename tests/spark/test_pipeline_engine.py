"""The engine switch end to end: ``python -m helpers.pipeline run --engine spark`` on tiny synthetic
data runs every notebook, the Spark models of 03 and 04 on Spark, and publishes the same kind
of outputs as the local engine (grids cut to one or two candidates to keep the suite short)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from helpers import config
from tests.conftest import TINY

GRIDS = {"global_popularity": {"window_days": [None, 28]},
         "segmented_popularity": {"segment_type": ["loyalty_tier"], "window_days": [56], "blend": [0.5]},
         "buy_again": {"half_life_days": [30], "repeat_beta": [0.5]},
         "als": {"factors": [16], "regularization": [10.0]},
         "ease": {"l2": [300.0], "max_items": [2000]}}


def test_the_pipeline_runs_the_spark_models_on_spark(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "helpers.pipeline", "run", "--dataset", "synthetic", "--output-dir", str(out),
           "--no-progress", "--engine", "spark", "--param", "spark_master=local[1]",
           "--param", f"grid_overrides={json.dumps(GRIDS)}", "--param", "n_boot=20", "--param", "paired_boot=20",
           *[f"--param={k}={v}" for k, v in TINY.items()]]
    res = subprocess.run(cmd, cwd=config.PROJECT_ROOT, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((out / "reports" / "run_manifest.json").read_text())
    assert manifest["parameters"]["engine"] == "spark"
    tables = out / "reports" / "tables"
    tuning = json.loads((tables / "tuning" / "global_popularity.json").read_text())
    assert set(tuning) == {"all", "new"}
    for name in ("global_popularity", "segmented_popularity", "buy_again", "als", "ease", "hybrid"):
        metrics = pd.read_csv(tables / f"metrics_{name}.csv")
        assert {"ci_low", "ci_high"} <= set(metrics.columns) and metrics["value"].notna().all(), name
    executed = (out / "reports" / "executed" / "03_popularity.ipynb").read_text()
    assert '"spark"' in executed  # the injected parameter
