"""The ``files`` source: a folder of a retailer's CSV or Parquet files.

Expected tables (``.parquet``, ``.csv`` or ``.csv.gz``, named after the table or
as ``[tables]`` of ``recbook.toml`` says): ``fact_transactions``,
``dim_customer`` and ``dim_product`` (required); ``dim_promotion``,
``customer_exposure`` and ``dim_date`` (optional; ``dim_date`` is derived from
the transactions when absent). Column names, date formats, the promotion
end-date convention and the rest follow :mod:`helpers.data.recbook` (defaults:
the names of :mod:`helpers.data.schema`); reading is :mod:`helpers.data.readers`.
An identifier kind that is text in one table is text in all of them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.data.ids import ID_COLUMNS, as_text, is_integer_column
from helpers.data.readers import find_file, read_table
from helpers.data.recbook import CONFIG_NAME, FolderConfig, load_config
from helpers.data.schema import TABLES
from helpers.data.validate import DataValidationError


def table_paths(folder: Path, cfg: FolderConfig) -> dict[str, Path | None]:
    """The file of every table (None: absent); a required table without a file is an error."""
    out = {}
    for name, spec in TABLES.items():
        stem = cfg.stem(name)
        path = find_file(folder, stem) if stem else None
        if path is None and spec.required_in_files:
            hint = (f'name its file under [tables] in {CONFIG_NAME}, e.g. `{name} = "sales"`' if stem == name
                    else f"the [tables] entry of {CONFIG_NAME} names {stem!r}: correct it")
            raise DataValidationError(name, None, "present", f"no {stem}.parquet / {stem}.csv / {stem}.csv.gz "
                                      f"in {folder}", fix=f"add the file, or {hint}")
        out[name] = path
    return out


def unify_ids(tables: dict[str, pd.DataFrame]) -> None:
    """Make every column of an identifier kind text when one of them is text (in place)."""
    for cols in ID_COLUMNS.values():
        present = [(t, c) for t, c in cols if t in tables and c in tables[t].columns]
        texts = [not (is_integer_column(tables[t][c]) or tables[t][c].isna().all()) for t, c in present]
        if any(texts) and not all(texts):
            for t, c in present:
                tables[t][c] = as_text(tables[t][c])


def load(data_dir, config: FolderConfig | None = None) -> dict:
    """The folder's tables in the star schema's names, not yet validated, plus ``_extras`` and ``_meta``."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data-dir {folder} is not a folder")
    cfg = config or load_config(folder)
    out: dict = {}
    extras: dict[str, pd.DataFrame] = {}
    for name, path in table_paths(folder, cfg).items():
        if path is None:
            continue
        out[name], aside = read_table(path, name, cfg)
        if aside is not None:
            extras[name] = aside
    unify_ids(out)
    out["_extras"] = extras
    out["_meta"] = {"removed_rows": {}, "added_rows": {}, "config": cfg.summary(),
                    "files": {n: p.name for n, p in table_paths(folder, cfg).items() if p is not None}}
    return out
