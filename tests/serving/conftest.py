"""A tiny export (synthetic data, fixed small parameters) and its text-id twin, built once per session.

The export is written by :func:`helpers.export.production.export` as in
``tests/export/test_export_api.py``. The twin relabels every customer id ``c`` as
``C{c:05d}`` and every product id ``p`` as ``HBZ-{p}-BL`` in every file the API reads
(lists, reasons, products, catalog arrays): what an export of a retailer with text ids holds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")

from tests import export_fixtures  # noqa: E402
from tests.export_fixtures import COMPONENTS, TOP_N, tuning  # noqa: E402,F401


def customer_text(c) -> str:
    return f"C{int(c):05d}"


def product_text(p) -> str:
    return f"HBZ-{int(p)}-BL"


def _relabel_reason(r):
    if isinstance(r, str) and r.startswith("similar_to:"):
        return "similar_to:" + product_text(r.split(":", 1)[1])
    return r


def relabel_export(src: Path, dst: Path) -> None:
    """Copy an integer-id export with text ids in every file the API reads."""
    shutil.copytree(src, dst)
    m = dst / "model"
    for path in [m / "top_all.parquet", m / "top_new.parquet", m / "cold_start_all.parquet",
                 m / "cold_start_new.parquet", m / "products.parquet", dst / "similar_products.parquet"]:
        df = pd.read_parquet(path)
        if "customer_id" in df:
            df["customer_id"] = df["customer_id"].map(customer_text)
        for col in ("product_id", "similar_product_id"):
            if col in df:
                df[col] = df[col].map(product_text)
        if "reason" in df:
            df["reason"] = df["reason"].map(_relabel_reason)
        df.to_parquet(path, index=False)
    for path in [m / "items.npy", m / "components" / "content_product_ids.npy"]:
        ids = np.load(path)
        # as a text export writes them: Parquet only (a text export has no .npy twins)
        pd.DataFrame({"product_id": [product_text(p) for p in ids]}).to_parquet(path.with_suffix(".parquet"),
                                                                                index=False)
        path.unlink()


@pytest.fixture(scope="session")
def export_world(tmp_path_factory):
    """``{"processed", "tables", "out" (integer ids), "text" (text ids), "cold_ids", "manifest"}``."""
    w = export_fixtures.build(tmp_path_factory.mktemp("serving"))
    relabel_export(w["out"], w["root"] / "exports_text")
    return w | {"text": w["root"] / "exports_text"}


def make_client(folder, **settings):
    """A TestClient (lifespan run) of an app serving ``folder`` with the given settings."""
    from fastapi.testclient import TestClient

    from helpers.serving.api import create_app
    from helpers.serving.settings import Settings

    defaults = {"reload_seconds": 0.0}
    return TestClient(create_app(settings=Settings.from_env(folder, **{**defaults, **settings})))
