"""Customer segments, computed on the data strictly before a cut-off.

``compute_segments(tables, as_of)`` returns a long frame ``customer_id,
segment_type, segment`` in which **every** ``dim_customer`` customer has exactly
one segment per segment type. Rules:

``loyalty_tier``
    Bronze / Silver / Gold / Platinum from the combined RFM score, thresholds
    learned on the window (see :mod:`helpers.features.customers`); ``None`` for customers
    without purchases before ``as_of``.
``age_band``
    The source's age band as is; ``unknown`` where missing.
``gender``
    The source's gender; ``unknown`` where missing. The whole segment type is
    **left out** when the source has no gender at all (Complete Journey).
``income_band``
    The source's income bands grouped into four wider bands by their lower bound
    in thousands: ``<35K`` (below 35), ``35-74K`` (35-74), ``75-149K`` (75-149),
    ``150K+`` (150 and above). 'Under 15K' has lower bound 0, '150K+' 150.
    Missing or unparseable bands -> ``unknown``.
``promo_exposure``
    ``low`` / ``medium`` / ``high`` terciles of the promotion-exposure score
    learned on the window (see :mod:`helpers.features.customers`); ``none`` for customers
    without purchases before ``as_of``.
``history_length``
    ``new``: no purchase basket before ``as_of``; otherwise ``light`` when the
    number of baskets is below the median over customers with history (learned
    on the window), ``heavy`` from the median up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.features import customers as features

UNKNOWN = "unknown"
INCOME_BANDS = ("<35K", "35-74K", "75-149K", "150K+")
INCOME_EDGES = (35, 75, 150)  # lower bounds (thousands) where the next wide band starts
HISTORY_BANDS = ("new", "light", "heavy")
SEGMENT_TYPES = ("loyalty_tier", "age_band", "gender", "income_band", "promo_exposure", "history_length")
SEGMENT_ORDER = {
    "loyalty_tier": (features.NO_HISTORY_TIER, *features.TIERS),
    "income_band": (*INCOME_BANDS, UNKNOWN),
    "promo_exposure": (features.NO_HISTORY_BAND, *features.EXPOSURE_BANDS),
    "history_length": HISTORY_BANDS,
}
COLUMNS = ["customer_id", "segment_type", "segment"]


def income_lower_bound(bands: pd.Series) -> pd.Series:
    """Lower bound in thousands of each income band text ('Under 15K' -> 0,
    '50-74K' -> 50, '250K+' -> 250); NaN when missing or unparseable."""
    text = bands.astype("string").str.strip().str.upper()
    num = pd.to_numeric(text.str.extract(r"^(\d+)", expand=False), errors="coerce")
    under = text.str.match(r"^(UNDER|<|BELOW|LESS)").fillna(False).astype(bool)
    return num.where(~under, 0.0).astype("float64")


def wide_income_band(bands: pd.Series) -> pd.Series:
    """The four wide income bands (see the module doc); ``unknown`` where missing."""
    low = income_lower_bound(bands).to_numpy()
    idx = np.searchsorted(np.asarray(INCOME_EDGES, dtype=float), low, side="right")
    labels = np.asarray(INCOME_BANDS, dtype=object)[np.minimum(idx, len(INCOME_BANDS) - 1)]
    return pd.Series(np.where(np.isnan(low), UNKNOWN, labels), index=bands.index, dtype=object)


def history_length(frequency: pd.Series) -> tuple[pd.Series, float]:
    """``new`` / ``light`` / ``heavy`` from baskets before the cut-off, and the threshold."""
    freq = frequency.to_numpy()
    has = freq > 0
    threshold = float(np.median(freq[has])) if has.any() else float("nan")
    label = np.where(~has, "new", np.where(freq >= threshold, "heavy", "light"))
    return pd.Series(label.astype(object), index=frequency.index), threshold


def _clean(values: pd.Series) -> np.ndarray:
    v = values.astype("string").str.strip()
    return v.where(v.notna() & (v != ""), UNKNOWN).astype(object).to_numpy()


def compute_segments(tables: dict, as_of) -> pd.DataFrame:
    """Long ``customer_id, segment_type, segment``: one segment per type for every
    ``dim_customer`` customer, from data strictly before ``as_of``.

    Needs ``fact_transactions`` and ``dim_customer`` (``customer_exposure`` when
    present). The learned thresholds are in ``.attrs``."""
    return segments_from_features(tables["dim_customer"], features.customer_features(tables, as_of))


def segments_from_features(customers: pd.DataFrame, customer_features: pd.DataFrame) -> pd.DataFrame:
    """:func:`compute_segments` from ``dim_customer`` and an already computed
    :func:`helpers.features.customers.customer_features` frame (same customers)."""
    cust = customers.sort_values("customer_id")
    feats = customer_features.set_index("customer_id").loc[cust["customer_id"]]
    feats.attrs = dict(customer_features.attrs)
    as_of = feats.attrs.get("as_of")
    ids = cust["customer_id"].to_numpy(np.int64)
    hist, hist_thr = history_length(feats["frequency"])
    parts = {"loyalty_tier": feats["loyalty_tier"].to_numpy(object)}
    parts["age_band"] = _clean(cust["age_band"]) if "age_band" in cust else np.full(len(ids), UNKNOWN, object)
    if "gender" in cust and cust["gender"].notna().any():
        parts["gender"] = _clean(cust["gender"])
    income = cust["income_band"] if "income_band" in cust else pd.Series(np.nan, index=cust.index)
    parts["income_band"] = wide_income_band(income).to_numpy(object)
    parts["promo_exposure"] = feats["promo_band"].to_numpy(object)
    parts["history_length"] = hist.to_numpy(object)
    out = pd.DataFrame(
        {
            "customer_id": np.tile(ids, len(parts)),
            "segment_type": np.repeat(np.asarray(list(parts), dtype=object), len(ids)),
            "segment": np.concatenate(list(parts.values())),
        }
    )
    out.attrs.update(
        as_of=as_of,
        tier_thresholds=feats.attrs.get("tier_thresholds", {}),
        band_thresholds=feats.attrs.get("band_thresholds", {}),
        heavy_min_baskets=hist_thr,
    )
    return out


def segment_types(segments: pd.DataFrame) -> list:
    """Segment types present, in the canonical order (unknown extras last, sorted)."""
    present = set(segments["segment_type"].unique())
    return [t for t in SEGMENT_TYPES if t in present] + sorted(present - set(SEGMENT_TYPES))


def segment_order(segment_type: str, values) -> list:
    """Display order of a segment type's values: its documented order, else
    sorted with ``unknown`` last."""
    values = list(dict.fromkeys(values))
    if segment_type in SEGMENT_ORDER:
        known = [v for v in SEGMENT_ORDER[segment_type] if v in values]
        return known + sorted(v for v in values if v not in known)
    return sorted(v for v in values if v != UNKNOWN) + ([UNKNOWN] if UNKNOWN in values else [])


def segment_sizes(segments: pd.DataFrame) -> pd.DataFrame:
    """``segment_type, segment, customers, share`` in display order."""
    counts = segments.groupby(["segment_type", "segment"], sort=False).size().rename("customers")
    rows = []
    for stype in segment_types(segments):
        c = counts.loc[stype]
        total = c.sum()
        for seg in segment_order(stype, c.index):
            rows.append((stype, seg, int(c[seg]), c[seg] / total))
    return pd.DataFrame(rows, columns=["segment_type", "segment", "customers", "share"])


def wide(segments: pd.DataFrame) -> pd.DataFrame:
    """One row per customer, one column per segment type."""
    return segments.pivot(index="customer_id", columns="segment_type", values="segment")[segment_types(segments)]


DEMOGRAPHIC_COLUMNS = ("age_band", "gender", "income_band", "home_ownership", "marital_status",
                       "household_size", "household_comp", "kids_count")


def demographics_coverage(customers: pd.DataFrame) -> pd.DataFrame:
    """Share of customers with a known value, per demographic attribute of ``dim_customer``."""
    cols = [c for c in DEMOGRAPHIC_COLUMNS if c in customers]
    known = customers[cols].notna().mean() if cols else pd.Series(dtype=float)
    return pd.DataFrame({"attribute": cols, "known_share": known.to_numpy(dtype=float),
                         "customers_known": customers[cols].notna().sum().to_numpy(dtype=np.int64)})
