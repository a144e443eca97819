"""Array helpers every layer may use.

:func:`unique` is ``np.unique(x)`` for a 1-D array by sorting. NumPy 2.3 and later answer a
plain ``np.unique`` (no index, inverse or counts asked) with a hash table, which on millions
of distinct integers is more than ten times slower than sorting (1.5M int64: 1.7 s vs 0.12 s
here) and grows faster than the input; the sorted distinct values are the same.
"""

from __future__ import annotations

import numpy as np

__all__ = ["unique"]


def unique(values) -> np.ndarray:
    """Sorted distinct values of an array, flattened (as ``np.unique``: NaNs collapse into one, last)."""
    x = np.sort(np.asarray(values).ravel())
    if len(x) == 0:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    if x.dtype.kind in "fc" and np.isnan(x[-1]):  # NaN != NaN: keep one NaN, as np.unique does
        keep[1:] &= ~(np.isnan(x[1:]) & np.isnan(x[:-1]))
    return x[keep]
