"""The Performance page's tables and plots, rendered from ``reports/benchmarks/bench.json``.

:mod:`helpers.bench` measures and writes ``bench.json``; this module only reads it:
``performance_tables.md`` (included by ``book/performance.md``) and the PNG plots. With no
bench run yet, :func:`write_placeholder` writes "not run yet" tables so the book builds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from helpers import config
from helpers.report import engines, run_timings
from helpers.report.tables import markdown_table as _table

RSS_LIMIT_GIB = 12.0



METRIC_GOAL = 20.0  # compute_metrics should be >= 20x faster than the pandas reference



STAGES = ("generate", "als_fit", "score_export", "export", "metrics", "spark")



STAGE_LABELS = {
    "generate": "generate + validate + Parquet",
    "als_fit": "ALS fit (64 factors, 10 iterations)",
    "score_export": "hybrid scoring + top-10 Parquet (chunked)",
    "export": "helpers.export.production (refit, 2 protocols, reasons, files)",
    "metrics": "relevance + compute_metrics",
    "spark": "the Spark engine on the rung's Parquet (validation to export, see *Spark engine* below)",
}



TABLES_MD = "performance_tables.md"



def stage_time(rec: dict | None) -> float | None:
    """The time of a stage used for tables and growth exponents (work wall time)."""
    if not rec or not rec.get("ok"):
        return None
    return rec.get("wall_s")


# =========================================================================== #
# Rendering: markdown tables and plots
# =========================================================================== #
def _fmt_s(x) -> str:
    if x is None:
        return "n/a"
    x = float(x)
    if x >= 600:
        return f"{x / 60:.1f} min"
    if x >= 10:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.1f} s"
    return f"{x * 1000:.0f} ms" if x >= 0.001 else f"{x * 1e6:.0f} µs"


def _fmt_gib(x) -> str:
    return "n/a" if x is None else f"{float(x):.2f}"


def _fmt_ratio(x) -> str:
    return "n/a" if x is None else (f"{x:.1f}x" if x >= 1 else f"{x:.2f}x")


def _fmt_exp(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _cell_time(rec: dict | None) -> str:
    if rec is None:
        return "not run"
    if rec.get("skipped"):
        return "skipped"
    return _fmt_s(stage_time(rec)) if rec.get("ok") else "failed"


def _cell_rss(rec: dict | None) -> str:
    if rec is None:
        return "not run"
    if rec.get("skipped"):
        return "skipped"
    peak = rec.get("peak_rss_gib")
    over = peak is not None and peak > RSS_LIMIT_GIB
    return _fmt_gib(peak) + (f" **(over {RSS_LIMIT_GIB:.0f})**" if over else "")


PLOTS = {"scale_time.png": "Stage time against transaction lines (log-log)",
         "scale_rss.png": "Peak RSS per stage and rung",
         "ratios.png": "Side-by-side ratios (reference time / project time)",
         "cj.png": "Complete Journey: notebook times, cold and warm"}


def render_markdown(bench: dict, image_prefix: str = "../reports/benchmarks/") -> str:
    """The Performance page's tables (MyST markdown) from a bench dict.

    ``image_prefix`` is the path from the *including* page (``book/performance.md``)
    to the PNGs; images are referenced only when ``bench["plots"]`` lists them.
    """
    out: list[str] = []
    m = bench.get("machine", {})
    if bench.get("placeholder"):
        out.append("```{note}\nBenchmarks not run yet: run `make bench` (`python -m helpers.bench`) to fill this page.\n```\n")
        out.append(_table(["section", "status"], [[s, "benchmarks not run yet"] for s in
                                                  ("Complete Journey end to end", "Scale ladder", "Ratios",
                                                   "API latency")]))
        return "\n".join(out) + "\n"
    out.append(f"Machine: {m.get('cpus', '?')} CPUs, {m.get('memory_gib', '?')} GiB RAM, Python "
               f"{m.get('python', '?')}. Last update {bench.get('generated_at', 'n/a')} "
               f"(`{' '.join(bench.get('command', []))}`); sections and rungs not rerun keep their earlier "
               "measurements (each says when it was measured). The machine may be shared: each stage records "
               "the 1-minute load average before it started (column *load*); times under load are slower.\n")

    cj = bench.get("cj")
    out.append("## Complete Journey end to end\n")
    if cj:
        rows = []
        for phase in ("cold", "warm"):
            ph = cj.get(phase) or {}
            p, b = ph.get("pipeline") or {}, ph.get("book") or {}
            target = cj.get("targets", {}).get(f"{phase}_s")
            rows.append([phase, _fmt_s(p.get("wall_process_s")), _fmt_s(b.get("wall_process_s")),
                         _fmt_s(ph.get("total_s")), f"< {_fmt_s(target)}",
                         "yes" if cj.get("met", {}).get(phase) else "no",
                         f"{len(ph.get('reused_from_cache', []))} / {len(ph.get('notebooks', {}))}",
                         _fmt_gib(max((p.get('peak_rss_gib') or 0), (b.get('peak_rss_gib') or 0))),
                         f"{(p.get('load_before') or ['?'])[0]}"])
        out.append(_table(["run", "pipeline", "book", "total", "target", "met", "notebooks reused",
                           "peak RSS (GiB)", "load"], rows))
        where = cj.get("where") or {}
        place = (f"a snapshot of commit `{(where.get('commit') or '')[:10]}` (`git archive HEAD`)"
                 if where.get("mode") == "snapshot of HEAD" else "the working tree")
        out.append(f"\nRun in {place}. Cold run: {cj.get('cold_mode', '')}. "
                   "Warm run: unchanged rerun with the cache.\n")
        for phase in ("cold", "warm"):
            ph = cj.get(phase) or {}
            if ph.get("code_changed"):
                out.append(f"*{phase} run*: the `helpers/` source changed while it ran (shared working tree), "
                           "so cached notebooks could not be reused and timings mix code versions.\n")
            if ph.get("measured_at"):
                out.append(f"*{phase} run* measured {ph['measured_at']} (load {((ph.get('pipeline') or {}).get('load_before') or ['?'])[0]}).\n")
            if (ph.get("pipeline_jobs") or 1) > 1:
                out.append(f"*{phase} run*: up to {ph['pipeline_jobs']} notebooks ran at once, so the notebook "
                           "times below overlap (their sum exceeds the pipeline's wall time).\n")
        nbs = sorted(set((cj.get("cold") or {}).get("notebooks", {})) | set((cj.get("warm") or {}).get("notebooks", {})))
        if nbs:
            reused = set((cj.get("warm") or {}).get("reused_from_cache", []))
            out.append(_table(["notebook", "cold", "warm", "warm reused"],
                              [[nb, _fmt_s((cj.get("cold") or {}).get("notebooks", {}).get(nb)),
                                _fmt_s((cj.get("warm") or {}).get("notebooks", {}).get(nb)),
                                "yes" if nb in reused else "no"] for nb in nbs]))
            out.append("")
    else:
        out.append("Not measured in this run (`--no-cj`).\n")

    sc = bench.get("scale")
    out.append("## Scale ladder (synthetic retailer)\n")
    if sc and sc.get("rungs"):
        stages = [s for s in STAGES if any(s in r.get("stages", {}) for r in sc["rungs"])]
        header = ["customers", "products", "lines"] + list(stages) + ["max peak RSS (GiB)", "load"]
        rows = []
        for r in sc["rungs"]:
            peaks = [r["stages"][s].get("peak_rss_gib") for s in stages if s in r["stages"]]
            rows.append([f"{r['n_customers']:,}", f"{r['n_products']:,}", f"{r.get('lines', 0):,}"]
                        + [_cell_time(r["stages"].get(s)) for s in stages]
                        + [_fmt_gib(max([p for p in peaks if p is not None], default=None)),
                           f"{(r.get('load_before') or ['?'])[0]}"])
        out.append(_table(header, rows))
        out.append("\nMeasured: " + "; ".join(f"{r['n_customers']:,} customers {r.get('measured_at', '?')}"
                                               for r in sc["rungs"]) + ".\n")
        out.append("Stages: " + "; ".join(f"**{s}** = {STAGE_LABELS[s]}" for s in stages) + ".\n")
        out.append("Peak RSS per stage (GiB; each stage is its own process, limit "
                   f"{RSS_LIMIT_GIB:.0f} GiB):\n")
        out.append(_table(["customers"] + stages,
                          [[f"{r['n_customers']:,}"] + [_cell_rss(r["stages"].get(s)) for s in stages]
                           for r in sc["rungs"]]))
        failed = [(r["n_customers"], s, (rec.get("error") or "").strip().splitlines()[:1])
                  for r in sc["rungs"] for s, rec in r["stages"].items() if not rec.get("ok")]
        skipped = sorted({rec["error"] for r in sc["rungs"] for rec in r["stages"].values() if rec.get("skipped")})
        for note in skipped:
            out.append(f"\n*skipped*: {note.removeprefix('skipped: ')}.")
        failed = [f for f in failed if not any(rec.get("skipped") for r in sc["rungs"]
                                               for s2, rec in r["stages"].items() if (r["n_customers"], s2) == f[:2])]
        for n, s, err in failed:
            out.append(f"\n- {n:,} customers, {s}: failed ({err[0] if err else 'no message'})")
        growth = sc.get("growth", {})
        if growth:
            n_pairs = max(len(g["pairs"]) for g in growth.values())
            lines_all = max((g["lines"] for g in growth.values()), key=len)
            pair_names = [f"{lines_all[i]:,} → {lines_all[i + 1]:,}" for i in range(n_pairs)]
            out.append("\nGrowth exponents: log-log slope of stage time against lines (1 = linear):\n")
            out.append(_table(["stage"] + pair_names + ["overall"],
                              [[s] + [_fmt_exp(g["pairs"][i]) if i < len(g["pairs"]) else "n/a"
                                      for i in range(n_pairs)] + [_fmt_exp(g["overall"])]
                               for s, g in growth.items()]))
            out.append("")
        metrics_rows = [[f"{r['n_customers']:,}", r["stages"]["metrics"]["result"]["evaluated_customers"]]
                        + [r["stages"]["metrics"]["result"]["means"].get(k) for k in ("precision@10", "recall@10", "ndcg@10")]
                        for r in sc["rungs"] if r["stages"].get("metrics", {}).get("ok")]
        if metrics_rows:
            out.append("\nHybrid quality on the test window (sanity check, protocol *all*):\n")
            out.append(_table(["customers", "evaluated", "precision@10", "recall@10", "ndcg@10"],
                              [[a, f"{b:,}", f"{c:.4f}", f"{d:.4f}", f"{e:.4f}"] for a, b, c, d, e in metrics_rows]))
            out.append("")
    else:
        out.append("Not measured yet.\n")

    out += engines.section(bench, _fmt_s, _fmt_gib, _fmt_exp, _table)

    ra = bench.get("ratios")
    out.append("## Side-by-side ratios\n")
    if ra:
        rows = []
        names = {"topn": "(a) batch top-10: `ALS.recommend` vs implicit `recommend`",
                 "metrics": "(b) metrics: `compute_metrics` vs pandas groupby",
                 "content": "(c) content: `ContentTFIDF.score` vs sklearn `cosine_similarity` (dense)"}
        for key, label in names.items():
            rec = ra.get(key)
            if not rec:
                continue
            res = rec.get("result") or {}
            if not rec.get("ok"):
                rows.append([label, "failed", "", "", "", ""])
                continue
            if key == "metrics":
                same = "max diff " + ", ".join(f"{v:.1e}" for v in res["max_abs_diff"].values()) + \
                       (" (agree)" if res["agree"] else " (DIFFER)")
            else:
                a = res["agreement"]
                same = (f"{a['identical']:,} identical, {a['ties_only']:,} ties only, "
                        f"{a['mismatched']:,} mismatched")
            size = f"{res.get('customers', res.get('users', 0)):,} customers"
            rows.append([label, size, _fmt_s(res["project_s"]), _fmt_s(res["reference_s"]),
                         _fmt_ratio(res["ratio"]), same])
        out.append(_table(["comparison", "size", "project", "reference", "ratio", "same results"], rows))
        data = str(ra.get("data", ""))
        n_data = data.removeprefix("rung-")
        notes = ["Ratio = reference time / project time (above 1: the project's code is faster); "
                 + (f"data: the {int(n_data):,}-customer rung" if n_data.isdigit() else f"data: {data}")
                 + f", measured {ra.get('measured_at', '?')}."]
        c = (ra.get("content") or {}).get("result") or {}
        if c.get("all_customers"):
            notes.append(f"Content scoring + top-10 over all {c['all_customers']['customers']:,} customers "
                         f"(chunked): {_fmt_s(c['all_customers']['score_topk_s'])}; a dense float64 matrix of "
                         f"that size would need {c['dense_full_size_gib']:.1f} GiB.")
        mm = (ra.get("metrics") or {}).get("result") or {}
        if mm:
            notes.append(f"Goal for (b): at least {mm.get('goal', METRIC_GOAL):.0f}x "
                         f"({'met' if (mm.get('ratio') or 0) >= mm.get('goal', METRIC_GOAL) else 'not met'}).")
        out.append("\n" + " ".join(notes) + "\n")
    else:
        out.append("Not measured yet.\n")

    api = bench.get("api")
    out.append("## API latency\n")
    if api and api.get("available") and api.get("ok"):
        res = api.get("result") or {}
        if isinstance(res.get("result"), dict):  # older records wrapped the benchmark's dict
            res = res["result"]
        flat = [[k, v] for k, v in res.items() if not isinstance(v, (dict, list))]
        flat.append(["measured", api.get("measured_at", "?")])
        out.append(_table(["measure", "value"], flat) if flat else "```\n" + json.dumps(res, indent=1) + "\n```")
        out.append("")
        burst = (api.get("locust") or {})
        phases = (burst.get("result") or {}).get("endpoints") if burst.get("ok") else None
        if phases:
            res = burst["result"]
            out.append(f"Under load: locust, {res.get('users')} concurrent users, one endpoint at a time "
                       f"(targets: p99 at most {res['target_p99_ms']['recommendations']:.0f} ms for lists, "
                       f"{res['target_p99_ms']['basket']:.0f} ms for a basket).\n")
            rows = [[name, f"{ph['requests']:,}", str(ph["errors"]), f"{ph['p50_ms']:.1f}", f"{ph['p99_ms']:.1f}",
                     f"{ph['throughput_rps']:.0f}", f"{ph['server_cpu_ms_per_request']:.2f}"]
                    for name, ph in phases.items()]
            out.append(_table(["endpoint", "requests", "errors", "p50 (ms)", "p99 (ms)", "requests/s",
                               "server CPU (ms/request)"], rows))
            out.append("")
    elif api and api.get("available"):
        first = (api.get("error") or "").strip().splitlines()[:1]
        out.append(f"The API benchmark failed: {first[0] if first else 'no message'}\n")
    else:
        out.append("Not available: `helpers.bench.api_load` did not exist when the benchmarks ran.\n")

    plots = [p for p in bench.get("plots", []) if p in PLOTS]
    if plots:
        out.append("## Plots\n")
        for p in plots:
            out.append(f"```{{image}} {image_prefix}{p}\n:alt: {PLOTS[p]}\n:width: 90%\n```\n")
            out.append(f"*{PLOTS[p]}.*\n")
    return "\n".join(out).rstrip() + "\n"


def write_markdown(bench: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_markdown(bench))
    os.replace(tmp, path)
    return path


def write_placeholder(bench_dir: Path = config.BENCH_DIR, force: bool = False) -> Path:
    """The 'not run yet' tables, unless real tables already exist (``force`` overwrites).
    Also (re)writes the Performance page's content, :func:`write_page`."""
    path = Path(bench_dir) / TABLES_MD
    write_page(bench_dir)
    if path.exists() and not force:
        return path
    return write_markdown({"placeholder": True}, path)


