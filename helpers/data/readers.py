"""Reading a retailer's files as they come, into frames named after the star schema.

CSV (``,`` ``;`` tab or ``|``, sniffed from the header unless ``[csv] delimiter``
says; a UTF-8 byte-order mark, Windows line endings, quoted fields, ``.csv.gz``)
and Parquet, read by pandas / pyarrow with a declared schema: identifier and
text columns are read as text (so ``00123`` keeps its zeros), numbers with the
configured decimal separator, dates with the configured format (ISO 8601 by
default). Every reader failure becomes a :class:`DataValidationError` naming the
file and the fix. Columns the contract does not know are returned aside
(``extras``), with the row's key, instead of being dropped silently.
"""

from __future__ import annotations

import csv
import gzip
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.data.ids import as_text, canonical_integers, id_kind
from helpers.data.schema import TABLES
from helpers.data.validate import DataValidationError

if TYPE_CHECKING:  # the config module imports this one
    from helpers.data.recbook import FolderConfig

SUFFIXES = (".parquet", ".csv", ".csv.gz")
DELIMITERS = ",;\t|"
SNIFF_BYTES = 65536
DEFAULT_DATE_FORMAT = "ISO8601"


def find_file(folder: Path, stem: str) -> Path | None:
    hits = [folder / f"{stem}{s}" for s in SUFFIXES if (folder / f"{stem}{s}").exists()]
    if len(hits) > 1:
        raise DataValidationError(stem, None, "one-file", f"several files for the table: {[h.name for h in hits]}",
                                  fix="keep one of them")
    return hits[0] if hits else None


def _open_text(path: Path, encoding: str):
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding=enc, newline="")
    return open(path, encoding=enc, newline="")


def _sample(path: Path, cfg: FolderConfig) -> str:
    try:
        with _open_text(path, cfg.encoding) as f:
            return f.read(SNIFF_BYTES)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataValidationError(path.stem.split(".")[0], None, "readable", f"{path.name} cannot be read as "
                                  f"{cfg.encoding} text: {exc}", fix='set `encoding` under [csv] in recbook.toml '
                                  '(e.g. "cp1252") or re-export the file') from None


