"""The test ledger: every hybrid configuration ever scored on a test window, kept and reported.

Honest evaluation scores the test window once per design, and a reader must see every design
that was scored there, not only the best. ``book/test_ledger.csv`` (:data:`helpers.config.TEST_LEDGER`,
committed) holds the configurations scored in earlier runs, with the figures their runs
reported; :func:`evaluate_hybrid <helpers.tuning.hybrid_workflow.evaluate_hybrid>` writes
``<tables_dir>/test_ledger.csv``: those rows plus the configuration this run scored, identified
by :func:`config_hash` (the hybrid entry and every component's tuned parameters, and the data
fingerprint). A configuration already in the ledger is marked, not added twice. Adding this
run's row to the committed file is a developer's act (a commit), so history lives in git.

Columns: ``dataset, configuration`` (a description), ``config_hash`` (blank for rows older than
the hash), ``scored_at`` (UTC day), ``ndcg5_all, ndcg5_new`` (overall test NDCG@5 of the two
protocols), ``source`` (``this run`` or where the figures were reported).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from helpers import config

COLUMNS = ["dataset", "configuration", "config_hash", "scored_at", "ndcg5_all", "ndcg5_new", "source"]
THIS_RUN = "this run"


def config_hash(tuning: dict, fingerprint: str | None) -> str:
    """Short sha256 of the tuned configuration (every entry) and the data fingerprint."""
    payload = json.dumps({"tuning": tuning, "data": fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def describe(hybrid: dict) -> str:
    """One line naming what the tuned hybrid of each protocol is (blend or re-ranker, signal groups)."""
    parts = []
    for protocol, cfg in hybrid.items():
        ranker = cfg.get("ranker")
        if ranker:
            groups = ranker.get("params", {}).get("signal_groups") or []
            what = "learned re-ranker" + (f" with signals {', '.join(groups)}" if groups else " (timing features)")
        else:
            what = "weighted blend"
        parts.append(f"{protocol}: {what} over {len(cfg.get('components', []))} components")
    return "; ".join(parts)


def read(path: Path = config.TEST_LEDGER) -> pd.DataFrame:
    """The committed ledger (empty with :data:`COLUMNS` when there is none)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    df = pd.read_csv(path, dtype={"config_hash": "string"})
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: the test ledger lacks the columns {sorted(missing)}")
    return df[COLUMNS]


def with_run(ledger: pd.DataFrame, dataset: str, tuning: dict, fingerprint: str | None, overall: pd.DataFrame,
             when: datetime | None = None) -> pd.DataFrame:
    """``ledger`` plus this run's row (or, when its configuration is already there, that row marked).

    ``overall``: the hybrid's overall test rows (``protocol, k, metric, value``)."""
    h = config_hash(tuning, fingerprint)

    def ndcg(protocol: str) -> float:
        v = overall.loc[(overall["protocol"] == protocol) & (overall["k"] == 5) & (overall["metric"] == "ndcg"),
                        "value"]
        return float(v.iloc[0]) if len(v) else float("nan")

    out = ledger.copy()
    seen = out["config_hash"].astype("string") == h
    if seen.any():
        out.loc[seen, "source"] = out.loc[seen, "source"].astype(str) + f"; {THIS_RUN}"
        return out.reset_index(drop=True)
    row = {"dataset": dataset, "configuration": describe(tuning.get("hybrid", {})), "config_hash": h,
           "scored_at": (when or datetime.now(timezone.utc)).date().isoformat(),
           "ndcg5_all": ndcg("all"), "ndcg5_new": ndcg("new"), "source": THIS_RUN}
    new = pd.DataFrame([row], columns=COLUMNS)
    return (pd.concat([out, new], ignore_index=True) if len(out) else new)[COLUMNS]
