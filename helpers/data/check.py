"""The data check a user runs first: ``python -m helpers.data.check --data-dir DIR`` (``make check DATA=DIR``).

Reads and validates a ``files`` folder as the star-schema build would, without
fitting anything, and reports: table sizes, the date range, each identifier's
type, every rule broken (table, column, rule, up to five rows and the fix) and
warnings that do not block. It goes on after an error where it can (each table
separately, each column of a table, each foreign key), so one run lists what
needs fixing. Exit status 1 only when there are errors.

Levels (the data dictionary's ``SANITY_RULES`` lists the business rules):

* errors: what the build would refuse (missing file or column, unreadable file,
  wrong type, unparseable date, duplicate key, orphan foreign key, empty fact
  table, invalid promotion period, negative price), a date range leaving no
  training days for the evaluation windows, fewer than
  ``MIN_CUSTOMERS_ERROR`` customers with purchases;
* warnings: products never sold, customers without purchases, columns present but
  entirely null, optional columns absent while unmapped columns exist, text ids
  equal but for leading zeros, returns with a positive value, quantities above
  ``EXTREME_QUANTITY``, fewer training days than ``min_train_days``, fewer than
  ``MIN_CUSTOMERS_WARNING`` customers with purchases.

:func:`check_folder` returns the report as data (:class:`DataReport`:
``findings()`` a DataFrame, ``markdown()``) for the book's Data model chapter.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from helpers.data.ids import ID_COLUMNS, is_integer_column, leading_zero_twins
from helpers.data.readers import find_file, read_table
from helpers.data.recbook import CONFIG_NAME, FolderConfig, load_config
from helpers.data.schema import EXTREME_QUANTITY, MIN_CUSTOMERS_WARNING, TABLES
from helpers.data.sources.files import unify_ids
from helpers.data.star import load_source
from helpers.data.validate import (
    MAX_ROWS_SHOWN,
    DataValidationError,
    check_foreign_keys,
    check_minimum_size,
    check_products,
    check_promotions,
    check_transactions,
    complete_transactions,
    validate_table,
)

TEST_DAYS = VALID_DAYS = 28  # the notebooks' default windows (test_days, valid_days)
MIN_TRAIN_DAYS = 28


@dataclass
class Finding:
    level: str  # error | warning
    table: str | None
    column: str | None
    rule: str
    message: str
    fix: str | None = None
    rows: pd.DataFrame | None = None


@dataclass
class DataReport:
    data_dir: Path
    sizes: pd.DataFrame
    items: list[Finding] = field(default_factory=list)
    date_range: tuple | None = None
    id_types: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.items if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.items if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def findings(self) -> pd.DataFrame:
        """One row per finding: level, table, column, rule, message, fix, rows (first offending rows as text)."""
        return pd.DataFrame([{"level": f.level, "table": f.table, "column": f.column, "rule": f.rule,
                              "message": f.message, "fix": f.fix,
                              "rows": None if f.rows is None or f.rows.empty else
                              f.rows.head(MAX_ROWS_SHOWN).to_string(max_colwidth=30)} for f in self.items],
                            columns=["level", "table", "column", "rule", "message", "fix", "rows"])

    def summary_lines(self) -> list[str]:
        lines = []
        if self.date_range:
            first, last = self.date_range
            lines.append(f"Date range: {first.date()} to {last.date()} ({(last - first).days + 1} days)")
        if self.id_types:
            lines.append("Identifiers: " + ", ".join(f"{k} {v}" for k, v in self.id_types.items()))
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return lines

    def text(self) -> str:
        out = [f"Data check of {self.data_dir}", "", self.sizes.to_string(index=False), "", *self.summary_lines()]
        for f in self.items:
            where = ".".join(x for x in (f.table, f.column) if x)
            out += ["", f"{f.level.upper()} {where} [{f.rule}]: {f.message}"]
            if f.fix:
                out.append(f"  fix: {f.fix}")
            if f.rows is not None and not f.rows.empty:
                out += ["  " + line for line in f.rows.head(MAX_ROWS_SHOWN).to_string(max_colwidth=30).splitlines()]
        out += ["", "OK: the folder can be built" if self.ok else "FAILED: fix the errors above"]
        return "\n".join(out)

    def markdown(self) -> str:
        parts = [self.sizes.to_markdown(index=False), "", *[f"* {x}" for x in self.summary_lines()], ""]
        f = self.findings().drop(columns=["rows"])
        parts.append(f.to_markdown(index=False) if len(f) else "No rule broken, no warning.")
        return "\n".join(parts)


class _Checker:
    def __init__(self, folder: Path, test_days: int, valid_days: int, min_train_days: int):
        self.folder, self.items = folder, []
        self.windows = (test_days, valid_days, min_train_days)

    def add(self, level, table, column, rule, message, fix=None, rows=None):
        self.items.append(Finding(level, table, column, rule, message, fix, rows))

    def error(self, exc: DataValidationError) -> None:
        self.add("error", exc.table, exc.column, exc.rule, exc.detail, exc.fix, exc.rows)

    def attempt(self, fn, *args) -> bool:
        try:
            fn(*args)
            return True
        except DataValidationError as exc:
            self.error(exc)
            return False

    def validate(self, df: pd.DataFrame, name: str) -> pd.DataFrame | None:
        """``validate_table``, going on without a column whose values break a rule (to report the others)."""
        df = df.copy(deep=False)
        optional = not TABLES[name].required_in_files
        usable = True
        for _ in range(len(df.columns) + 1):
            try:
                out = validate_table(df, name, allow_empty=optional)
                return out if usable else None
            except DataValidationError as exc:
                self.error(exc)
                if exc.rule in ("dtype", "not-null") and exc.column in df.columns:
                    # the other columns are checked on; without a required column the rows are not usable
                    usable &= exc.column not in TABLES[name].required_columns
                    df = df.drop(columns=[exc.column]).assign(
                        **({exc.column: 0.0} if exc.column in TABLES[name].required_columns else {}))
                    continue
                return None
        return None


def check_folder(data_dir, test_days: int = TEST_DAYS, valid_days: int = VALID_DAYS,
                 min_train_days: int = MIN_TRAIN_DAYS) -> DataReport:
    """Check a folder (see the module docstring); never raises on bad data."""
    folder = Path(data_dir)
    ck = _Checker(folder, test_days, valid_days, min_train_days)
    sizes = pd.DataFrame(columns=["table", "file", "rows", "columns", "extra columns"])
    if not folder.is_dir():
        ck.add("error", None, None, "folder", f"{folder} is not a folder", "pass --data-dir the folder of the files")
        return DataReport(folder, sizes, ck.items)
    try:
        cfg = load_config(folder)
    except DataValidationError as exc:
        ck.error(exc)
        return DataReport(folder, sizes, ck.items)
    raw, extras, rows = _read(ck, folder, cfg)
    unify_ids(raw)
    return _check_tables(ck, folder, raw, extras, cfg, pd.DataFrame(rows, columns=sizes.columns))


def check_source(dataset: str, data_dir=None, test_days: int = TEST_DAYS, valid_days: int = VALID_DAYS,
                 tables: dict | None = None, **params) -> DataReport:
    """The report of any source: a ``files`` folder (:func:`check_folder`), or the tables of the
    ``completejourney`` / ``synthetic`` sources (``params``: the generator's knobs), or ``tables``
    already loaded (e.g. the star schema notebook 00 has just built: no second read of the source)."""
    if dataset == "files" and tables is None:
        return check_folder(data_dir, test_days, valid_days)
    raw = tables if tables is not None else load_source(dataset, data_dir, **params)
    raw = {n: t for n, t in raw.items() if not n.startswith("_") and n in TABLES}
    sizes = pd.DataFrame([{"table": n, "file": f"({dataset})", "rows": len(t), "columns": t.shape[1],
                           "extra columns": ""} for n, t in raw.items()])
    ck = _Checker(Path(dataset), test_days, valid_days, MIN_TRAIN_DAYS)
    return _check_tables(ck, Path(dataset), raw, {}, FolderConfig(), sizes)


def _check_tables(ck: _Checker, folder: Path, raw: dict, extras: dict, cfg: FolderConfig,
                  sizes: pd.DataFrame) -> DataReport:
    valid = {n: v for n, df in raw.items() if (v := ck.validate(df, n)) is not None}
    report = DataReport(folder, sizes, ck.items)
    report.id_types = {k: _id_type(raw, cols) for k, cols in ID_COLUMNS.items() if _id_type(raw, cols)}
    _columns(ck, raw, extras, cfg)
    if all(n in valid for n in ("fact_transactions", "dim_customer", "dim_product")):
        report.date_range = _relations(ck, valid)
    for kind, cols in ID_COLUMNS.items():
        vals = [raw[t][c] for t, c in cols if t in raw and c in raw[t] and not is_integer_column(raw[t][c])]
        for a, b in leading_zero_twins(pd.concat(vals)) if vals else []:
            ck.add("warning", None, kind, "leading-zero-twins", f"{a!r} and {b!r} are two different {kind}s",
                   "if they are the same, write them alike in the source")
    return report


def _read(ck: _Checker, folder: Path, cfg: FolderConfig):
    raw, extras, rows = {}, {}, []
    for name, spec in TABLES.items():
        stem = cfg.stem(name)
        try:
            path = find_file(folder, stem) if stem else None
        except DataValidationError as exc:
            ck.error(exc)
            continue
        if path is None:
            if spec.required_in_files:
                ck.add("error", name, None, "present", f"no {stem}.parquet / {stem}.csv / {stem}.csv.gz in {folder}",
                       f'add the file, or name it under [tables] in {CONFIG_NAME}: `{name} = "<file stem>"`')
            continue
        try:
            raw[name], aside = read_table(path, name, cfg)
        except DataValidationError as exc:
            ck.error(exc)
            continue
        if aside is not None:
            extras[name] = aside
        extra = [c for c in (aside.columns if aside is not None else []) if c not in (*spec.key, "line")]
        rows.append({"table": name, "file": path.name, "rows": len(raw[name]), "columns": raw[name].shape[1],
                     "extra columns": ", ".join(extra)})
    return raw, extras, rows


def _id_type(raw: dict, cols) -> str | None:
    present = [raw[t][c] for t, c in cols if t in raw and c in raw[t]]
    if not present:
        return None
    return "integer" if all(is_integer_column(s) or s.isna().all() for s in present) else "text"


def _columns(ck: _Checker, raw: dict, extras: dict, cfg: FolderConfig) -> None:
    """Columns present but empty; optional columns absent while unmapped columns exist."""
    for name, df in raw.items():
        aside = [c for c in (extras[name].columns if name in extras else []) if c not in (*TABLES[name].key, "line")]
        for c in df.columns:
            if len(df) and df[c].isna().all():
                src = cfg.source_name(name, c)
                ck.add("warning", name, c, "mapped-but-empty", f"every value is null (source column {src!r})",
                       f"check the mapping of {c} under [columns.{name}] in {CONFIG_NAME}")
        absent = [c.name for c in TABLES[name].columns if not c.required and c.name not in df.columns
                  and c.name not in ("date", "discount", "is_return", "in_source_catalog", "has_demographics")]
        if absent and aside:
            ck.add("warning", name, absent[0], "unmapped", f"optional column(s) {absent} absent while the file has "
                   f"unmapped column(s) {aside}", f'map one under [columns.{name}], e.g. `{aside[0]} = "{absent[0]}"`')


def _relations(ck: _Checker, valid: dict):
    """Rules across tables, business sanity, coverage and the date range against the windows."""
    fact = complete_transactions(valid["fact_transactions"].copy(deep=False))
    ck.attempt(check_transactions, fact)
    for col in TABLES["fact_transactions"].foreign_keys:
        ck.attempt(check_foreign_keys, fact, valid, [col])
    ck.attempt(check_products, valid["dim_product"])
    if "dim_promotion" in valid:
        ck.attempt(check_promotions, valid["dim_promotion"])
    q, v = fact["quantity"], fact["sales_value"]
    for mask, col, rule, msg in (
            ((q < 0) & (v > 0), "sales_value", "return-value", "returns (quantity < 0) with a positive sales value"),
            (q.abs() > EXTREME_QUANTITY, "quantity", "extreme-quantity", f"quantities above {EXTREME_QUANTITY:,}")):
        if mask.any():
            ck.add("warning", "fact_transactions", col, rule, f"{int(mask.sum())} line(s) with {msg}",
                   "check the source (fuel or weighed goods may be legitimate)", fact.loc[mask])
    buyers = fact.loc[q > 0, "customer_id"]
    n_buyers = int(buyers.nunique())
    cust, prod = valid["dim_customer"]["customer_id"], valid["dim_product"]["product_id"]
    unsold = ~_isin(prod, fact.loc[q > 0, "product_id"])
    idle = ~_isin(cust, buyers)
    if unsold.any():
        ck.add("warning", "dim_product", "product_id", "never-sold", f"{int(unsold.sum())} of {len(prod)} products "
               "never sold (recommended by their text only)", None, valid["dim_product"].loc[unsold.to_numpy()])
    if idle.any():
        ck.add("warning", "dim_customer", "customer_id", "no-purchase", f"{int(idle.sum())} of {len(cust)} customers "
               "without purchases (they get their segment's popular list)", None,
               valid["dim_customer"].loc[idle.to_numpy()])
    if ck.attempt(check_minimum_size, fact) and n_buyers < MIN_CUSTOMERS_WARNING:
        ck.add("warning", "fact_transactions", "customer_id", "minimum-size", f"{n_buyers} customers with purchases: "
               f"below {MIN_CUSTOMERS_WARNING} the metrics' intervals are too wide to compare models")
    first, last = fact["timestamp"].min().normalize(), fact["timestamp"].max().normalize()
    days = (last - first).days + 1
    test, valid_days, train = ck.windows
    if days <= test + valid_days:
        ck.add("error", "fact_transactions", "timestamp", "date-range", f"{days} days of transactions leave no "
               f"training days before the validation ({valid_days} days) and test ({test} days) windows",
               f"at least {test + valid_days + train} days are needed, or smaller windows "
               f"(--param test_days=... --param valid_days=...)")
    elif days < test + valid_days + train:
        ck.add("warning", "fact_transactions", "timestamp", "date-range", f"{days} days of transactions: "
               f"{days - test - valid_days} training days before the validation and test windows",
               f"the minimum for a meaningful evaluation is {test + valid_days + train} days")
    return first, last


def _isin(values: pd.Series, known: pd.Series) -> pd.Series:
    if is_integer_column(values) and is_integer_column(known):
        return values.isin(pd.unique(known))
    return values.astype(str).isin(pd.unique(known.astype(str)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.pipeline check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="the folder of the retailer's files")
    ap.add_argument("--test-days", type=int, default=TEST_DAYS)
    ap.add_argument("--valid-days", type=int, default=VALID_DAYS)
    args = ap.parse_args(argv)
    report = check_folder(args.data_dir, args.test_days, args.valid_days)
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
