"""``python -m helpers.spark --data-dir DIR [--master local[2]] [--export-dir DIR] [--param k=v ...]``
(or ``--synthetic N``: generate a synthetic star schema of N customers into a temporary folder first)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from helpers.spark.engine import DEFAULTS, run
from helpers.spark.session import DEFAULT_MASTER


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.spark", description=__doc__)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="folder of the star-schema tables (Parquet files or folders, CSV)")
    src.add_argument("--synthetic", type=int, metavar="N", help="generate N synthetic customers first")
    ap.add_argument("--n-products", type=int, default=2000, help="products of --synthetic (default 2000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --synthetic")
    ap.add_argument("--master", default=DEFAULT_MASTER,
                    help="Spark master URL (default local[2]); 'none' leaves it to spark-submit")
    ap.add_argument("--export-dir", help="write the export (partitioned Parquet + JSON Schema) here")
    ap.add_argument("--output-dir", help="write spark_metrics.csv here")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help=f"engine parameter (JSON value), one of {sorted(DEFAULTS)}")
    args = ap.parse_args(argv)
    params = {}
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = parse_value(value)
    master = None if args.master == "none" else args.master
    with tempfile.TemporaryDirectory(prefix="recbook-spark-") as tmp:
        data_dir = args.data_dir
        if args.synthetic:
            from helpers.spark.bench import write_synthetic  # start-up: the generator loads only for --synthetic

            data_dir = write_synthetic(args.synthetic, args.n_products, tmp, seed=args.seed)
        out = run(data_dir, params, master=master, export_dir=args.export_dir, output_dir=args.output_dir)
    m = out["metrics"]
    overall = m.loc[m["segment_type"] == "overall"].pivot_table(index=["model", "protocol"],
                                                                 columns=["metric", "k"], values="value")
    print(overall.round(4).to_string())
    print(json.dumps({"split": out["split"], "timings": {k: round(v, 1) for k, v in out["timings"].items()},
                      "export_rows": (out.get("manifest") or {}).get("rows")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
