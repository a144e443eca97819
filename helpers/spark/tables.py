"""The star schema read from Parquet or CSV into Spark DataFrames and validated there.

The rules and messages are those of :mod:`helpers.data.validate` (the same
:class:`~helpers.data.validate.DataValidationError`, naming table, column, rule and up
to five offending rows, with the true count of offending rows), checked as DataFrame
aggregations: one job per table counts the broken rows of every rule, and only a
broken rule fetches its first rows. Checked: ``present``, ``required-column``,
``non-empty``, ``dtype`` (ints, floats, booleans, dates), ``not-null``, ``unique-key``,
``finite``, ``non-negative``, ``sign``, ``foreign-key`` and ``period``, in the local
order. Not here: ``dim_date`` is neither read nor derived (no Spark stage uses it).

A table is ``<folder>/<name>.parquet`` (a file, or a folder of part files as a lake
writes them), ``<name>.csv`` or ``<name>.csv.gz``. Parquet nanosecond timestamps (what
pandas writes) arrive as longs (see :mod:`helpers.spark.session`) and are converted to
microsecond timestamps.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from helpers.data.readers import find_file
from helpers.data.schema import TABLES, Table
from helpers.data.validate import FIXES, MAX_ROWS_SHOWN, DataValidationError, fix_for

REQUIRED = ("dim_customer", "dim_product", "fact_transactions")
OPTIONAL = ("dim_promotion", "customer_exposure")
BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False, "t": True, "f": False,
             "yes": True, "no": False, "1.0": True, "0.0": False}
DTYPE_DETAIL = {"id": "numeric identifiers must be whole numbers", "int": "values are not integers",
                "float": "values are not numbers",
                "bool": "values are not booleans", "datetime": "values are not parseable dates",
                "date": "values are not parseable dates"}


def validation_error(table: str, column: str | None, rule: str, detail: str, raw: DataFrame | None = None,
                     bad: Column | None = None, n_bad: int | None = None,
                     fix: str | None = None) -> DataValidationError:
    """The local engine's error for a broken rule; ``raw.filter(bad)`` are the offending rows."""
    err = DataValidationError(table, column, rule, detail, fix=fix)
    if raw is not None and bad is not None:
        rows = raw.filter(bad).limit(MAX_ROWS_SHOWN).toPandas()
        n = int(n_bad) if n_bad is not None else raw.filter(bad).count()
        if len(rows):
            msg = err.args[0] + f" First offending rows (of {n}):\n{rows.to_string(max_colwidth=40)}"
            err.args = (msg,)
            err.rows = rows
    return err


# --------------------------------------------------------------------- read
def table_path(folder: Path, name: str) -> Path | None:
    """The file (or Parquet folder) of a table, None when absent."""
    lake = folder / f"{name}.parquet"
    if lake.is_dir():
        return lake
    return find_file(folder, name)


def read_table(spark: SparkSession, path: Path) -> DataFrame:
    if path.suffix == ".parquet" or path.is_dir():
        return spark.read.parquet(str(path))
    return spark.read.option("header", True).option("inferSchema", False).csv(str(path))


