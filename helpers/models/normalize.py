"""Row-wise min-max normalization of scores, as the hybrid blends its components.

Convention: each row is scaled over its finite values to ``[0, 1]``; non-finite values
become ``-inf`` (so every value is in ``[0, 1]`` or ``-inf``); a row without two distinct
finite values maps its finite values to 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MINMAX_BLOCK_BYTES", "minmax_at", "minmax_rows"]


def _minmax_scale(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of float32 ``s``: the offset and factor of :func:`minmax_rows` (``float32``), and
    which rows hold a non-finite value."""
    lo = s.min(axis=1)
    hi = s.max(axis=1)
    # a row is all finite iff its min and max are (NaN propagates); only the others
    # need the masked reductions
    bad_rows = ~(np.isfinite(lo) & np.isfinite(hi))
    if bad_rows.any():
        sub = s[bad_rows]
        fin = np.isfinite(sub)
        lo[bad_rows] = np.where(fin, sub, np.inf).min(axis=1)
        hi[bad_rows] = np.where(fin, sub, -np.inf).max(axis=1)
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    scale = np.where(ok, 1.0 / np.where(ok, span, 1.0), 1.0).astype(np.float32)
    lo = np.where(np.isfinite(lo), lo, 0.0).astype(np.float32)
    return lo, scale, bad_rows


#: minmax_rows works through blocks of rows of about this size, which stay in cache between
#: its passes (min, max, shift, scale): one read and one write of the scores from memory.
MINMAX_BLOCK_BYTES = 1 << 20


def minmax_rows(scores: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Min-max normalize each row over its finite values to [0, 1]; non-finite values become -inf
    (so every value is in [0, 1] or -inf: the blend maps -inf to 0 with ``max(x, 0)``).

    A row without two distinct finite values maps its finite values to 0. ``inplace``: the
    caller owns ``scores`` (a component's fresh :meth:`~Recommender.score`), so a writable
    ``float32`` array is normalized in place (a read-only one is not: a new array is returned).
    """
    s = np.asarray(scores, dtype=np.float32)
    if s.size == 0:
        return s.copy()
    out = s if (inplace or s is not scores) and s.flags.writeable else np.empty_like(s)
    step = max(8, MINMAX_BLOCK_BYTES // (4 * s.shape[1]))
    for a in range(0, s.shape[0], step):
        blk, o = s[a:a + step], out[a:a + step]
        lo, scale, bad_rows = _minmax_scale(blk)
        keep = np.isfinite(blk[bad_rows]) if bad_rows.any() else None  # before o (maybe blk) changes
        np.subtract(blk, lo[:, None], out=o)
        o *= scale[:, None]
        if keep is not None:
            o[bad_rows] = np.where(keep, o[bad_rows], -np.inf)
    return out


def minmax_at(scores: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``take_along_axis(minmax_rows(scores), cols, axis=1)``, the same values, without
    normalizing the columns not asked for."""
    s = np.asarray(scores, dtype=np.float32)
    if s.size == 0:
        return np.take_along_axis(s, cols, axis=1).copy()
    lo, scale, _ = _minmax_scale(s)
    sel = np.take_along_axis(s, cols, axis=1)
    out = sel - lo[:, None]
    out *= scale[:, None]
    return np.where(np.isfinite(sel), out, np.float32(-np.inf))  # only rows with a non-finite value have one
