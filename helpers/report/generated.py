"""Book fragments rendered from a JSON result that a command wrote into ``reports/benchmarks``
(the synthetic-retailer table, the ablation): the fragment is rewritten at every book build,
with a 'not run yet' text while the result is missing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def write_from_json(bench_dir: Path, json_name: str, md_name: str, render: Callable[[dict | None], str]) -> Path:
    """``<bench_dir>/<md_name>`` = ``render`` of ``<bench_dir>/<json_name>`` (None when missing), atomically."""
    bench_dir = Path(bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    src = bench_dir / json_name
    text = render(json.loads(src.read_text()) if src.exists() else None)
    tmp = bench_dir / f".{md_name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, bench_dir / md_name)
    return bench_dir / md_name
