"""Product attributes by id, for labels and files (the export and the API share it)."""

from __future__ import annotations

import numpy as np
import pandas as pd


class ProductLookup:
    """``description``, ``category``, ``brand`` of any product id (shared by export and API)."""

    def __init__(self, products: pd.DataFrame):
        p = products.drop_duplicates("product_id").sort_values("product_id")
        self.ids = p["product_id"].to_numpy(np.int64)
        self.columns = {}
        for col in ("description", "category", "brand"):
            vals = p[col] if col in p else pd.Series([None] * len(p))
            vals = vals.astype(object).where(vals.notna(), None)
            self.columns[col] = np.asarray(vals.to_numpy(dtype=object), dtype=object)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"product_id": self.ids, **self.columns})

    def positions(self, product_ids) -> np.ndarray:
        ids = np.asarray(product_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        ok = (len(self.ids) > 0) & (self.ids[pos] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return np.where(ok, pos, -1)

    def attribute(self, product_ids, column: str) -> np.ndarray:
        pos = self.positions(product_ids)
        out = np.full(len(pos), None, dtype=object)
        ok = pos >= 0
        out[ok] = self.columns[column][pos[ok]]
        return out

    def name(self, product_id: int, max_len: int = 80) -> str:
        """A short product name for labels: the description up to its first comma or full stop."""
        d = self.attribute([product_id], "description")[0]
        text = str(d).strip() if d is not None else ""
        if not text:
            return f"product {int(product_id)}"
        for sep in (", ", ". "):
            text = text.split(sep, 1)[0]
        return text if len(text) <= max_len else text[: max_len - 1].rstrip() + "\u2026"
