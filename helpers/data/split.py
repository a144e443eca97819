"""The temporal split: train, validation and test windows counted back from the last day.

Conventions: windows are half-open on ``timestamp``, ``[start, end)``, all at midnight.
``end`` is the midnight after the last transaction's calendar day; test is the last
``test_days`` days, validation the ``valid_days`` before, train the rest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pandas as pd

from helpers.atomic import write_text

__all__ = ["Split", "select_window", "temporal_split"]


@dataclass(frozen=True)
class Split:
    """Train ``[start, valid_start)``, validation ``[valid_start, test_start)``,
    test ``[test_start, end)``; all midnights, half-open."""

    start: pd.Timestamp
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp

    def windows(self, stage: str) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
        """``(fit_end, eval_start, eval_end)`` for ``"valid"`` or ``"test"``."""
        if stage == "valid":
            return self.valid_start, self.valid_start, self.test_start
        if stage == "test":
            return self.test_start, self.test_start, self.end
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")

    def to_dict(self) -> dict[str, str]:
        return {k: getattr(self, k).date().isoformat()
                for k in ("start", "valid_start", "test_start", "end")}

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(**{k: pd.Timestamp(d[k]) for k in ("start", "valid_start", "test_start", "end")})

    def write(self, path) -> None:
        """Write ``to_dict()`` as JSON atomically (temp file + ``os.replace``); an
        identical existing file is left untouched (so caches keyed on it stay valid)."""
        path = os.fspath(path)
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if os.path.exists(path):
            with open(path) as f:
                if f.read() == text:
                    return

        write_text(path, text)


def temporal_split(transactions: pd.DataFrame, test_days: int = 28, valid_days: int = 28) -> Split:
    """Split by calendar days counted back from the day after the last transaction."""
    ts = transactions["timestamp"]
    if len(ts) == 0:
        raise ValueError("no transactions to split")
    start = ts.min().floor("D")
    end = ts.max().normalize() + pd.Timedelta(days=1)
    test_start = end - pd.Timedelta(days=test_days)
    valid_start = test_start - pd.Timedelta(days=valid_days)
    if valid_start <= start:
        raise ValueError(f"no training days left: data starts {start.date()}, validation {valid_start.date()}")
    return Split(start, valid_start, test_start, end)


def select_window(transactions: pd.DataFrame, start, end) -> pd.DataFrame:
    """Rows with ``start <= timestamp < end``."""
    ts = transactions["timestamp"]
    return transactions.loc[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
