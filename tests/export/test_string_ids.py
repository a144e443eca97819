"""A folder with text identifiers exports text identifiers in every file, and the same lists as integer ids."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.data.sample import write_sample
from helpers.data.star import build_star_schema
from helpers.export.production import export
from helpers.export.versioned import resolve
from helpers.serving.store import ExportStore
from helpers.tuning import save_tuning
from tests.export_fixtures import tuning as _tuning

jsonschema = pytest.importorskip("jsonschema")
SIZE = dict(n_customers=200, n_products=150, n_days=120, seed=1)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("string_ids")
    tables = root / "tables"
    tables.mkdir()
    save_tuning(_tuning(), tables)
    sample = write_sample(root / "sample", **SIZE)
    build_star_schema("files", sample, root / "text")
    build_star_schema("synthetic", output_dir=root / "ints", **SIZE)
    out = {}
    for flavour in ("text", "ints"):
        export(root / flavour, tables, root / flavour / "exports", top_n=5, n_similar=5, seed=0, api_top_n=10)
        out[flavour] = resolve(root / flavour / "exports")  # the current version
    return out


def test_every_file_speaks_text_ids(exports):
    d = exports["text"]
    rec = pd.read_parquet(d / "recommendations.parquet")
    assert rec["customer_id"].str.fullmatch(r"C\d{5}").all() and rec["product_id"].str.fullmatch(r"P\d{5}").all()
    sim_reasons = rec.loc[rec["reason"].str.startswith("similar_to:"), "reason"]
    assert len(sim_reasons) and sim_reasons.str.fullmatch(r"similar_to:P\d{5}").all()
    csv = pd.read_csv(d / "recommendations.csv", dtype=str)
    assert csv["customer_id"].str.fullmatch(r"C\d{5}").all()
    jl = pd.read_json(d / "recommendations.jsonl", lines=True, dtype=False)
    assert jl["product_id"].str.startswith("P").all()
    sim = pd.read_parquet(d / "similar_products.parquet")
    assert sim["product_id"].str.startswith("P").all() and sim["similar_product_id"].str.startswith("P").all()
    for f in ("products.parquet", "items.parquet", "top_all.parquet", "top_new.parquet", "cold_start_all.parquet",
              "components/content_product_ids.parquet"):
        assert pd.read_parquet(d / "model" / f)["product_id"].astype(str).str.startswith("P").all(), f
    assert pd.read_parquet(d / "model" / "top_all.parquet")["customer_id"].str.startswith("C").all()
    assert not (d / "model" / "items.npy").exists()  # no array of codes a reader could take for ids
    schema = json.loads((d / "recommendations.schema.json").read_text())
    assert schema["properties"]["product_id"]["type"] == "string"
    validator = jsonschema.Draft202012Validator(schema)
    for line in (d / "recommendations.jsonl").read_text().splitlines()[:50]:
        validator.validate(json.loads(line))
    assert json.loads((d / "manifest.json").read_text())["id_types"]["product_id"] == "string"


def test_same_lists_as_integer_ids(exports):
    text = pd.read_parquet(exports["text"] / "recommendations.parquet")
    ints = pd.read_parquet(exports["ints"] / "recommendations.parquet")
    assert ints["customer_id"].dtype == np.int64 and (exports["ints"] / "model" / "items.npy").exists()
    schema = json.loads((exports["ints"] / "recommendations.schema.json").read_text())
    assert schema["properties"]["product_id"]["type"] == "integer"
    as_text = ints.assign(customer_id=ints["customer_id"].map(lambda c: f"C{c:05d}"),
                          product_id=ints["product_id"].map(lambda p: f"P{p - 100000:05d}"),
                          reason=ints["reason"].str.replace(r"similar_to:(\d+)",
                                                            lambda m: f"similar_to:P{int(m[1]) - 100000:05d}",
                                                            regex=True))
    cols = ["customer_id", "rank", "product_id", "score", "reason", "reason_label"]
    pd.testing.assert_frame_equal(text[cols], as_text[cols])


def test_the_api_store_serves_a_text_id_export(exports):
    """A text-id export writes its catalog ids only as Parquet (no ``items.npy``): the store and
    the basket scorer read them there and answer in the source's ids."""
    d = exports["text"]
    assert not (d / "model" / "items.npy").exists()
    store = ExportStore(d)
    assert store.items.dtype == object and str(store.items[0]).startswith("P")
    basket = json.loads(store.basket_json(["P00001", "P00002"], 3))
    assert len(basket["items"]) == 3 and all(i["product_id"].startswith("P") for i in basket["items"])
    assert all(i["product_id"] not in ("P00001", "P00002") for i in basket["items"])
