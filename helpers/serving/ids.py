"""Identifiers as the export writes them: integers or text, matched by value, never by type.

An :class:`IdIndex` holds the known ids of one kind (customers, products) in the dtype of
the export's files: ``int64`` for integer ids (Complete Journey), text otherwise (``C00042``,
``HBZ-4720-BL``, ``00123`` with its zeros). A request id, a path segment (always text)
or a JSON value (text or number), is matched against that set:

* integer index: text must be a decimal integer within int64 (``"42"``, ``"-7"``); anything
  else (``"abc"``, ``"1e3"``, ``str(2**63)``) is simply unknown. JSON numbers must be
  integers within int64;
* text index: the request id's text (a JSON number ``42`` is the text ``"42"``).

Unknown ids map to position ``-1``; they are never an error of the server.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
FEW_IDS = 64  # IdIndex.positions looks up at most this many ids one by one
_DECIMAL = re.compile(r"-?[0-9]{1,64}")  # leading zeros allowed; the range is checked after


def as_id_array(values) -> np.ndarray:
    """Ids read from a file as an ``int64`` array (integer dtypes) or an object array of ``str``."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values.to_numpy(zero_copy_only=False)
    elif isinstance(values, (list, tuple)):  # not through a fixed-width text array: it drops trailing NULs
        arr = np.asarray(values) if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                        for v in values) else np.asarray(values, dtype=object)
    else:
        arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and len(arr) and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return arr.astype(np.int64)  # integer ids stored as floats (a nullable column): still integers
    return pd.Series(arr, dtype=object).astype(str).to_numpy(dtype=object)


class IdIndex:
    """Known ids (unique, any order) with their position; ``ids[pos]`` is the id as the files hold it."""

    def __init__(self, ids):
        values = as_id_array(ids)
        self.is_int = values.dtype.kind == "i"
        self.ids = values
        self._index = pd.Index(values)
        if not self._index.is_unique:
            raise ValueError("ids must be unique")
        self._single = dict(zip(values.tolist(), range(len(values))))  # one id per request: a hash lookup

    def __len__(self) -> int:
        return len(self.ids)

    def key(self, raw):
        """The id a request names, in the index's type, or ``None`` if it cannot be a known id."""
        if self.is_int:
            if isinstance(raw, bool):
                return None
            if isinstance(raw, (int, np.integer)):
                raw = int(raw)
                return raw if INT64_MIN <= raw <= INT64_MAX else None
            if isinstance(raw, str) and _DECIMAL.fullmatch(raw):
                value = int(raw)
                return value if INT64_MIN <= value <= INT64_MAX else None
            return None
        if isinstance(raw, bool):
            return None
        return raw if isinstance(raw, str) else str(raw) if isinstance(raw, (int, np.integer)) else None

    def positions(self, raws) -> np.ndarray:
        """Position of each request id (``-1``: unknown), vectorized over the known set (a few ids:
        hash lookups, which cost a basket's request microseconds where the vectorized lookup costs tens)."""
        keys = [self.key(r) for r in raws]  # one conversion per requested id (at most the request's cap)
        if len(keys) <= FEW_IDS:
            return np.array([-1 if k is None else self._single.get(k, -1) for k in keys], dtype=np.int64)
        ok = np.array([k is not None for k in keys], dtype=bool)
        out = np.full(len(keys), -1, dtype=np.int64)
        if ok.any():
            valid = [k for k in keys if k is not None]
            probe = np.asarray(valid, dtype=np.int64) if self.is_int else np.asarray(valid, dtype=object)
            out[ok] = self._index.get_indexer(probe)
        return out

    def positions_of(self, ids) -> np.ndarray:
        """Positions of ids read from a file (any dtype), vectorized; ``-1``: unknown."""
        arr = as_id_array(ids)
        if len(arr) == 0:
            return np.zeros(0, dtype=np.int64)
        if (arr.dtype.kind == "i") != self.is_int:  # integers in one file, text in another: match by value
            return self.positions(arr.tolist())
        return self._index.get_indexer(arr).astype(np.int64)

    def position(self, raw) -> int:
        key = self.key(raw)
        return -1 if key is None else self._single.get(key, -1)

    def value(self, pos: int):
        """The id at ``pos`` as a JSON-ready Python value (int or str)."""
        v = self.ids[pos]
        return int(v) if self.is_int else str(v)

    def values(self, pos) -> list:
        vals = self.ids[np.asarray(pos, dtype=np.int64)]
        return vals.tolist() if self.is_int else [str(v) for v in vals]


def read_ids(folder: Path, stem: str) -> np.ndarray:
    """The product ids an export wrote as ``<stem>.parquet`` (any id type; its one ``product_id``
    column), or as ``<stem>.npy`` (integer ids, exports of earlier versions)."""
    path = Path(folder) / f"{stem}.parquet"
    if path.exists():
        return as_id_array(pq.read_table(path, columns=["product_id"]).column("product_id"))
    return as_id_array(np.load(Path(folder) / f"{stem}.npy", allow_pickle=False))
