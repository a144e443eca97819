"""Chapter 00 (data model): build the star schema, glue its counts, show its tables, and
glue the Code map (:mod:`helpers.report.codemap`) that the book's Code map page pastes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from IPython.display import HTML, Markdown

from helpers.data.check import check_folder, check_source
from helpers.data.schema import data_dictionary
from helpers.data.star import (
    build_star_schema,
    decode_ids,
    key_checks,
    load_ids,
    load_tables,
    row_counts,
    source_params,
)
from helpers.report import codemap, display
from helpers.report.glue import glue_all


@dataclass
class Star:
    tables: dict
    meta: dict
    dataset: str = "completejourney"
    data_dir: object = None
    processed_dir: object = None


def build(dataset: str, data_dir=None, processed_dir=None, **knobs) -> Star:
    """Build and reload the star schema; glue its counts and the Code map."""
    meta = build_star_schema(dataset, data_dir, processed_dir, **source_params(dataset, **knobs))
    tables = load_tables(processed_dir)
    fact, cust, prod = tables["fact_transactions"], tables["dim_customer"], tables["dim_product"]
    glue_all({"n_fact_rows": len(fact), "n_customers": len(cust),
              "n_customers_with_demographics": int(cust["has_demographics"].sum()),
              "n_customers_without_demographics": int((~cust["has_demographics"]).sum()),
              "n_products": len(prod), "n_products_added": int((~prod["in_source_catalog"]).sum()),
              "n_promotion_events": len(tables["dim_promotion"]), "n_exposure_events": len(tables["customer_exposure"]),
              "n_returns": int(fact["is_return"].sum()), "n_zero_quantity": int((fact["quantity"] == 0).sum()),
              "first_date": str(fact["date"].min().date()), "last_date": str(fact["date"].max().date()),
              "n_days_covered": int((fact["date"].max() - fact["date"].min()).days) + 1,
              "data_fingerprint": meta["fingerprint"]})
    glue_all({"code_map": HTML(codemap.code_map_html(codemap.code_map()))})
    return Star(tables, meta, dataset, data_dir, processed_dir)


def counts(s: Star):
    return display.table(row_counts(s.tables))


def checks(s: Star):
    return display.table(key_checks(s.tables))


def added_rows(s: Star):
    rows = [{"rule": k, "rows added": v} for k, v in s.meta.get("added_rows", {}).items()]
    rows += [{"rule": f"removed: {k}", "rows added": -v} for k, v in s.meta.get("removed_rows", {}).items()]
    return display.table(pd.DataFrame(rows, columns=["rule", "rows added"]).astype({"rows added": "int64"}))


def fact_sample(s: Star, n: int = 8):
    """The first fact rows with the source's own identifiers (the star schema holds their codes)."""
    rows = decode_ids(s.tables["fact_transactions"].head(n), load_ids(s.processed_dir))
    return display.table(rows, decimals=2)


def data_check(s: Star) -> Markdown:
    """The data check a user runs first (``python -m helpers.pipeline check``), on this source:
    a ``files`` folder as it was sent (file names, extra columns), another source on the tables
    just built. Glues the number of errors and warnings."""
    if s.dataset == "files":
        report = check_folder(s.data_dir)
    else:
        report = check_source(s.dataset, s.data_dir, tables=s.tables)
    f = report.findings()
    glue_all({"check_errors": int((f["level"] == "error").sum()) if len(f) else 0,
              "check_warnings": int((f["level"] == "warning").sum()) if len(f) else 0})
    return Markdown(report.markdown())


def dictionary():
    return display.table(data_dictionary())
