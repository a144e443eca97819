"""A rung of the synthetic scale ladder on the Spark engine, for the bench.

:func:`spark_bench_rung` generates the synthetic star schema (the bench ladder's
generator and sizes: about 40 lines per customer), writes it as Parquet, then runs the
Spark engine (:func:`helpers.spark.engine.run`: validation, split, segments, the models,
top-N under both protocols, metrics, optionally the export) in a child process, and
reports its wall time and peak memory: the driver JVM's ``VmHWM`` plus the Python
driver's ``ru_maxrss`` (an upper bound of their peak together; with ``local[N]`` the
executors run inside that JVM, and the engine starts no Python workers: no UDFs).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.data.sources import synthetic
from helpers.data.star import write_tables
from helpers.data.validate import validate_star_schema

LINES_PER_CUSTOMER = 40.0
N_DAYS = 365


def java_available() -> bool:
    """Can Spark start here: ``java`` on the PATH or ``JAVA_HOME`` set."""
    return bool(shutil.which("java") or os.environ.get("JAVA_HOME"))


NO_JAVA = "no Java runtime (java not on PATH, JAVA_HOME unset)"


def write_synthetic(n_customers: int, n_products: int, out_dir, seed: int = 0,
                    lines_per_customer: float = LINES_PER_CUSTOMER, n_days: int = N_DAYS) -> Path:
    """Generate, validate and write the synthetic star schema as Parquet into ``out_dir``."""
    raw = synthetic.generate(n_customers=n_customers, n_products=n_products, n_days=n_days, seed=seed,
                             lines_per_customer=lines_per_customer)
    tables = validate_star_schema({k: v for k, v in raw.items() if not k.startswith("_")})
    del raw
    return write_tables(tables, out_dir, {"dataset": "synthetic", "n_customers": n_customers,
                                          "n_products": n_products, "seed": seed})


def spark_run_on(data_dir, master: str = "local[2]", params: dict | None = None, export_dir=None,
                 driver_memory: str = "6g") -> dict:
    """The Spark engine on a star-schema folder, in a child process: ``{wall_s, peak_rss_gib,
    jvm_peak_gib, python_peak_gib, timings, lines, export_rows, load_before}``.

    ``params`` go to the engine (default: the bench ladder's ALS, 64 factors and 10
    iterations, and its models: popularity, buy-again, ALS)."""
    params = {"factors": 64, "iterations": 10, "models": ["global_popularity", "buy_again", "als"],
              **(params or {})}
    with tempfile.TemporaryDirectory(prefix="spark-run-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "helpers.spark.bench", str(data_dir), master, json.dumps(params),
               str(export_dir or ""), driver_memory, str(result)]
        load_before = os.getloadavg()
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t
        child = json.loads(result.read_text())
    return {"engine": "spark", "master": master, "driver_memory": driver_memory, "lines": child["lines"],
            "wall_s": wall, "peak_rss_gib": child["jvm_peak_gib"] + child["python_peak_gib"],
            "jvm_peak_gib": child["jvm_peak_gib"], "python_peak_gib": child["python_peak_gib"],
            "timings": child["timings"], "load_before": list(load_before), "export_rows": child.get("export_rows")}


def spark_bench_rung(n_customers: int, n_products: int, master: str = "local[2]", seed: int = 0,
                     params: dict | None = None, export: bool = True, driver_memory: str = "6g",
                     work_dir=None) -> dict:
    """:func:`spark_run_on` of a synthetic rung generated (and written as Parquet) under
    ``work_dir`` (a temporary folder by default, removed afterwards), plus ``generate_s``."""
    with tempfile.TemporaryDirectory(prefix="spark-rung-", dir=work_dir) as tmp:
        t = time.perf_counter()
        data_dir = write_synthetic(n_customers, n_products, Path(tmp) / "star", seed=seed)
        generate_s = time.perf_counter() - t
        out = spark_run_on(data_dir, master, params, Path(tmp) / "export" if export else None, driver_memory)
    return {**out, "n_customers": n_customers, "n_products": n_products, "generate_s": generate_s}


def _child(data_dir: str, master: str, params: str, export_dir: str, driver_memory: str, result: str) -> None:
    from helpers.spark.engine import run  # start-up: the child process loads the engine only
    from helpers.spark.session import get_session  # start-up: as above

    spark = get_session(master, driver_memory=driver_memory)
    out = run(data_dir, json.loads(params), spark=spark, export_dir=export_dir or None)
    lines = spark.read.parquet(str(Path(data_dir) / "fact_transactions.parquet")).count()
    jvm = jvm_peak_gib(spark)
    Path(result).write_text(json.dumps({
        "timings": out["timings"], "lines": lines, "export_rows": (out.get("manifest") or {}).get("rows"),
        "jvm_peak_gib": jvm, "python_peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}))
    spark.stop()


def jvm_peak_gib(spark) -> float:
    """Peak resident memory (``VmHWM``) of the driver JVM of a local session, in GiB (0 when unknown)."""
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2 ** 20
    except (AttributeError, OSError):
        pass
    return 0.0


if __name__ == "__main__":
    _child(*sys.argv[1:7])
