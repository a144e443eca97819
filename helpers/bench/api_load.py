"""Latency benchmark of the recommendation API over loopback.

    .venv/bin/python -m helpers.bench.api_load [--export-dir DIR] [--requests 10000] [--concurrency 8]
    .venv/bin/python -m helpers.bench.api_load --locust [--concurrency 32] [--seconds 20] [--workers 2]

Two modes share the server start-up (:func:`start_server`) and the bounds (request count and seconds).

``--locust`` (:func:`run_locust`): the load tool `locust <https://locust.io>`_, headless and as a library,
in a child process (its gevent patching stays out of the caller). One phase per endpoint:
``GET /customers/{id}/recommendations``, ``GET /products/{id}/similar``, ``POST /recommendations`` (a basket
of 1 to 5 catalog products), each with ``concurrency`` users, each user paced at
:data:`RATE_PER_USER` requests per second (``rate_per_user=0``: back to back, a closed loop that
measures the load generator's limits as much as the server's), a warm-up that is not counted, then at
most ``requests`` requests or ``seconds`` seconds. Latency is the time locust's ``FastHttpUser``
measures per request (exact, not locust's rounded buckets). The result holds per endpoint
``p50_ms``, ``p99_ms``, ``errors``, ``throughput_rps`` and the server's CPU time per request
(``server_cpu_ms_per_request``: user + system time of the server's processes over the phase, which
other load on a shared machine changes far less than latency), nested under ``endpoints`` and
flattened (``recommendations_p99_ms``, ...) for the Performance page.

Default mode (thread clients):

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
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

from helpers import config
from helpers.export.versioned import resolve


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unique_ids(path: Path, column: str) -> np.ndarray:
    """The distinct values of an id column, whatever their type (integers or text)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return np.sort(pc.unique(pq.read_table(path, columns=[column])[column]).to_numpy(zero_copy_only=False))


def _customer_ids(export_dir: Path, n: int, seed: int) -> np.ndarray:
    uniq = _unique_ids(export_dir / "model" / "top_all.parquet", "customer_id")
    return np.random.default_rng(seed).choice(uniq, size=n, replace=True)