PAGE_MD = "performance_page.md"

#: How the benchmarks measure (shown above their tables).
BENCH_METHODS = """**How it is measured.** Each heavy stage runs in its own fresh Python process, so the peak memory of a stage
is that stage's alone (`ru_maxrss` of the process and everything it started, from `os.wait4`); wall and CPU
times exclude interpreter start-up. The machine the figures come from may be shared with other work: every
stage records the load average before it started, and a busy machine makes everything slower.

**Scale ladder.** The synthetic retailer at growing sizes (`helpers.bench.runner.LADDER`, about
`LINES_PER_CUSTOMER` transaction lines per customer) with fixed model parameters (ALS with
`factors=64, iterations=10`; a hybrid of global popularity, buy-again and ALS with the fixed
`HYBRID_WEIGHTS`), so that sizes, not tuning, change between rungs. The *growth exponent* is the slope of
time against transaction lines on log-log axes: 1 means time grows in proportion to the data; a larger
exponent means faster growth. The catalog grows from rung to rung too, so scoring every customer against
the whole catalog grows faster than the number of lines.

**Ratios.** On the same inputs, and after checking that both give the same results, the project's code is
timed against a reference: implicit's own batch recommendation, a plain pandas implementation of the
metrics, and scikit-learn's dense cosine similarity. The ratio is the reference's time divided by the
project's: 1 means equally fast; a larger ratio means the project's code is faster.
"""


