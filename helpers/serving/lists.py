"""Ranked lists of the export held as flat arrays, and their JSON written from precomputed pieces.

A :class:`RankedLists` holds per-key lists (a customer's recommendations, a product's similar
products, a segment's cold-start list) as flat arrays sorted by (key, rank) with offsets; keys
and listed products are *positions* in an :class:`~helpers.serving.ids.IdIndex`, so the lists
work the same for integer and text ids. A list item's JSON is joined from bytes computed once
per product (its id, description, category, brand) and once per distinct reason (reason and
label): answering a request costs a few concatenations per item, no dict and no encoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from helpers.serving.ids import IdIndex, as_id_array


class RankedLists:
    """Lists per key position ``0..n_keys-1``: ``item_pos``, ``scores`` and ``reason_codes``
    of key ``i`` are the rows ``starts[i]:starts[i + 1]``, in rank order."""

    def __init__(self, key_pos: np.ndarray, ranks: np.ndarray, item_pos: np.ndarray, scores: np.ndarray,
                 reason_codes: np.ndarray, reasons: np.ndarray, n_keys: int):
        order = np.lexsort((ranks, key_pos))
        key_pos = np.asarray(key_pos, dtype=np.int64)[order]
        self.item_pos = np.asarray(item_pos, dtype=np.int64)[order]
        self.scores = np.asarray(scores, dtype=np.float64)[order]
        self.reason_codes = np.asarray(reason_codes, dtype=np.int32)[order]
        self.reasons = reasons
        self.starts = np.searchsorted(key_pos, np.arange(n_keys + 1)).astype(np.int64)

    def __len__(self) -> int:
        """Keys that have a list."""
        return int((np.diff(self.starts) > 0).sum())

    @property
    def n_rows(self) -> int:
        return len(self.item_pos)

    def has(self, i: int) -> bool:
        return 0 <= i < len(self.starts) - 1 and self.starts[i + 1] > self.starts[i]

    def rows(self, i: int, k: int) -> slice:
        start = int(self.starts[i])
        return slice(start, min(start + k, int(self.starts[i + 1])))

    @classmethod
    def read(cls, path: Path, key: str, keys: IdIndex | None, items: IdIndex, id_col: str = "product_id",
             reason_col: str | None = "reason", filters=None) -> tuple[RankedLists, IdIndex]:
        """The lists of a Parquet file; ``keys=None`` indexes the file's own distinct keys.
        Rows whose key or listed product is not in the indexes are left out. Returns the
        lists and the key index."""
        cols = [key, "rank", id_col, "score"] + ([reason_col] if reason_col else [])
        table = pq.read_table(path, columns=cols, filters=filters, memory_map=False)
        raw_keys = as_id_array(table.column(key))
        if keys is None:
            keys = IdIndex(pd.unique(raw_keys))
        key_pos = keys.positions_of(raw_keys)
        item_pos = items.positions_of(as_id_array(table.column(id_col)))
        if reason_col:
            col = table.column(reason_col).combine_chunks()
            col = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
            reasons = np.asarray(col.dictionary.to_pylist(), dtype=object)
            codes = col.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        else:
            reasons, codes = np.zeros(0, dtype=object), np.zeros(table.num_rows, dtype=np.int32)
        keep = (key_pos >= 0) & (item_pos >= 0)
        lists = cls(key_pos[keep], table.column("rank").to_numpy()[keep], item_pos[keep],
                    table.column("score").to_numpy()[keep], codes[keep], reasons, len(keys))
        return lists, keys


def json_values(values) -> list[bytes]:
    """The JSON text of each value (ids, strings, None) in one vectorized pandas pass."""
    if len(values) == 0:
        return []
    text = pd.DataFrame({"v": pd.Series(values, dtype=object)}).to_json(orient="records", lines=True,
                                                                         force_ascii=False)
    return [line[5:-1].encode() for line in text.rstrip("\n").split("\n")]  # strip '{"v":' and '}'


def json_records(frame: pd.DataFrame) -> list[bytes]:
    """``"col":value,...`` (no braces) of each row of ``frame``: fragments to join into objects."""
    if frame.empty:
        return []
    text = frame.astype(object).where(frame.notna(), None).to_json(orient="records", lines=True,
                                                                   force_ascii=False)
    return [line[1:-1].encode() for line in text.rstrip("\n").split("\n")]


def json_scores(scores: np.ndarray) -> list[bytes]:
    """Scores as JSON numbers (shortest text that reads back the same float; NaN as null)."""
    return orjson.dumps(np.asarray(scores, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",") \
        if len(scores) else []
