"""The test ledger: every configuration scored on test is reported, none twice."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from helpers import config
from helpers.tuning import ledger

HYBRID = {"all": {"components": ["a", "b"], "ranker": {"params": {"signal_groups": ["cycles"]}}},
          "new": {"components": ["a"], "ranker": None}}
OVERALL = pd.DataFrame({"protocol": ["all", "all", "new"], "k": [5, 10, 5], "metric": ["ndcg"] * 3,
                        "value": [0.5, 0.4, 0.06]})


def test_the_committed_ledger_reads_with_every_column():
    df = ledger.read(config.TEST_LEDGER)
    assert list(df.columns) == ledger.COLUMNS and len(df) >= 1


def test_a_new_configuration_is_added_and_a_known_one_is_marked(tmp_path):
    tuning = {"hybrid": HYBRID, "als": {"all": {"factors": 64}}}
    when = datetime(2026, 12, 3, tzinfo=timezone.utc)
    first = ledger.with_run(ledger.read(tmp_path / "none.csv"), "synthetic", tuning, "fp", OVERALL, when)
    assert len(first) == 1
    row = first.iloc[0]
    assert (row["ndcg5_all"], row["ndcg5_new"], row["source"], row["scored_at"]) == (0.5, 0.06, "this run",
                                                                                      "2026-12-03")
    assert "re-ranker with signals cycles" in row["configuration"] and "new: weighted blend" in row["configuration"]
    path = tmp_path / "ledger.csv"
    first.assign(source="closing note").to_csv(path, index=False)
    again = ledger.with_run(ledger.read(path), "synthetic", tuning, "fp", OVERALL, when)
    assert len(again) == 1 and again.iloc[0]["source"] == "closing note; this run"
    other = ledger.with_run(ledger.read(path), "synthetic", {**tuning, "als": {"all": {"factors": 32}}}, "fp",
                            OVERALL, when)
    assert len(other) == 2  # another parameter is another configuration
    assert ledger.config_hash(tuning, "fp") != ledger.config_hash(tuning, "other data")


def test_a_ledger_without_its_columns_is_refused(tmp_path):
    (tmp_path / "bad.csv").write_text("dataset,value\nx,1\n")
    with pytest.raises(ValueError, match="lacks the columns"):
        ledger.read(tmp_path / "bad.csv")