def delimiter(path: Path, cfg: FolderConfig) -> str:
    """The configured delimiter, else the one the header line uses (csv.Sniffer), else ``,``."""
    if cfg.delimiter:
        return cfg.delimiter
    head = _sample(path, cfg).splitlines()[:1]
    if not head:
        return ","
    try:
        return csv.Sniffer().sniff(head[0], delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def read_header(path: Path, cfg: FolderConfig) -> list[str]:
    if path.suffix == ".parquet":
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as exc:
            raise _corrupt(path, exc) from None
    sep = delimiter(path, cfg)
    lines = _sample(path, cfg).splitlines()
    return next(csv.reader(lines[:1], delimiter=sep), []) if lines else []


def _corrupt(path: Path, exc: Exception) -> DataValidationError:
    return DataValidationError(path.name.split(".")[0], None, "readable",
                               f"{path.name} is not a readable Parquet file ({type(exc).__name__}: {exc})",
                               fix="re-export the file: it looks truncated or corrupt")


def read_file(path: Path, table: str, cfg: FolderConfig) -> pd.DataFrame:
    """The file's rows with its own column names (text for identifier and text columns)."""
    if path.suffix == ".parquet":
        try:
            return pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise _corrupt(path, exc) from None
    header = read_header(path, cfg)
    sep = delimiter(path, cfg)
    if len(header) == 1 and any(d in header[0] for d in DELIMITERS if d != sep):
        other = next(d for d in DELIMITERS if d != sep and d in header[0])
        raise DataValidationError(table, None, "delimiter", f"{path.name} has a single column {header[0]!r}",
                                  fix=f"add `delimiter = {other!r}` under [csv] in recbook.toml")
    spec, renames = TABLES[table], cfg.renames(table)
    text = {c: "string" for c in header
            if renames.get(c, c) in spec.column_names and spec.column(renames.get(c, c)).dtype in ("id", "string")}
    try:
        return pd.read_csv(path, sep=sep, decimal=cfg.decimal, dtype=text, low_memory=False,
                           encoding="utf-8-sig" if cfg.encoding.lower() in ("utf-8", "utf8") else cfg.encoding)
    except pd.errors.EmptyDataError:
        raise DataValidationError(table, None, "non-empty", f"{path.name} is empty (not even a header line)",
                                  fix="export the table with its header and rows") from None
    except (EOFError, OSError) as exc:  # a truncated or corrupt .gz, an unreadable file
        raise DataValidationError(table, None, "readable", f"{path.name} cannot be read to its end "
                                  f"({type(exc).__name__}: {exc})", fix="re-export or re-copy the file (a "
                                  "compressed file cut short cannot be read)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataValidationError(table, None, "readable", f"{path.name} cannot be parsed with delimiter {sep!r}: "
                                  f"{str(exc).strip()}", fix="check `delimiter` under [csv] in recbook.toml and "
                                  "that fields holding the delimiter are quoted") from None


def rename(df: pd.DataFrame, table: str, cfg: FolderConfig) -> pd.DataFrame:
    renames = cfg.renames(table)
    missing = [c for c in renames if c not in df.columns]
    if missing:
        raise DataValidationError(table, missing[0], "mapped-column", f"recbook.toml maps {missing} but the file "
                                  f"has only {list(df.columns)}", fix=f"correct [columns.{table}] in recbook.toml")
    out = df.rename(columns=renames)
    dup = out.columns[out.columns.duplicated()].tolist()
    if dup:
        raise DataValidationError(table, dup[0], "mapped-column", f"two source columns become {dup[0]!r}",
                                  fix=f"map only one column to {dup[0]!r} under [columns.{table}]")
    return out


def split_extras(df: pd.DataFrame, table: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The contract's columns, and the others with the row's key (or line number) beside them."""
    spec = TABLES[table]
    extra = [c for c in df.columns if c not in spec.column_names]
    if not extra:
        return df, None
    key = [k for k in spec.key if k in df.columns]
    aside = df[key + extra].copy() if key else df[extra].assign(line=np.arange(len(df), dtype=np.int64))[
        ["line", *extra]]
    return df.drop(columns=extra), aside


def identifiers(df: pd.DataFrame, table: str, cfg: FolderConfig, from_csv: bool) -> pd.DataFrame:
    """Identifier columns as integers or as text, per ``[ids]`` (``auto``: text unless the CSV holds
    canonical integers only, or the Parquet column is an integer column)."""
    for col in df.columns:
        kind = id_kind(table, col)
        if kind is None:
            continue
        mode, s = cfg.id_mode(kind), df[col]
        if mode == "auto":
            numeric = canonical_integers(s) if from_csv else pd.api.types.is_numeric_dtype(s.dtype)
            mode = "integer" if numeric else "text"
        df[col] = _as_integers(s, table, col) if mode == "integer" else as_text(s)
    return df


def _as_integers(s: pd.Series, table: str, col: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s.dtype):  # a typed column (Parquet): the validator checks whole numbers
        return s
    txt = s.astype("string").str.strip()
    num = pd.to_numeric(txt, errors="coerce")
    bad = num.isna() & txt.notna()
    if bad.any():
        raise DataValidationError(table, col, "dtype", "[ids] says integer but values are not integers",
                                  s[bad].to_frame(), fix=f'set `{id_kind(table, col)} = "text"` under [ids]')
    canon = num.astype("Int64").astype("string")
    clash = txt.notna() & (canon != txt)
    if clash.any():
        pairs = pd.DataFrame({"as_written": txt[clash], "as_integer": canon[clash]}).drop_duplicates()
        twins = pairs[pairs["as_integer"].isin(txt[~clash])]
        detail = ("values with leading zeros would collide with other ids once read as integers: "
                  + ", ".join(f"{a} vs {b}" for a, b in twins.head(5).itertuples(index=False, name=None))
                  if len(twins) else "values with leading zeros would lose them as integers")
        raise DataValidationError(table, col, "leading-zeros", detail, pairs,
                                  fix=f'set `{id_kind(table, col)} = "text"` under [ids] in recbook.toml')
    return num.astype("Int64") if num.isna().any() else num.astype("int64")


def parse_dates(df: pd.DataFrame, table: str, cfg: FolderConfig) -> pd.DataFrame:
    """Date and timestamp columns as naive local datetimes (see the timezone policy of recbook)."""
    spec = TABLES[table]
    for col in spec.columns:
        if col.dtype not in ("date", "datetime") or col.name not in df.columns:
            continue
        s = df[col.name]
        fmt = cfg.date_format_of(table, col.name) or DEFAULT_DATE_FORMAT
        if not (pd.api.types.is_datetime64_any_dtype(s.dtype)):
            s = _parse_text(s, fmt, table, col.name, cfg)
        if getattr(s.dt, "tz", None) is not None:
            s = (s.dt.tz_convert(cfg.timezone) if cfg.timezone else s).dt.tz_localize(None)
        df[col.name] = s
    return df


def _parse_text(s: pd.Series, fmt: str, table: str, col: str, cfg: FolderConfig) -> pd.Series:
    txt = s.astype("string").str.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = pd.to_datetime(txt, format=fmt, errors="coerce")
        except ValueError as exc:  # mixed UTC offsets
            if "utc=True" not in str(exc) and "Mixed timezones" not in str(exc):
                raise
            out = pd.Series(np.asarray(txt, dtype=object), index=s.index)
        if out.dtype == object:  # values with different UTC offsets
            if not cfg.timezone:
                raise DataValidationError(table, col, "timezone", "timestamps carry different UTC offsets",
                                          s.to_frame().head(5), fix='add `timezone = "<Area/City>"` under [dates] '
                                          'in recbook.toml: they are converted to that local time')
            out = pd.to_datetime(txt, format=fmt, errors="coerce", utc=True).dt.tz_convert(cfg.timezone)
    bad = out.isna() & txt.notna() & (txt != "")
    if bad.any():
        key = "format" if TABLES[table].column(col).dtype == "date" else "timestamp_format"
        raise DataValidationError(table, col, "dtype", f"values are not dates in the format {fmt!r}",
                                  s[bad].to_frame(), fix=f'set `{key} = "..."` under [dates] in recbook.toml '
                                  f'(or `"{table}.{col}" = "..."` under [dates.columns])')
    return out


def promotions(df: pd.DataFrame, cfg: FolderConfig) -> pd.DataFrame:
    """Promotion types mapped per ``[promotions.types]`` (others kept); inclusive end dates made exclusive."""
    if "promo_type" in df.columns and cfg.promo_types:
        src = df["promo_type"]
        mapped = src.map(lambda v: cfg.promo_types.get(v, v), na_action="ignore")
        if "detail" not in df.columns:
            df["detail"] = None
        was = mapped.ne(src) & src.notna()
        df["detail"] = df["detail"].astype(object).where(~(was & df["detail"].isna()), src)
        df["promo_type"] = mapped
    if cfg.end_date == "inclusive" and "end_date" in df.columns:
        df["end_date"] = df["end_date"] + pd.Timedelta(days=1)
    return df


def read_table(path: Path, table: str, cfg: FolderConfig) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """One table read, renamed, typed and split from its extra columns."""
    df = rename(read_file(path, table, cfg), table, cfg)
    df, extras = split_extras(df, table)
    df = identifiers(df, table, cfg, from_csv=path.suffix != ".parquet")
    df = parse_dates(df, table, cfg)
    if table == "dim_promotion":
        df = promotions(df, cfg)
    return df, extras
