"""``python -m helpers.pipeline ablation``: the re-ranker's feature groups removed in turn on
the validation window of the last run (:mod:`helpers.tuning.ablation`), for the Methods chapter.

It reads what the run left in the processed folder (star schema, tuning files, model cache) and
the hybrid notebook's ranker parameters: the notebook's defaults with the run's overrides from
``run_manifest.json``. It writes ``reports/benchmarks/ablation.json`` and the chapter's table
(:mod:`helpers.report.ablation`); nothing of the run is changed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import config
from helpers.atomic import atomic_path
from helpers.data.star import load_meta, load_tables
from helpers.pipeline.params import notebook_parameters
from helpers.report import ablation as page
from helpers.report.hybrid_chapter import TABLES
from helpers.tuning.ablation import ablation
from helpers.tuning.windows import earlier_stages, prepare_stages

HYBRID_NOTEBOOK = "06_hybrid.ipynb"
#: the hybrid notebook's parameters -> the Ranker's keyword arguments (as its run cell passes them)
RANKER_PARAMS = {"max_iter": "ranker_max_iter", "learning_rate": "ranker_learning_rate",
                 "max_leaf_nodes": "ranker_max_leaf_nodes", "min_samples_leaf": "ranker_min_samples_leaf",
                 "negative_rate": "ranker_negative_rate", "signal_groups": "ranker_signals"}


def hybrid_parameters(reports_dir: Path) -> dict:
    """The hybrid notebook's parameters of the last run: defaults, then the run's overrides."""
    params = notebook_parameters(config.NOTEBOOKS_DIR / HYBRID_NOTEBOOK)
    manifest = Path(reports_dir) / "run_manifest.json"
    if manifest.exists():
        params.update({k: v for k, v in json.loads(manifest.read_text()).get("parameters", {}).items()
                       if k in params})
    return params


def run_ablation(processed_dir=None, reports_dir=None, bench_dir=None, log=print) -> dict:
    processed = Path(processed_dir) if processed_dir else config.PROCESSED_DIR
    reports = Path(reports_dir) if reports_dir else config.REPORTS_DIR
    p = hybrid_parameters(reports)
    if int(p["weight_windows"]) < 2:
        raise ValueError("the ablation trains the re-ranker on earlier windows: the run used weight_windows < 2")
    tables = load_tables(processed, names=list(TABLES))
    split, valid = prepare_stages(tables, p["test_days"], p["valid_days"], processed, names=("valid",))
    earlier = earlier_stages(tables, split, p["valid_days"], int(p["weight_windows"]) - 1, processed)
    ranker = {"horizon_days": p["valid_days"], **{k: p[v] for k, v in RANKER_PARAMS.items()}, "seed": p["seed"]}
    t = time.perf_counter()
    table = ablation(valid, earlier, reports / "tables", ranker, names=p["components"], pool_size=p["pool_size"],
                     n_trials=p["n_trials"], by_history=p["by_history"], light_max_baskets=p["light_max_baskets"],
                     seed=p["seed"], log=log)
    result = {"rows": table.to_dict("records"), "dataset": load_meta(processed).get("dataset", "unknown"),
              "valid_window": f"{split.valid_start.date()} to {split.test_start.date()}",
              "earlier_windows": len(earlier), "ranker": ranker, "seconds": round(time.perf_counter() - t, 1),
              "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    bench = Path(bench_dir) if bench_dir else reports / "benchmarks"
    with atomic_path(bench / page.ABLATION_JSON) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2, default=str))
    page.write_page(bench)
    return result
