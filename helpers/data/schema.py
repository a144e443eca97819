"""The star-schema contract every data source is validated into.

Six tables, written as Parquet to ``data/processed/`` (or a run's output folder):

``fact_transactions``
    One row per purchase line: ``basket_id, customer_id, product_id, store_id,
    timestamp, date, quantity, sales_value`` plus the discounts the source has
    (``retail_disc, coupon_disc, coupon_match_disc``; ``discount`` is their sum,
    a non-negative amount taken off the shelf price) and ``on_promotion`` (the
    product was on display or in a mailer in that store that week; null when the
    source has no promotion data). Returns are lines with a negative quantity and
    a non-positive sales value: they are kept and flagged by ``is_return``.
    Lines with quantity 0 (price adjustments in Complete Journey) are kept.

``dim_customer``
    One row per customer. Customers that appear in transactions but have no
    demographics are kept, with null attributes and ``has_demographics=False``.

``dim_product``
    One row per product: category hierarchy ``department > category >
    product_type``, ``brand``, ``description`` (the text used for TF-IDF),
    ``package_size``, optional ``unit_price`` and ``margin`` (fraction of price).
    Products sold but missing from the source's product table are added with
    null attributes and ``in_source_catalog=False``.

``dim_date``
    One row per calendar day from the first to the last transaction date.

``dim_promotion``
    Promotion events: ``product_id``, ``store_id`` (null when chain-wide), a
    half-open period ``[start_date, end_date)``, ``promo_type`` (``display``,
    ``mailer``, ``campaign``, ``discount``) and ``detail`` (location code,
    campaign type, ...).

``customer_exposure``
    Customer-level marketing events: ``campaign_received`` (dated at the
    campaign start) and ``coupon_redeemed`` (dated at redemption).

Identifiers (type ``id``: ``customer_id``, ``product_id``, ``basket_id``,
``store_id``, ``campaign_id``, ``coupon_id``, ``manufacturer_id``) are the
source's own, integers or text (leading zeros kept). The written star schema
holds integer codes (the ids themselves for integer ids) and the lookup of text
ids beside it (:mod:`helpers.data.ids`).

Business rules (:mod:`helpers.data.validate`, :data:`SANITY_RULES`): errors
stop the build, warnings are reported by the data check
(``python -m helpers.data.check``) and do not block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # one of: id, int, float, bool, datetime, date, string
    description: str
    required: bool = True  # must be present in a source table
    nullable: bool = False  # may hold nulls


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    required_in_files: bool = True  # must a `files` source provide it?
    foreign_keys: dict[str, str] = field(default_factory=dict)  # column -> "table.column"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


C = Column

FACT_TRANSACTIONS = Table(
    "fact_transactions",
    "One row per purchase line (a product in a basket).",
    (
        C("basket_id", "id", "Basket (receipt) identifier."),
        C("customer_id", "id", "Customer (household) identifier; must exist in dim_customer."),
        C("product_id", "id", "Product identifier; must exist in dim_product."),
        C("store_id", "id", "Store identifier.", required=False, nullable=True),
        C("timestamp", "datetime", "When the basket was rung up (naive local time)."),
        C("date", "date", "Calendar day of the timestamp (derived when absent).", required=False),
        C("quantity", "float", "Units bought; negative for returns, 0 for adjustments."),
        C("sales_value", "float", "Amount paid for the line, after discounts, in currency units."),
        C("retail_disc", "float", "Loyalty-card / shelf discount (>= 0).", required=False),
        C("coupon_disc", "float", "Manufacturer coupon discount (>= 0).", required=False),
        C("coupon_match_disc", "float", "Retailer coupon-match discount (>= 0).", required=False),
        C("discount", "float", "Total discount: sum of the discount columns (>= 0).", required=False),
        C("on_promotion", "bool", "Product on display or in a mailer for that store and week.",
          required=False, nullable=True),
        C("is_return", "bool", "Line is a return (quantity < 0).", required=False),
    ),
    key=(),
    foreign_keys={"customer_id": "dim_customer.customer_id", "product_id": "dim_product.product_id"},
)

DIM_CUSTOMER = Table(
    "dim_customer",
    "One row per customer; demographics are null where unknown.",
    (
        C("customer_id", "id", "Customer (household) identifier."),
        C("age_band", "string", "Age band of the head of household, e.g. '25-34'.",
          required=False, nullable=True),
        C("gender", "string", "Gender ('F', 'M'); null where the source has none.",
          required=False, nullable=True),
        C("income_band", "string", "Yearly household income band, e.g. '50-74K'.",
          required=False, nullable=True),
        C("home_ownership", "string", "Homeowner / renter status.", required=False, nullable=True),
        C("marital_status", "string", "Married / unmarried.", required=False, nullable=True),
        C("household_size", "string", "Household size band ('1' .. '5+').", required=False, nullable=True),
        C("household_comp", "string", "Household composition.", required=False, nullable=True),
        C("kids_count", "string", "Number of children band.", required=False, nullable=True),
        C("has_demographics", "bool", "The source holds demographics for this customer.", required=False),
    ),
    key=("customer_id",),
)

DIM_PRODUCT = Table(
    "dim_product",
    "One row per product with its category hierarchy and text.",
    (
        C("product_id", "id", "Product identifier."),
        C("department", "string", "Top level of the category hierarchy.", nullable=True),
        C("category", "string", "Second level of the hierarchy.", required=False, nullable=True),
        C("product_type", "string", "Third level of the hierarchy.", required=False, nullable=True),
        C("brand", "string", "Brand (or 'National' / 'Private' in Complete Journey).",
          required=False, nullable=True),
        C("manufacturer_id", "id", "Manufacturer identifier.", required=False, nullable=True),
        C("description", "string", "Human-readable text used for TF-IDF content similarity.",
          required=False),
        C("package_size", "string", "Package size as printed, e.g. '14 OZ'.", required=False, nullable=True),
        C("unit_price", "float", "List price per unit, where known.", required=False, nullable=True),
        C("margin", "float", "Gross margin as a fraction of price, where known.",
          required=False, nullable=True),
        C("in_source_catalog", "bool", "False for products only seen in transactions.", required=False),
    ),
    key=("product_id",),
)

DIM_DATE = Table(
    "dim_date",
    "One row per calendar day in the transaction range.",
    (
        C("date", "date", "Calendar day."),
        C("year", "int", "Calendar year."),
        C("quarter", "int", "Quarter 1-4."),
        C("month", "int", "Month 1-12."),
        C("week", "int", "ISO week number."),
        C("day_of_week", "int", "0 = Monday .. 6 = Sunday."),
        C("day_name", "string", "Day name, e.g. 'Monday'."),
        C("is_weekend", "bool", "Saturday or Sunday."),
        C("season", "string", "Meteorological season, northern hemisphere (Dec-Feb = Winter)."),
        C("is_holiday_period", "bool", "Between 20 November and 31 December inclusive."),
    ),
    key=("date",),
    required_in_files=False,
)

DIM_PROMOTION = Table(
    "dim_promotion",
    "Promotion events with a half-open period [start_date, end_date).",
    (
        C("product_id", "id", "Promoted product."),
        C("store_id", "id", "Store, or null for chain-wide promotions.", required=False, nullable=True),
        C("start_date", "date", "First day of the promotion."),
        C("end_date", "date", "Day after the last day of the promotion (exclusive)."),
        C("promo_type", "string", "display, mailer, campaign or discount (a source's other types are kept)."),
        C("detail", "string", "Location code, campaign type or other detail.", required=False, nullable=True),
        C("campaign_id", "id", "Campaign, for campaign coupons.", required=False, nullable=True),
    ),
    key=(),
    required_in_files=False,
)

CUSTOMER_EXPOSURE = Table(
    "customer_exposure",
    "Marketing events per customer: campaigns received and coupons redeemed.",
    (
        C("customer_id", "id", "Customer identifier."),
        C("event", "string", "campaign_received or coupon_redeemed."),
        C("campaign_id", "id", "Campaign identifier.", nullable=True),
        C("date", "date", "Campaign start (received) or redemption day (redeemed)."),
        C("coupon_id", "id", "Coupon code for redemptions.", required=False, nullable=True),
    ),
    key=(),
    required_in_files=False,
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (FACT_TRANSACTIONS, DIM_CUSTOMER, DIM_PRODUCT, DIM_DATE, DIM_PROMOTION, CUSTOMER_EXPOSURE)
}

# (table, column, rule, level, what it means): level "error" stops the build, "warning" is reported only
SANITY_RULES = (
    ("dim_product", "unit_price", "non-negative", "error", "a list price below zero"),
    ("fact_transactions", "sales_value", "sign", "error",
     "a negative sales value on a line with positive quantity (returns need quantity < 0)"),
    ("fact_transactions", "sales_value", "return-value", "warning",
     "a return (quantity < 0) with a positive sales value: refunds are expected to be <= 0"),
    ("fact_transactions", "quantity", "extreme-quantity", "warning",
     "a line quantity above 1,000 units (fuel or weighed goods may be legitimate)"),
    ("dim_customer", "*", "mapped-but-empty", "warning", "a column present in the source but entirely null"),
    ("*", "*_id", "leading-zero-twins", "warning", "text ids equal once leading zeros are dropped (100001, 0100001)"),
    ("fact_transactions", "customer_id", "minimum-size", "error",
     "fewer than 2 customers with purchases: nothing to evaluate (under 100: a warning, wide intervals)"),
)
EXTREME_QUANTITY = 1000
MIN_CUSTOMERS_ERROR, MIN_CUSTOMERS_WARNING = 2, 100

HOLIDAY_START = (11, 20)  # month, day: start of the holiday period (inclusive)


def data_dictionary() -> pd.DataFrame:
    """The data dictionary as a table: one row per column of every table."""
    rows = []
    for t in TABLES.values():
        for c in t.columns:
            rows.append(
                {
                    "table": t.name,
                    "column": c.name,
                    "type": c.dtype,
                    "required": c.required,
                    "nullable": c.nullable,
                    "key": c.name in t.key,
                    "description": c.description,
                }
            )
    return pd.DataFrame(rows)


def sanity_rules() -> pd.DataFrame:
    """The business and size rules with their level (error: the build stops; warning: the check reports)."""
    return pd.DataFrame(SANITY_RULES, columns=["table", "column", "rule", "level", "meaning"])
