"""Chapter 06 (the hybrid): the weight search, the re-ranker's choice and the business rules
on validation (``helpers.tuning.workflow.run_hybrid``), shown and glued section by section.
The test window is not touched here (chapter 07 scores it)."""

from __future__ import annotations

import pandas as pd

from helpers.data.star import load_tables
from helpers.models.hybrid import Rules
from helpers.report import display, palette
from helpers.report import plotting as P
from helpers.report.glue import glue_all, report_dirs
from helpers.tuning import workflow as models

TABLES = ("fact_transactions", "dim_customer", "dim_product", "dim_promotion", "customer_exposure", "dim_date")
NAN = float("nan")


def rule_variants(has_margin: bool) -> dict[str, Rules]:
    """The rules priced one at a time on validation (margin only where margins are known)."""
    variants = {"availability (28 days)": Rules(availability_days=28),
                "diversity (max 2 per category)": Rules(max_per_category=2),
                "promotion boost (+20%)": Rules(promo_boost=0.2)}
    if has_margin:
        variants["margin-aware (w=0.5)"] = Rules(margin_weight=0.5)
    return variants


def run(processed_dir=None, reports_dir=None, test_days: int = 28, valid_days: int = 28, seed: int = 0,
        components=models.HYBRID_COMPONENTS, weight_windows: int = 2, rules: dict | None = None,
        ranker: dict | None = None, **search) -> dict:
    """Search the weights (``search``: pool_size, n_trials, by_history, light_max_baskets),
    choose the re-ranker (``ranker``: its keyword arguments, None = off; its promotion calendar
    looks ``valid_days`` ahead, the window it predicts) and price the rules
    (``rules``: the final model's :class:`Rules` fields)."""
    P.set_style()
    dirs = report_dirs(reports_dir)
    tables = load_tables(processed_dir, names=TABLES,
                         columns={"dim_promotion": ["product_id", "start_date", "end_date"]})  # the promotion rule
    split, valid = models.prepare_stages(tables, test_days, valid_days, processed_dir, names=("valid",))
    earlier = models.earlier_stages(tables, split, valid_days, weight_windows - 1, processed_dir)
    final_rules = Rules(**(rules or {}))
    variants = rule_variants(bool(tables["dim_product"]["margin"].notna().any()))
    names = {p: list(c) for p, c in components.items()} if isinstance(components, dict) else list(components)
    result = models.run_hybrid(valid, dirs["tables"], names, final_rules, variants, seed=seed,
                               earlier=earlier, ranker=None if ranker is None else {"horizon_days": valid_days, **ranker,
                                                                                     "seed": seed}, **search)
    return {**result, "n_windows": 1 + len(earlier), "final_rules": final_rules, "reports_dir": reports_dir}


def weights_frame(weights: dict) -> pd.DataFrame:
    """One row per protocol x customer group (``everyone`` or light / heavy), one column per component."""
    rows = []
    for protocol, wp in weights.items():
        buckets = wp if "light" in wp else {"everyone": wp}
        rows += [{"protocol": protocol, "customers": b, **w} for b, w in buckets.items()]
    return pd.DataFrame(rows).fillna(0.0)


def weights(result: dict):
    """Glue the best validation blend per protocol; return the weights table."""
    best = result["trials"].groupby("protocol")["value"].max()
    glue_all({"hybrid_valid_all_ndcg5": best.get("all", NAN), "hybrid_valid_new_ndcg5": best.get("new", NAN),
              "hybrid_n_trials": int(len(result["trials"])), "hybrid_weight_windows": result["n_windows"]})
    return display.table(weights_frame(result["weights"]), decimals=3)


def weight_search(result: dict) -> None:
    """Every trial's mean validation NDCG@5 and the best so far, one panel per protocol."""
    trials = result["trials"]
    fig, axes = P.new_figure(1, trials["protocol"].nunique(), figsize=(10, 3.8), squeeze=False)
    for ax, (protocol, g) in zip(axes[0], trials.groupby("protocol")):
        x = range(1, len(g) + 1)
        color = palette.PROTOCOL_COLORS.get(protocol, palette.ACCENT)
        ax.scatter(x, g["value"], s=4, alpha=0.4, color=color, label=f"trial ({protocol})")
        ax.plot(x, g["value"].cummax().to_numpy(), color="black", label="best so far")
        P.label(ax, f"Weight search, protocol '{protocol}'", "trial (count)", "mean validation NDCG@5 (0-1)")
    handles = {lab: h for ax in axes[0] for h, lab in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=len(handles), fontsize=9)
    P.save_figure(fig, "hybrid_weight_search", result["reports_dir"])


def ranker_choice(result: dict):
    """Glue, per protocol, the re-ranker's and the blend's held-out validation NDCG@5 and the choice
    (keys ``ranker_<protocol>_valid_ndcg5``, ``ranker_<protocol>_blend_valid_ndcg5``, ``ranker_<protocol>_choice``;
    ``not offered`` where the re-ranker did not compete)."""
    sel = result["selection"]
    values = {}
    for protocol in ("all", "new"):
        mine = sel.loc[sel["protocol"] == protocol] if len(sel) else sel
        by = mine.set_index("method")["valid NDCG@5"] if len(mine) else pd.Series(dtype=float)
        chosen = mine.loc[mine["chosen"].astype(bool), "method"] if len(mine) else pd.Series(dtype=object)
        values |= {f"ranker_{protocol}_choice": chosen.iloc[0] if len(chosen) else "weighted blend (re-ranker not offered)",
                   f"ranker_{protocol}_valid_ndcg5": float(by.get("learned re-ranker", NAN)),
                   f"ranker_{protocol}_blend_valid_ndcg5": float(by.get("weighted blend", NAN))}
    glue_all(values)
    if not len(sel):
        return display.note("The re-ranker is off in this run (use_ranker = False): the blend is used.")
    return display.table(sel)


def business_rules(result: dict):
    """Glue the rules the final model applies; return each rule's validation NDCG@5 per protocol."""
    table = result["rules"].pivot(index="rule", columns="protocol", values="valid NDCG@5")
    table.columns.name = None
    applied = {k: v for k, v in vars(result["final_rules"]).items() if v}
    glue_all({"rules_applied": ", ".join(f"{k}={v}" for k, v in applied.items()) or "none"})
    return display.table(table.rename(columns=lambda p: f"valid NDCG@5 ({p})"), index=True)
