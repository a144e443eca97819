"""Growth exponents: how a stage's time grows with the data (log-log slope of time against size;
1 = linear), for the Performance page and the benchmark."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["growth_exponents"]


def growth_exponents(lines, times) -> dict:
    """Log-log slopes of ``times`` against ``lines``.

    Returns ``{"pairs": [slope between consecutive points], "overall": least-squares
    slope over all points}`` (``None`` where fewer than two usable points).
    Points with a non-positive or missing value are skipped.
    """
    pts = [(float(n), float(t)) for n, t in zip(lines, times)
           if n is not None and t is not None and float(n) > 0 and float(t) > 0 and math.isfinite(float(t))]
    pts.sort()
    pairs = []
    for (n0, t0), (n1, t1) in zip(pts[:-1], pts[1:]):
        pairs.append(math.log(t1 / t0) / math.log(n1 / n0) if n1 != n0 else None)
    overall = None
    if len(pts) >= 2 and len({n for n, _ in pts}) >= 2:
        x = np.log([n for n, _ in pts])
        y = np.log([t for _, t in pts])
        overall = float(np.polyfit(x, y, 1)[0])
    return {"pairs": pairs, "overall": overall}
