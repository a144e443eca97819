"""Latency benchmark of the recommendation API over loopback.

    .venv/bin/python -m helpers.bench.api_load [--export-dir DIR] [--requests 10000] [--concurrency 8]

Starts ``uvicorn helpers.serving.api:app`` on 127.0.0.1 (a free port) in a subprocess
serving the export, waits for ``/health``, warms up, then sends ``requests``
``GET /customers/{id}/recommendations?k=10`` requests (customer ids drawn, with a
seed, from the export's customers) from ``concurrency`` client threads, each
with its own keep-alive HTTP/1.1 connection (``http.client``: a thin client, so
that the figures measure the server rather than client-side overhead; every
response is parsed and must hold a non-empty list). Latency is measured per request
on the client (send to full body received). The run is bounded in count and in
time (``max_seconds``); the server is always stopped. Returns (and prints)
p50 / p90 / p99 / max latency in milliseconds, throughput and the error count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from helpers import config


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _customer_ids(export_dir: Path, n: int, seed: int) -> np.ndarray:
    import pyarrow.parquet as pq

    ids = pq.read_table(export_dir / "model" / "top_all.parquet", columns=["customer_id"])["customer_id"]
    uniq = np.unique(ids.to_numpy())
    return np.random.default_rng(seed).choice(uniq, size=n, replace=True)


def start_server(export_dir: Path, port: int, startup_timeout: float = 120.0, cache_mb: float | None = None):
    """``uvicorn helpers.serving.api:app`` on 127.0.0.1:port; returns the process once /health answers.
    ``cache_mb`` sets the server's answer cache (``0`` disables it; ``None``: the server default)."""
    import httpx

    env = {**os.environ, "RECBOOK_EXPORT_DIR": str(export_dir)}
    if cache_mb is not None:
        env["RECBOOK_API_CACHE_MB"] = str(cache_mb)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "helpers.serving.api:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env=env, cwd=str(config.PROJECT_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"the API server exited with code {proc.returncode}:\n{err[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise TimeoutError(f"the API server did not answer /health within {startup_timeout:.0f} s")


def stop_server(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()


def run_benchmark(export_dir=None, n_requests: int = 10_000, concurrency: int = 8, k: int = 10,
                  warmup: int = 200, max_seconds: float = 300.0, seed: int = 0, cache: bool = True,
                  log=print) -> dict:
    """Start the server, fire the requests, stop the server; returns the latency summary.

    ``cache=False`` starts the server with its answer cache disabled (every request is
    built from the in-memory lists and serialized)."""
    export_dir = Path(export_dir or os.environ.get("RECBOOK_EXPORT_DIR") or config.EXPORTS_DIR).resolve()
    if not (export_dir / "manifest.json").exists():
        raise FileNotFoundError(f"no export in {export_dir}: run the export first")
    ids = _customer_ids(export_dir, n_requests + warmup, seed)
    port = free_port()
    t_start = time.perf_counter()
    proc = start_server(export_dir, port, cache_mb=None if cache else 0)
    startup_s = time.perf_counter() - t_start
    latencies = np.full(n_requests, np.nan)
    errors = [0] * concurrency
    error_samples: list[str] = []
    deadline = time.monotonic() + max_seconds

    def get(conn: http.client.HTTPConnection, cid: int) -> tuple[int, bytes]:
        conn.request("GET", f"/customers/{cid}/recommendations?k={k}")
        resp = conn.getresponse()
        return resp.status, resp.read()

    def worker(w: int, start_barrier: threading.Barrier) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)  # keep-alive, one per client
        try:
            for cid in ids[n_requests + w: n_requests + warmup: concurrency]:  # warm-up, not timed
                try:
                    get(conn, int(cid))
                except (OSError, http.client.HTTPException):
                    conn.close()
            start_barrier.wait()
            for i in range(w, n_requests, concurrency):
                if time.monotonic() > deadline:
                    break
                t0 = time.perf_counter()
                try:
                    status, body = get(conn, int(ids[i]))
                    latencies[i] = time.perf_counter() - t0
                    ok = status == 200 and len(json.loads(body)["items"]) > 0
                    if not ok and len(error_samples) < 5:
                        error_samples.append(f"HTTP {status}: {body[:200]!r}")
                except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                    latencies[i] = time.perf_counter() - t0
                    ok = False
                    conn.close()  # reconnects on the next request
                    if len(error_samples) < 5:
                        error_samples.append(repr(exc))
                if not ok:
                    errors[w] += 1
        finally:
            conn.close()

    try:
        barrier = threading.Barrier(concurrency + 1)
        threads = [threading.Thread(target=worker, args=(w, barrier), daemon=True) for w in range(concurrency)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join(timeout=max_seconds + 30)
        wall = time.perf_counter() - t0
    finally:
        stop_server(proc)
    done = latencies[np.isfinite(latencies)] * 1000.0
    result = {
        "requests": int(len(done)),
        "requested": int(n_requests),
        "concurrency": int(concurrency),
        "k": int(k),
        "server_cache": bool(cache),
        "errors": int(sum(errors)),
        "p50_ms": round(float(np.percentile(done, 50)), 2) if len(done) else None,
        "p90_ms": round(float(np.percentile(done, 90)), 2) if len(done) else None,
        "p99_ms": round(float(np.percentile(done, 99)), 2) if len(done) else None,
        "max_ms": round(float(done.max()), 2) if len(done) else None,
        "mean_ms": round(float(done.mean()), 2) if len(done) else None,
        "throughput_rps": round(len(done) / wall, 1) if wall > 0 else None,
        "wall_s": round(wall, 2),
        "server_startup_s": round(startup_s, 2),
        "export_dir": str(export_dir),
        "target_p99_ms": 20.0,
    }
    if error_samples:
        result["error_samples"] = error_samples
    if log:
        log(f"{result['requests']:,} requests, {concurrency} clients: p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms, {result['throughput_rps']} req/s, "
            f"{result['errors']} errors (answer cache {'on' if cache else 'off'}, "
            f"server start-up {result['server_startup_s']} s)")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.bench.api_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--export-dir", help="export folder (default $RECBOOK_EXPORT_DIR or data/exports)")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--no-cache", action="store_true", help="disable the server's answer cache")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    res = run_benchmark(args.export_dir, args.requests, args.concurrency, args.k, max_seconds=args.max_seconds,
                        cache=not args.no_cache)
    if args.json:
        print(json.dumps(res, indent=2))
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
