"""Chapter 00 (data model): build the star schema, glue its counts, show its tables, and
glue the Code map (:mod:`helpers.report.codemap`) that the book's Code map page pastes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from IPython.display import HTML

from helpers.data.schema import data_dictionary
from helpers.data.star import build_star_schema, key_checks, load_tables, row_counts, source_params
from helpers.report import codemap, display
from helpers.report.glue import glue_all


@dataclass
class Star:
    tables: dict
    meta: dict


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
    return Star(tables, meta)


def counts(s: Star):
    return display.table(row_counts(s.tables))


def checks(s: Star):
    return display.table(key_checks(s.tables))


def added_rows(s: Star):
    rows = [{"rule": k, "rows added": v} for k, v in s.meta.get("added_rows", {}).items()]
    rows += [{"rule": f"removed: {k}", "rows added": -v} for k, v in s.meta.get("removed_rows", {}).items()]
    return display.table(pd.DataFrame(rows, columns=["rule", "rows added"]).astype({"rows added": "int64"}))


def fact_sample(s: Star, n: int = 8):
    return display.table(s.tables["fact_transactions"].head(n), decimals=2)


def dictionary():
    return display.table(data_dictionary())
