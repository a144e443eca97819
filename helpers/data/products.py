"""Product attributes by id, for labels and files (the export and the API share it)."""

from __future__ import annotations

import numpy as np
import pandas as pd


class ProductLookup:
    """``description``, ``category``, ``brand`` of any product id (shared by export and API).

    Ids are integers (the star schema's codes, or integer source ids) or text (an export's
    ``products.parquet`` of a source with text ids); a text query of an integer lookup
    (``"1004906"``, as in a ``similar_to:`` reason) is read as the integer."""

    def __init__(self, products: pd.DataFrame):
        p = products.drop_duplicates("product_id").sort_values("product_id")
        col = p["product_id"]
        self.integer = pd.api.types.is_integer_dtype(col.dtype)
        self.ids = col.to_numpy(np.int64) if self.integer else col.astype(str).to_numpy(dtype=object)
        self._index = pd.Index(self.ids)
        self.columns = {}
        for col in ("description", "category", "brand"):
            vals = p[col] if col in p else pd.Series([None] * len(p))
            vals = vals.astype(object).where(vals.notna(), None)
            self.columns[col] = np.asarray(vals.to_numpy(dtype=object), dtype=object)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"product_id": self.ids, **self.columns})

    def positions(self, product_ids) -> np.ndarray:
        """Position of each id in :attr:`ids` (-1 when unknown, or not an id of this lookup's type)."""
        ids = np.asarray(product_ids)
        if self.integer and ids.dtype.kind in "iu":
            ids = ids.astype(np.int64)
            pos = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
            ok = (self.ids[pos] == ids) if len(self.ids) else np.zeros(len(ids), bool)
            return np.where(ok, pos, -1)
        if self.integer:
            ids = pd.to_numeric(pd.Series(ids.astype(object)).astype(str), errors="coerce")
            ok = ids.notna() & (ids.abs() < 2 ** 63)
            out = np.full(len(ids), -1, dtype=np.int64)
            out[ok.to_numpy()] = self.positions(ids[ok].astype(np.int64).to_numpy())
            return out
        return self._index.get_indexer(pd.Index(ids.astype(str).astype(object))).astype(np.int64)

    def attribute(self, product_ids, column: str) -> np.ndarray:
        pos = self.positions(product_ids)
        out = np.full(len(pos), None, dtype=object)
        ok = pos >= 0
        out[ok] = self.columns[column][pos[ok]]
        return out

    def name(self, product_id, max_len: int = 80) -> str:
        """A short product name for labels: the description up to its first comma or full stop."""
        d = self.attribute([product_id], "description")[0]
        text = str(d).strip() if d is not None else ""
        if not text:
            return f"product {product_id}"
        for sep in (", ", ". "):
            text = text.split(sep, 1)[0]
        return text if len(text) <= max_len else text[: max_len - 1].rstrip() + "\u2026"
