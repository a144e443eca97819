"""The ``files`` source: a folder of CSV or Parquet files named after the tables.

Expected files (``.parquet``, ``.csv`` or ``.csv.gz``): ``fact_transactions``,
``dim_customer`` and ``dim_product`` (required); ``dim_promotion``,
``customer_exposure`` and ``dim_date`` (optional; ``dim_date`` is derived from
the transactions when absent). Columns follow :mod:`helpers.data.schema`; extra
columns are ignored. This is how a retailer plugs in its own data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.data.schema import TABLES
from helpers.data.validate import DataValidationError

SUFFIXES = (".parquet", ".csv", ".csv.gz")


def find_table(folder: Path, name: str) -> Path | None:
    hits = [folder / f"{name}{s}" for s in SUFFIXES if (folder / f"{name}{s}").exists()]
    if len(hits) > 1:
        raise DataValidationError(name, None, "one-file", f"several files for the table: {[h.name for h in hits]}")
    return hits[0] if hits else None


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, low_memory=False)


def load(data_dir) -> dict[str, pd.DataFrame]:
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data-dir {folder} is not a folder")
    out: dict[str, pd.DataFrame] = {}
    for name, spec in TABLES.items():
        path = find_table(folder, name)
        if path is None:
            if spec.required_in_files:
                raise DataValidationError(
                    name, None, "present", f"no {name}.parquet / {name}.csv in {folder}"
                )
            continue
        out[name] = read_table(path)
    out["_meta"] = {"removed_rows": {}, "added_rows": {}}
    return out
