"""The benchmark sections measured by ``python -m helpers.bench`` and the merge of their results.

``bench_cj`` (Complete Journey end to end, cold then warm), ``bench_rung`` (one rung of the
scale ladder), ``bench_ratios``, ``bench_api``; ``merge_results`` keeps the sections and rungs
not rerun from the previous ``bench.json``; growth exponents are log-log slopes of stage time
against transaction lines. Every stage runs through :func:`helpers.bench.runner.run_stage`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from helpers import config
from helpers.bench.runner import GIB, run_stage
from helpers.bench.stages import ALS_PARAMS, HYBRID_WEIGHTS, fixed_tuning
from helpers.export.versioned import resolve
from helpers.pipeline.cache import CACHE_FILE
from helpers.report.growth import growth_exponents
from helpers.report.performance import STAGES, stage_time
from helpers.spark.bench import NO_JAVA, java_available, spark_run_on
from helpers.tuning import model_cache

#: Scale ladder rungs: customers x products.
LADDER: tuple[tuple[int, int], ...] = ((10_000, 5_000), (100_000, 20_000), (1_000_000, 50_000))
CJ_TARGETS = {"cold_s": 240.0, "warm_s": 60.0}
BENCH_JSON = "bench.json"
SCHEMA_VERSION = 1


def machine_info() -> dict:
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) * 1024 / GIB, 1)
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for pkg in ("numpy", "scipy", "pandas", "implicit", "scikit-learn", "pyarrow"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpus": os.cpu_count(), "memory_gib": mem, "platform": platform.platform(),
            "python": platform.python_version(), "packages": versions}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _manifest_summary(reports_dir: Path) -> dict:
    path = reports_dir / "run_manifest.json"
    if not path.exists():
        return {}
    m = json.loads(path.read_text())
    return {"notebooks": m.get("notebooks", {}), "reused_from_cache": m.get("reused_from_cache", []),
            "pipeline_wall_time_s": m.get("wall_time_s"), "pipeline_jobs": m.get("jobs", 1),
            "git_commit": m.get("git_commit"),
            "finished_at": m.get("finished_at")}


def _code_state(root: Path) -> dict:
    """What the pipeline cache key depends on besides the data: the helpers source hash (as
    :func:`helpers.config.code_hash` computes it, for ``root``) and the git commit."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((Path(root) / "helpers").rglob("*.py")):
        h.update(path.read_bytes())
    res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True, text=True)
    return {"helpers_hash": h.hexdigest()[:16], "git_commit": res.stdout.strip() or None}


