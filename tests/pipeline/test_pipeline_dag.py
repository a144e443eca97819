"""The pipeline's dependency graph: declaration checks, the scheduler, and run() on fake notebooks.

The fake notebooks are executed by a fake executor that runs a small Python
process per notebook (started, like a kernel, with the pipeline's write log
installed), so concurrency, merging of the report folders, cache attribution
and failures are tested in seconds without papermill kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from papermill.exceptions import PapermillExecutionError

from helpers import config
from helpers.pipeline.run import (
    DEPENDS_ON,
    NotebookFailed,
    check_graph,
    numbered_notebooks,
    run,
    run_graph,
    start_order,
)

# ------------------------------------------------------------- declaration


def test_declared_graph_matches_the_notebooks():
    names = [p.stem for p in numbered_notebooks()]
    check_graph(names, DEPENDS_ON)
    assert set(DEPENDS_ON["06_hybrid"]) >= {"03_popularity", "04_als", "05_similarity"}
    assert "06_hybrid" in DEPENDS_ON["08_export"] and "06_hybrid" in DEPENDS_ON["07_evaluation"]
    for name in names[1:]:
        assert "00_data_model" in DEPENDS_ON[name]


@pytest.mark.parametrize("graph, message", [
    ({"00_a": (), "01_b": ("00_a",)}, "no DEPENDS_ON entry for ['02_c']"),
    ({"00_a": (), "01_b": ("00_a",), "02_c": ("00_x",)}, "unknown notebook '00_x'"),
    ({"00_a": (), "01_b": ("02_c",), "02_c": ()}, "01_b depends on 02_c, which is not an earlier notebook"),
    ({"00_a": ("00_a",), "01_b": (), "02_c": ()}, "00_a depends on 00_a"),
    ({"00_a": (), "01_b": (), "02_c": (), "03_gone": ()}, "do not exist: ['03_gone']"),
])
def test_invalid_graphs_are_refused(graph, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_graph(["00_a", "01_b", "02_c"], graph)


def test_start_order_numeric_with_one_job_longest_chain_first_otherwise():
    names = sorted(DEPENDS_ON)
    assert start_order(names, DEPENDS_ON, 1) == names
    order = start_order(names, DEPENDS_ON, 2)
    # the two longest model notebooks first (each heads a chain through 06 and 08), then 03
    assert order[0] == "00_data_model" and set(order[1:3]) == {"04_als", "05_similarity"}
    assert order[3] == "03_popularity"
    assert order.index("03_popularity") < order.index("01_eda")


# --------------------------------------------------------------- scheduler
class FakeTasks:
    """Tasks that sleep, recording start/end order and the number running at once."""

    def __init__(self, seconds: dict[str, float], fail: str | None = None):
        self.seconds, self.fail = seconds, fail
        self.started, self.finished = [], []
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def start(self, name):
        self.started.append(name)

        def task():
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            time.sleep(self.seconds.get(name, 0.02))
            with self.lock:
                self.now -= 1
            if name == self.fail:
                raise RuntimeError(f"{name} broke")
            return name

        return task

    def finish(self, name, value):
        assert value == name
        self.finished.append(name)


GRAPH = {"00_a": (), "01_b": ("00_a",), "02_c": ("00_a",), "03_d": ("00_a",), "04_e": ("01_b", "02_c"),
         "05_f": ("04_e",)}


def _respects(graph, order):
    pos = {n: i for i, n in enumerate(order)}
    return all(pos[d] < pos[n] for n in order for d in graph[n] if d in pos)


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_run_graph_respects_dependencies_and_the_job_limit(jobs):
    t = FakeTasks({"01_b": 0.15, "02_c": 0.1, "03_d": 0.1})
    run_graph(start_order(list(GRAPH), GRAPH, jobs), GRAPH, jobs, t.start, t.finish)
    assert sorted(t.finished) == sorted(GRAPH)
    assert _respects(GRAPH, t.finished)
    for n in GRAPH:  # started only after all its dependencies finished
        assert all(t.finished.index(d) < t.finished.index(n) for d in GRAPH[n])
    assert t.peak == min(jobs, 3)  # 01, 02, 03 can overlap
    if jobs == 1:
        assert t.started == sorted(GRAPH)


def test_run_graph_tasks_done_at_start_take_no_slot():
    t = FakeTasks({"01_b": 0.1, "02_c": 0.1})
    instant = {"00_a", "03_d"}
    started = []

    def start(name):
        started.append(name)
        return None if name in instant else t.start(name)

    run_graph(sorted(GRAPH), GRAPH, 2, start, t.finish)
    assert t.peak == 2 and sorted(t.finished) == ["01_b", "02_c", "04_e", "05_f"]
    assert started.index("03_d") < started.index("04_e")


def test_run_graph_first_failure_stops_new_starts_and_is_raised():
    t = FakeTasks({"01_b": 0.01, "02_c": 0.3, "03_d": 0.01}, fail="01_b")
    order = ["00_a", "01_b", "02_c", "03_d", "04_e", "05_f"]
    with pytest.raises(RuntimeError, match="01_b broke"):
        run_graph(order, GRAPH, 2, t.start, t.finish)
    assert t.started == ["00_a", "01_b", "02_c"]  # 03_d, ready, never started after the failure
    assert "02_c" in t.finished  # the running one was waited for
    assert t.now == 0


def test_run_graph_rejects_zero_jobs():
    with pytest.raises(ValueError):
        run_graph(["00_a"], {"00_a": ()}, 0, lambda n: None, lambda n, v: None)


# ------------------------------------------------------ run() on fake notebooks
def make_notebook(path: Path, extra_params: str = "") -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("dataset = 'synthetic'\ndata_dir = None\nprocessed_dir = None\n"
                                       f"reports_dir = None\n{extra_params}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("pass")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


# What each fake notebook does, run as a separate Python process after the pipeline's
# kernel start-up line (R: its reports folder, P: the processed folder, S: sleep).
FAKE_SCRIPT = r"""
import json, os, sys, time
from pathlib import Path
from helpers import writelog
params, stem, spec = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
R, P = Path(params["reports_dir"]), Path(params["processed_dir"])
for name in spec.get("read", []):
    assert (R / name).exists(), f"{stem}: {name} of a dependency is missing"
