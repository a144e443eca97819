"""Chapter 08 (export): run the export and show what it wrote, a sample, the reasons, the
similar products, the schema and the API calls, each section one function."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from IPython.display import Markdown

from helpers.export import production as export
from helpers.report import display, palette
from helpers.report import plotting as P
from helpers.report.glue import glue_all, report_dirs

REASON_ORDER = ("buy_again", "similar_to", "popular_in_segment", "trending")
VARIANTS = (("all (repeat purchases allowed)", "recommendations"), ("new (past purchases excluded)",
                                                                   "recommendations_new"))


@dataclass
class Export:
    result: dict
    out_dir: Path  # the version folder this export wrote (``<export root>/<time>-<model_version>``)
    top_n: int
    reports_dir: object
    export_root: Path | None = None  # the versioned export root (``current`` points at ``out_dir``)


def run(processed_dir=None, reports_dir=None, export_dir=None, top_n: int = 10, n_similar: int = 10,
        seed: int = 0) -> Export:
    P.set_style()
    dirs = report_dirs(reports_dir)
    root = Path(export_dir) if export_dir else export.default_export_dir(processed_dir)
    result = export.export(processed_dir, dirs["tables"], root, top_n=top_n, n_similar=n_similar, seed=seed)
    return Export(result, Path(result["path"]), top_n, reports_dir, root)  # read the version it wrote


def files(x: Export):
    """The files written (rows each) and the glued counts."""
    c, r = x.result["row_counts"], x.result
    rows = [("recommendations.parquet / .csv / .jsonl", c["recommendations"],
             "top products per customer, the all-protocol hybrid (repeat purchases allowed)"),
            ("recommendations_new.parquet", c["recommendations_new"],
             "top products per customer, the new-protocol hybrid (past purchases excluded)"),
            ("similar_products.parquet / .csv / .jsonl", c["similar_products"],
             "most similar products of every product (text similarity)"),
            ("model/top_all.parquet, model/top_new.parquet", c["top_all"] + c["top_new"],
             "deeper per-customer lists served by the API")]
    similar = pd.read_parquet(x.out_dir / "similar_products.parquet", columns=["product_id"])
    glue_all({"export_customers": c["customers"], "export_products": c["products"], "export_catalog": c["catalog_items"],
              "export_rec_rows": c["recommendations"], "export_new_rows": c["recommendations_new"],
              "export_similar_rows": c["similar_products"], "export_cold": c["cold_start_customers_all"],
              "export_top_n": x.top_n, "export_version": r["model_version"], "export_as_of": r["as_of"],
              "export_depth": r["api_top_n"], "export_seconds": r["timings"]["total_s"],
              "export_products_with_similar": int(similar["product_id"].nunique())})
    return display.table(pd.DataFrame(rows, columns=["file", "rows", "content"]))


def sample(x: Export, n_customers: int = 2):
    """The exported lists of the first customers (descriptions cut at 60 characters)."""
    rec = pd.read_parquet(x.out_dir / "recommendations.parquet")
    ids = rec["customer_id"].drop_duplicates().iloc[:n_customers]
    s = rec[rec["customer_id"].isin(ids)][["customer_id", "rank", "product_id", "score", "reason_label",
                                           "description", "category", "brand"]]
    return display.table(s.assign(description=s["description"].str.slice(0, 60)), formats={"score": "{:.3f}"})


def reason_shares(reasons: dict) -> pd.DataFrame:
    """Share of rows per reason kind (rows) and variant (columns), in a fixed reason order."""
    shares = [(pd.Series(reasons[stem], dtype=float) / sum(reasons[stem].values())).rename(label)
              for label, stem in VARIANTS]
    out = pd.concat(shares, axis=1).fillna(0.0)
    return out.loc[[r for r in REASON_ORDER if r in out.index] + sorted(set(out.index) - set(REASON_ORDER))]


def reasons(x: Export) -> None:
    shares = reason_shares(x.result["reasons"])
    fig, ax = P.new_figure()
    shares.plot.barh(ax=ax, color=[palette.PROTOCOL_COLORS["all"], palette.PROTOCOL_COLORS["new"]], width=0.75)
    ax.invert_yaxis()
    for container in ax.containers:
        ax.bar_label(container, labels=[f"{v:.0%}" if v > 0 else "" for v in container.datavalues], padding=2,
                     fontsize=9)
    ax.margins(x=0.15)
    P.format_axis(ax, "x", "percent")
    P.label(ax, "Reasons of the exported recommendations", "share of recommendation rows (%)", "reason")
    P.legend_outside(ax, title="variant")
    P.save_figure(fig, "export_reasons", x.reports_dir)
    glue_all({"export_share_buy_again": float(shares.iloc[:, 0].get("buy_again", 0.0)),
              "export_share_similar_new": float(shares.iloc[:, 1].get("similar_to", 0.0))})


def informative_products(sim: pd.DataFrame, names: pd.Series, n: int = 2, depth: int = 5) -> list:
    """The first ``n`` products (by id) whose top-``depth`` similar products all have another
    description than the product itself and a score below 1 (not copies of the same item);
    the first products when fewer qualify."""
    top = sim[sim["rank"] <= depth]
    own = top["product_id"].map(names)
    other = top["similar_product_id"].map(names)
    good = (own != other) & (top["score"] < 0.999)
    counts = good.groupby(top["product_id"]).agg(["sum", "size"])
    ok = counts.index[(counts["sum"] == counts["size"]) & (counts["size"] == depth)]
    chosen = list(ok[:n])
    return chosen + [p for p in top["product_id"].drop_duplicates() if p not in chosen][: n - len(chosen)]


def similar(x: Export, depth: int = 5):
    sim = pd.read_parquet(x.out_dir / "similar_products.parquet")
    names = pd.read_parquet(x.out_dir / "model" / "products.parquet").set_index("product_id")["description"]
    view = sim[sim["product_id"].isin(informative_products(sim, names, depth=depth)) & (sim["rank"] <= depth)]
    view = view.assign(product=view["product_id"].map(names).str.slice(0, 45),
                       similar_product=view["similar_product_id"].map(names).str.slice(0, 45))
    return display.table(view[["product_id", "product", "rank", "similar_product_id", "similar_product", "score"]]
                         .rename(columns=lambda c: c.replace("_", " ")), formats={"score": "{:.3f}"})


def schema_frame(schema: dict) -> pd.DataFrame:
    rows = []
    for name, spec in schema["properties"].items():
        kind = spec.get("type")
        limits = ", ".join(f"{k} {spec[k]}" for k in ("minimum", "maximum", "pattern", "format") if k in spec
                           and not (k in ("minimum", "maximum") and abs(spec[k]) > 1e15))
        rows.append({"field": name, "type": " or ".join(kind) if isinstance(kind, list) else kind,
                     "required": name in schema["required"], "constraints": limits,
                     "description": spec.get("description", "")})
    return pd.DataFrame(rows)


def schema(x: Export):
    """The recommendation schema's fields (text escaped: ``similar_to:<product_id>`` stays visible)."""
    return display.table(schema_frame(json.loads((x.out_dir / "recommendations.schema.json").read_text())))


def api_calls(x: Export, base: str = "http://127.0.0.1:8000") -> Markdown:
    """The API calls of the delivery section, with a customer and products of this export."""
    rec = pd.read_parquet(x.out_dir / "recommendations.parquet", columns=["customer_id", "product_id"])
    customer = rec["customer_id"].tolist()[0]  # the source's own ids: integers or text
    basket = rec.loc[rec["customer_id"] == customer, "product_id"].iloc[:2].tolist()
    return Markdown(f"""```bash
make serve    # uvicorn helpers.serving.api:app on {base}

curl {base}/health
curl "{base}/customers/{customer}/recommendations?k=10"
curl "{base}/customers/{customer}/recommendations?k=10&exclude_purchased=true"
curl "{base}/products/{basket[0]}/similar?k=5"
curl -X POST {base}/recommendations -H "Content-Type: application/json" \\
     -d '{{"product_ids": {json.dumps(basket)}, "k": 10}}'
```""")