def read_tables(spark: SparkSession, folder) -> dict[str, DataFrame]:
    """The raw tables of a folder (required ones must be present: rule ``present``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} is not a folder")
    out = {}
    for name in (*REQUIRED, *OPTIONAL):
        path = table_path(folder, name)
        if path is None:
            if name in REQUIRED:
                raise DataValidationError(name, None, "present", f"no {name}.parquet / {name}.csv in {folder}")
            continue
        out[name] = read_table(spark, path)
    return out


# ----------------------------------------------------------------- coercion
def _coerced(df: DataFrame, col: str, dtype: str) -> tuple[Column, Column | None]:
    """``(converted column, bad-value condition or None)`` for one column of the contract."""
    field = df.schema[col].dataType
    raw = F.col(col)
    if dtype == "id":  # the source's own identifiers: integers stay integers, anything else is text
        if isinstance(field, (T.LongType, T.IntegerType, T.ShortType, T.ByteType)):
            return raw.cast("long"), None
        if isinstance(field, T.NumericType):  # whole numbers as integers, as the local engine reads them
            return raw.cast("long"), raw.isNotNull() & (raw != F.round(raw))
        return raw.cast("string"), None
    if dtype == "int":
        if isinstance(field, (T.LongType, T.IntegerType, T.ShortType, T.ByteType)):
            return raw.cast("long"), None
        num = raw.try_cast("double")  # ANSI mode: a plain cast raises on text
        return num.cast("long"), raw.isNotNull() & (num.isNull() | (num != F.round(num)))
    if dtype == "float":
        if isinstance(field, T.NumericType):
            return raw.cast("double"), None
        num = raw.try_cast("double")
        return num, raw.isNotNull() & num.isNull()
    if dtype == "bool":
        if isinstance(field, T.BooleanType):
            return raw, None
        text = F.lower(F.trim(raw.cast("string")))
        mapped = F.create_map(*[F.lit(x) for kv in BOOL_TEXT.items() for x in kv])[text]
        return mapped, raw.isNotNull() & mapped.isNull()
    if dtype in ("datetime", "date"):
        if isinstance(field, T.LongType):  # Parquet TIMESTAMP(NANOS), read as long
            ts = F.timestamp_micros(F.floor(raw / 1000).cast("long"))
            bad = None
        elif isinstance(field, (T.TimestampType, T.TimestampNTZType, T.DateType)):
            ts, bad = raw.cast("timestamp"), None
        else:
            ts = F.try_to_timestamp(raw.cast("string"))
            bad = raw.isNotNull() & ts.isNull()
        return (F.date_trunc("DAY", ts) if dtype == "date" else ts), bad
    return raw.cast("string"), None


def validate_table(df: DataFrame, name: str, allow_empty: bool = False) -> DataFrame:
    """Check one table against its contract; returns it with the contract's types (columns
    the table lacks stay absent)."""
    spec: Table = TABLES[name]
    missing = [c for c in spec.required_columns if c not in df.columns]
    if missing:
        raise DataValidationError(name, missing[0], "required-column",
                                  f"required column(s) {missing} missing; present: {list(df.columns)}",
                                  fix=fix_for("required-column", name, missing[0]))
    checks: list[tuple[str, str, str, Column]] = []  # (column, rule, detail, bad condition on the raw row)
    converted = {}
    dtype_fix: dict[str, str] = {}
    for col in spec.columns:
        if col.name not in df.columns:
            continue
        conv, bad = _coerced(df, col.name, col.dtype)
        converted[col.name] = conv
        if bad is not None:
            checks.append((col.name, "dtype", DTYPE_DETAIL[col.dtype], bad))
            if f"dtype:{col.dtype}" in FIXES:
                dtype_fix[col.name] = fix_for(f"dtype:{col.dtype}", name, col.name)
        if not col.nullable:  # pandas counts a float NaN as null
            null = conv.isNull() | F.isnan(conv) if col.dtype == "float" else conv.isNull()
            checks.append((col.name, "not-null", "null values", null))
    counts = df.agg(F.count(F.lit(1)).alias("_rows"),
                    *[F.sum(F.when(bad, 1).otherwise(0)).alias(f"_c{i}") for i, (*_, bad) in enumerate(checks)]
                    ).first()
    if counts["_rows"] == 0 and not allow_empty:
        raise DataValidationError(name, None, "non-empty", "table has no rows", fix=fix_for("non-empty", name))
    for i, (column, rule, detail, bad) in enumerate(checks):
        n = int(counts[f"_c{i}"] or 0)
        if n:
            text = f"{n} null values" if rule == "not-null" else detail
            raise validation_error(name, column, rule, text, df, bad, n,
                                   dtype_fix.get(column) if rule == "dtype" else None)
    out = df.select(*[conv.alias(c) for c, conv in converted.items()])
    if spec.key:
        key = list(spec.key)
        dup = out.groupBy(*key).count().filter("count > 1")
        stats = dup.agg(F.count(F.lit(1)).alias("keys"), F.sum("count").alias("rows")).first()
        if stats["keys"]:
            n = int(stats["rows"] - stats["keys"])
            offending = out.join(dup.select(*key), key, "left_semi")
            raise validation_error(name, ",".join(key), "unique-key", f"{n} duplicated key value(s)",
                                   offending, F.lit(True), int(stats["rows"]), fix_for("unique-key", name, ",".join(key)))
    return out


# ----------------------------------------------------------------- the star
def complete_transactions(fact: DataFrame) -> DataFrame:
    """Derive the optional fact columns the source did not provide (as the local engine does)."""
    cols = fact.columns
    if "date" not in cols:
        fact = fact.withColumn("date", F.date_trunc("DAY", "timestamp"))
    for c in ("retail_disc", "coupon_disc", "coupon_match_disc"):
        fact = fact.withColumn(c, F.coalesce(F.col(c), F.lit(0.0)) if c in cols else F.lit(0.0))
    if "discount" not in cols:
        fact = fact.withColumn("discount", F.col("retail_disc") + F.col("coupon_disc") + F.col("coupon_match_disc"))
    if "on_promotion" not in cols:
        fact = fact.withColumn("on_promotion", F.lit(None).cast("boolean"))
    if "store_id" not in cols:
        fact = fact.withColumn("store_id", F.lit(None).cast("long"))
    return fact.withColumn("is_return", F.col("quantity") < 0).select(*TABLES["fact_transactions"].column_names)


def check_transactions(fact: DataFrame, customers: DataFrame, products: DataFrame) -> None:
    """``finite``, ``non-negative``, ``sign`` and ``foreign-key`` on the fact table, in the local order."""
    name = "fact_transactions"
    checks = [(c, "finite", "values are not finite", F.isnan(c) | F.col(c).isin(float("inf"), float("-inf")))
              for c in ("quantity", "sales_value")]
    checks += [(c, "non-negative", "discounts must be >= 0 (amount taken off the price)", F.col(c) < 0)
               for c in ("retail_disc", "coupon_disc", "coupon_match_disc", "discount")]
    checks.append(("sales_value", "sign",
                   "negative sales value on a line with positive quantity (returns need quantity < 0)",
                   (F.col("quantity") > 0) & (F.col("sales_value") < 0)))
    known_c = customers.select(F.col("customer_id").alias("_c"), F.lit(True).alias("_known_c"))
    known_p = products.select(F.col("product_id").alias("_p"), F.lit(True).alias("_known_p"))
    flagged = (fact.join(known_c, fact["customer_id"] == known_c["_c"], "left")
               .join(known_p, F.col("product_id") == known_p["_p"], "left"))
    fk = {"customer_id": ("dim_customer", F.col("_known_c").isNull()),
          "product_id": ("dim_product", F.col("_known_p").isNull())}
    aggs = [F.sum(F.when(bad, 1).otherwise(0)).alias(f"_c{i}") for i, (*_, bad) in enumerate(checks)]
    for col, (_, bad) in fk.items():
        aggs += [F.sum(F.when(bad, 1).otherwise(0)).alias(f"_fk_{col}"),
                 F.count_distinct(F.when(bad, F.col(col))).alias(f"_fkv_{col}")]
    counts = flagged.agg(*aggs).first()
    for i, (column, rule, detail, bad) in enumerate(checks):
        if counts[f"_c{i}"]:
            raise validation_error(name, column, rule, detail, fact, bad, counts[f"_c{i}"])
    for col, (table, bad) in fk.items():
        n = counts[f"_fk_{col}"]
        if n:
            detail = f"{int(n)} line(s) point at {int(counts[f'_fkv_{col}'])} {col} value(s) absent from {table}"
            raise validation_error(name, col, "foreign-key", detail, flagged.select(*fact.columns, "_known_c",
                                                                                      "_known_p"), bad, n,
                                   fix_for("foreign-key", name, col, table))


def validate_star_schema(raw: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """Validate and complete the tables (local rules and order); returns typed DataFrames."""
    out: dict[str, DataFrame] = {}
    for name in REQUIRED:
        if name not in raw:
            raise DataValidationError(name, None, "present", "required table is missing from the source")
        out[name] = validate_table(raw[name], name)
    fact = complete_transactions(out["fact_transactions"])
    check_transactions(fact, out["dim_customer"], out["dim_product"])
    out["fact_transactions"] = fact
    cust = out["dim_customer"]
    if "has_demographics" not in cust.columns:
        demo = [c for c in ("age_band", "gender", "income_band") if c in cust.columns]
        has = F.lit(False)
        for c in demo:
            has = has | F.col(c).isNotNull()
        cust = cust.withColumn("has_demographics", has)
    for col in TABLES["dim_customer"].column_names:
        if col not in cust.columns:
            cust = cust.withColumn(col, F.lit(None).cast("string"))
    out["dim_customer"] = cust.select(*TABLES["dim_customer"].column_names)
    prod = out["dim_product"]
    for col in TABLES["dim_product"].column_names:
        if col not in prod.columns:
            spec = TABLES["dim_product"].column(col)
            kind = {"bool": "boolean", "float": "double", "int": "long"}.get(spec.dtype, "string")
            prod = prod.withColumn(col, F.lit(True) if col == "in_source_catalog" else F.lit(None).cast(kind))
    prod = prod.withColumn("description", F.coalesce(F.col("description"), F.lit("")))
    out["dim_product"] = prod.select(*TABLES["dim_product"].column_names)
    if "dim_promotion" in raw:
        promo = validate_table(raw["dim_promotion"], "dim_promotion", allow_empty=True)
        bad = F.col("start_date") >= F.col("end_date")
        n = promo.filter(bad).count()
        if n:
            raise validation_error("dim_promotion", "end_date", "period", "end_date must be after start_date",
                                   promo, bad, n)
        out["dim_promotion"] = promo
    if "customer_exposure" in raw:
        out["customer_exposure"] = validate_table(raw["customer_exposure"], "customer_exposure", allow_empty=True)
    return out


def load_star(spark: SparkSession, folder) -> dict[str, DataFrame]:
    """:func:`read_tables` then :func:`validate_star_schema`."""
    return validate_star_schema(read_tables(spark, folder))
