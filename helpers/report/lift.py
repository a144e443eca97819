"""The Methods chapter's table of the hybrid on the synthetic retailer, rendered from
``reports/benchmarks/synthetic_lift.json`` (written by ``python -m helpers.pipeline lift``).

One row per (generator seed, customers, protocol): the hybrid's test NDCG@5, the best other
model and its NDCG@5, the paired bootstrap difference with its 95% interval and the verdict,
all read from each run's glued values (nothing typed here).
"""

from __future__ import annotations

from pathlib import Path

from helpers import config
from helpers.report.generated import write_from_json
from helpers.report.tables import markdown_table

LIFT_JSON = "synthetic_lift.json"
LIFT_MD = "synthetic_lift.md"
COLUMNS = ["seed", "customers", "protocol", "hybrid NDCG@5", "best other model", "its NDCG@5",
           "difference [95% CI]", "verdict"]


def render(result: dict | None) -> str:
    """Markdown for the Methods chapter; says how to produce it when ``result`` is None."""
    if not result or not result.get("rows"):
        return ("*Not run here yet:* `make synthetic-lift` runs the pipeline on the synthetic retailer for two "
                "generator seeds and two sizes and fills this table.\n")
    rows = [[r["seed"], f"{r['customers']:,}", r["protocol"], f"{r['hybrid_ndcg5']:.4f}", r["best_other"],
             f"{r['best_other_ndcg5']:.4f}", f"{r['diff']:+.4f} [{r['diff_low']:+.4f}, {r['diff_high']:+.4f}]",
             r["verdict"]] for r in result["rows"]]
    wins = sum(r["diff_low"] > 0 for r in result["rows"])
    head = (f"The same code and defaults as for Complete Journey (only the generator's seed and size change), "
            f"notebooks {', '.join(result['notebooks'])}, measured {result['measured_at']}. The interval is a "
            f"paired bootstrap over the evaluated customers; the hybrid's interval excludes zero in {wins} of "
            f"{len(rows)} rows.\n\n")
    return head + markdown_table(COLUMNS, rows) + "\n"


def write_page(bench_dir: Path = config.BENCH_DIR) -> Path:
    """``<bench_dir>/synthetic_lift.md`` from ``synthetic_lift.json`` (or the 'not run yet' text)."""
    return write_from_json(bench_dir, LIFT_JSON, LIFT_MD, render)
