"""The Methods chapter's ablation table, rendered from ``reports/benchmarks/ablation.json``
(written by ``python -m helpers.pipeline ablation``, :mod:`helpers.tuning.ablation`)."""

from __future__ import annotations

from pathlib import Path

from helpers import config
from helpers.report.generated import write_from_json
from helpers.report.tables import markdown_table

ABLATION_JSON = "ablation.json"
ABLATION_MD = "ablation.md"


def render(result: dict | None) -> str:
    """Markdown for the Methods chapter; says how to produce it when ``result`` is None."""
    if not result or not result.get("rows"):
        return ("*Not run here yet:* `make ablation` (after a pipeline run) trains the re-ranker once per feature "
                "group left out and fills this table.\n")
    rows = [[r["protocol"], r["variant"], r["columns"] or "", f"{r['valid NDCG@5']:.4f}",
             "" if not r["removed"] and r["variant"] == "all features" else f"{r['change']:+.4f}"]
            for r in result["rows"]]
    head = (f"Dataset `{result['dataset']}`, validation window {result['valid_window']}, the re-ranker trained on "
            f"the {result['earlier_windows']} window(s) before it, as in the hybrid chapter; measured "
            f"{result['measured_at']}. *Change* is the validation NDCG@5 without the group minus the full "
            "ranker's: a negative change is what the group adds.\n\n")
    return head + markdown_table(["protocol", "variant", "columns left out", "valid NDCG@5", "change"], rows) + "\n"


def write_page(bench_dir: Path = config.BENCH_DIR) -> Path:
    """``<bench_dir>/ablation.md`` from ``ablation.json`` (or the 'not run yet' text)."""
    return write_from_json(bench_dir, ABLATION_JSON, ABLATION_MD, render)
