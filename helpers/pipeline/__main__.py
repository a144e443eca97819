"""``python -m helpers.pipeline run|lift|ablation|params|check``: the command line of :mod:`helpers.pipeline.run`
and of the data check (:mod:`helpers.data.check`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers import config
from helpers.data import check
from helpers.pipeline import lift
from helpers.pipeline.ablation import run_ablation
from helpers.pipeline.execute import NotebookFailed
from helpers.pipeline.params import ParameterError, notebook_parameters, parse_params
from helpers.pipeline.run import DataRefused, numbered_notebooks, run

REFUSED = "Nothing was run: the outputs of the last run are as they were."
UNCHANGED = ("Nothing was published: the processed data, model cache, exports, tables, figures, "
             "executed notebooks and run manifest are as they were before this run.")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m helpers.pipeline",
                                 description="Run the numbered notebooks end to end with papermill, all or nothing.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the numbered notebooks (a dependency graph, --jobs at once)")
    r.add_argument("--dataset", default=config.DEFAULT_DATASET, choices=config.DATASETS)
    r.add_argument("--data-dir", help="folder of CSV/Parquet tables (dataset 'files')")
    r.add_argument("--output-dir", help="write the star schema here (exports in OUTPUT_DIR/exports, "
                                        "reports in OUTPUT_DIR/reports)")
    r.add_argument("--param", action="append", metavar="KEY=VALUE", help="notebook parameter override")
    r.add_argument("--engine", choices=("local", "spark"),
                   help="where the heavy stages run: local (default) or spark (the models the Spark engine has, "
                        "on --param spark_master=local[2], any master URL, or none under spark-submit)")
    r.add_argument("--only", help="comma-separated notebook numbers, e.g. 00,01")
    r.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    r.add_argument("--no-cache", action="store_true",
                   help="execute every notebook and fit every model even if nothing changed")
    r.add_argument("--jobs", type=int, default=2, metavar="N",
                   help="notebooks run at once, each in its own kernel (default 2; 1 = one after another)")
    lf = sub.add_parser("lift", help="the hybrid against the best other model on the synthetic retailer, for "
                                     "several generator seeds and sizes (the Methods chapter's table)")
    lf.add_argument("--seeds", default=",".join(map(str, lift.SEEDS)), help="comma-separated generator seeds")
    lf.add_argument("--sizes", default=",".join(map(str, lift.SIZES)), help="comma-separated customer counts")
    lf.add_argument("--param", action="append", metavar="KEY=VALUE", help="notebook parameter override")
    lf.add_argument("--jobs", type=int, default=2, metavar="N", help="notebooks run at once (default 2)")
    ab = sub.add_parser("ablation", help="the re-ranker with each feature group left out, on the last run's "
                                         "validation window (the Methods chapter's table)")
    ab.add_argument("--output-dir", help="the run's --output-dir (default: data/processed and reports/)")
    sub.add_parser("params", help="list the parameters of every notebook")
    sub.add_parser("check", add_help=False, help="validate a data folder without running models "
                                                 "(python -m helpers.pipeline check --help)")
    return ap


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:
        return check.main(argv[1:])
    args = parser().parse_args(argv)
    if args.cmd == "params":
        for nb in numbered_notebooks():
            print(nb.name)
            for k, v in notebook_parameters(nb).items():
                print(f"    {k} = {v!r}")
        return 0
    try:
        if args.cmd == "ablation":
            out = Path(args.output_dir) if args.output_dir else None
            run_ablation(out, out / "reports" if out else None)
            return 0
        if args.cmd == "lift":
            lift.run_lift([int(x) for x in args.seeds.split(",")], [int(x) for x in args.sizes.split(",")],
                          jobs=args.jobs, params=parse_params(args.param))
            return 0
        params = parse_params(args.param)
        if args.engine:
            params["engine"] = args.engine
        run(args.dataset, args.data_dir, args.output_dir, params,
            only=args.only.split(",") if args.only else None, progress=not args.no_progress,
            use_cache=not args.no_cache, jobs=args.jobs)
    except ParameterError as exc:
        print(f"ERROR: {exc}\n{REFUSED}", file=sys.stderr)
        return 2
    except DataRefused as exc:
        print(f"{exc.report.text()}\n\nERROR: the data check found {len(exc.report.errors)} error(s) in "
              f"{exc.report.data_dir} (python -m helpers.pipeline check --data-dir DIR shows them again). "
              f"{REFUSED}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"\nERROR: {exc}\n{UNCHANGED}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # RunInterrupted (SIGTERM) too
        print(f"\nInterrupted ({exc}): the running notebooks were stopped and the staging folder removed. "
              f"{UNCHANGED}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
