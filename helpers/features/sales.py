"""Sales over time, seasonality and promotion share of a window (the EDA's aggregates).

Conventions
-----------
* The window conventions of :mod:`helpers.features.windows` (``timestamp < as_of``).
* **Periods.** Days, weeks starting on Monday, or calendar months; a period is
  ``complete`` when it lies entirely inside the window's day range.
* **Seasonality.** The department seasonal index of month *m* is ``(department
  sales in m / department sales) / (all sales in m / all sales)``: 1 = the
  department follows the overall calendar, 2 = twice as concentrated in that
  month. Holiday uplift compares the mean daily sales (days without sales count as
  0) of the holiday period (20 November - 31 December, ``dim_date.is_holiday_period``)
  with the other days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.data.schema import HOLIDAY_START
from helpers.features.windows import DAY, distinct_per_group, promo_flag, purchases, window

__all__ = ["department_seasonal_index", "holiday_uplift", "promotion_share", "sales_over_time", "weekday_profile"]


def promotion_share(transactions: pd.DataFrame, as_of) -> dict:
    """Share of purchase lines and of sales on promotion (NaN without a promotion flag)."""
    p = purchases(transactions, as_of)
    flag = promo_flag(p)
    known = flag.notna()
    sales = p["sales_value"].where(known)
    total = float(sales.sum())
    return {
        "line_share": float(flag.mean()) if known.any() else float("nan"),
        "sales_share": float((sales * flag).sum() / total) if known.any() and total else float("nan"),
    }


def _days(w: pd.DataFrame) -> pd.DatetimeIndex:
    """Every calendar day from the first to the last transaction day of the window ``w``."""
    if not len(w):
        return pd.DatetimeIndex([])
    return pd.date_range(w["timestamp"].min().normalize(), w["timestamp"].max().normalize(), freq="D")


def _period_start(ts, freq: str) -> np.ndarray:
    """Start (midnight) of the day, week (from Monday) or month of each timestamp."""
    days = np.asarray(ts, dtype="datetime64[ns]").astype("datetime64[D]")
    if freq == "D":
        out = days
    elif freq == "W":  # 1970-01-01 was a Thursday: (day number + 3) % 7 == 0 on Mondays
        out = days - ((days.astype(np.int64) + 3) % 7).astype("timedelta64[D]")
    elif freq == "M":
        out = days.astype("datetime64[M]").astype("datetime64[D]")
    else:
        raise ValueError(f"freq must be 'D', 'W' (weeks from Monday) or 'M', got {freq!r}")
    return out.astype("datetime64[ns]")


def sales_over_time(transactions: pd.DataFrame, as_of, freq: str = "W") -> pd.DataFrame:
    """Sales per day, week (from Monday) or calendar month.

    Columns: ``period_start, sales, promo_sales_share, baskets, customers, lines,
    n_days`` (days of the period inside the window's day range) and
    ``complete`` (the period lies entirely inside it)."""
    w = window(transactions, as_of)
    days = _days(w)
    cols = ["period_start", "sales", "promo_sales_share", "baskets", "customers", "lines", "n_days", "complete"]
    if not len(days):
        return pd.DataFrame(columns=cols)
    start = _period_start(w["timestamp"], freq)
    flag = promo_flag(w)
    keyed = pd.DataFrame({"_p": start, "sales_value": w["sales_value"].to_numpy(),
                          "_ps": (w["sales_value"] * flag).to_numpy(),
                          "basket_id": w["basket_id"].to_numpy(), "customer_id": w["customer_id"].to_numpy()})
    g = keyed.groupby("_p", sort=True)
    out = pd.DataFrame(
        {
            "sales": g["sales_value"].sum(),
            "promo_sales_share": g["_ps"].sum(min_count=1) / g["sales_value"].sum(),
            "baskets": distinct_per_group(keyed, "_p", "basket_id"),
            "customers": distinct_per_group(keyed, "_p", "customer_id"),
            "lines": g.size(),
        }
    )
    cal = pd.Series(1, index=days).groupby(_period_start(days, freq)).size()
    out = out.reindex(cal.index, fill_value=0)
    out["n_days"] = cal.astype(np.int64)
    ends = cal.index + (pd.offsets.MonthBegin(1) if freq == "M" else pd.Timedelta(days=7 if freq == "W" else 1))
    out["complete"] = ((ends - cal.index) / DAY).astype(int) == out["n_days"]
    out.index.name = "period_start"
    return out.reset_index()[cols]


def weekday_profile(transactions: pd.DataFrame, as_of) -> pd.DataFrame:
    """Mean daily sales and share of sales per day of week (0 = Monday)."""
    daily = sales_over_time(transactions, as_of, "D")
    names = pd.Series(pd.date_range("2024-01-01", periods=7).day_name(), index=range(7))
    if not len(daily):
        return pd.DataFrame({"day_of_week": [], "day_name": [], "mean_daily_sales": [], "sales_share": []})
    dow = daily["period_start"].dt.dayofweek
    g = daily.groupby(dow.to_numpy())["sales"]
    out = pd.DataFrame({"mean_daily_sales": g.mean(), "sales_share": g.sum() / daily["sales"].sum()})
    out = out.reindex(range(7))
    out.insert(0, "day_name", names)
    out.index.name = "day_of_week"
    return out.reset_index()


def department_seasonal_index(transactions: pd.DataFrame, products: pd.DataFrame, as_of,
                              min_share: float = 0.0) -> pd.DataFrame:
    """Departments x calendar month (1-12) seasonal index (see the module doc).

    Departments with less than ``min_share`` of the window's sales are dropped;
    rows are ordered by sales, largest first; products without a department
    count as ``"unknown"``."""
    p = purchases(transactions, as_of)
    dept = p["product_id"].map(products.set_index("product_id")["department"]).fillna("unknown")
    month = p["timestamp"].dt.month
    sales = p["sales_value"].groupby([dept.to_numpy(), month.to_numpy()]).sum().unstack(fill_value=0.0)
    if sales.empty:
        return sales
    overall = sales.sum(axis=0) / sales.to_numpy().sum()
    dept_total = sales.sum(axis=1)
    keep = dept_total / dept_total.sum() >= min_share
    share = sales.div(dept_total.where(dept_total != 0), axis=0)
    index = share.div(overall.where(overall != 0), axis=1).loc[keep]
    index = index.loc[dept_total[keep].sort_values(ascending=False).index]
    index.index.name, index.columns.name = "department", "month"
    return index


def holiday_uplift(transactions: pd.DataFrame, as_of, dates: pd.DataFrame | None = None) -> dict:
    """Mean daily sales in the holiday period vs the other days of the window.

    ``uplift`` = holiday mean / other mean - 1 (NaN when either period has no
    day). The holiday flag comes from ``dates.is_holiday_period`` when given,
    else from the same rule (20 November - 31 December)."""
    daily = sales_over_time(transactions, as_of, "D").set_index("period_start")["sales"]
    if dates is not None:
        flag = dates.set_index("date")["is_holiday_period"].reindex(daily.index).fillna(False).astype(bool)
    else:
        m, d = daily.index.month, daily.index.day
        hm, hd = HOLIDAY_START
        flag = pd.Series((m == 12) | ((m == hm) & (d >= hd)), index=daily.index)
    hol, rest = daily[flag.to_numpy()], daily[~flag.to_numpy()]
    h = float(hol.mean()) if len(hol) else float("nan")
    r = float(rest.mean()) if len(rest) else float("nan")
    return {
        "holiday_daily_sales": h,
        "other_daily_sales": r,
        "uplift": h / r - 1 if len(hol) and len(rest) and r else float("nan"),
        "n_holiday_days": int(len(hol)),
        "n_other_days": int(len(rest)),
    }
