"""Chapters 03-05 (the single models): the shared set-up, one tuning section per model and
the test results.

:func:`run` prepares the stages, tunes, refits and scores the chapter's models
(``helpers.tuning.workflow.run_chapter``) and glues the windows. With ``engine="spark"`` the
models the Spark engine has are tuned, refitted and scored on Spark instead
(:func:`helpers.spark.chapter.run_chapter`: the same grids, choices and files), the others
locally; the chosen models are then fitted locally on the later windows for the hybrid and
the export, as on the local engine. :func:`tuning_section`
draws the validation chart of one model, glues its chosen parameters
(``<model>_best_<protocol>``) and a sentence generated from what ran
(``<model>_grid``: the values each parameter took in the grid actually searched and
the value chosen per protocol, read back through ``load_tuning``), and returns the
tuning table. :func:`test_section` glues ``<model>_<protocol>_ndcg5|recall5|hit5`` and
returns the test table.
"""

from __future__ import annotations

import pandas as pd

from helpers import config
from helpers.data.star import load_tables
from helpers.report import display, palette
from helpers.report import plotting as P
from helpers.report.glue import glue_all, report_dirs
from helpers.report.tables import metric_value, metrics_frame
from helpers.tuning import workflow as models

#: The engines a model chapter runs on, and the models the Spark engine has
#: (:data:`helpers.spark.engine.MODELS`; repeated here so that the local engine never imports pyspark).
ENGINES = ("local", "spark")
SPARK_MODELS = ("global_popularity", "segmented_popularity", "buy_again", "als")
TABLES = ("fact_transactions", "dim_customer", "dim_product", "customer_exposure", "dim_date")
NOT_PARAMS = ("model", "protocol", "value", "fit_seconds")


