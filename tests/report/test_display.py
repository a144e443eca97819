"""Tables as the book shows them, and the executive summary's plain-language figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.report import display, summary


def test_table_formats_escapes_wraps_and_footnotes_missing_values():
    df = pd.DataFrame({"n": [1234567, 2], "x": [0.123456, np.nan], "text": ["similar_to:<product_id>", "a&b"]},
                      index=["r1", "r2"])
    out = display.table_html(df)
    assert out.startswith(f'<div class="{display.SCROLL_CLASS}" style="overflow-x: auto')
    assert "<td>1,234,567</td>" in out and "<td>0.1235</td>" in out and "<td>n/a</td>" in out
    assert "similar_to:&lt;product_id&gt;" in out and "a&amp;b" in out
    assert "r1" not in out  # no index
    assert display.NA_NOTE in out and "NaN" not in out and "nan" not in out


def test_table_index_and_formats():
    df = pd.DataFrame({"share": [0.5]}, index=pd.Index(["Gold"], name="tier"))
    out = display.table_html(df, formats={"share": "{:.1%}"}, index=True)
    assert "<th>tier</th>" in out and "<td>Gold</td>" in out and "<td>50.0%</td>" in out
    assert display.NA_NOTE not in out


def test_whole_large_floats_get_thousands_and_no_decimals():
    assert display.format_frame(pd.DataFrame({"v": [12000.0, 3000.0]}))["v"].tolist() == ["12,000", "3,000"]
    assert display.format_frame(pd.DataFrame({"b": [True, False]}))["b"].tolist() == ["yes", "no"]


@pytest.mark.parametrize("rate, text", [(0.788, "4 in 5"), (0.198, "1 in 5"), (1.0, "5 in 5"), (0.03, "1 in 33"),
                                        (0.0, "none"), (math.nan, "none")])
def test_in_five(rate, text):
    assert summary.in_five(rate) == text


@given(st.floats(min_value=0.1, max_value=1.0))
def test_in_five_is_the_nearest_fifth(rate):
    n = int(summary.in_five(rate).split(" in ")[0])
    assert abs(n / 5 - rate) <= 0.1 + 1e-12


def test_verdict_reads_the_interval():
    assert summary.verdict("hybrid", "als", 0.01, 0.02).startswith("ahead of ALS")
    assert summary.verdict("hybrid", "als", -0.02, -0.01).startswith("behind ALS")
    assert summary.verdict("hybrid", "als", -0.01, 0.02).startswith("not distinguishable from ALS")


def _metrics(values: dict) -> pd.DataFrame:
    rows = [{"model": m, "protocol": p, "split": "test", "segment_type": "overall", "segment": "all", "k": 5,
             "metric": metric, "value": v, "ci_low": v - 0.1, "ci_high": v + 0.1}
            for (m, p, metric), v in values.items()]
    return pd.DataFrame(rows)


def test_lift_over_most_popular():
    m = _metrics({("hybrid", "all", "hit_rate"): 0.8, ("global_popularity", "all", "hit_rate"): 0.4,
                  ("hybrid", "new", "hit_rate"): 0.2})
    assert summary.lift(m, "all") == pytest.approx(2.0)
    assert math.isnan(summary.lift(m, "new"))


def test_glue_in_a_fresh_kernel_does_not_compile_the_iri_grammars():
    """glue_all works in a new process without loading rfc3987_syntax (1 s of lark grammars per
    kernel); jsonschema still validates, date-time formats included."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from helpers.report.glue import glue_all\n"
            "glue_all({'n': 3})\n"
            "import jsonschema\n"
            "assert sys.modules.get('rfc3987_syntax') is None, 'rfc3987_syntax was imported'\n"
            "jsonschema.validate({'t': '2024-01-01T00:00:00Z'}, {'properties': {'t': {'type': 'string', "
            "'format': 'date-time'}}}, format_checker=jsonschema.FormatChecker())\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
