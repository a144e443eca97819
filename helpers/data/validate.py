"""Validation of source tables into the star schema, with clear errors.

Every failed rule raises :class:`DataValidationError`, whose message names the
table, the column, the rule and up to five offending rows. The rules:

* ``non-empty``: fact_transactions, dim_customer and dim_product have rows.
* ``required-column``: every required column of the contract is present.
* ``dtype``: values are coercible to the column's type (ints, floats,
  booleans, dates); ``not-null``: non-nullable columns hold no nulls.
* ``unique-key``: key columns hold no duplicates.
* ``foreign-key``: every transaction's ``customer_id`` is in dim_customer and
  every ``product_id`` in dim_product. Sources whose documented rule is to keep
  unknown keys (Complete Journey's products missing from its product table)
  add them to the dimension *before* validation, so none is silently lost.
* ``finite``: quantity and sales_value are finite; ``non-negative``: discounts
  are >= 0; ``sign``: a line with positive quantity cannot have a negative
  sales value (returns have quantity < 0).
* ``period``: promotion periods satisfy ``start_date < end_date`` (the files
  source turns an inclusive ``end_date`` into this convention first).
* ``non-negative`` on ``dim_product.unit_price``: no list price below zero.
* ``minimum-size``: at least two customers with purchases (the data check warns
  below a hundred, and when the date range is short for the evaluation windows).
* Identifiers (type ``id``) are kept as the source has them: integers stay
  int64 (nullable ``Int64`` where the column is nullable), text stays text.

An error may carry ``fix``: what to change (often a line of ``recbook.toml``).
The non-blocking rules (warnings) are in :mod:`helpers.data.check`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from helpers.data.calendar import build_dim_date
from helpers.data.schema import MIN_CUSTOMERS_ERROR, TABLES, Table

MAX_ROWS_SHOWN = 5

#: How to fix a broken structural rule (formatted with ``table``, ``column``, ``other``: the referenced
#: table); the same words from the local and the Spark engine.
FIXES = {
    "required-column": 'name the source column under [columns.{table}] in recbook.toml, e.g. `your_column = "{column}"`',
    "non-empty": "export the table with its rows",
    "unique-key": "keep one row per {column} in the source",
    "foreign-key": "add the missing {column} rows to {other} (attributes may be empty)",
    "dtype:float": 'if the numbers use a decimal comma, add `decimal = ","` under [csv] in recbook.toml',
    "dtype:id": "store {column} as text (e.g. a string column) if these are codes",
}


def fix_for(rule: str, table: str, column: str | None = None, other: str | None = None) -> str:
    """The fix of a structural rule (:data:`FIXES`)."""
    return FIXES[rule].format(table=table, column=column, other=other)


class DataValidationError(ValueError):
    """A table breaks a rule of the star-schema contract."""

    def __init__(self, table: str, column: str | None, rule: str, detail: str, rows: pd.DataFrame | None = None,
                 fix: str | None = None):
        self.table, self.column, self.rule, self.rows, self.detail, self.fix = table, column, rule, rows, detail, fix
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        msg = f"Data validation failed in {where}: rule '{rule}' broken: {detail}."
        if fix:
            msg += f" Fix: {fix}."
        if rows is not None and len(rows):
            shown = rows.head(MAX_ROWS_SHOWN).to_string(max_colwidth=40)
            msg += f" First offending rows (of {len(rows)}):\n{shown}"
        super().__init__(msg)


def _fail(table, column, rule, detail, df=None, mask=None, fix=None):
    rows = df.loc[mask] if df is not None and mask is not None else None
    raise DataValidationError(table, column, rule, detail, rows, fix)


def _coerce_id(s: pd.Series, raw_null: pd.Series, nullable: bool, table: str, column: str, df) -> pd.Series:
    """Integer ids as int64 (``Int64`` when nullable), text ids as text (object, None for nulls)."""
    if pd.api.types.is_integer_dtype(s.dtype):  # whole numbers already (numpy or nullable integers)
        want = "Int64" if raw_null.any() or nullable else "int64"
        return s if s.dtype == want else s.astype(want, copy=False)
    if pd.api.types.is_bool_dtype(s.dtype):
        _fail(table, column, "dtype", "identifiers must be integers or text, not booleans")
    if pd.api.types.is_numeric_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce")
        bad = num.notna() & (num != np.round(num))
        if bad.any():
            _fail(table, column, "dtype", "numeric identifiers must be whole numbers", df, bad,
                  fix=fix_for("dtype:id", table, column))
        return num.astype("Int64") if raw_null.any() or nullable else num.astype("int64")
    return s.astype(str).astype(object).where(~raw_null, None)


def _midnights(s: pd.Series) -> bool:
    """Every timestamp of a ``datetime64[ns]`` series is at midnight (checked on its distinct values:
    a fact table's dates repeat; NaT, the minimum int64, counts as a midnight)."""
    ns = pd.unique(s.to_numpy()).view(np.int64)
    return bool(((ns % 86_400_000_000_000 == 0) | (ns == np.iinfo(np.int64).min)).all())


def _coerce(df: pd.DataFrame, spec: Table) -> pd.DataFrame:
    # shallow: a column already of the right dtype is kept as it is (no copy of a
    # 40M-line fact table); converted columns replace their column in ``out`` only
    out = df.copy(deep=False)
    for col in spec.columns:
        if col.name not in out.columns:
            continue
        s = out[col.name]
        raw_null = s.isna()
        try:
            if col.dtype == "id":
                conv = _coerce_id(s, raw_null, col.nullable, spec.name, col.name, df)
            elif col.dtype == "int" and s.dtype == np.int64 and not col.nullable:
                conv = s
            elif col.dtype == "float" and s.dtype == np.float64:
                conv = s
            elif col.dtype == "int":
                num = pd.to_numeric(s, errors="coerce")
                bad = num.isna() & ~raw_null | (num.notna() & (num != np.round(num)))
                if bad.any():
                    _fail(spec.name, col.name, "dtype", "values are not integers", df, bad)
                conv = num.astype("Int64") if raw_null.any() or col.nullable else num.astype("int64")
            elif col.dtype == "float":
                conv = pd.to_numeric(s, errors="coerce").astype("float64")
                bad = conv.isna() & ~raw_null
                if bad.any():
                    _fail(spec.name, col.name, "dtype", "values are not numbers", df, bad,
                          fix=fix_for("dtype:float", spec.name, col.name))
            elif col.dtype == "bool":
                if s.dtype == bool:
                    conv = s
                else:
                    mapping = {"true": True, "false": False, "1": True, "0": False, "t": True, "f": False,
                               "yes": True, "no": False, "1.0": True, "0.0": False}
                    low = s.astype("string").str.strip().str.lower()
                    conv = low.map(mapping)
                    bad = conv.isna() & ~raw_null
                    if bad.any():
                        _fail(spec.name, col.name, "dtype", "values are not booleans", df, bad)
                    conv = conv.astype("boolean") if (raw_null.any() or col.nullable) else conv.astype(bool)
            elif col.dtype in ("datetime", "date") and s.dtype == "datetime64[ns]":
                conv = s if col.dtype == "datetime" or _midnights(s) else s.dt.normalize()  # nothing to parse
            elif col.dtype in ("datetime", "date"):
                with warnings.catch_warnings():  # mixed formats parse element-wise: fine here
                    warnings.simplefilter("ignore", UserWarning)
                    conv = pd.to_datetime(s, errors="coerce")
                if getattr(conv.dt, "tz", None) is not None:
                    conv = conv.dt.tz_localize(None)
                bad = conv.isna() & ~raw_null
                if bad.any():
                    _fail(spec.name, col.name, "dtype", "values are not parseable dates", df, bad)
                conv = conv.astype("datetime64[ns]", copy=False)
                if col.dtype == "date":
                    conv = conv.dt.normalize()
            else:  # string (categoricals of strings are kept as they are: compact)
                if isinstance(s.dtype, pd.CategoricalDtype):
                    conv = s
                elif pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
                    conv = s.astype(object).where(~raw_null, None)
                else:
                    conv = s.astype(str).astype(object).where(~raw_null, None)
        except DataValidationError:
            raise
        except Exception as exc:  # pragma: no cover - defensive
            _fail(spec.name, col.name, "dtype", f"cannot convert to {col.dtype}: {exc}")
        if conv is not s:  # an assignment copies the column: only for converted ones
            out[col.name] = conv
        if not col.nullable:
            nulls = conv.isna()
            if nulls.any():
                _fail(spec.name, col.name, "not-null", f"{int(nulls.sum())} null values", df, nulls)
    return out


def validate_table(df: pd.DataFrame, name: str, *, allow_empty: bool = False) -> pd.DataFrame:
    """Check one table against its contract; returns a copy with coerced dtypes."""
    spec = TABLES[name]
    if df is None or not isinstance(df, pd.DataFrame):
        _fail(name, None, "present", "table is missing")
    missing = [c for c in spec.required_columns if c not in df.columns]
    if missing:
        _fail(name, missing[0], "required-column",
              f"required column(s) {missing} missing; present: {list(df.columns)}",
              fix=fix_for("required-column", name, missing[0]))
    if len(df) == 0 and not allow_empty:
        _fail(name, None, "non-empty", "table has no rows", fix=fix_for("non-empty", name))
    out = _coerce(df, spec)
    if spec.key:
        dup = out.duplicated(list(spec.key), keep=False)
        if dup.any():
            n = int(out.duplicated(list(spec.key)).sum())
            _fail(name, ",".join(spec.key), "unique-key", f"{n} duplicated key value(s)", df, dup,
                  fix=fix_for("unique-key", name, ",".join(spec.key)))
    return out


def complete_transactions(fact: pd.DataFrame) -> pd.DataFrame:
    """Derive the optional fact columns the source did not provide."""
    if "date" not in fact.columns:
        fact["date"] = fact["timestamp"].dt.normalize()
    for c in ("retail_disc", "coupon_disc", "coupon_match_disc"):
        if c not in fact.columns:
            fact[c] = 0.0
        fact[c] = fact[c].fillna(0.0)
    if "discount" not in fact.columns:
        fact["discount"] = fact["retail_disc"] + fact["coupon_disc"] + fact["coupon_match_disc"]
    if "on_promotion" not in fact.columns:
        fact["on_promotion"] = pd.array([pd.NA] * len(fact), dtype="boolean")
    if "store_id" not in fact.columns:
        fact["store_id"] = pd.array([pd.NA] * len(fact), dtype="Int64")
    fact["is_return"] = fact["quantity"].to_numpy() < 0
    return fact


def check_transactions(fact: pd.DataFrame) -> None:
    name = "fact_transactions"
    for c in ("quantity", "sales_value"):
        bad = ~np.isfinite(fact[c].to_numpy())
        if bad.any():
            _fail(name, c, "finite", "values are not finite", fact, bad)
    for c in ("retail_disc", "coupon_disc", "coupon_match_disc", "discount"):
        if c in fact.columns:
            bad = fact[c].to_numpy() < 0
            if bad.any():
                _fail(name, c, "non-negative", "discounts must be >= 0 (amount taken off the price)", fact, bad)
    bad = (fact["quantity"].to_numpy() > 0) & (fact["sales_value"].to_numpy() < 0)
    if bad.any():
        _fail(name, "sales_value", "sign",
              "negative sales value on a line with positive quantity (returns need quantity < 0)", fact, bad)


def check_foreign_keys(fact: pd.DataFrame, dims: dict[str, pd.DataFrame], columns=None) -> None:
    for col, ref in TABLES["fact_transactions"].foreign_keys.items():
        if columns is not None and col not in columns:
            continue
        table, key = ref.split(".")
        known, vals = dims[table][key], fact[col]
        if known.dtype == np.int64 and vals.dtype == np.int64:
            bad = ~np.isin(vals.to_numpy(), known.to_numpy())
        else:  # text ids (or a mix): compared as text
            bad = ~vals.astype(str).isin(known.astype(str)).to_numpy()
        if bad.any():
            n = int(pd.unique(vals[bad]).size)
            _fail("fact_transactions", col, "foreign-key",
                  f"{int(bad.sum())} line(s) point at {n} {col} value(s) absent from {table}", fact, bad,
                  fix=fix_for("foreign-key", "fact_transactions", col, table))


def check_minimum_size(fact: pd.DataFrame) -> None:
    """At least ``MIN_CUSTOMERS_ERROR`` customers with a purchase: below it there is nothing to evaluate."""
    buyers = pd.unique(fact.loc[fact["quantity"].to_numpy() > 0, "customer_id"])
    if len(buyers) < MIN_CUSTOMERS_ERROR:
        _fail("fact_transactions", "customer_id", "minimum-size",
              f"{len(buyers)} customer(s) with purchases; an evaluation needs at least {MIN_CUSTOMERS_ERROR}",
              fix="export the transactions of every customer")


def check_promotions(promo: pd.DataFrame) -> None:
    bad = promo["start_date"].to_numpy() >= promo["end_date"].to_numpy()
    if bad.any():
        same = bool((promo["start_date"].to_numpy() == promo["end_date"].to_numpy())[bad].any())
        fix = ('if end_date is the last day of the promotion, add `end_date = "inclusive"` under [promotions] '
               'in recbook.toml' if same else "correct the periods: end_date is the day after the last day")
        _fail("dim_promotion", "end_date", "period", "end_date must be after start_date", promo, bad, fix=fix)


def check_products(prod: pd.DataFrame) -> None:
    if "unit_price" in prod.columns:
        bad = (prod["unit_price"] < 0).fillna(False).to_numpy(bool)
        if bad.any():
            _fail("dim_product", "unit_price", "non-negative", "list prices must be >= 0", prod, bad,
                  fix="correct or blank the negative prices in the source")


def validate_star_schema(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Validate and complete all tables of a source; returns the coerced tables.

    ``dim_date`` is derived from the transactions when absent; ``dim_promotion``
    and ``customer_exposure`` are optional (empty tables when absent).
    """
    out: dict[str, pd.DataFrame] = {}
    for name in ("dim_customer", "dim_product", "fact_transactions"):
        if name not in tables:
            _fail(name, None, "present", "required table is missing from the source")
        out[name] = validate_table(tables[name], name)
    fact = complete_transactions(out["fact_transactions"])
    check_transactions(fact)
    check_foreign_keys(fact, out)
    check_minimum_size(fact)
    # select and order the contract's columns without copying the (possibly huge) fact table
    out["fact_transactions"] = pd.DataFrame({c: fact[c] for c in TABLES["fact_transactions"].column_names},
                                            copy=False)
    cust = out["dim_customer"]
    if "has_demographics" not in cust.columns:
        demo = [c for c in ("age_band", "gender", "income_band") if c in cust.columns]
        cust["has_demographics"] = cust[demo].notna().any(axis=1) if demo else False
    for col in TABLES["dim_customer"].column_names:
        if col not in cust.columns:
            cust[col] = None
    out["dim_customer"] = cust[TABLES["dim_customer"].column_names]
    prod = out["dim_product"]
    for col in TABLES["dim_product"].column_names:
        if col not in prod.columns:
            prod[col] = True if col == "in_source_catalog" else None
    if prod["description"].isna().any():
        prod["description"] = prod["description"].fillna("")
    check_products(prod)
    out["dim_product"] = prod[TABLES["dim_product"].column_names]
    for name in ("dim_promotion", "customer_exposure"):
        df = tables.get(name)
        if df is None:
            df = pd.DataFrame({c: pd.Series(dtype="object") for c in TABLES[name].required_columns})
        v = validate_table(df, name, allow_empty=True)
        for col in TABLES[name].column_names:
            if col not in v.columns:
                v[col] = pd.array([pd.NA] * len(v), dtype="Int64") if TABLES[name].column(col).dtype in ("int", "id") else None
        out[name] = v[TABLES[name].column_names]
    check_promotions(out["dim_promotion"])
    if tables.get("dim_date") is not None:
        out["dim_date"] = validate_table(tables["dim_date"], "dim_date")
    else:
        out["dim_date"] = build_dim_date(fact["date"].min(), fact["date"].max())
    return out