def run(names: list[str], processed_dir=None, reports_dir=None, test_days: int = 28, valid_days: int = 28,
        weight_windows: int = 2, grid_overrides: dict | None = None, n_boot: int = 1000, seed: int = 0,
        engine: str = "local", spark_master: str | None = "local[2]") -> dict:
    """Tune, refit and score ``names``; the chapter dict of ``run_chapter`` plus ``tables_dir``
    (``engine``: ``"local"`` or ``"spark"``, on ``spark_master``)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    P.set_style()
    dirs = report_dirs(reports_dir)
    tables = load_tables(processed_dir, names=TABLES)
    on_spark = [n for n in names if engine == "spark" and n in SPARK_MODELS]
    local = [n for n in names if n not in on_spark]
    split, *stages = models.prepare_stages(tables, test_days, valid_days, processed_dir,  # local stages if needed
                                           names=("valid", "test") if local else ())
    later = models.later_fits(tables, split, valid_days, weight_windows, processed_dir)  # fitted ahead for 06, 08
    parts = []
    if on_spark:
        from helpers.spark.chapter import run_chapter as spark_chapter  # start-up: pyspark loads only for Spark

        parts.append(spark_chapter(on_spark, config.processed_dir(processed_dir), dirs["tables"], test_days,
                                   valid_days, grid_overrides, n_boot=n_boot, seed=seed,
                                   master=None if spark_master == "none" else spark_master))
        tuned = models.load_tuning(dirs["tables"])
        models.prefit({n: tuned[n] for n in on_spark}, list(later), seed=seed)
    if local:
        parts.append(models.run_chapter(local, *stages, dirs["tables"], grid_overrides, n_boot=n_boot, seed=seed,
                                        later=later))
    chapter = {"tuning": pd.concat([p["tuning"] for p in parts], ignore_index=True),
               "best": {k: v for p in parts for k, v in p["best"].items()},
               "metrics": pd.concat([p["metrics"] for p in parts], ignore_index=True),
               "predictions": pd.concat([p["predictions"] for p in parts], ignore_index=True),
               "engine": {n: ("spark" if n in on_spark else "local") for n in names}}
    glue_all({"valid_start": str(split.valid_start.date()), "test_start": str(split.test_start.date()),
              "test_end": str(split.end.date())})
    return {**chapter, "tables_dir": dirs["tables"], "reports_dir": reports_dir}


def _value(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "none"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_value(x) for x in v) + ")"
    return f"{v:g}" if isinstance(v, float) else str(v)


def params_text(params: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items()) or "defaults"


def grid_text(table: pd.DataFrame, model: str, chosen: dict) -> str:
    """What the grid of ``model`` searched (from the tuning table) and chose (``chosen``:
    ``{protocol: params}`` as ``load_tuning`` returns them), as one plain sentence."""
    sub = table[table["model"] == model]
    params = [c for c in sub.columns if c not in NOT_PARAMS and sub[c].notna().any()]
    n = len(sub.drop_duplicates(subset=params)) if params else 1
    searched = [c for c in params if sub[c].astype(str).nunique() > 1]
    fixed = [c for c in params if c not in searched]
    parts = []
    if searched:
        parts.append("The grid searched " + "; ".join(
            f"{c} over {', '.join(_value(v) for v in dict.fromkeys(sub[c].tolist()))}" for c in searched)
            + f" ({n} candidates)")
    else:
        parts.append("Nothing was searched (a single candidate)")
    if fixed:
        parts.append("with " + ", ".join(f"{c} fixed at {_value(sub[c].iloc[0])}" for c in fixed))
    sentence = " ".join(parts) + ". "
    shown = {p: {k: v for k, v in chosen[p].items() if k in searched} for p in chosen}
    if searched:
        sentence += "Chosen on validation: " + "; ".join(
            f"protocol {p}: {params_text(v)}" for p, v in shown.items()) + "."
    return sentence


def tuning_chart(table: pd.DataFrame, model: str, key: str, reports_dir=None, metric_label: str = "NDCG@5"):
    """Validation metric of every candidate of one model, one panel per protocol, best on top."""
    sub = table[table["model"] == model].dropna(axis=1, how="all").copy()
    params = [c for c in sub.columns if c not in NOT_PARAMS]
    varying = [c for c in params if sub[c].astype(str).nunique() > 1] or params
    sub["candidate"] = sub[varying].apply(lambda r: params_text(dict(r)), axis=1) if varying else "defaults"
    protocols = sorted(sub["protocol"].unique())
    fig, axes = P.new_figure(1, len(protocols), figsize=(10, max(3.0, 0.28 * len(sub) / 2 + 1.5)), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        g = sub[sub["protocol"] == protocol].sort_values("value")
        ax.barh(g["candidate"], g["value"], color=palette.PROTOCOL_COLORS.get(protocol, palette.ACCENT))
        P.label(ax, f"{models.LABELS.get(model, model)}: protocol '{protocol}'",
                f"validation {metric_label} (0-1)", ", ".join(varying) or "candidate")
        ax.tick_params(axis="y", labelsize=8)
    return P.save_figure(fig, key, reports_dir)


def tuning_table(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per candidate, the validation NDCG@5 of each protocol as columns."""
    sub = table[table["model"] == model].drop(columns=["model"]).dropna(axis=1, how="all")
    params = [c for c in sub.columns if c not in NOT_PARAMS]
    sub = sub.assign(**{c: sub[c].map(_value) for c in params})
    wide = sub.pivot_table(index=params, columns="protocol", values="value", dropna=False, sort=False).reset_index()
    wide.columns.name = None
    return wide.rename(columns={p: f"NDCG@5 ({p})" for p in ("all", "new")})


def tuning_section(chapter: dict, model: str):
    """Chart, glued choices and grid sentence of one model; returns its tuning table."""
    tuning_chart(chapter["tuning"], model, f"tuning_{model}", chapter["reports_dir"])
    chosen = models.load_tuning(chapter["tables_dir"])[model]
    chosen = {p: v for p, v in chosen.items() if p in chapter["best"][model]}
    glue_all({f"{model}_best_{p}": params_text(v) for p, v in chosen.items()}
             | {f"{model}_grid": grid_text(chapter["tuning"], model, chosen)})
    return display.table(tuning_table(chapter["tuning"], model))


def test_section(chapter: dict):
    """Glue each model's test NDCG@5, recall@5 and hit rate@5; return the test table."""
    m = chapter["metrics"]
    values = {}
    for name, protocol in m[["model", "protocol"]].drop_duplicates().itertuples(index=False):
        for metric, short in (("ndcg", "ndcg5"), ("recall", "recall5"), ("hit_rate", "hit5")):
            values[f"{name}_{protocol}_{short}"] = metric_value(m, name, protocol, metric)
    glue_all(values)
    note = "Test window; 95% bootstrap intervals over customers in brackets."
    spark = [models.LABELS.get(n, n) for n, e in chapter.get("engine", {}).items() if e == "spark"]
    if spark:
        note += " Tuned, fitted and scored on Apache Spark: " + ", ".join(spark) + "."
    return display.table(metrics_frame(m), note=note)
