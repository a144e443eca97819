"""Build the validated star schema from a source and load it back.

``build_star_schema(dataset, ...)`` reads one of the three sources
(``completejourney``, ``synthetic``, ``files``), validates it
(:mod:`helpers.data.validate`) and writes the six tables as Parquet. Writes are
atomic: everything goes to a temporary sibling folder which replaces the
output folder's tables only once all of them are written, so a failed run never
destroys an earlier good build.

Identifiers are encoded once here (:func:`helpers.data.ids.encode_ids`): the tables
hold integer codes, ``id_<kind>.parquet`` beside them the original text ids, and
``star_schema.json`` records each kind's type (``ids``). Columns of a ``files``
source that the contract does not know are written aside as ``extra_<table>.parquet``
(with the table's original key, or the line number for the fact table).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from helpers.config import DATASETS, processed_dir
from helpers.data.ids import ID_KINDS, IdMap, encode_ids, id_types, load_id_maps, write_id_maps
from helpers.data.schema import TABLES
from helpers.data.sources import completejourney, files, synthetic
from helpers.data.validate import validate_star_schema

STAR_TABLES = ("fact_transactions", "dim_customer", "dim_product", "dim_date", "dim_promotion", "customer_exposure")


def load_source(dataset: str, data_dir: str | os.PathLike | None = None, **params) -> dict[str, pd.DataFrame]:
    """Raw tables of a source, in the documented schema but not yet validated."""
    if dataset == "completejourney":
        return completejourney.load(**params)
    if dataset == "synthetic":
        return synthetic.generate(**params)
    if dataset == "files":
        if data_dir is None:
            raise ValueError("the 'files' dataset needs --data-dir pointing at a folder of CSV/Parquet tables")
        return files.load(data_dir)
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")


def fingerprint(tables: dict[str, pd.DataFrame], id_maps: dict[str, IdMap] | None = None) -> str:
    """A short content hash of the star schema (row counts and hashed values) and of its
    text-id lookups (none for integer ids: the hash of those builds is unchanged)."""
    h = hashlib.sha256()
    for name in STAR_TABLES:
        df = tables[name]
        h.update(f"{name}:{len(df)}:{','.join(df.columns)}".encode())
        if len(df):
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    for kind, m in sorted((id_maps or {}).items()):
        if not m.is_identity:
            h.update(f"ids:{kind}:{m.digest()}".encode())
    return h.hexdigest()[:16]


def write_parquet(df: pd.DataFrame, path, row_group_size: int = 1_000_000) -> None:
    """Write ``df`` to Parquet one row group at a time.

    ``DataFrame.to_parquet`` converts the whole frame to Arrow first, a second
    full copy of the table in memory; converting slice by slice keeps the extra
    memory at one row group, whatever the size of the table.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(df) <= row_group_size:
        df.to_parquet(path, index=False, row_group_size=row_group_size)
        return
    schema = pa.Schema.from_pandas(df, preserve_index=False)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(df), row_group_size):
            part = df.iloc[start:start + row_group_size]
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))


