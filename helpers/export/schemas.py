"""The export's file layouts: Arrow schemas of the files and JSON Schema (2020-12) of one row.

Identifier columns are typed as in the source (:class:`helpers.data.ids.IdMap`):
``integer`` ids as int64 / JSON integers, text ids as strings. The ``*_SCHEMA``
constants are the layouts of integer ids (Complete Journey, the synthetic source).
"""

from __future__ import annotations

import pyarrow as pa

MAX_K = 100  # largest k the API serves; depth of the precomputed per-customer lists
SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
REC_COLUMNS = ["customer_id", "rank", "product_id", "score", "reason", "reason_label", "description", "category",
               "brand", "model_version", "generated_at"]
TOP_COLUMNS = ["customer_id", "rank", "product_id", "score", "reason"]
SIM_COLUMNS = ["product_id", "rank", "similar_product_id", "score"]
SCORE_DECIMALS = 6
INTEGER, STRING = "integer", "string"


def reason_pattern(product_type: str = INTEGER) -> str:
    """The pattern of a reason code; ``similar_to:`` names a product id of the source's type."""
    pid = "-?[0-9]+" if product_type == INTEGER else ".+"
    return rf"^(buy_again|trending|similar_to:{pid}|popular_in_segment:.+)$"


REASON_PATTERN = reason_pattern(INTEGER)


def _pa(id_type: str) -> pa.DataType:
    return pa.int64() if id_type == INTEGER else pa.string()


def rec_arrow_schema(customer_type: str = INTEGER, product_type: str = INTEGER) -> pa.Schema:
    return pa.schema([("customer_id", _pa(customer_type)), ("rank", pa.int32()), ("product_id", _pa(product_type)),
                      ("score", pa.float64()), ("reason", pa.string()), ("reason_label", pa.string()),
                      ("description", pa.string()), ("category", pa.string()), ("brand", pa.string()),
                      ("model_version", pa.string()), ("generated_at", pa.string())])


def top_arrow_schema(customer_type: str = INTEGER, product_type: str = INTEGER) -> pa.Schema:
    return pa.schema([("customer_id", _pa(customer_type)), ("rank", pa.int32()), ("product_id", _pa(product_type)),
                      ("score", pa.float64()), ("reason", pa.string())])


def sim_arrow_schema(product_type: str = INTEGER) -> pa.Schema:
    return pa.schema([("product_id", _pa(product_type)), ("rank", pa.int32()),
                      ("similar_product_id", _pa(product_type)), ("score", pa.float64())])


REC_SCHEMA, TOP_SCHEMA, SIM_SCHEMA = rec_arrow_schema(), top_arrow_schema(), sim_arrow_schema()


def _ident(id_type: str) -> dict:
    if id_type == INTEGER:
        return {"type": "integer", "minimum": -(2 ** 63), "maximum": 2 ** 63 - 1}
    return {"type": "string", "minLength": 1}


def recommendations_schema(top_n: int, customer_type: str = INTEGER, product_type: str = INTEGER) -> dict:
    ident = _ident(product_type)
    text = {"type": ["string", "null"]}
    return {
        "$schema": SCHEMA_URL,
        "$id": "recommendations.schema.json",
        "title": "Recommendation",
        "description": (f"One recommended product for one customer: rank 1 is the best. The batch export holds "
                        f"ranks 1..{top_n} for every customer; the API returns up to {MAX_K}. customer_id is "
                        f"null for an anonymous basket (API POST /recommendations)."),
        "type": "object",
        "properties": {
            "customer_id": {**_ident(customer_type), "type": [_ident(customer_type)["type"], "null"],
                            "description": "Customer (household) id, as in the source."},
            "rank": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "1 = best."},
            "product_id": {**ident, "description": "Recommended product id (dim_product.product_id)."},
            "score": {"type": "number", "description": "Hybrid score (weighted min-max normalized component "
                                                       "scores, or, where the hybrid has a learned re-ranker, "
                                                       "1 + sum of weights + its purchase probability for the "
                                                       "re-ranked candidates; times business-rule multipliers); "
                                                       "higher is better; comparable within one customer's list "
                                                       "only."},
            "reason": {"type": "string", "pattern": reason_pattern(product_type),
                       "description": "buy_again | similar_to:<product_id> | "
                                      "popular_in_segment:<segment_type>=<segment> | trending."},
            "reason_label": {"type": "string", "minLength": 1, "description": "Human sentence for the reason."},
            "description": {**text, "description": "Product description (null where unknown)."},
            "category": {**text, "description": "Product category (null where unknown)."},
            "brand": {**text, "description": "Product brand (null where unknown)."},
            "model_version": {"type": "string", "pattern": "^[0-9a-f]{12}$",
                              "description": "Short sha256 of the tuned parameters and the data fingerprint."},
            "generated_at": {"type": "string", "format": "date-time",
                             "description": "When the list was generated (UTC, RFC 3339)."},
        },
        "required": list(REC_COLUMNS),
        "additionalProperties": False,
    }


def similar_products_schema(n_similar: int, product_type: str = INTEGER) -> dict:
    ident = _ident(product_type)
    text = {"type": ["string", "null"]}
    return {
        "$schema": SCHEMA_URL,
        "$id": "similar_products.schema.json",
        "title": "Similar product",
        "description": (f"One of the (up to {n_similar}) most similar products of a product, by cosine similarity "
                        f"of the TF-IDF vectors of the product text. The API adds the similar product's "
                        f"description, category and brand."),
        "type": "object",
        "properties": {
            "product_id": {**ident, "description": "Query product id."},
            "rank": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "1 = most similar."},
            "similar_product_id": {**ident, "description": "Similar product id (never the query itself)."},
            "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "Cosine similarity."},
            "description": text,
            "category": text,
            "brand": text,
        },
        "required": list(SIM_COLUMNS),
        "additionalProperties": False,
    }
