"""Tables and notes as the book shows them: formatted, escaped, never cut off.

:func:`table` renders a frame as HTML inside a horizontally scrollable container
(``<div class="recbook-scroll">``), so a wide table scrolls instead of losing its right
columns. Integers get thousands separators, floats ``decimals`` decimals (or a per-column
format), strings are HTML-escaped (``similar_to:<product_id>`` stays text), the index is
not shown (pass ``index=True`` to show it as the first column), and a missing value reads
"n/a" with a footnote saying what that means.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from IPython.display import HTML

SCROLL_CLASS = "recbook-scroll"
NA = "n/a"
NA_NOTE = "n/a: not available (no customer, product or value in this cell)."


def _formatter(series: pd.Series, decimals: int):
    if pd.api.types.is_bool_dtype(series):
        return lambda v: "yes" if v else "no"
    if pd.api.types.is_integer_dtype(series):
        return "{:,}"
    if pd.api.types.is_float_dtype(series):
        finite = series.dropna()
        if len(finite) and np.all(np.mod(finite, 1) == 0) and finite.abs().max() >= 1000:
            return "{:,.0f}"
        return "{:,.%sf}".replace("%s", str(decimals))
    return lambda v: str(v)


def format_frame(df: pd.DataFrame, formats: dict | None = None, decimals: int = 4) -> pd.DataFrame:
    """Every cell as its display string (missing -> ``n/a``); column names as strings."""
    formats = formats or {}
    out = pd.DataFrame(index=range(len(df)))
    for col in df.columns:
        s = df[col].reset_index(drop=True)
        fmt = formats.get(col) or _formatter(s, decimals)
        fn = fmt.format if isinstance(fmt, str) else fmt
        out[str(col).replace("\n", " ")] = [NA if (v is None or (not isinstance(v, (list, tuple, dict, str))
                                                                   and pd.isna(v))) else fn(v) for v in s]
    return out


def table_html(df: pd.DataFrame, formats: dict | None = None, decimals: int = 4, index: bool = False,
               note: str | None = None) -> str:
    """The HTML of :func:`table` (a scroll container holding the table, then the notes)."""
    frame = df.reset_index() if index else df
    shown = format_frame(frame, formats, decimals)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                   for row in shown.itertuples(index=False))
    notes = [note] if note else []
    if (shown == NA).to_numpy().any():
        notes.append(NA_NOTE)
    foot = "".join(f'<p class="recbook-note"><small>{html.escape(n)}</small></p>' for n in notes)
    return (f'<div class="{SCROLL_CLASS}" style="overflow-x: auto; max-width: 100%;">'
            f'<table class="table recbook-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f"</div>{foot}")


def table(df: pd.DataFrame, formats: dict | None = None, decimals: int = 4, index: bool = False,
          note: str | None = None) -> HTML:
    """A displayable table (see the module docstring); ``formats`` maps a column to a
    ``str.format`` pattern such as ``"{:.1%}"`` or to a function of the value."""
    return HTML(table_html(df, formats, decimals, index, note))


def note(text: str, kind: str = "note") -> HTML:
    """A short escaped paragraph (e.g. "this source has no gender information")."""
    return HTML(f'<p class="recbook-{kind}">{html.escape(text)}</p>')


def nan_to_na(value, spec: str = "") -> str:
    """``format(value, spec)``, or "n/a" for a missing value."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return NA
    return format(value, spec)