def write_tables(tables: dict[str, pd.DataFrame], output_dir: str | os.PathLike | None = None,
                 meta: dict | Callable[[], dict] | None = None, id_maps: dict[str, IdMap] | None = None,
                 extras: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write the tables atomically: temp folder first, then rename into place.

    ``meta`` (``star_schema.json``) may be a function, called once the tables are written
    (e.g. waiting for a fingerprint computed meanwhile). The id lookups and extra columns
    of an earlier build that this one does not have are removed."""
    out = processed_dir(output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".star-", dir=out.parent))
    try:
        for name in STAR_TABLES:
            write_parquet(tables[name], tmp / f"{name}.parquet")
        write_id_maps(id_maps or {}, tmp)
        for name, df in (extras or {}).items():
            write_parquet(df, tmp / f"extra_{name}.parquet")
        meta = meta() if callable(meta) else meta
        (tmp / "star_schema.json").write_text(json.dumps(meta or {}, indent=2, default=str))
        written = {f.name for f in tmp.iterdir()}
        for stale in [*out.glob("id_*.parquet"), *out.glob("extra_*.parquet")]:
            if stale.name not in written:
                stale.unlink()
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_star_schema(dataset: str = "completejourney", data_dir=None, output_dir=None, **params) -> dict:
    """Load, validate and write a source; returns a summary (row counts, fingerprint)."""
    raw = load_source(dataset, data_dir, **params)
    tables, id_maps = encode_ids(validate_star_schema(raw))
    meta = {
        "dataset": dataset,
        "params": params,
        "data_dir": str(data_dir) if data_dir else None,
        "rows": {n: int(len(tables[n])) for n in STAR_TABLES},
        "fingerprint": None,
    }
    if any(not m.is_identity for m in id_maps.values()):
        meta["ids"] = id_types(id_maps)
    if raw.get("_meta", {}).get("config"):
        meta["config"] = raw["_meta"]["config"]
    if "removed_rows" in raw.get("_meta", {}):
        meta["removed_rows"] = raw["_meta"]["removed_rows"]
    meta["added_rows"] = raw.get("_meta", {}).get("added_rows", {})

    with ThreadPoolExecutor(1) as ex:  # the fingerprint is hashed while the tables are written
        hashed = ex.submit(fingerprint, tables, id_maps)

        def finished() -> dict:
            meta["fingerprint"] = hashed.result()
            return meta

        write_tables(tables, output_dir, finished, id_maps, raw.get("_extras"))
    return meta


def load_tables(output_dir=None, names=STAR_TABLES, columns: dict | None = None) -> dict[str, pd.DataFrame]:
    """Read the star-schema tables written by :func:`build_star_schema`."""
    d = processed_dir(output_dir)
    out = {}
    for name in names:
        path = d / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run the data notebook (00_data_model) first")
        out[name] = read_parquet(path, columns=(columns or {}).get(name))
    return out


def read_parquet(path, columns=None) -> pd.DataFrame:
    """``pd.read_parquet``, then Arrow's allocator gives the decoding buffers back to the system
    (it keeps freed memory for reuse otherwise: 0.4 GiB after reading 10M lines, which every
    later step of a large window would stack on)."""
    frame = pd.read_parquet(path, columns=columns)
    pa.default_memory_pool().release_unused()
    return frame


def load_meta(output_dir=None) -> dict:
    return json.loads((processed_dir(output_dir) / "star_schema.json").read_text())


def load_ids(output_dir=None) -> dict[str, IdMap]:
    """The id lookups of a star schema (:class:`IdMap` per kind; identity for integer ids)."""
    return load_id_maps(processed_dir(output_dir))


def decode_ids(df: pd.DataFrame, id_maps: dict[str, IdMap], columns: dict[str, str] | None = None) -> pd.DataFrame:
    """A copy of ``df`` with its id columns (``columns``: column -> kind, default the id kinds present) in the
    source's own identifiers, for display (tables and examples of the book)."""
    columns = columns or {c: c for c in df.columns if c in ID_KINDS}
    out = df.copy(deep=False)
    for col, kind in columns.items():
        m = id_maps.get(kind)
        if m is not None and not m.is_identity and col in out:
            out[col] = m.decode(out[col].fillna(-1).to_numpy(np.int64))
    return out


def row_counts(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.DataFrame(
        {"table": list(tables), "rows": [len(t) for t in tables.values()],
         "columns": [t.shape[1] for t in tables.values()],
         "description": [TABLES[n].description for n in tables]}
    )


SYNTHETIC_KNOBS = ("n_customers", "n_products", "n_days", "seed", "lines_per_customer")


def source_params(dataset: str, **knobs) -> dict:
    """The notebook knobs that a source takes (the synthetic generator's sizes and seed)."""
    if dataset == "synthetic":
        return {k: v for k, v in knobs.items() if k in SYNTHETIC_KNOBS and v is not None}
    return {}


def key_checks(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The integrity checks of the star schema, recomputed on the written tables."""
    fact, cust, prod = tables["fact_transactions"], tables["dim_customer"], tables["dim_product"]
    dates = tables["dim_date"]["date"]
    checks = [
        ("dim_customer.customer_id is unique", cust["customer_id"].is_unique),
        ("dim_product.product_id is unique", prod["product_id"].is_unique),
        ("dim_date.date is unique and gap-free", dates.is_unique and len(dates) == (dates.max() - dates.min()).days + 1),
        ("every transaction's customer is in dim_customer", bool(fact["customer_id"].isin(cust["customer_id"]).all())),
        ("every transaction's product is in dim_product", bool(fact["product_id"].isin(prod["product_id"]).all())),
        ("every transaction date is in dim_date", bool(fact["date"].isin(dates).all())),
        ("no null timestamp", bool(fact["timestamp"].notna().all())),
    ]
    return pd.DataFrame(checks, columns=["check", "passed"])
