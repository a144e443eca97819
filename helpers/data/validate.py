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
* ``period``: promotion periods satisfy ``start_date < end_date``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from helpers.data.calendar import build_dim_date
from helpers.data.schema import TABLES, Table

MAX_ROWS_SHOWN = 5


class DataValidationError(ValueError):
    """A table breaks a rule of the star-schema contract."""

    def __init__(self, table: str, column: str | None, rule: str, detail: str, rows: pd.DataFrame | None = None):
        self.table, self.column, self.rule, self.rows = table, column, rule, rows
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        msg = f"Data validation failed in {where}: rule '{rule}' broken: {detail}."
        if rows is not None and len(rows):
            shown = rows.head(MAX_ROWS_SHOWN).to_string(max_colwidth=40)
            msg += f" First offending rows (of {len(rows)}):\n{shown}"
        super().__init__(msg)


def _fail(table, column, rule, detail, df=None, mask=None):
    rows = df.loc[mask] if df is not None and mask is not None else None
    raise DataValidationError(table, column, rule, detail, rows)


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
            if col.dtype == "int" and s.dtype == np.int64 and not col.nullable:
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
                    _fail(spec.name, col.name, "dtype", "values are not numbers", df, bad)
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
        out[col.name] = conv
        if not col.nullable:
            nulls = out[col.name].isna()
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
              f"required column(s) {missing} missing; present: {list(df.columns)}")
    if len(df) == 0 and not allow_empty:
        _fail(name, None, "non-empty", "table has no rows")
    out = _coerce(df, spec)
    if spec.key:
        dup = out.duplicated(list(spec.key), keep=False)
        if dup.any():
            n = int(out.duplicated(list(spec.key)).sum())
            _fail(name, ",".join(spec.key), "unique-key", f"{n} duplicated key value(s)", df, dup)
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


def check_foreign_keys(fact: pd.DataFrame, dims: dict[str, pd.DataFrame]) -> None:
    for col, ref in TABLES["fact_transactions"].foreign_keys.items():
        table, key = ref.split(".")
        known = dims[table][key].to_numpy()
        bad = ~np.isin(fact[col].to_numpy(), known)
        if bad.any():
            n = int(np.unique(fact[col].to_numpy()[bad]).size)
            _fail("fact_transactions", col, "foreign-key",
                  f"{int(bad.sum())} line(s) point at {n} {col} value(s) absent from {table}", fact, bad)


def check_promotions(promo: pd.DataFrame) -> None:
    bad = promo["start_date"].to_numpy() >= promo["end_date"].to_numpy()
    if bad.any():
        _fail("dim_promotion", "end_date", "period", "end_date must be after start_date", promo, bad)


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
    out["dim_product"] = prod[TABLES["dim_product"].column_names]
    for name in ("dim_promotion", "customer_exposure"):
        df = tables.get(name)
        if df is None:
            df = pd.DataFrame({c: pd.Series(dtype="object") for c in TABLES[name].required_columns})
        v = validate_table(df, name, allow_empty=True)
        for col in TABLES[name].column_names:
            if col not in v.columns:
                v[col] = pd.array([pd.NA] * len(v), dtype="Int64") if TABLES[name].column(col).dtype == "int" else None
        out[name] = v[TABLES[name].column_names]
    check_promotions(out["dim_promotion"])
    if tables.get("dim_date") is not None:
        out["dim_date"] = validate_table(tables["dim_date"], "dim_date")
    else:
        out["dim_date"] = build_dim_date(fact["date"].min(), fact["date"].max())
    return out
