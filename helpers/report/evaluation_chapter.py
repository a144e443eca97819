"""Chapter 07 (evaluation) and the figures of the landing page.

:func:`run` scores the hybrid tuned in 06 on the test window (once), collects every
chapter's test metrics and glues the headline figures (:mod:`helpers.report.summary`). The
section functions draw the model comparison, the lift over the best baseline per segment,
the segment detail (one loop) and coverage / novelty.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from helpers.data.star import load_meta, load_tables
from helpers.features.segments import SEGMENT_TYPES
from helpers.report import comparison, dashboard, display, summary
from helpers.report import plotting as P
from helpers.report.glue import glue_all, report_dirs
from helpers.report.tables import metrics_frame
from helpers.tuning import workflow as models
from helpers.tuning.stages import Stage

TABLES = ("fact_transactions", "dim_customer", "dim_product", "dim_promotion", "customer_exposure", "dim_date")


@dataclass
class Evaluation:
    metrics: pd.DataFrame
    predictions: pd.DataFrame
    test: Stage
    comparisons: dict
    reports_dir: object
    paired_boot: int
    seed: int
    dataset: str = "unknown"
    tables_dir: object = None


def run(processed_dir=None, reports_dir=None, test_days: int = 28, valid_days: int = 28, n_boot: int = 1000,
        paired_boot: int = 2000, seed: int = 0, dataset: str = "unknown") -> Evaluation:
    P.set_style()
    dirs = report_dirs(reports_dir)
    tables = load_tables(processed_dir, names=TABLES,
                         columns={"dim_promotion": ["product_id", "start_date", "end_date"]})  # the promotion rule
    split, test = models.prepare_stages(tables, test_days, valid_days, processed_dir, names=("test",))
    models.evaluate_hybrid(test, dirs["tables"], n_boot=n_boot, seed=seed, dataset=dataset,  # tuned in 06, scored once
                           fingerprint=load_meta(processed_dir).get("fingerprint"))
    metrics, predictions = dashboard.collect(dirs["tables"])
    comparisons = {}
    for protocol in ("all", "new"):
        other = dashboard.best_other(metrics, protocol)
        comparisons[protocol] = dashboard.compare(predictions, test, protocol, "hybrid", other, n_boot=paired_boot,
                                                  seed=seed) | {"baseline": other}
    glue_all(summary.glue_values(metrics, comparisons, test_days)
             | {"eval_test_start": str(split.test_start.date()), "eval_test_end": str(split.end.date())})
    return Evaluation(metrics, predictions, test, comparisons, reports_dir, paired_boot, seed, dataset, dirs["tables"])


def model_comparison(e: Evaluation) -> None:
    """The landing page's chart (hit rate@5) and the chapter's (NDCG@5), glued."""
    comparison.model_chart(e.metrics, "summary_chart", e.reports_dir, metric="hit_rate")
    comparison.model_chart(e.metrics, "model_comparison", e.reports_dir, metric="ndcg")


def metrics_table(e: Evaluation):
    """Every model's test precision, recall, NDCG and hit rate at 5 with their intervals."""
    return display.table(metrics_frame(e.metrics), note="Test window; 95% bootstrap intervals over customers in "
                                                         "brackets.")


def segment_lift(e: Evaluation) -> None:
    """Hybrid minus the protocol's best other model in every segment (paired bootstrap)."""
    def per_customer(model, protocol):
        cust, values = dashboard.per_customer(e.predictions, e.test, model, protocol)
        return cust, values[("ndcg", 5)]

    segs = e.test.fit.segments
    frames = [comparison.segment_lift_table(per_customer, segs, cmp["baseline"], protocol, n_boot=e.paired_boot,
                                            seed=e.seed, order=[t for t in SEGMENT_TYPES
                                                                if t in set(segs["segment_type"])])
              for protocol, cmp in e.comparisons.items()]
    comparison.segment_lift_chart(pd.concat(frames, ignore_index=True), "segment_lift", e.reports_dir)


def segment_detail(e: Evaluation) -> None:
    dashboard.segment_details(e.metrics, e.reports_dir)


def coverage_novelty(e: Evaluation):
    table = comparison.coverage_novelty(e.metrics, e.predictions, e.test.fit)
    return display.table(table, formats={"coverage@10": "{:.2%}", "novelty@10": "{:.2f}"},
                         note="Coverage: share of the catalog in at least one top-10 list. Novelty: mean "
                              "self-information of the recommended products in bits (higher: less popular).")


def test_ledger(e: Evaluation):
    """Every hybrid configuration scored on this dataset's test window, this run's included
    (:mod:`helpers.tuning.ledger`); glues how many there are."""
    ledger = pd.read_csv(e.tables_dir / "test_ledger.csv", dtype={"config_hash": "string"})
    mine = ledger.loc[ledger["dataset"] == e.dataset].drop(columns=["dataset"])
    glue_all({"ledger_n_configurations": int(len(mine))})
    return display.table(mine.rename(columns={"ndcg5_all": "NDCG@5 all", "ndcg5_new": "NDCG@5 new"}))