def start_server(export_dir: Path, port: int, startup_timeout: float = 120.0, cache_mb: float | None = None,
                 workers: int | None = None, env_extra: dict | None = None):
    """``uvicorn helpers.serving.api:app`` on 127.0.0.1:port; returns the process once /health answers.
    ``cache_mb`` sets the server's answer cache (``0`` disables it; ``None``: the server default);
    ``workers`` > 1 starts that many uvicorn worker processes (each loads the export)."""
    import httpx

    env = {**os.environ, "RECBOOK_EXPORT_DIR": str(export_dir), **(env_extra or {})}
    if cache_mb is not None:
        env["RECBOOK_API_CACHE_MB"] = str(cache_mb)
    cmd = [sys.executable, "-m", "uvicorn", "helpers.serving.api:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"] + (["--workers", str(workers)] if workers and workers > 1
                                                             else [])
    proc = subprocess.Popen(cmd, env=env, cwd=str(config.PROJECT_ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
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


def _export_folder(export_dir) -> Path:
    """The export folder the server will serve (the ``current`` version of a versioned root)."""
    root = Path(export_dir or os.environ.get("RECBOOK_EXPORT_DIR") or config.EXPORTS_DIR)
    folder = resolve(root).resolve()
    if not (folder / "manifest.json").exists():
        raise FileNotFoundError(f"no export in {root}: run the export first")
    return folder


def run_benchmark(export_dir=None, n_requests: int = 10_000, concurrency: int = 8, k: int = 10,
                  warmup: int = 200, max_seconds: float = 300.0, seed: int = 0, cache: bool = True,
                  log=print, mode: str = "threads", workers: int | None = None) -> dict:
    """Start the server, fire the requests, stop the server; returns the latency summary.

    ``cache=False`` starts the server with its answer cache disabled (every request is
    built from the in-memory lists and serialized). ``mode="locust"`` runs :func:`run_locust`
    instead (every endpoint, ``n_requests`` and ``max_seconds`` per endpoint)."""
    if mode == "locust":
        return run_locust(export_dir, users=concurrency, max_requests=n_requests, seconds=max_seconds, k=k,
                          seed=seed, workers=workers, cache=cache, log=log)
    if mode != "threads":
        raise ValueError(f"mode must be 'threads' or 'locust', not {mode!r}")
    export_dir = _export_folder(export_dir)
    ids = _customer_ids(export_dir, n_requests + warmup, seed)
    port = free_port()
    t_start = time.perf_counter()
    proc = start_server(export_dir, port, cache_mb=None if cache else 0, workers=workers)
    startup_s = time.perf_counter() - t_start
    latencies = np.full(n_requests, np.nan)
    errors = [0] * concurrency
    error_samples: list[str] = []
    deadline = time.monotonic() + max_seconds

    def get(conn: http.client.HTTPConnection, cid) -> tuple[int, bytes]:
        conn.request("GET", f"/customers/{quote(str(cid), safe='')}/recommendations?k={k}")
        resp = conn.getresponse()
        return resp.status, resp.read()

    def worker(w: int, start_barrier: threading.Barrier) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)  # keep-alive, one per client
        try:
            for cid in ids[n_requests + w: n_requests + warmup: concurrency]:  # warm-up, not timed
                try:
                    get(conn, cid)
                except (OSError, http.client.HTTPException):
                    conn.close()
            start_barrier.wait()
            for i in range(w, n_requests, concurrency):
                if time.monotonic() > deadline:
                    break
                t0 = time.perf_counter()
                try:
                    status, body = get(conn, ids[i])
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



# --------------------------------------------------------------------- locust
ENDPOINTS = ("recommendations", "similar", "basket")  # one locust phase each, in this order
# requests per second each user sends (locust's constant_throughput); 0: back to back, no think time
RATE_PER_USER = {"recommendations": 20.0, "similar": 20.0, "basket": 5.0}


def _locust_ids(export_dir: Path, n: int, seed: int) -> dict:
    """Request ids for the phases, drawn with a seed (JSON-ready: ints stay ints, text stays text)."""
    rng = np.random.default_rng(seed)
    customers = _unique_ids(export_dir / "model" / "top_all.parquet", "customer_id")
    with_similar = _unique_ids(export_dir / "similar_products.parquet", "product_id")
    catalog = _unique_ids(export_dir / "model" / "top_all.parquet", "product_id")
    sizes = rng.integers(1, 6, size=n)
    return {"customers": rng.choice(customers, size=n).tolist(), "products": rng.choice(with_similar, size=n).tolist(),
            "baskets": [rng.choice(catalog, size=int(m), replace=False).tolist() for m in sizes]}


def run_locust(export_dir=None, users: int = 32, max_requests: int = 20_000, seconds: float = 20.0,
               warmup_seconds: float = 2.0, k: int = 10, seed: int = 0, workers: int | None = None,
               cache: bool = True, endpoints=ENDPOINTS, rate_per_user: dict | float | None = None,
               log=print) -> dict:
    """Start the server, run one headless locust phase per endpoint, stop the server.

    Every phase is bounded by ``max_requests`` and ``seconds`` (after ``warmup_seconds`` not
    counted); the server listens on 127.0.0.1 only. ``rate_per_user`` (one number, or one per
    endpoint; default :data:`RATE_PER_USER`) is each user's pace; 0 sends back to back (a closed
    loop that measures the load generator's own limits as much as the server's)."""
    rates = dict(RATE_PER_USER) if rate_per_user is None else (
        {e: float(rate_per_user) for e in ENDPOINTS} if isinstance(rate_per_user, (int, float))
        else {**RATE_PER_USER, **rate_per_user})
    export_dir = _export_folder(export_dir)
    port = free_port()
    t_start = time.perf_counter()
    proc = start_server(export_dir, port, cache_mb=None if cache else 0, workers=workers)
    startup_s = time.perf_counter() - t_start
    try:
        with tempfile.TemporaryDirectory(prefix="recbook-locust-") as tmp:
            spec = {"host": f"http://127.0.0.1:{port}", "users": int(users), "max_requests": int(max_requests),
                    "seconds": float(seconds), "warmup_seconds": float(warmup_seconds), "k": int(k),
                    "endpoints": list(endpoints), "ids": _locust_ids(export_dir, 4096, seed),
                    "server_pid": proc.pid, "rates": rates}
            spec_path = Path(tmp) / "spec.json"
            spec_path.write_text(json.dumps(spec))
            budget = len(endpoints) * (seconds + warmup_seconds + 30) + 60
            child = subprocess.run([sys.executable, "-m", "helpers.bench.api_load", "--locust-child", str(spec_path)],
                                   cwd=str(config.PROJECT_ROOT), capture_output=True, text=True, timeout=budget)
            if child.returncode != 0:
                raise RuntimeError(f"the locust run exited with {child.returncode}:\n{child.stderr[-2000:]}")
            phases = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        stop_server(proc)
    result = {"tool": "locust", "users": int(users), "k": int(k), "server_workers": int(workers or 1),
              "server_cache": bool(cache), "server_startup_s": round(startup_s, 2), "export_dir": str(export_dir),
              "target_p99_ms": {"recommendations": 30.0, "similar": 30.0, "basket": 100.0},
              "rate_per_user": rates, "errors": int(sum(ph["errors"] for ph in phases.values())),
              "endpoints": phases}
    for name, ph in phases.items():
        for key in ("requests", "errors", "p50_ms", "p99_ms", "throughput_rps", "server_cpu_ms_per_request"):
            result[f"{name}_{key}"] = ph[key]
    if log:
        for name, ph in phases.items():
            log(f"[locust] {name}: {ph['requests']:,} requests, {users} users: p50 {ph['p50_ms']} ms, "
                f"p99 {ph['p99_ms']} ms, {ph['throughput_rps']} req/s, {ph['errors']} errors, "
                f"server CPU {ph['server_cpu_ms_per_request']} ms/request")
    return result


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the server process and its worker processes:
    the server's cost per request, whatever else shares the machine."""
    import psutil  # a dependency of locust

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _locust_phase(user_class, spec: dict, environment, events, gevent) -> dict:
    """One endpoint's phase: warm-up, then counted requests until the count or the time is reached."""
    env = environment(user_classes=[user_class], events=events)
    runner = env.create_local_runner()
    times: list[float] = []
    failures = [0]
    counting = [False]

    def on_request(response_time=None, exception=None, **_kw):
        if not counting[0]:
            return
        times.append(float(response_time))
        if exception is not None:
            failures[0] += 1
        if len(times) >= spec["max_requests"]:
            counting[0] = False
            runner.quit()

    events.request.add_listener(on_request)
    try:
        runner.start(spec["users"], spawn_rate=spec["users"])
        gevent.sleep(spec["warmup_seconds"])
        counting[0] = True
        cpu0, t0 = _server_cpu(spec["server_pid"]), time.perf_counter()
        stopper = gevent.spawn_later(spec["seconds"], runner.quit)
        runner.greenlet.join()
        wall, cpu = time.perf_counter() - t0, _server_cpu(spec["server_pid"]) - cpu0
        counting[0] = False
        stopper.kill()
    finally:
        events.request.remove_listener(on_request)
    lat = np.asarray(times)
    return {"requests": int(len(lat)), "errors": int(failures[0]),
            "server_cpu_ms_per_request": round(1000.0 * cpu / len(lat), 3) if len(lat) else None,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p90_ms": round(float(np.percentile(lat, 90)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "max_ms": round(float(lat.max()), 2) if len(lat) else None,
            "throughput_rps": round(len(lat) / wall, 1) if wall > 0 else None, "wall_s": round(wall, 2)}


def _locust_child(spec_path: str) -> int:
    """The locust phases (run in a child process: locust patches the standard library with gevent)."""
    import gevent
    from locust import FastHttpUser, constant, constant_throughput, events, task
    from locust.env import Environment

    spec = json.loads(Path(spec_path).read_text())
    ids, k = spec["ids"], spec["k"]

    def path_id(x) -> str:
        return quote(str(x), safe="")

    class Client(FastHttpUser):
        host = spec["host"]
        wait_time = constant(0)
        n = 0

        def _next(self) -> int:
            Client.n += 1
            return Client.n % len(ids["customers"])

    class Recommendations(Client):
        @task
        def get(self):
            cid = ids["customers"][self._next()]
            self.client.get(f"/customers/{path_id(cid)}/recommendations?k={k}", name="recommendations")

    class Similar(Client):
        @task
        def get(self):
            pid = ids["products"][self._next()]
            self.client.get(f"/products/{path_id(pid)}/similar?k={k}", name="similar")

    class Basket(Client):
        @task
        def post(self):
            basket = ids["baskets"][self._next()]
            self.client.post("/recommendations", json={"product_ids": basket, "k": k}, name="basket")

    users = {"recommendations": Recommendations, "similar": Similar, "basket": Basket}
    for name, user in users.items():
        rate = float(spec["rates"].get(name, 0.0))
        user.wait_time = constant_throughput(rate) if rate > 0 else constant(0)
    out = {name: _locust_phase(users[name], spec, Environment, events, gevent) for name in spec["endpoints"]}
    print(json.dumps(out))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.bench.api_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--export-dir", help="export folder (default $RECBOOK_EXPORT_DIR or data/exports)")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--no-cache", action="store_true", help="disable the server's answer cache")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--locust", action="store_true", help="every endpoint under locust (headless)")
    ap.add_argument("--seconds", type=float, default=20.0, help="--locust: seconds per endpoint")
    ap.add_argument("--workers", type=int, default=None, help="uvicorn worker processes")
    ap.add_argument("--rate-per-user", type=float, default=None,
                    help="--locust: requests/s per user for every endpoint (0: back to back; default per endpoint)")
    ap.add_argument("--locust-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.locust_child:
        return _locust_child(args.locust_child)
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    if args.locust:
        res = run_locust(args.export_dir, users=args.concurrency, max_requests=args.requests, seconds=args.seconds,
                         k=args.k, workers=args.workers, cache=not args.no_cache, rate_per_user=args.rate_per_user, log=log)
    else:
        res = run_benchmark(args.export_dir, args.requests, args.concurrency, args.k, max_seconds=args.max_seconds,
                            cache=not args.no_cache, workers=args.workers, log=log)
    if args.json:
        print(json.dumps(res, indent=2))
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
