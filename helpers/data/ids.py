"""The retailer's own identifiers and the dense integer codes the models work on.

Identifiers (``customer_id``, ``product_id``, ``basket_id``, ``store_id``,
``campaign_id``, ``coupon_id``, ``manufacturer_id``) may be integers or text
(any printable text; ``00123`` stays ``00123``). They are mapped to integer
codes once, when the star schema is built (:func:`encode_ids`), and the lookup
is written beside the star schema (``id_<kind>.parquet``: ``code`` and the
original id, with its source dtype). Everything a person or a storefront sees
is decoded back (:class:`IdMap`).

Which codes
-----------
* **Integer identifiers** (an integer column, or CSV text that holds canonical
  integers only: no leading zero, no sign other than ``-``) are their own codes.
  Complete Journey and the synthetic source therefore give byte-identical star
  schemas, fingerprints and results.
* **Text identifiers** get the codes ``0, 1, 2, ...`` in the order of **first
  appearance in the source rows**: the dimension table first (``dim_customer``
  for customers, ``dim_product`` for products), then ``fact_transactions``,
  ``dim_promotion``, ``customer_exposure`` (:data:`ID_COLUMNS`).

Why that order: the models index customers and products by ascending id and
break score ties by that position. A code order that depends on the labels
(sorting the text, say) would let a mere renaming move ties; the order of the
rows does not change when the labels do. So relabelling text identifiers
(``C00001`` -> any other text, shuffled or not) never changes a position, a
tie-break or a metric, and integer identifiers listed in ascending order in
their dimension table (as Complete Journey's and the synthetic source's are)
rank exactly like their text relabelling.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from helpers.data.schema import TABLES

ID_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "customer_id": (("dim_customer", "customer_id"), ("fact_transactions", "customer_id"),
                    ("customer_exposure", "customer_id")),
    "product_id": (("dim_product", "product_id"), ("fact_transactions", "product_id"),
                   ("dim_promotion", "product_id")),
    "basket_id": (("fact_transactions", "basket_id"),),
    "store_id": (("fact_transactions", "store_id"), ("dim_promotion", "store_id")),
    "campaign_id": (("dim_promotion", "campaign_id"), ("customer_exposure", "campaign_id")),
    "coupon_id": (("customer_exposure", "coupon_id"),),
    "manufacturer_id": (("dim_product", "manufacturer_id"),),
}
ID_KINDS = tuple(ID_COLUMNS)
CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]{0,18})$")
INT64_MAX = np.iinfo(np.int64).max


def id_kind(table: str, column: str) -> str | None:
    """The identifier kind of ``table.column`` (None for a non-identifier column)."""
    for kind, cols in ID_COLUMNS.items():
        if (table, column) in cols:
            return kind
    return None


def is_integer_column(s: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def canonical_integers(s: pd.Series) -> bool:
    """True when every non-null text value is a canonical int64 (``7``, ``-3``; not ``007``, ``+7``, ``7.0``)."""
    v = s.dropna().astype(str)
    if v.empty:
        return True
    ok = v.str.fullmatch(CANONICAL_INT.pattern)
    if not bool(ok.all()):
        return False
    return bool((pd.to_numeric(v, errors="coerce").abs() <= INT64_MAX).all())


def as_text(s: pd.Series) -> pd.Series:
    """Identifier values as text (object dtype, None for nulls); integers written without decimals."""
    null = s.isna()
    if is_integer_column(s):
        out = s.astype("Int64").astype(str)
    elif pd.api.types.is_float_dtype(s.dtype):
        out = s.map(lambda x: str(int(x)) if float(x).is_integer() else str(x), na_action="ignore")
    else:
        out = s.astype(str)
    return out.astype(object).where(~null, None)


def leading_zero_twins(values: pd.Series, limit: int = 5) -> list[tuple[str, str]]:
    """Pairs of distinct text ids that are the same number once leading zeros are dropped
    (``100001`` and ``0100001``): two identifiers for the source, perhaps one for the retailer."""
    v = pd.Series(pd.unique(values.dropna().astype(str)))
    digits = v[v.str.fullmatch(r"[0-9]+")]
    if digits.empty:
        return []
    stripped = digits.str.lstrip("0").replace("", "0")
    dup = stripped.duplicated(keep=False)
    pairs = []
    for _, grp in digits[dup].groupby(stripped[dup], sort=True):
        vals = sorted(grp)
        pairs.append((vals[0], vals[1]))
        if len(pairs) >= limit:
            break
    return pairs


class IdMap:
    """Codes <-> original identifiers of one kind. ``originals is None``: the codes are the ids."""

    def __init__(self, kind: str, originals: np.ndarray | None = None):
        self.kind = kind
        self.originals = None if originals is None else np.asarray(originals, dtype=object)
        self._index = None if originals is None else pd.Index(self.originals)

    @property
    def is_identity(self) -> bool:
        return self.originals is None

    @property
    def dtype(self) -> str:
        """``integer`` or ``string``: the JSON Schema type of the original ids."""
        return "integer" if self.is_identity else "string"

    @property
    def pa_type(self):
        return pa.int64() if self.is_identity else pa.string()

    def decode(self, codes) -> np.ndarray:
        """Original ids of codes (int64 array for integer ids, object array of text otherwise)."""
        if self.is_identity:
            return np.asarray(codes, dtype=np.int64)
        codes = np.asarray(codes, dtype=np.int64)
        out = np.full(codes.shape, None, dtype=object)
        ok = (codes >= 0) & (codes < len(self.originals))
        out[ok] = self.originals[codes[ok]]
        return out

    def encode(self, ids) -> np.ndarray:
        """Codes of original ids (-1 for an id the map does not know)."""
        if self.is_identity:
            return np.asarray(ids, dtype=np.int64)
        return self._index.get_indexer(pd.Index(np.asarray(ids, dtype=object).astype(str)))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"code": np.arange(len(self.originals), dtype=np.int64),
                             self.kind: pd.array(self.originals, dtype="string")})

    def digest(self) -> str:
        if self.is_identity:
            return ""
        return hashlib.sha256("\x1f".join(self.originals.astype(str)).encode()).hexdigest()[:16]


def encode_ids(tables: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], dict[str, IdMap]]:
    """Replace text identifiers by their codes (see the module docstring); integer ids are kept.

    ``tables`` are validated star-schema tables (ids int64 / Int64 or object text).
    Returns new tables (changed columns only are replaced, nothing else is copied) and one
    :class:`IdMap` per kind."""
    out = {n: t for n, t in tables.items()}
    maps: dict[str, IdMap] = {}
    for kind, cols in ID_COLUMNS.items():
        present = [(t, c) for t, c in cols if t in out and c in out[t].columns]
        if all(is_integer_column(out[t][c]) or out[t][c].isna().all() for t, c in present):
            maps[kind] = IdMap(kind)
            continue
        texts = {(t, c): as_text(out[t][c]) for t, c in present}
        originals = pd.unique(pd.concat([s.dropna() for s in texts.values()], ignore_index=True))
        index = pd.Index(originals)
        for (t, c), s in texts.items():
            codes = index.get_indexer(s.fillna("").to_numpy(dtype=object)).astype(np.int64)
            null = s.isna().to_numpy()
            nullable = TABLES[t].column(c).nullable
            col = pd.arrays.IntegerArray(np.where(null, 0, codes), null) if nullable or null.any() else codes
            if out[t] is tables.get(t):
                out[t] = out[t].copy(deep=False)
            out[t][c] = col
        maps[kind] = IdMap(kind, np.asarray(originals, dtype=object))
    return out, maps


def id_types(maps: dict[str, IdMap]) -> dict[str, str]:
    return {k: m.dtype for k, m in maps.items()}


def write_id_maps(maps: dict[str, IdMap], folder: Path) -> list[str]:
    """Write ``id_<kind>.parquet`` for every text kind; returns the file names."""
    names = []
    for kind, m in maps.items():
        if not m.is_identity:
            m.frame().to_parquet(Path(folder) / f"id_{kind}.parquet", index=False)
            names.append(f"id_{kind}.parquet")
    return names


def load_id_maps(folder: str | os.PathLike) -> dict[str, IdMap]:
    """The maps written beside a star schema (identity for kinds without a lookup file)."""
    folder = Path(folder)
    maps = {}
    for kind in ID_KINDS:
        path = folder / f"id_{kind}.parquet"
        if path.exists():
            df = pd.read_parquet(path).sort_values("code")
            maps[kind] = IdMap(kind, df[kind].astype(object).to_numpy())
        else:
            maps[kind] = IdMap(kind)
    return maps
