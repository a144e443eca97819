"""Identifier codes: integers kept, text coded in first-appearance order, relabelling changes no metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.data.ids import IdMap, encode_ids, leading_zero_twins
from helpers.data.sources import synthetic
from helpers.data.star import fingerprint
from helpers.data.validate import validate_star_schema
from helpers.tuning import workflow

SMALL = dict(n_customers=120, n_products=60, n_days=150, seed=4)
MODELS = {"global_popularity": {}, "itemknn": {"k_neighbors": 20}, "buy_again": {}}


def test_integer_ids_are_their_own_codes(tiny_raw):
    tables = validate_star_schema({k: v.copy() for k, v in tiny_raw.items() if not k.startswith("_")})
    coded, maps = encode_ids(tables)
    assert all(m.is_identity for m in maps.values())
    for name in tables:
        pd.testing.assert_frame_equal(coded[name], tables[name])
    assert fingerprint(coded, maps) == fingerprint(tables)


def test_text_codes_follow_first_appearance_and_decode():
    tables = {"dim_product": pd.DataFrame({"product_id": ["Z9", "A1", "M5"]}),
              "fact_transactions": pd.DataFrame({"product_id": ["A1", "Z9", "A1"]})}
    coded, maps = encode_ids(tables)
    assert coded["dim_product"]["product_id"].tolist() == [0, 1, 2]  # row order, not "A1" < "M5" < "Z9"
    assert coded["fact_transactions"]["product_id"].tolist() == [1, 0, 1]
    m = maps["product_id"]
    assert m.decode([2, 0, -1]).tolist() == ["M5", "Z9", None]
    assert m.encode(["A1", "nope"]).tolist() == [1, -1]
    assert IdMap("x").decode([5]).tolist() == [5]


def test_leading_zero_twins():
    assert leading_zero_twins(pd.Series(["100001", "0100001", "7", "A07"])) == [("0100001", "100001")]


def _metrics(raw: dict, tmp_path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics, and the top-10 lists in the source's own ids."""
    tables, maps = encode_ids(validate_star_schema({k: v.copy() for k, v in raw.items() if not k.startswith("_")}))
    _, _, test = workflow.prepare_stages(tables, processed_dir=tmp_path)
    models = {(n, "all"): workflow.make_model(n, p, test.fit) for n, p in MODELS.items()}
    metrics, preds, _ = workflow.evaluate_models(models, test, None, n_boot=50, seed=1)
    preds = preds.assign(customer_id=maps["customer_id"].decode(preds["customer_id"]),
                         product_id=maps["product_id"].decode(preds["product_id"]))
    preds = preds.sort_values(["model", "customer_id", "rank"]).reset_index(drop=True)
    return metrics.sort_values(list(metrics.columns[:6])).reset_index(drop=True), preds


def _relabel(raw: dict, labels: dict[str, dict]) -> dict:
    out = {}
    for name, df in raw.items():
        if name.startswith("_"):
            continue
        df = df.copy()
        for col, mapping in labels.items():
            if col in df:
                df[col] = df[col].map(mapping).astype(object).where(df[col].notna(), None)
        out[name] = df
    return out


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), max_size=3),
       shuffle=st.booleans(), seed=st.integers(0, 2**16))
def test_relabelling_ids_never_changes_metrics(tmp_path_factory, prefix, shuffle, seed):
    raw = synthetic.generate(**SMALL)
    base = _metrics(raw, tmp_path_factory.mktemp("ints"))  # (metrics, lists)
    rng = np.random.default_rng(seed)
    labels = {}
    for col in ("customer_id", "product_id", "basket_id"):
        vals = np.unique(pd.concat([df[col] for df in raw.values() if hasattr(df, "columns") and col in df]))
        names = np.array([f"{prefix}{col[0]}{i:06d}" for i in range(len(vals))], dtype=object)
        labels[col] = dict(zip(vals, rng.permutation(names) if shuffle else names))
    got, got_preds = _metrics(_relabel(raw, labels), tmp_path_factory.mktemp("text"))
    pd.testing.assert_frame_equal(got, base[0])
    want = base[1].assign(customer_id=base[1]["customer_id"].map(labels["customer_id"]),
                          product_id=base[1]["product_id"].map(labels["product_id"]))
    want = want.sort_values(["model", "customer_id", "rank"]).reset_index(drop=True)  # the same lists, renamed
    pd.testing.assert_frame_equal(got_preds, want, check_dtype=False)