time.sleep(spec.get("sleep", 0))
for name in spec.get("tables", []):
    (R / "tables" / name).write_text(f"{stem} {params.get('knob')}\n")
for name in spec.get("data", []):
    tmp = P / f".{name}.tmp"
    tmp.write_text(stem)
    os.replace(tmp, P / name)
keys = spec.get("tuning", [])
if keys:
    path = R / "tables" / "tuning.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update({k: {"by": stem, "knob": params.get("knob")} for k in keys})
    path.write_text(json.dumps(current, indent=2))
    writelog.note_keys(path, keys)
if spec.get("threads"):  # the thread budget while this notebook runs, and the BLAS setting
    from helpers.models.base import n_threads
    (R / "tables" / f"threads_{stem}.txt").write_text(f"{n_threads()} {os.environ.get('OPENBLAS_NUM_THREADS')}")
time.sleep(spec.get("sleep_after", 0))
if spec.get("fail"):
    sys.exit(3)
"""

FAKE_SPECS = {
    "00_data": {"data": ["star.parquet"], "tables": ["counts.csv"]},
    "01_left": {"sleep": 0.3, "data": ["left.parquet"], "tables": ["left.csv"], "tuning": ["l1", "l2"],
                "sleep_after": 0.3},
    "02_right": {"sleep": 0.1, "data": ["right.parquet"], "tables": ["right.csv"], "tuning": ["r1"],
                 "sleep_after": 0.5},
    "03_join": {"read": ["tables/left.csv", "tables/right.csv", "tables/tuning.json"], "tables": ["join.csv"],
                "tuning": ["j"]},
}
FAKE_GRAPH = {"00_data": (), "01_left": ("00_data",), "02_right": ("00_data",), "03_join": ("01_left", "02_right")}


class FakeExecutor:
    def __init__(self, specs):
        self.specs, self.calls, self.lock = specs, [], threading.Lock()
        self.now = self.peak = 0

    def __call__(self, nb, out, parameters, progress, kernel_args):
        stem = nb.stem
        with self.lock:
            self.calls.append(stem)
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            startup = kernel_args[0].split("=", 1)[1]  # the kernel's exec_lines
            res = subprocess.run([sys.executable, "-c", startup + "\n" + FAKE_SCRIPT, json.dumps(parameters), stem,
                                  json.dumps(self.specs.get(stem, {}))], cwd=config.PROJECT_ROOT,
                                 capture_output=True, text=True)
            executed = nbformat.read(nb, as_version=4)
            if res.returncode:
                executed.cells[1].outputs = [nbformat.v4.new_output("error", ename="ValueError",
                                                                    evalue=f"{stem} broke", traceback=[])]
                nbformat.write(executed, out)
                raise PapermillExecutionError(1, 1, "pass", "ValueError", f"{stem} broke", [res.stderr])
            nbformat.write(executed, out)
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture()
def fake_project(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for stem in FAKE_GRAPH:
        make_notebook(nbs / f"{stem}.ipynb", "knob = 0\n" if stem != "00_data" else "")
    return nbs


def fake_run(nbs, out, specs=FAKE_SPECS, jobs=2, **kw):
    ex = FakeExecutor(specs)
    lines = []
    manifest = run("synthetic", output_dir=out, progress=False, log=lines.append, jobs=jobs, notebooks_dir=nbs,
                   depends_on=FAKE_GRAPH, execute=ex, **kw)
    return manifest, ex, lines


def cache_of(out: Path) -> dict:
    return json.loads((out / "reports" / ".pipeline_cache.json").read_text())


def test_fake_run_merges_reports_and_attributes_each_notebooks_outputs(fake_project, tmp_path):
    out = tmp_path / "out"
    manifest, ex, lines = fake_run(fake_project, out)
    assert ex.peak == 2  # 01 and 02 overlapped
    assert ex.calls[0] == "00_data" and ex.calls[-1] == "03_join"
    tables = out / "reports" / "tables"
    assert sorted(p.name for p in tables.iterdir()) == ["counts.csv", "join.csv", "left.csv", "right.csv",
                                                        "tuning.json"]
    tuning = json.loads((tables / "tuning.json").read_text())
    assert list(tuning) == ["l1", "l2", "r1", "j"]  # ordered by notebook, whichever merged first
    cache = cache_of(out)
    assert cache["01_left.ipynb"]["outputs"] == ["tables/left.csv"]
    assert cache["02_right.ipynb"]["outputs"] == ["tables/right.csv"]
    assert cache["01_left.ipynb"]["merged"] == {"tables/tuning.json": ["l1", "l2"]}
    assert cache["02_right.ipynb"]["merged"] == {"tables/tuning.json": ["r1"]}
    # data files: only the notebook's own, though the other one wrote its file while it ran
    assert [Path(p).name for p in cache["01_left.ipynb"]["data"]] == ["left.parquet"]
    assert [Path(p).name for p in cache["02_right.ipynb"]["data"]] == ["right.parquet"]
    assert [Path(p).name for p in cache["00_data.ipynb"]["data"]] == ["star.parquet"]
    assert manifest["jobs"] == 2 and set(manifest["notebooks"]) == {f"{s}.ipynb" for s in FAKE_GRAPH}
    assert manifest["wall_time_s"] > 0 and set(manifest["schedule_s"]) == set(manifest["notebooks"])
    assert any(line.startswith("[1/4] 00_data.ipynb") for line in lines)
    assert any(line.strip().startswith("02_right.ipynb done in") for line in lines)
    assert not any(p.name.startswith(".staging") for p in (out / "reports").iterdir())


@pytest.mark.parametrize("jobs", [1, 2])
def test_kernels_share_the_cores_while_notebooks_run_at_once(fake_project, tmp_path, jobs):
    specs = {stem: {**spec, "threads": True} for stem, spec in FAKE_SPECS.items()}
    fake_run(fake_project, tmp_path / "out", specs=specs, jobs=jobs)
    tables = tmp_path / "out" / "reports" / "tables"
    got = {stem: (tables / f"threads_{stem}.txt").read_text().split() for stem in FAKE_GRAPH}
    cpus = os.cpu_count() or 1
    if jobs == 1:  # one at a time: every core, BLAS as configured
        assert all(n == str(cpus) and blas == str(os.environ.get("OPENBLAS_NUM_THREADS")) for n, blas in got.values())
    else:  # 01 and 02 run side by side (they read the budget while both run); 00 and 03 alone
        assert got["01_left"][0] == got["02_right"][0] == str(max(1, cpus // 2))
        assert got["00_data"][0] == got["03_join"][0] == str(cpus)
        assert {blas for _, blas in got.values()} == {"1"}


def test_fake_run_one_job_gives_the_same_reports(fake_project, tmp_path):
    fake_run(fake_project, tmp_path / "two", jobs=2)
    _, ex, _ = fake_run(fake_project, tmp_path / "one", jobs=1)
    assert ex.peak == 1 and ex.calls == sorted(FAKE_GRAPH)
    for name in ("left.csv", "right.csv", "join.csv", "tuning.json"):
        a = (tmp_path / "two" / "reports" / "tables" / name).read_bytes()
        assert a == (tmp_path / "one" / "reports" / "tables" / name).read_bytes(), name


def test_fake_rerun_reuses_everything_and_a_change_reruns_only_downstream(fake_project, tmp_path):
    out = tmp_path / "out"
    fake_run(fake_project, out)
    tuning_before = (out / "reports" / "tables" / "tuning.json").read_bytes()
    manifest, ex, lines = fake_run(fake_project, out)
    assert ex.calls == [] and sorted(manifest["reused_from_cache"]) == [f"{s}.ipynb" for s in sorted(FAKE_GRAPH)]
    assert (out / "reports" / "tables" / "tuning.json").read_bytes() == tuning_before  # restored key by key
    assert sum("reused" in line for line in lines) == 4

    # a parameter that 01-03 declare: they rerun, 00 is reused
    manifest, ex, _ = fake_run(fake_project, out, params={"knob": 5})
    assert sorted(ex.calls) == ["01_left", "02_right", "03_join"]  # knob is declared by 01, 02, 03
    make_notebook(fake_project / "02_right.ipynb", "knob = 0\nother = 1\n")  # the notebook file changes
    manifest, ex, _ = fake_run(fake_project, out, params={"knob": 5})
    assert sorted(ex.calls) == ["02_right", "03_join"]
    tuning = json.loads((out / "reports" / "tables" / "tuning.json").read_text())
    assert list(tuning) == ["l1", "l2", "r1", "j"] and tuning["l1"]["knob"] == 5

    # a data file of 01 goes missing: 01 reruns to write it again; its inputs did not change,
    # so neither did its cache key nor that of 03, which is reused (as a sequential run did)
    (out / "left.parquet").unlink()
    manifest, ex, _ = fake_run(fake_project, out, params={"knob": 5})
    assert ex.calls == ["01_left"] and (out / "left.parquet").exists()


def test_fake_only_reruns_the_named_notebooks_and_keeps_the_rest(fake_project, tmp_path):
    out = tmp_path / "out"
    fake_run(fake_project, out)
    manifest, ex, _ = fake_run(fake_project, out, params={"knob": 9}, only=["01"])
    assert ex.calls == ["01_left"] and list(manifest["notebooks"]) == ["01_left.ipynb"]
    tables = out / "reports" / "tables"
    assert sorted(p.name for p in tables.iterdir()) == ["counts.csv", "join.csv", "left.csv", "right.csv",
                                                        "tuning.json"]
    assert (tables / "left.csv").read_text() == "01_left 9\n" and (tables / "right.csv").read_text() == "02_right None\n"
    tuning = json.loads((tables / "tuning.json").read_text())
    assert list(tuning) == ["l1", "l2", "r1", "j"]  # 01's keys keep their place
    assert tuning["l1"]["knob"] == 9 and tuning["r1"]["knob"] is None
    assert set(cache_of(out)) == {f"{s}.ipynb" for s in FAKE_GRAPH}  # the other entries are kept


def test_fake_failure_raises_notebook_failed_and_keeps_the_published_reports(fake_project, tmp_path):
    out = tmp_path / "out"
    fake_run(fake_project, out)
    published = {p.name: p.read_bytes() for p in (out / "reports" / "tables").iterdir()}
    specs = {**FAKE_SPECS, "01_left": {"fail": True}, "02_right": {**FAKE_SPECS["02_right"], "sleep": 0.6}}
    with pytest.raises(NotebookFailed) as info:
        fake_run(fake_project, out, specs=specs, params={"knob": 1})
    assert info.value.notebook == "01_left.ipynb" and info.value.cell == 2
    assert "01_left broke" in str(info.value)
    assert (out / "reports" / "failed" / "01_left.ipynb").exists()
    assert {p.name: p.read_bytes() for p in (out / "reports" / "tables").iterdir()} == published
    assert not any(p.name.startswith(".staging") for p in (out / "reports").iterdir())


def test_fake_failure_starts_nothing_new_but_lets_the_running_one_finish(fake_project, tmp_path):
    specs = {**FAKE_SPECS, "01_left": {"fail": True}, "02_right": {"sleep": 0.8, "tables": ["right.csv"]}}
    ex = FakeExecutor(specs)
    with pytest.raises(NotebookFailed):
        run("synthetic", output_dir=tmp_path / "out", progress=False, log=lambda s: None, jobs=2,
            notebooks_dir=fake_project, depends_on=FAKE_GRAPH, execute=ex)
    assert sorted(ex.calls) == ["00_data", "01_left", "02_right"] and ex.now == 0


def test_two_notebooks_that_may_run_at_once_writing_one_file_is_an_error(fake_project, tmp_path):
    specs = {**FAKE_SPECS, "02_right": {"tables": ["left.csv"]}}
    with pytest.raises(RuntimeError, match="tables/left.csv is written by both"):
        fake_run(fake_project, tmp_path / "out", specs=specs, jobs=1)


def test_run_refuses_an_invalid_graph_and_zero_jobs(fake_project, tmp_path):
    with pytest.raises(SystemExit, match="unknown notebook"):
        run("synthetic", output_dir=tmp_path / "o", notebooks_dir=fake_project, log=lambda s: None,
            depends_on={**FAKE_GRAPH, "03_join": ("01_left", "02_nope")}, execute=FakeExecutor({}))
    with pytest.raises(SystemExit, match="--jobs"):
        run("synthetic", output_dir=tmp_path / "o", notebooks_dir=fake_project, jobs=0, log=lambda s: None,
            depends_on=FAKE_GRAPH, execute=FakeExecutor({}))


# ------------------------------------------------------------ tuning.json lock
LOCK_SCRIPT = r"""
import sys
from helpers.tuning.workflow import save_tuning
prefix, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    save_tuning({f"{prefix}{i}": {"all": {"k": i}, "new": {"k": i}}}, folder)
"""


def test_save_tuning_from_two_processes_at_once_keeps_both_models(tmp_path):
    n = 150
    procs = [subprocess.Popen([sys.executable, "-c", LOCK_SCRIPT, prefix, str(tmp_path), str(n)],
                              cwd=config.PROJECT_ROOT, stderr=subprocess.PIPE, text=True) for prefix in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    tuning = json.loads((tmp_path / "tuning.json").read_text())
    assert set(tuning) == {f"{p}{i}" for p in "ab" for i in range(n)}
    assert tuning["b7"] == {"all": {"k": 7}, "new": {"k": 7}}
