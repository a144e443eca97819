"""The Performance page's *Spark engine* section: the ladder's rungs on both engines and the
Complete Journey agreement, rendered from ``bench.json`` (``scale.rungs[*].stages.spark`` and
``spark_agreement``, written by :mod:`helpers.bench`).

The local engine's time of a rung is its ALS fit, hybrid scoring + top-10 export and
metrics stages together (each its own process; peak = the largest of them); the Spark
engine's is one process doing validation, split, segments, popularity, buy-again, ALS, the
top-10 of both protocols, the metrics and the partitioned Parquet export. Generation of the
synthetic data is neither engine's work.
"""

from __future__ import annotations

from helpers.report.growth import growth_exponents

LOCAL_STAGES = ("als_fit", "score_export", "metrics")


def local_engine(rung: dict) -> tuple[float | None, float | None]:
    """``(wall seconds, peak GiB)`` of the local engine's stages of a rung (None unless all ran)."""
    recs = [rung.get("stages", {}).get(s) for s in LOCAL_STAGES]
    if not all(r and r.get("ok") for r in recs):
        return None, None
    return sum(r["wall_s"] for r in recs), max(r.get("peak_rss_gib") or 0.0 for r in recs)


def spark_engine(rung: dict) -> tuple[float | None, float | None]:
    rec = rung.get("stages", {}).get("spark")
    if not rec or not rec.get("ok"):
        return None, None
    return rec["wall_s"], rec.get("peak_rss_gib")


def exponents(rungs: list[dict]) -> dict:
    """Fitted growth exponent (time against lines) of each engine over the rungs it ran."""
    out = {}
    for name, fn in (("local", local_engine), ("spark", spark_engine)):
        pts = [(r["lines"], fn(r)[0]) for r in rungs if r.get("lines") and fn(r)[0]]
        out[name] = growth_exponents([n for n, _ in pts], [t for _, t in pts])["overall"] if len(pts) >= 2 else None
    return out


def section(bench: dict, fmt_s, fmt_gib, fmt_exp, table) -> list[str]:
    """Markdown lines of the section (``fmt_s``, ``fmt_gib``, ``fmt_exp``, ``table``: the page's formatters)."""
    out = ["## Spark engine beside the local engine\n"]
    rungs = [r for r in (bench.get("scale") or {}).get("rungs", []) if "spark" in r.get("stages", {})]
    if rungs:
        rows = []
        for r in rungs:
            lt, lp = local_engine(r)
            st, sp = spark_engine(r)
            rec = r["stages"]["spark"]
            note = "" if rec.get("ok") else ("skipped" if rec.get("skipped") else "failed")
            master = (rec.get("result") or {}).get("master", "")
            rows.append([f"{r['n_customers']:,}", f"{r.get('lines', 0):,}", fmt_s(lt), fmt_gib(lp),
                         note or fmt_s(st), note or fmt_gib(sp), master])
        out.append(table(["customers", "lines", "local engine", "local peak (GiB)", "Spark engine",
                          "Spark peak (GiB)", "Spark master"], rows))
        exp = exponents(rungs)
        out.append(f"\nFitted growth exponent (time against lines): local engine "
                   f"{fmt_exp(exp['local'])}, Spark engine {fmt_exp(exp['spark'])}. The local engine is its ALS fit, "
                   "hybrid scoring + top-10 export and metrics processes; the Spark engine is one process "
                   "(validation, split, segments, popularity, buy-again, ALS, top-10 of both protocols, metrics, "
                   "partitioned Parquet export). Spark's peak is its driver JVM (with `local[N]` the executors "
                   "run inside it) plus the Python driver.\n")
        skipped = sorted({r["stages"]["spark"]["error"] for r in rungs if r["stages"]["spark"].get("skipped")})
        out += [f"*{s}*\n" for s in skipped]
    else:
        out.append("The ladder has not run on the Spark engine yet (`make bench` with Java present).\n")
    ag = bench.get("spark_agreement")
    out.append("### Complete Journey: the same results on both engines\n")
    if ag and ag.get("ok"):
        res = ag["result"]
        rows = [[r["model"], r["protocol"], f"{r['customers']:,}", f"{r['ndcg5_local']:.4f}", f"{r['ndcg5_spark']:.4f}",
                 _yes(r.get("lists_equal")), _yes(r.get("per_customer_equal")), f"{r['max_mean_diff']:.1e}",
                 "yes" if r["agree"] else "**no**"] for r in res["rows"]]
        out.append(table(["model", "protocol", "evaluated", "NDCG@5 local", "NDCG@5 Spark", "same lists",
                          "same per-customer metrics", "largest mean difference", "agree"], rows))
        out.append(f"\nPopularity, segment popularity and buy-again must give the same lists, scores and "
                   f"per-customer metrics; ALS (MLlib against `implicit`) NDCG@5 within {res['als_tolerance']}. "
                   f"Engine parameters: {res['params'].get('factors')} factors, {res['params'].get('iterations')} "
                   f"iterations, regularization {res['params'].get('regularization')}; {res['master']}; measured "
                   f"{ag.get('measured_at', '?')}.\n")
        out += tuned_als_section(ag.get("tuned_als"), table)
    elif ag and ag.get("skipped"):
        out.append(f"*{ag['error']}*\n")
    elif ag:
        first = (ag.get("error") or "").strip().splitlines()[:1]
        out.append(f"The agreement run failed: {first[0] if first else 'no message'}\n")
    else:
        out.append("Not measured yet.\n")
    return out


def _params(p: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in p.items() if k in ("factors", "regularization"))


def tuned_als_section(rec: dict | None, table) -> list[str]:
    """ALS tuned on each engine (``stage_spark_tuned_als``): each engine's choice and test NDCG@5."""
    if not rec:
        return []
    out = ["#### ALS tuned on each engine\n"]
    if not rec.get("ok"):
        first = (rec.get("error") or "").strip().splitlines()[:1]
        return out + [f"The tuned ALS run failed: {first[0] if first else 'no message'}\n"]
    res = rec["result"]
    rows = [[r["protocol"], _params(r["local_params"]), f"{r['valid_local']:.4f}", f"{r['ndcg5_local']:.4f}",
             _params(r["spark_params"]), f"{r['valid_spark']:.4f}", f"{r['ndcg5_spark']:.4f}",
             f"{r['ndcg5_spark'] - r['ndcg5_local']:+.4f}", "yes" if r["agree"] else "**no**"] for r in res["rows"]]
    out.append(table(["protocol", "local choice", "local validation", "local test", "Spark choice",
                      "Spark validation", "Spark test", "Spark - local", "agree"], rows))
    out.append(f"\nEach engine tunes the same ALS grid ({len(res['grid'])} candidates) on the validation window, "
               f"refits its choice on train + validation and scores the test window once, as chapter 4 does "
               f"(`--engine spark`); agreement: test NDCG@5 within {res['als_tolerance']}. The two solvers "
               f"weigh the regularization differently, so each engine's own choice is compared, not one "
               f"setting; {res['master']}; measured {rec.get('measured_at', '?')}.\n")
    return out


def _yes(x) -> str:
    return "n/a" if x is None else ("yes" if x else "**no**")
