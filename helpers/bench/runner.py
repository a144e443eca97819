"""Child-process measurement of one benchmark stage.

:func:`run_stage` runs a stage body of :mod:`helpers.bench.stages` in a fresh interpreter
(``python -c``), so peaks are per stage, not cumulative: ``wall_s`` / ``cpu_s`` are the
child's own deltas around the stage's work (``resource.getrusage`` of the child plus its
own children, e.g. papermill kernels; imports and start-up excluded); ``peak_rss_gib`` is
``ru_maxrss`` from ``os.wait4`` for that one process (maximum over it and every descendant
it waited for); ``wall_process_s`` the whole child process; ``load_before`` the load average.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import config
from helpers.atomic import write_text
from helpers.bench import stages

GIB = 1024 ** 3


def _rusage() -> dict:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_self": s.ru_utime + s.ru_stime, "cpu_children": c.ru_utime + c.ru_stime,
            "maxrss_self_kib": s.ru_maxrss, "maxrss_children_kib": c.ru_maxrss}


def write_result(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp, datetime)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def child_main(spec_path: str) -> int:
    """Entry point of a stage's child process: run ``spec["func"](**spec["kwargs"])``."""
    spec = json.loads(Path(spec_path).read_text())
    func = getattr(stages, spec["func"])
    r0, t0 = _rusage(), time.perf_counter()
    try:
        result = func(**spec["kwargs"])
        error = None
    except BaseException as exc:  # reported to the parent, which records it
        result, error = None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    t1, r1 = time.perf_counter(), _rusage()
    out = {
        "result": result,
        "error": error,
        "wall_s": t1 - t0,
        "cpu_s": (r1["cpu_self"] - r0["cpu_self"]) + (r1["cpu_children"] - r0["cpu_children"]),
        "maxrss_self_gib": r1["maxrss_self_kib"] * 1024 / GIB,
        "maxrss_children_gib": r1["maxrss_children_kib"] * 1024 / GIB,
    }
    write_result(Path(spec["out"]), out)
    return 0 if error is None else 1


def run_stage(label: str, func: str, log=print, **kwargs) -> dict:
    """Run ``helpers.bench.stages.<func>(**kwargs)`` in a fresh child process and measure it."""
    scratch = Path(tempfile.mkdtemp(prefix="recbook-bench-"))
    spec, out = scratch / "spec.json", scratch / "out.json"
    write_result(spec, {"func": func, "kwargs": kwargs, "out": str(out)})
    cmd = [sys.executable, "-c", "import sys; from helpers.bench.runner import child_main; sys.exit(child_main(sys.argv[1]))",
           str(spec)]
    load = os.getloadavg()
    log(f"[bench] {label}: started (load {load[0]:.2f})")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=config.PROJECT_ROOT)
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall_process = time.perf_counter() - t0
    rec = {"stage": label, "ok": False, "load_before": [round(x, 2) for x in load],
           "wall_process_s": round(wall_process, 3), "cpu_process_s": round(ru.ru_utime + ru.ru_stime, 3),
           "peak_rss_gib": round(ru.ru_maxrss * 1024 / GIB, 3), "exit_code": proc.returncode}
    if out.exists():
        child = json.loads(out.read_text())
        rec.update(ok=child["error"] is None, wall_s=round(child["wall_s"], 3), cpu_s=round(child["cpu_s"], 3),
                   result=child["result"], error=child["error"])
    else:
        rec.update(wall_s=round(wall_process, 3), cpu_s=rec["cpu_process_s"], result=None,
                   error=f"child exited with {proc.returncode} without a result (killed? out of memory?)")
    shutil.rmtree(scratch, ignore_errors=True)
    if rec["ok"]:
        log(f"[bench] {label}: done in {rec['wall_s']:.1f} s (cpu {rec['cpu_s']:.1f} s, "
            f"peak RSS {rec['peak_rss_gib']:.2f} GiB)")
    else:
        first = (rec["error"] or "").strip().splitlines()[:1]
        log(f"[bench] {label}: FAILED after {rec['wall_process_s']:.1f} s: {first[0] if first else ''}")
    return rec