def make_snapshot(dest: Path) -> dict:
    """The committed project (``git archive HEAD``) unpacked into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    archive = subprocess.Popen(["git", "archive", head], cwd=config.PROJECT_ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        raise RuntimeError("git archive failed")
    return {"commit": head, "path": str(dest)}


def bench_cj(phases=("cold", "warm"), snapshot_dir: Path | None = None, log=print) -> dict:
    """Cold then warm ``make book`` equivalent on Complete Journey.

    With ``snapshot_dir`` (the default of the CLI) the runs happen in a snapshot of
    the committed project (``git archive HEAD``; ``RECBOOK_ROOT`` and ``PYTHONPATH``
    point at it, so notebooks import the snapshot's ``helpers``): the pipeline cache
    key hashes the ``helpers`` source, so in a working tree that others edit while the
    benchmark runs the warm run could not reuse anything, and timings would mix code
    versions. Without it, the runs use the working tree and its ``reports/``. Either
    way the helpers hash is recorded before and after each phase (``code_changed``).
    """
    py = sys.executable
    root, env, where = config.PROJECT_ROOT, None, {"mode": "working tree"}
    if snapshot_dir is not None:
        shutil.rmtree(snapshot_dir, ignore_errors=True)
        where = {"mode": "snapshot of HEAD", **make_snapshot(Path(snapshot_dir))}
        root = Path(snapshot_dir)
        env = {**os.environ, "RECBOOK_ROOT": str(root),
               "PYTHONPATH": os.pathsep.join([str(root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    pipeline = [py, "-m", "helpers.pipeline", "run", "--dataset", "completejourney", "--no-progress"]
    book = [py, "-m", "helpers.pipeline.book"]
    out: dict = {"measured_at": now(), "targets": dict(CJ_TARGETS), "where": where,
                 "cold_mode": f"reports/{CACHE_FILE} and the model cache removed, pipeline run with the cache on "
                              "(so that it is rebuilt)"}
    for phase in phases:
        if phase == "cold":
            (root / "reports" / CACHE_FILE).unlink(missing_ok=True)
            model_cache.clear(root / "data" / "processed")
        before = _code_state(root)
        p = run_stage(f"CJ {phase}: pipeline", "stage_command", log=log, cmd=pipeline, cwd=str(root), env=env)
        summary = _manifest_summary(root / "reports") if p["ok"] else {}
        b = run_stage(f"CJ {phase}: book", "stage_command", log=log, cmd=book, cwd=str(root), env=env) \
            if p["ok"] else None
        after = _code_state(root)
        total = p["wall_process_s"] + (b["wall_process_s"] if b else 0.0)
        out[phase] = {"pipeline": _slim(p), "book": _slim(b) if b else None, "total_s": round(total, 2),
                      "ok": bool(p["ok"] and b and b["ok"]), "measured_at": now(), "code_before": before,
                      "code_after": after, "code_changed": before["helpers_hash"] != after["helpers_hash"],
                      **summary}
        log(f"[bench] CJ {phase}: {total:.1f} s (pipeline {p['wall_process_s']:.1f} s"
            + (f", book {b['wall_process_s']:.1f} s)" if b else ")")
            + (" -- helpers/ changed during the run" if out[phase]["code_changed"] else ""))
    return out


def merge_cj(old: dict | None, new: dict) -> dict:
    """Phases measured now replace the old ones; ``met`` is recomputed."""
    out = {**(old or {}), **new}
    for phase in ("cold", "warm"):
        if phase not in new and old and phase in old:
            out[phase] = old[phase]
    out["met"] = {ph: bool((out.get(ph) or {}).get("ok")) and (out[ph]["total_s"] < CJ_TARGETS[f"{ph}_s"])
                  for ph in ("cold", "warm") if out.get(ph)}
    return out


def _slim(rec: dict | None) -> dict | None:
    if rec is None:
        return None
    return {k: v for k, v in rec.items() if k != "stage"}


def spark_stage(data_dir: Path, export_dir: Path, master: str, driver_memory: str, log=print) -> dict:
    """The Spark engine on a rung's star schema (:func:`helpers.spark.bench.spark_run_on`) as a stage
    record (``ok``, ``wall_s``, ``peak_rss_gib``, ``result``); skipped, with the reason, without Java."""
    if not java_available():
        return {"ok": False, "skipped": True, "error": f"skipped: {NO_JAVA}"}
    log(f"[bench] {data_dir.parent.name}: Spark engine on {master} (driver memory {driver_memory})")
    try:
        res = spark_run_on(data_dir, master, export_dir=export_dir, driver_memory=driver_memory)
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(export_dir, ignore_errors=True)
    log(f"[bench]   Spark: {res['wall_s']:.1f} s, peak {res['peak_rss_gib']:.2f} GiB")
    return {"ok": True, "wall_s": res["wall_s"], "peak_rss_gib": res["peak_rss_gib"], "result": res}


def bench_spark_agreement(star_dir: Path, master: str, driver_memory: str, log=print,
                          tuned_als: bool = True) -> dict:
    """Complete Journey on the Spark and the local engine (``stage_spark_agreement``) and, with
    ``tuned_als``, ALS tuned on each engine as chapter 4 does it (``stage_spark_tuned_als``, under
    ``"tuned_als"``); skipped without Java. The star schema it builds is removed afterwards."""
    if not java_available():
        return {"ok": False, "skipped": True, "error": f"skipped: {NO_JAVA}", "measured_at": now()}
    tuned = None
    try:
        rec = run_stage("CJ: Spark engine vs local engine", "stage_spark_agreement", log=log, out_dir=str(star_dir),
                        master=master, driver_memory=driver_memory)
        if tuned_als:
            tuned = run_stage("CJ: ALS tuned on each engine", "stage_spark_tuned_als", log=log,
                              out_dir=str(star_dir), master=master, driver_memory=driver_memory)
    finally:
        shutil.rmtree(star_dir, ignore_errors=True)
    if rec.get("ok"):
        bad = [f"{r['model']}/{r['protocol']}" for r in rec["result"]["rows"] if not r["agree"]]
        log("[bench] CJ agreement: " + ("every model agrees" if not bad else "DISAGREE: " + ", ".join(bad)))
    out = {**_slim(rec), "measured_at": now()}
    if tuned is not None:
        if tuned.get("ok"):
            log("[bench] CJ tuned ALS: " + ", ".join(
                f"{r['protocol']} {r['ndcg5_local']:.4f} local / {r['ndcg5_spark']:.4f} Spark"
                for r in tuned["result"]["rows"]))
        out["tuned_als"] = {**_slim(tuned), "measured_at": now()}
    return out


def bench_rung(n_customers: int, n_products: int, work: Path, seed: int, lines_per_customer: float,
               project_export: bool, keep_export: Path | None = None, log=print, spark: dict | None = None) -> dict:
    tag = f"{n_customers:,} x {n_products:,}"
    folder = work / f"rung-{n_customers}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data_dir = folder / "star"
    factors = folder / "als_factors.npz"
    topk = folder / "top10.parquet"
    rung = {"n_customers": n_customers, "n_products": n_products, "lines_per_customer": lines_per_customer,
            "seed": seed, "measured_at": now(), "load_before": [round(x, 2) for x in os.getloadavg()],
            "stages": {}}
    st = rung["stages"]
    st["generate"] = run_stage(f"{tag}: generate", "stage_generate", log=log, n_customers=n_customers,
                               n_products=n_products, out_dir=str(data_dir), seed=seed,
                               lines_per_customer=lines_per_customer)
    if not st["generate"]["ok"]:
        return rung
    rung["lines"] = st["generate"]["result"]["lines"]
    st["als_fit"] = run_stage(f"{tag}: ALS fit", "stage_als_fit", log=log, data_dir=str(data_dir),
                              factors_out=str(factors), als_params=ALS_PARAMS)
    if st["als_fit"]["ok"]:
        st["score_export"] = run_stage(f"{tag}: hybrid scoring + export", "stage_score_export", log=log,
                                       data_dir=str(data_dir), factors_path=str(factors), out_path=str(topk),
                                       als_params=ALS_PARAMS, weights=HYBRID_WEIGHTS)
    if project_export:
        st["export"] = run_stage(f"{tag}: helpers.export.production", "stage_project_export", log=log,
                                 data_dir=str(data_dir), export_dir=str(folder / "exports"),
                                 tuning=fixed_tuning())
        if keep_export is not None and st["export"]["ok"]:  # served by the API latency benchmark
            shutil.rmtree(keep_export, ignore_errors=True)
            os.replace(folder / "exports", keep_export)
        shutil.rmtree(folder / "exports", ignore_errors=True)
    if st.get("score_export", {}).get("ok"):
        st["metrics"] = run_stage(f"{tag}: metrics", "stage_metrics", log=log, data_dir=str(data_dir),
                                  topk_path=str(topk))
    if spark is not None:  # the same star schema on the Spark engine (``{"master", "driver_memory"}``)
        st["spark"] = spark_stage(data_dir, folder / "spark-export", log=log, **spark)
    for rec in st.values():
        rec.pop("stage", None)
    return rung


def bench_ratios(rung_dir: Path, dense_budget_gib: float, log=print) -> dict:
    data_dir, factors, topk = rung_dir / "star", rung_dir / "als_factors.npz", rung_dir / "top10.parquet"
    out: dict = {"measured_at": now(), "data": rung_dir.name}
    if factors.exists():
        out["topn"] = _slim(run_stage("ratio a: top-N vs implicit", "stage_ratio_topn", log=log,
                                      data_dir=str(data_dir), factors_path=str(factors), als_params=ALS_PARAMS))
    if topk.exists():
        out["metrics"] = _slim(run_stage("ratio b: compute_metrics vs pandas", "stage_ratio_metrics", log=log,
                                         data_dir=str(data_dir), topk_path=str(topk)))
    out["content"] = _slim(run_stage("ratio c: content chunked vs sklearn dense", "stage_ratio_content", log=log,
                                     data_dir=str(data_dir), dense_budget_gib=dense_budget_gib))
    return out


def bench_api(export_dir: Path | None, log=print) -> dict:
    """API latency (helpers.bench.api_load) on ``data/exports`` or, failing that, a rung's export (export
    roots, versioned or plain: the served folder is :func:`helpers.export.versioned.resolve` of one)."""
    import importlib.util

    if importlib.util.find_spec("helpers.bench.api_load") is None:
        log("[bench] API latency: helpers.bench.api_load not available")
        return {"available": False, "note": "not available (helpers.bench.api_load does not exist)", "measured_at": now()}
    candidates = [config.EXPORTS_DIR] + ([export_dir] if export_dir else [])
    found = next((Path(d) for d in candidates if (resolve(Path(d)) / "manifest.json").exists()), None)
    if found is None:
        log("[bench] API latency: no export to serve (run the pipeline or the ladder's export stage)")
        return {"available": True, "ok": False, "measured_at": now(),
                "error": "no export folder with a manifest.json to serve"}
    rec = run_stage("API latency (8 clients, 10,000 requests)", "stage_api", log=log, export_dir=str(found),
                    n_requests=10_000, concurrency=8)
    # the burst of issue 24: 32 concurrent locust users on every endpoint, bounded in requests and time
    burst = run_stage("API under load (locust, 32 users, every endpoint)", "stage_api", log=log,
                      export_dir=str(found), n_requests=20_000, concurrency=32, mode="locust", max_seconds=20)
    return {"available": True, "measured_at": now(), "export_dir": str(found), **_slim(rec), "locust": _slim(burst)}


def _key_rungs(rungs: list[dict]) -> list[dict]:
    return sorted(rungs, key=lambda r: r["n_customers"])


def growth_table(rungs: list[dict]) -> dict:
    """Growth exponents per stage over the rungs (time against transaction lines)."""
    rungs = [r for r in _key_rungs(rungs) if r.get("lines")]
    out = {}
    for stage in STAGES:
        pts = [(r["lines"], stage_time(r["stages"].get(stage))) for r in rungs]
        pts = [(n, t) for n, t in pts if t]
        if len(pts) >= 2:
            g = growth_exponents([n for n, _ in pts], [t for _, t in pts])
            g["lines"] = [n for n, _ in pts]
            out[stage] = g
    return out


def merge_results(old: dict | None, new: dict) -> dict:
    """New sections replace old ones; ladder rungs are merged by number of customers."""
    if not old or old.get("schema") != SCHEMA_VERSION:
        merged = dict(new)
    else:
        merged = {**old, **{k: v for k, v in new.items() if k != "scale"}}
        if "cj" in new:
            merged["cj"] = merge_cj(old.get("cj"), new["cj"])
        if "scale" in new:
            rungs = {r["n_customers"]: r for r in old.get("scale", {}).get("rungs", [])}
            rungs.update({r["n_customers"]: r for r in new["scale"]["rungs"]})
            merged["scale"] = {**old.get("scale", {}), **new["scale"], "rungs": _key_rungs(list(rungs.values()))}
    if merged.get("cj"):
        merged["cj"] = merge_cj(None, merged["cj"])
    if "scale" in merged:
        merged["scale"]["growth"] = growth_table(merged["scale"]["rungs"])
    return merged