def write_page(bench_dir: Path = config.BENCH_DIR) -> bool:
    """Write ``<bench_dir>/performance_page.md`` (included by ``book/performance.md``): this run's
    timings from ``<bench_dir>/../run_manifest.json`` with its Gantt chart whenever the manifest
    exists, then the benchmark tables when ``bench.json`` exists. Returns whether there was
    anything to show (when not, the page should not be listed: :func:`page_listed`)."""
    bench_dir = Path(bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    manifest = run_timings.read_manifest(bench_dir.parent / "run_manifest.json")
    parts = []
    if manifest:
        run_timings.gantt_chart(manifest, bench_dir / run_timings.GANTT_PNG)
        parts.append(run_timings.timings_markdown(manifest, f"../reports/benchmarks/{run_timings.GANTT_PNG}"))
    bench_path = bench_dir / "bench.json"
    if bench_path.exists():
        tables = render_markdown(json.loads(bench_path.read_text())).replace("\n## ", "\n### ")
        parts.append("## Benchmarks\n\nRead from `reports/benchmarks/bench.json`, written by `make bench`.\n\n"
                     + BENCH_METHODS + "\n" + tables)
    else:
        parts.append("## Benchmarks\n\nNo benchmark has been run here (`make bench` measures the scale ladder, the "
                     "ratios and the API latency and adds them to this page).\n")
    tmp = bench_dir / f".{PAGE_MD}.tmp"
    tmp.write_text("\n".join(parts))
    os.replace(tmp, bench_dir / PAGE_MD)
    return bool(manifest) or bench_path.exists()


def page_listed(bench_dir: Path = config.BENCH_DIR) -> bool:
    """Whether the Performance page has content: a run manifest or a benchmark."""
    bench_dir = Path(bench_dir)
    return (bench_dir.parent / "run_manifest.json").exists() or (bench_dir / "bench.json").exists()


def _savefig(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def make_plots(bench: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    rungs = [r for r in bench.get("scale", {}).get("rungs", []) if r.get("lines")]
    if rungs:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for s in STAGES:
            pts = [(r["lines"], stage_time(r["stages"].get(s))) for r in rungs]
            pts = [(n, t) for n, t in pts if t]
            if pts:
                ax.plot([n for n, _ in pts], [t for _, t in pts], marker="o", label=STAGE_LABELS[s])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("transaction lines")
        ax.set_ylabel("wall time (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        _savefig(fig, folder / "scale_time.png")
        plt.close(fig)
        made.append("scale_time.png")

        fig, ax = plt.subplots(figsize=(7, 4.5))
        width = 0.8 / max(len(rungs), 1)
        for i, r in enumerate(rungs):
            vals = [r["stages"].get(s, {}).get("peak_rss_gib") or 0.0 for s in STAGES]
            ax.bar(np.arange(len(STAGES)) + i * width, vals, width, label=f"{r['n_customers']:,} customers")
        ax.axhline(RSS_LIMIT_GIB, color="crimson", ls="--", lw=1, label=f"{RSS_LIMIT_GIB:.0f} GiB limit")
        ax.set_xticks(np.arange(len(STAGES)) + width * (len(rungs) - 1) / 2, STAGES, rotation=15)
        ax.set_ylabel("peak RSS (GiB)")
        ax.legend(fontsize=8)
        _savefig(fig, folder / "scale_rss.png")
        plt.close(fig)
        made.append("scale_rss.png")

    ra = bench.get("ratios") or {}
    vals = [(k, ((ra.get(k) or {}).get("result") or {}).get("ratio")) for k in ("topn", "metrics", "content")]
    vals = [(k, v) for k, v in vals if v]
    if vals:
        fig, ax = plt.subplots(figsize=(6, 3))
        labels = {"topn": "(a) top-10 vs implicit", "metrics": "(b) metrics vs pandas",
                  "content": "(c) content vs sklearn dense"}
        ax.barh([labels[k] for k, _ in vals], [v for _, v in vals], color="steelblue")
        ax.axvline(1.0, color="black", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("reference time / project time (log; > 1: project faster)")
        for i, (_, v) in enumerate(vals):
            ax.text(v, i, f" {v:.1f}x", va="center", fontsize=8)
        _savefig(fig, folder / "ratios.png")
        plt.close(fig)
        made.append("ratios.png")

    cj = bench.get("cj") or {}
    cold, warm = (cj.get("cold") or {}).get("notebooks", {}), (cj.get("warm") or {}).get("notebooks", {})
    if cold or warm:
        nbs = sorted(set(cold) | set(warm))
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(nbs) + 1.5))
        y = np.arange(len(nbs))
        ax.barh(y - 0.2, [cold.get(n, 0) for n in nbs], 0.4, label="cold")
        ax.barh(y + 0.2, [warm.get(n, 0) for n in nbs], 0.4, label="warm")
        ax.set_yticks(y, nbs)
        ax.invert_yaxis()
        ax.set_xlabel("seconds")
        ax.legend()
        _savefig(fig, folder / "cj.png")
        plt.close(fig)
        made.append("cj.png")
    return made


def render(bench: dict, folder: Path = config.BENCH_DIR) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    bench["plots"] = make_plots(bench, folder)
    write_markdown(bench, folder / TABLES_MD)
    return bench
