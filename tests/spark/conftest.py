"""One SparkSession for the whole Spark suite (local[2], 4 shuffle partitions) and a small
synthetic star schema written as Parquet, with the local engine's tables beside it."""

from __future__ import annotations

import pytest

from helpers.data.sources import synthetic
from helpers.data.star import write_tables
from helpers.data.validate import validate_star_schema
from helpers.spark.bench import java_available
from helpers.spark.session import get_session
from helpers.spark.tables import load_star

STARTED: list = []  # the session, once a test asked for it
SMALL = dict(n_customers=2000, n_products=400, n_days=180, seed=5)


@pytest.fixture(scope="session")
def spark():
    if not java_available():
        pytest.skip("no Java runtime on this machine (java not on PATH, JAVA_HOME unset): Spark cannot start; "
                    ".ci/run installs openjdk-17-jre-headless")
    # tiny queries: interpreted expressions instead of compiling Java code for every new query
    # (the compilation dominated the suite's time)
    conf = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
    session = get_session("local[2]", app_name="recbook-tests", shuffle_partitions=4,
                          driver_memory="3g", conf=conf)
    STARTED.append(session)
    yield session
    STARTED.clear()
    session.stop()


@pytest.fixture(scope="module", autouse=True)
def _clear_cache():
    """Each module's cached DataFrames are dropped after it: what one module cached slowed the next
    ones down several times on the shared 3g driver."""
    yield
    for session in STARTED:
        session.catalog.clearCache()


@pytest.fixture(scope="session")
def small_tables():
    """The validated pandas star schema of :data:`SMALL`."""
    raw = synthetic.generate(**SMALL)
    return validate_star_schema({k: v for k, v in raw.items() if not k.startswith("_")})


@pytest.fixture(scope="session")
def small_dir(small_tables, tmp_path_factory):
    """:func:`small_tables` written as Parquet (the local star-schema writer)."""
    out = tmp_path_factory.mktemp("spark-star")
    write_tables(small_tables, out, {"dataset": "synthetic", "params": SMALL})
    return out


@pytest.fixture(scope="session")
def spark_tables(spark, small_dir):
    return load_star(spark, small_dir)


def pytest_collection_modifyitems(config, items):
    for item in items:  # every test of this folder runs Spark
        if "tests/spark/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.spark)
