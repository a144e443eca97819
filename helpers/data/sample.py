"""``data/sample``: a small folder of a retailer's files, as a new user would bring them (``make sample``).

Generated from the synthetic source (:mod:`helpers.data.sources.synthetic`) in
its *string-identifier* flavour, with the habits of real exports that
``recbook.toml`` maps (:mod:`helpers.data.recbook`):

* identifiers are text: customers ``C00001``.., products ``P00001``.., stores
  ``S01``.. and ``WEB`` (the online store), baskets ``B0000001``.., campaigns
  ``K001``.., coupons ``Q000001``..;
* ``sales.csv.gz``: the transactions, ``;``-delimited with decimal commas;
* ``products.csv``: ``sku`` for the product id, ``size`` for the package size,
  descriptions quoted (they hold commas), Windows line endings, a UTF-8 BOM;
* ``customers.parquet``: ``household_size`` an integer column with nulls;
* ``promotions.csv``: a ``promotion_id`` the contract does not know, an
  *inclusive* ``end_date`` in ``dd/mm/yyyy``, and the type ``coupon`` for a discount;
* ``exposure.csv``: campaigns received and coupons redeemed.

The same folder with integer ids gives
identical metrics: the mapping changes nothing but names.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data.sources import synthetic

SAMPLE = dict(n_customers=1500, n_products=600, n_days=300, seed=7)
RECBOOK_TOML = """\
# recbook.toml: how this folder maps onto the star schema (python -m helpers.data.recbook data/sample)
currency = "EUR"

[tables]
fact_transactions = "sales"
dim_customer = "customers"
dim_product = "products"
dim_promotion = "promotions"
customer_exposure = "exposure"

[columns.dim_product]
sku = "product_id"
size = "package_size"

[csv]
decimal = ","            # sales.csv.gz writes 12,99; the delimiter (;) is sniffed

[dates.columns]
"dim_promotion.start_date" = "%d/%m/%Y"
"dim_promotion.end_date" = "%d/%m/%Y"

[promotions]
end_date = "inclusive"   # a one-day promotion has start_date = end_date
[promotions.types]
coupon = "discount"

[ids]
customer_id = "text"
product_id = "text"
"""


def _labels(values: pd.Series, prefix: str, width: int, order: np.ndarray | None = None) -> pd.Series:
    """``prefix`` + the 1-based rank of each value among ``order`` (default: its sorted unique values)."""
    order = np.sort(pd.unique(values.dropna())) if order is None else order
    rank = pd.Index(order).get_indexer(values.fillna(order[0]))
    out = pd.Series([f"{prefix}{r + 1:0{width}d}" for r in rank], index=values.index, dtype=object)
    return out.where(values.notna(), None)


def string_flavour(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The synthetic tables with text identifiers and the sample's column names (see the module docstring)."""
    fact, cust, prod = raw["fact_transactions"], raw["dim_customer"], raw["dim_product"]
    promo, expo = raw["dim_promotion"], raw["customer_exposure"]
    c_order, p_order = cust["customer_id"].to_numpy(), prod["product_id"].to_numpy()
    stores = np.sort(pd.unique(pd.concat([fact["store_id"], promo["store_id"].dropna()]).astype(np.int64)))
    store_label = {s: f"S{i + 1:02d}" for i, s in enumerate(stores[:-1])} | {stores[-1]: "WEB"}
    store = lambda s: s.map(lambda v: store_label.get(int(v)), na_action="ignore").astype(object)  # noqa: E731
    camp = np.sort(pd.unique(pd.concat([promo["campaign_id"].dropna(), expo["campaign_id"].dropna()])))

    sales = pd.DataFrame({
        "basket_id": _labels(fact["basket_id"], "B", 7),
        "customer_id": _labels(fact["customer_id"], "C", 5, c_order),
        "product_id": _labels(fact["product_id"], "P", 5, p_order),
        "store_id": store(fact["store_id"]),
        "timestamp": fact["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "quantity": fact["quantity"], "sales_value": fact["sales_value"],
        "retail_disc": fact["retail_disc"], "coupon_disc": fact["coupon_disc"],
        "coupon_match_disc": fact["coupon_match_disc"],
    })
    customers = cust.assign(customer_id=_labels(cust["customer_id"], "C", 5, c_order))
    size = customers["household_size"].replace({"5+": "5"})
    customers["household_size"] = pd.to_numeric(size, errors="coerce").astype("Int64")
    products = prod.drop(columns=["in_source_catalog"]).assign(
        product_id=_labels(prod["product_id"], "P", 5, p_order)).rename(
        columns={"product_id": "sku", "package_size": "size"})
    promotions = pd.DataFrame({
        "promotion_id": [f"PR{i + 1:05d}" for i in range(len(promo))],
        "product_id": _labels(promo["product_id"], "P", 5, p_order),
        "store_id": store(promo["store_id"]),
        "start_date": promo["start_date"].dt.strftime("%d/%m/%Y"),
        "end_date": (promo["end_date"] - pd.Timedelta(days=1)).dt.strftime("%d/%m/%Y"),
        "promo_type": promo["promo_type"].replace({"discount": "coupon"}),
        "detail": promo["detail"],
        "campaign_id": _labels(promo["campaign_id"], "K", 3, camp),
    })
    exposure = expo.assign(customer_id=_labels(expo["customer_id"], "C", 5, c_order),
                           campaign_id=_labels(expo["campaign_id"], "K", 3, camp),
                           coupon_id=_labels(expo["coupon_id"], "Q", 6))
    return {"sales": sales, "customers": customers, "products": products, "promotions": promotions,
            "exposure": exposure}


def write_sample(folder, **params) -> Path:
    """Write the sample folder atomically (a temporary sibling renamed into place)."""
    folder = Path(folder).resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    files = string_flavour(synthetic.generate(**{**SAMPLE, **params}))
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        files["sales"].to_csv(tmp / "sales.csv.gz", sep=";", decimal=",", index=False)
        files["customers"].to_parquet(tmp / "customers.parquet", index=False)
        with open(tmp / "products.csv", "w", encoding="utf-8-sig", newline="") as f:
            files["products"].to_csv(f, index=False, lineterminator="\r\n")
        files["promotions"].to_csv(tmp / "promotions.csv", index=False)
        files["exposure"].to_csv(tmp / "exposure.csv", index=False)
        (tmp / "recbook.toml").write_text(RECBOOK_TOML)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.data.sample", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default="data/sample")
    ap.add_argument("--n-customers", type=int, default=SAMPLE["n_customers"])
    ap.add_argument("--seed", type=int, default=SAMPLE["seed"])
    args = ap.parse_args(argv)
    out = write_sample(args.folder, n_customers=args.n_customers, seed=args.seed)
    print(f"sample written to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
