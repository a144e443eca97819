"""A recorded digest of the whole model chapter on deterministic synthetic data.

Every registered model is tuned on validation, refitted and scored on test
(:func:`helpers.tuning.workflow.run_chapter`), the hybrid's weights are searched on
two validation windows with a learned re-ranker offered (:func:`run_hybrid`) and the
hybrid is scored on test (:func:`evaluate_hybrid`); the customer features and
segments of the fit window go in too. The sha256 of the tuned parameters, of every
metric (rounded to 6 decimals) and of every top-10 list is compared with a constant
recorded before the package was reorganised, so that a refactor which changes any
result fails here. Change the constant only for a change that is meant to change
results, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from helpers.data.sources import synthetic
from helpers.data.validate import validate_star_schema
from helpers.evaluation.metrics import compute_metrics, evaluation_set
from helpers.features import customers as F
from helpers.features import segments as S
from helpers.tuning import workflow as models

DATA = dict(n_customers=300, n_products=160, n_days=150, seed=7)
RECORDED = {
    "features": "567bd5c6f72a40867d8cdb067bbbdd7a3c6e4861d383a5caa14f65c3c5c1b2c3",
    "tuning": "4b2991fa4ffad2885957068dc7c381edf3cc84c19e4973d8005eb3c8e28e87ff",
    "metrics": "b03b8c01926a0668c043a634e4e9618cc5af49f61ec646c835dba6ee66455666",
    "top10": "c7aebfd9d25788c14f6c5401360bcf7928a102a15459a78999d12259a8b3cf21",
}


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _rounded(frame: pd.DataFrame) -> list:
    """Rows as lists, floats rounded to 6 decimals, NaN as None, in a canonical order."""
    cols = sorted(frame.columns)
    out = []
    for row in frame[cols].itertuples(index=False):
        out.append([None if isinstance(v, float) and np.isnan(v) else round(v, 6) if isinstance(v, float)
                    else v.item() if hasattr(v, "item") else v for v in row])
    return sorted(out, key=lambda r: json.dumps(r, default=str))


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
    root = tmp_path_factory.mktemp("digest")
    raw = synthetic.generate(**DATA)
    tables = validate_star_schema({k: v.copy() for k, v in raw.items() if not k.startswith("_")})
    split, valid, test = models.prepare_stages(tables, test_days=21, valid_days=21, processed_dir=root)
    tables_dir = root / "tables"
    chapter = models.run_chapter(list(models.MODELS), valid, test, tables_dir, n_boot=50, seed=0)
    earlier = models.earlier_stages(tables, split, 21, 1, processed_dir=root)
    hybrid = models.run_hybrid(valid, tables_dir, n_trials=40, seed=0, earlier=earlier,
                               ranker={"max_iter": 30, "min_samples_leaf": 20})
    h_metrics, h_preds = models.evaluate_hybrid(test, tables_dir, n_boot=50, seed=0)
    return dict(tables=tables, split=split, valid=valid, test=test, tables_dir=tables_dir, chapter=chapter,
                hybrid=hybrid, metrics=pd.concat([chapter["metrics"], h_metrics], ignore_index=True),
                predictions=pd.concat([chapter["predictions"], h_preds], ignore_index=True))


def digest(chapter) -> dict:
    tables, valid, test = chapter["tables"], chapter["valid"], chapter["test"]
    feats = F.customer_features(tables, valid.fit.as_of)
    segs = S.compute_segments(tables, test.fit.as_of)
    tuning = models.load_tuning(chapter["tables_dir"])
    preds = chapter["predictions"]
    top10 = {f"{m}/{p}/{c}": g.sort_values("rank")["product_id"].tolist()
             for (m, p, c), g in preds.groupby(["model", "protocol", "customer_id"], sort=True)}
    # the metrics engine on its own: the lists above scored against the test relevance
    engine = {}
    fit = test.fit
    for (m, p), g in preds.groupby(["model", "protocol"], sort=True):
        es = evaluation_set(fit.user_items, test.relevance, p)
        ids = np.full((len(es.rows), 10), -1, dtype=np.int64)
        pos = pd.Index(fit.customer_ids[es.rows]).get_indexer(g["customer_id"].to_numpy())
        ids[pos, g["rank"].to_numpy() - 1] = g["product_id"].to_numpy()
        cols = np.where(ids >= 0, fit.item_columns(ids), -1)
        res = compute_metrics(cols, es.relevance.matrix, es.relevance.n_relevant, ks=(1, 5, 10))
        engine[f"{m}/{p}"] = {f"{k[0]}@{k[1]}": round(float(np.mean(v)), 6) for k, v in res.items()}
    return {
        "features": _sha([_rounded(feats), _rounded(segs)]),
        "tuning": _sha(tuning),
        "metrics": _sha([_rounded(chapter["metrics"]), engine,
                         _rounded(chapter["hybrid"]["rules"]), _rounded(chapter["hybrid"]["selection"])]),
        "top10": _sha(top10),
    }


def test_results_match_the_recorded_digest(chapter):
    got = digest(chapter)
    assert got == RECORDED, json.dumps(got, indent=2)
