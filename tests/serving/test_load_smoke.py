"""The locust mode of helpers.bench.api_load, tiny and bounded (127.0.0.1, a few seconds)."""

from __future__ import annotations

import importlib.util

import pytest

# never imported here: locust patches the standard library with gevent (it runs in a child process)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed")


def test_locust_phases_report_every_endpoint(export_world):
    from helpers.bench.api_load import run_benchmark

    res = run_benchmark(export_world["text"], n_requests=150, concurrency=4, max_seconds=3.0, mode="locust", log=None)
    assert res["tool"] == "locust" and res["errors"] == 0
    for name in ("recommendations", "similar", "basket"):
        ph = res["endpoints"][name]
        assert 0 < ph["requests"] <= 150 and ph["errors"] == 0
        assert 0 < ph["p50_ms"] <= ph["p99_ms"] and ph["server_cpu_ms_per_request"] > 0
        assert res[f"{name}_p99_ms"] == ph["p99_ms"]
    with pytest.raises(ValueError, match="mode"):
        run_benchmark(export_world["text"], mode="wrk")
