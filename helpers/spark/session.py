"""The SparkSession the Spark engine runs in, and whether Spark can run here at all.

Conventions: the session time zone is UTC (the star schema's timestamps are naive
local times; UTC has no daylight-saving gaps, so a timestamp survives the round trip
unchanged); Parquet nanosecond timestamps (what pandas writes) are read as longs and
converted by :mod:`helpers.spark.tables`; the UI is off and shuffles use a small number
of partitions unless the caller asks for more.
"""

from __future__ import annotations

import os
import shutil

from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"
DEFAULT_SHUFFLE_PARTITIONS = 8


def java_available() -> bool:
    """True when a ``java`` executable is on the PATH (or ``JAVA_HOME`` is set)."""
    return bool(shutil.which("java") or os.environ.get("JAVA_HOME"))


def get_session(master: str | None = DEFAULT_MASTER, app_name: str = "recbook-spark",
                shuffle_partitions: int = DEFAULT_SHUFFLE_PARTITIONS, driver_memory: str | None = "3g",
                conf: dict | None = None) -> SparkSession:
    """A SparkSession with the engine's settings (an active session is reused and reconfigured).

    ``master`` None leaves it to ``spark-submit`` (cluster runs). ``driver_memory`` (default 3g;
    Spark's own default of 1g ran out of heap on a few thousand customers) applies only when
    this call starts the JVM."""
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.legacy.parquet.nanosAsLong": "true",
        "spark.sql.shuffle.partitions": str(int(shuffle_partitions)),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
    }
    if driver_memory:
        settings["spark.driver.memory"] = driver_memory
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    for key in ("spark.sql.session.timeZone", "spark.sql.legacy.parquet.nanosAsLong", "spark.sql.shuffle.partitions"):
        spark.conf.set(key, settings[key])
    return spark
