"""The calendar dimension: one row per day with the attributes the features and the book use."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.data.schema import HOLIDAY_START

SEASONS = np.array(["Winter", "Winter", "Spring", "Spring", "Spring", "Summer", "Summer", "Summer",
                    "Autumn", "Autumn", "Autumn", "Winter"])


def build_dim_date(first, last) -> pd.DataFrame:
    """One row per day in ``[first, last]`` with calendar attributes."""
    days = pd.date_range(pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize(), freq="D")
    month, day = days.month.to_numpy(), days.day.to_numpy()
    hm, hd = HOLIDAY_START
    return pd.DataFrame(
        {
            "date": days.astype("datetime64[ns]"),
            "year": days.year.astype("int64"),
            "quarter": days.quarter.astype("int64"),
            "month": month.astype("int64"),
            "week": days.isocalendar().week.to_numpy().astype("int64"),
            "day_of_week": days.dayofweek.astype("int64"),
            "day_name": days.day_name().astype(object),
            "is_weekend": days.dayofweek.to_numpy() >= 5,
            "season": SEASONS[month - 1].astype(object),
            "is_holiday_period": (month == 12) | ((month == hm) & (day >= hd)),
        }
    )
