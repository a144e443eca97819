"""The hybrid on the synthetic retailer: the same pipeline and defaults for several generator
seeds and sizes, so that a lift is not a property of one dataset.

``python -m helpers.pipeline lift [--seeds 1,2] [--sizes 3000,10000]`` runs notebooks
:data:`NOTEBOOKS` of the ``synthetic`` dataset for each (seed, size) into its own output
folder (the generator's ``seed`` and ``n_customers``; ``seed`` also seeds the models), reads
each run's glued comparison of the hybrid with the best other model (the evaluation
notebook's paired bootstrap), and writes ``reports/benchmarks/synthetic_lift.json`` and the
Methods chapter's table (:mod:`helpers.report.lift`).
"""

from __future__ import annotations

import ast
import json
import shutil
import tempfile
import time
from pathlib import Path

from helpers import config
from helpers.atomic import atomic_path
from helpers.pipeline.run import run
from helpers.report import lift
from helpers.report.glue import read_glue

NOTEBOOKS = ("00", "03", "04", "05", "06", "07")  # the models and their evaluation (no EDA, no export)
SEEDS = (1, 2)
SIZES = (3000, 10000)
PROTOCOLS = ("all", "new")


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def comparison_rows(executed_evaluation: Path, seed: int, customers: int) -> list[dict]:
    """One row per protocol from the glued values of an executed evaluation notebook."""
    g = {k: _value(v) for k, v in read_glue(executed_evaluation).items()}
    rows = []
    for p in PROTOCOLS:
        try:
            rows.append({"seed": seed, "customers": customers, "protocol": p,
                         "hybrid_ndcg5": float(g[f"hybrid_{p}_ndcg5"]), "best_other": str(g[f"best_other_{p}"]),
                         "best_other_ndcg5": float(g[f"best_other_{p}_ndcg5"]), "diff": float(g[f"diff_{p}"]),
                         "diff_low": float(g[f"diff_{p}_low"]), "diff_high": float(g[f"diff_{p}_high"]),
                         "n_evaluated": int(g[f"n_eval_{p}"]), "verdict": str(g[f"verdict_{p}"])})
        except KeyError as exc:
            raise KeyError(f"{executed_evaluation} has no glued value {exc}: not an evaluation notebook of "
                           "this version") from None
    return rows


def run_lift(seeds=SEEDS, sizes=SIZES, work_dir=None, bench_dir=config.BENCH_DIR, jobs: int = 2,
             params: dict | None = None, log=print, runner=None) -> dict:
    """Run the pipeline for every (seed, size) and write the table; returns its content.
    ``runner`` replaces :func:`helpers.pipeline.run.run` (tests)."""
    runner = runner or run
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="recbook-lift-"))
    rows, runs = [], []
    try:
        for seed in seeds:
            for n in sizes:
                out = work / f"seed{seed}-n{n}"
                log(f"[lift] synthetic seed={seed} n_customers={n} -> {out}")
                t = time.perf_counter()
                runner("synthetic", None, str(out), {**(params or {}), "seed": int(seed), "n_customers": int(n)},
                       only=list(NOTEBOOKS), progress=False, use_cache=False, jobs=jobs)
                runs.append({"seed": seed, "customers": n, "wall_s": round(time.perf_counter() - t, 1)})
                rows += comparison_rows(out / "reports" / "executed" / "07_evaluation.ipynb", seed, n)
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {"rows": rows, "runs": runs, "notebooks": list(NOTEBOOKS), "params": params or {},
              "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    bench_dir = Path(bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(bench_dir / lift.LIFT_JSON) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2))
    lift.write_page(bench_dir)
    return result
