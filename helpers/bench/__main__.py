"""Benchmarks (the command line): end-to-end book build, a scale ladder, side-by-side ratios, API latency.

    python -m helpers.bench                       # CJ cold/warm + ladder 10k, 100k + ratios + API
    python -m helpers.bench --max-customers 1000000 --no-cj   # adds the 1M x 50k rung
    python -m helpers.bench --write-placeholder   # "not run yet" tables (when none exist)
    python -m helpers.bench --render-only         # re-render tables and plots from bench.json

Measurement
-----------
Every heavy stage runs in its own child process (``python -c``, fresh
interpreter), so peaks are per stage, not cumulative:

* ``wall_s`` / ``cpu_s``: wall and CPU time (``resource.getrusage`` of the
  child itself *plus* its own children, e.g. papermill kernels; deltas around
  the stage's work, imports and process start-up excluded);
* ``peak_rss_gib``: ``ru_maxrss`` of the child as reported by ``os.wait4`` for
  that one process (the maximum over the child and every descendant it waited
  for), so it covers the whole stage including start-up;
* ``wall_process_s``: wall time of the whole child process;
* ``load``: the 1-minute load average before the stage (the machine may be
  shared: numbers measured under load are slower than on an idle machine).

What is measured
----------------
1. **Complete Journey end to end** (``--cj``, default on): the ``make book``
   equivalent, ``python -m helpers.pipeline run`` then ``python -m helpers.pipeline.book``,
   first *cold* (the pipeline cache file and the fitted-model cache are removed,
   so every notebook executes and fits; caching stays on so that the cache is rebuilt), then *warm* (an
   unchanged rerun: notebooks are reused from the cache). Per-notebook times and
   the reused notebooks come from ``reports/run_manifest.json``; the pipeline runs
   with its default ``--jobs`` (notebooks overlap, so their times add up to more
   than the wall time).
2. **Scale ladder** on the synthetic source (``LADDER``: 10k x 5k, 100k x 20k,
   1M x 50k customers x products, ``LINES_PER_CUSTOMER`` lines per customer;
   ``--max-customers`` caps it, default 100,000). Per rung: ``generate``
   (generator + validation + Parquet), ``als_fit`` (``ALS_PARAMS``, fit on the
   window before the test split), ``score_export`` (a fixed-weight hybrid of
   global popularity + buy-again + ALS scores every customer in chunks; top-10
   written as Parquet row groups; own code, used by the metrics stage),
   ``export`` (:func:`helpers.export.production.export` with a fixed tuning, when that
   module exists: refit on all data, both protocols, reasons, similar products,
   CSV/JSONL) and ``metrics`` (``relevance_matrix`` of the test window +
   ``compute_metrics``). Growth exponents are log-log slopes of stage time
   against number of transaction lines (:func:`growth_exponents`). The **Spark column**
   (``--spark``, default on; rungs of at least ``--spark-min-customers``, default 100,000):
   the same Parquet star schema through the Spark engine on ``--spark-master`` (default
   ``local[2]``) in one child process (:func:`helpers.spark.bench.spark_run_on`: validation,
   split, segments, popularity, buy-again, ALS with the ladder's 64 factors and 10
   iterations, top-10 of both protocols, metrics, partitioned Parquet export), its wall
   time and peak memory beside the local engine's, and both engines' fitted exponents.
   **Agreement** (``--spark-agreement``, default on): Complete Journey through both
   engines with the Spark engine's parameters (``stage_spark_agreement``,
   :mod:`helpers.spark.agreement`) and, with ``--spark-tuned-als`` (default on), ALS tuned on
   each engine over the project's grid as chapter 4 runs it (``stage_spark_tuned_als``: the
   acceptance check of the two solvers). Both are skipped, with the reason, without Java.
3. **Ratios** (>1 means the project's code is faster; computed on the
   ``--ratio-customers`` rung): (a) ``ALS.recommend`` vs implicit's batch
   ``model.recommend(..., filter_already_liked_items=False)`` on the same
   factors; (b) ``compute_metrics`` vs a pandas groupby implementation of the
   same definitions (:func:`reference_metrics`); (c) ``ContentTFIDF.score``
   (chunked sparse) vs scikit-learn's dense ``cosine_similarity`` on as many
   customers as a dense matrix of ``--dense-budget-gib`` holds. Top-10 lists
   are compared as sets, items tied with the 10th score allowed to differ
   (:func:`topk_agreement`).
4. **API latency**: :mod:`helpers.bench.api_load` when it exists, else recorded as not
   available; it serves ``data/exports``, else the export of this run's Complete Journey
   section (:func:`keep_cj_export`), else the 10k rung's.

Outputs: ``reports/benchmarks/bench.json`` (written atomically; sections and
rungs not rerun are kept from the previous file unless ``--fresh``), plots
``reports/benchmarks/*.png`` and ``reports/benchmarks/performance_tables.md``
(included by ``book/performance.md``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from helpers import config
from helpers.bench.runner import run_stage, write_result
from helpers.bench.stages import ALS_PARAMS, HYBRID_WEIGHTS, LINES_PER_CUSTOMER
from helpers.bench.suite import (
    BENCH_JSON,
    LADDER,
    SCHEMA_VERSION,
    bench_api,
    bench_cj,
    bench_ratios,
    bench_rung,
    bench_spark_agreement,
    machine_info,
    merge_results,
    now,
)
from helpers.report.performance import TABLES_MD, render, write_placeholder


def keep_cj_export(snapshot: Path, api_export: Path) -> bool:
    """Move the export root of the Complete Journey run in ``snapshot`` to ``api_export`` (for the API
    section; a ladder rung's export is kept there only when no Complete Journey export is)."""
    root = snapshot / "data" / "exports"
    if api_export.exists() or not root.is_dir():
        return False
    api_export.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(root), str(api_export))
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cj", action=argparse.BooleanOptionalAction, default=True,
                    help="Complete Journey end to end, cold and warm (default on)")
    ap.add_argument("--cj-phases", default="cold,warm",
                    help="which CJ runs: cold,warm (default) or warm alone (reuses the last cache)")
    ap.add_argument("--cj-snapshot", action=argparse.BooleanOptionalAction, default=True,
                    help="run CJ in a snapshot of HEAD (default; isolates the cache from concurrent edits) "
                         "instead of the working tree")
    ap.add_argument("--max-customers", type=int, default=100_000,
                    help="largest ladder rung (default 100000; 1000000 adds the 1M x 50k rung)")
    ap.add_argument("--rungs", help="only these rungs (comma-separated customer counts), e.g. 1000000")
    ap.add_argument("--ladder", action=argparse.BooleanOptionalAction, default=True, help="run the scale ladder")
    ap.add_argument("--sizes", help="replace the ladder (quick checks), e.g. 2000x1000,5000x2000")
    ap.add_argument("--ratios", action=argparse.BooleanOptionalAction, default=True, help="run the three ratios")
    ap.add_argument("--ratio-customers", type=int, default=100_000, help="rung whose data the ratios use")
    ap.add_argument("--dense-budget-gib", type=float, default=1.0,
                    help="size of the dense sklearn matrix in ratio (c)")
    ap.add_argument("--api", action=argparse.BooleanOptionalAction, default=True, help="API latency (if available)")
    ap.add_argument("--project-export", action=argparse.BooleanOptionalAction, default=None,
                    help="run helpers.export.production as the 'export' stage (default: when the module exists)")
    ap.add_argument("--export-max-customers", type=int, default=10_000,
                    help="run the helpers.export.production stage only on rungs up to this size (it is the slowest stage)")
    ap.add_argument("--spark", action=argparse.BooleanOptionalAction, default=True,
                    help="the Spark column: each rung of at least --spark-min-customers also on the Spark engine "
                         "(skipped, with the reason, without Java)")
    ap.add_argument("--spark-min-customers", type=int, default=100_000, help="smallest rung run on Spark")
    ap.add_argument("--spark-master", default="local[2]")
    ap.add_argument("--spark-driver-memory", default="8g", help="driver JVM heap (local[N]: the executors too)")
    ap.add_argument("--spark-agreement", action=argparse.BooleanOptionalAction, default=True,
                    help="Complete Journey through the Spark and the local engine (needs Java)")
    ap.add_argument("--spark-tuned-als", action=argparse.BooleanOptionalAction, default=True,
                    help="with --spark-agreement: ALS tuned on each engine as chapter 4 does it (about 25 min)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lines-per-customer", type=float, default=LINES_PER_CUSTOMER)
    ap.add_argument("--work-dir", default=str(config.DATA_DIR / "cache" / "bench"),
                    help="scratch folder for the rungs' data (removed afterwards unless --keep-work)")
    ap.add_argument("--keep-work", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="do not keep sections of the previous bench.json")
    ap.add_argument("--out-dir", default=str(config.BENCH_DIR))
    ap.add_argument("--write-placeholder", action="store_true",
                    help="write 'benchmarks not run yet' tables if none exist, then exit")
    ap.add_argument("--force", action="store_true", help="with --write-placeholder: overwrite existing tables")
    ap.add_argument("--render-only", action="store_true", help="re-render tables and plots from bench.json")
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir)

    if args.write_placeholder:
        path = write_placeholder(out_dir, force=args.force)
        print(f"[bench] tables: {path}")
        return 0
    bench_path = out_dir / BENCH_JSON
    old = json.loads(bench_path.read_text()) if bench_path.exists() else None
    if args.render_only:
        if old is None:
            raise SystemExit(f"{bench_path} does not exist: run the benchmarks first")
        render(old, out_dir)
        write_result(bench_path, old)
        print(f"[bench] rendered {out_dir / TABLES_MD}")
        return 0

    import importlib.util

    project_export = args.project_export
    if project_export is None:
        project_export = importlib.util.find_spec("helpers.export.production") is not None
    new: dict = {"schema": SCHEMA_VERSION, "generated_at": now(), "machine": machine_info(),
                 "command": ["python", "-m", "helpers.bench", *(argv if argv is not None else sys.argv[1:])]}
    t_all = time.perf_counter()
    work = Path(args.work_dir)
    api_export = work / "api-export"
    if args.cj:
        snap = work / "cj-snapshot" if args.cj_snapshot else None
        try:
            new["cj"] = bench_cj(tuple(p.strip() for p in args.cj_phases.split(",") if p.strip()), snap)
        finally:
            if snap is not None and args.api:  # the API section serves the Complete Journey export
                keep_cj_export(snap, api_export)
            if snap is not None and not args.keep_work:
                shutil.rmtree(snap, ignore_errors=True)
    if args.spark_agreement:
        new["spark_agreement"] = bench_spark_agreement(work / "cj-agreement-star", args.spark_master,
                                                       args.spark_driver_memory, tuned_als=args.spark_tuned_als)
    sizes = LADDER
    if args.sizes:
        sizes = tuple(tuple(int(v) for v in x.lower().split("x")) for x in args.sizes.split(","))
    ladder = [(c, p) for c, p in sizes if c <= args.max_customers]
    if args.rungs:
        wanted = {int(x) for x in args.rungs.split(",")}
        ladder = [(c, p) for c, p in sizes if c in wanted]
    ratio_rung = work / f"rung-{args.ratio_customers}"
    try:
        if args.ladder and ladder:
            rungs = []
            for c, p in ladder:
                run_export = project_export and c <= args.export_max_customers
                keep = api_export if (run_export and not api_export.exists()) else None
                spark = ({"master": args.spark_master, "driver_memory": args.spark_driver_memory}
                         if args.spark and c >= args.spark_min_customers else None)
                rungs.append(bench_rung(c, p, work, args.seed, args.lines_per_customer, run_export, keep,
                                        spark=spark))
                if project_export and not run_export:
                    rungs[-1]["stages"]["export"] = {
                        "ok": False, "skipped": True, "result": None,
                        "error": f"skipped: above --export-max-customers {args.export_max_customers:,}"}
                if not args.keep_work and c != args.ratio_customers:
                    shutil.rmtree(work / f"rung-{c}", ignore_errors=True)
                partial = merge_results(old if not args.fresh else None, {**new, "scale": {"rungs": rungs}})
                write_result(bench_path, render(partial, out_dir))  # results so far survive an interruption
            new["scale"] = {"rungs": rungs, "ladder": [list(x) for x in sizes],
                            "lines_per_customer": args.lines_per_customer, "als_params": ALS_PARAMS,
                            "hybrid_weights": HYBRID_WEIGHTS}
        if args.ratios:
            if not (ratio_rung / "star").exists():
                c = args.ratio_customers
                p = dict(sizes).get(c)
                if p is None:
                    raise SystemExit(f"--ratio-customers {c} is not a ladder rung")
                print(f"[bench] preparing the {c:,}-customer data for the ratios")
                ratio_rung.mkdir(parents=True, exist_ok=True)
                g = run_stage("ratio data: generate", "stage_generate", n_customers=c, n_products=p,
                              out_dir=str(ratio_rung / "star"), seed=args.seed,
                              lines_per_customer=args.lines_per_customer)
                if g["ok"]:
                    run_stage("ratio data: ALS fit", "stage_als_fit", data_dir=str(ratio_rung / "star"),
                              factors_out=str(ratio_rung / "als_factors.npz"), als_params=ALS_PARAMS)
                    run_stage("ratio data: hybrid top-10", "stage_score_export", data_dir=str(ratio_rung / "star"),
                              factors_path=str(ratio_rung / "als_factors.npz"),
                              out_path=str(ratio_rung / "top10.parquet"), als_params=ALS_PARAMS,
                              weights=HYBRID_WEIGHTS)
            new["ratios"] = bench_ratios(ratio_rung, args.dense_budget_gib)
        if args.api:
            new["api"] = bench_api(api_export if api_export.exists() else None)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    new["total_s"] = round(time.perf_counter() - t_all, 1)
    bench = merge_results(old if not args.fresh else None, new)
    render(bench, out_dir)
    write_result(bench_path, bench)
    print(f"[bench] wrote {bench_path} and {out_dir / TABLES_MD} in {new['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
