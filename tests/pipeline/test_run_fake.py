"""run() on fake notebooks: staging and all-or-nothing publication, rerun reuse, thread budget,
failures and interruption, in seconds.

The fake notebooks are executed by a fake command: a small Python process per notebook that
does what its spec says (write report tables and data files, sleep, fail) and writes the
executed copy, as the papermill child process does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from helpers import config
from helpers.export.versioned import CURRENT, resolve, versions
from helpers.pipeline.execute import NotebookFailed
from helpers.pipeline.params import ParameterError
from helpers.pipeline.run import kernel_environment, run


def make_notebook(path: Path, extra_params: str = "") -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("dataset = 'synthetic'\ndata_dir = None\nprocessed_dir = None\n"
                                       f"reports_dir = None\n{extra_params}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("pass")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


# What each fake notebook does (R: its reports folder, P: the processed folder, E: the export root;
# an export is staged as helpers.export.production.export leaves it: a complete folder, manifest.json
# last, moved into a new version folder of E and E/current switched to it, the layout of
# helpers.export.versioned.publish, written here without importing the package).
FAKE_SCRIPT = r"""
import json, os, sys, time
from pathlib import Path
params, stem, spec, nb_path, out = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
R, P = Path(params["reports_dir"]), Path(params["processed_dir"])
for name in spec.get("read", []):
    assert (R / name).exists() or (P / name).exists(), f"{stem}: {name} of a dependency is missing"
if spec.get("started"):
    Path(spec["started"]).write_text(str(os.getpid()))
time.sleep(spec.get("sleep", 0))
for name in spec.get("tables", []):
    (R / "tables" / name).parent.mkdir(parents=True, exist_ok=True)
    (R / "tables" / name).write_text(f"{stem} {params.get('knob')}\n")
for name in spec.get("data", []):
    tmp = P / f".{name}.tmp"
    tmp.write_text(f"{stem} {params.get('knob')}")
    os.replace(tmp, P / name)
if spec.get("exports"):
    E = Path(params["export_dir"])
    E.parent.mkdir(parents=True, exist_ok=True)
    staged = E.parent / f".{E.name}-{stem}-{os.getpid()}"
    staged.mkdir()
    for name in spec["exports"]:
        (staged / name).write_text(f"{stem} {params.get('knob')}")
    (staged / "manifest.json").write_text(json.dumps({"model_version": f"{stem}-{params.get('knob')}"}))
    E.mkdir(exist_ok=True)
    version = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{time.time_ns() % 10**6:06d}Z-{stem}"
    os.replace(staged, E / version)
    os.symlink(version, E / ".current.tmp")
    os.replace(E / ".current.tmp", E / "current")
if spec.get("threads"):
    (R / "tables" / f"threads_{stem}.txt").write_text(
        f"{os.environ.get('RECBOOK_THREADS')} {os.environ.get('OPENBLAS_NUM_THREADS')} "
        f"{os.environ.get('RECBOOK_NATIVE_THREADS')}")
time.sleep(spec.get("sleep_after", 0))
nb = json.loads(Path(nb_path).read_text())
if spec.get("fail"):
    nb["cells"][1]["outputs"] = [{"output_type": "error", "ename": "ValueError", "evalue": f"{stem} broke",
                                  "traceback": []}]
Path(out).write_text(json.dumps(nb))
sys.exit(1 if spec.get("fail") else 0)
"""

FAKE_SPECS = {
    "00_data": {"data": ["star.parquet"], "tables": ["counts.csv"]},
    "01_left": {"sleep": 0.3, "data": ["left.parquet"], "tables": ["left.csv", "tuning/l.json"], "sleep_after": 0.3},
    "02_right": {"sleep": 0.1, "data": ["right.parquet"], "tables": ["right.csv", "tuning/r.json"],
                 "sleep_after": 0.5},
    "03_join": {"read": ["tables/left.csv", "tables/right.csv", "tables/tuning/l.json", "star.parquet"],
                "tables": ["join.csv"], "exports": ["recs.csv"]},
}
FAKE_GRAPH = {"00_data": (), "01_left": ("00_data",), "02_right": ("00_data",), "03_join": ("01_left", "02_right")}


class FakeCommand:
    def __init__(self, specs):
        self.specs, self.calls = specs, []

    def __call__(self, nb, out, parameters, progress):
        self.calls.append(nb.stem)
        return [sys.executable, "-c", FAKE_SCRIPT, json.dumps(parameters), nb.stem,
                json.dumps(self.specs.get(nb.stem, {})), str(nb), str(out)]


@pytest.fixture()
def fake_project(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for stem in FAKE_GRAPH:
        extra = "knob = 0\n" + ("export_dir = None\n" if stem == "03_join" else "")
        make_notebook(nbs / f"{stem}.ipynb", extra if stem != "00_data" else "")
    return nbs


def fake_run(nbs, out, specs=FAKE_SPECS, jobs=2, **kw):
    cmd = FakeCommand(specs)
    lines = []
    manifest = run("synthetic", output_dir=out, progress=False, log=lines.append, jobs=jobs, notebooks_dir=nbs,
                   depends_on=FAKE_GRAPH, command=cmd, **kw)
    return manifest, cmd, lines


def tree(folder: Path, skip=("reports/failed",)) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, every symlink (the export root's ``current``) with
    ``-> target`` (``skip``: relative folders left out)."""
    return {p.relative_to(folder).as_posix(): f"-> {os.readlink(p)}".encode() if p.is_symlink() else p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if (p.is_symlink() or p.is_file()) and not any(p.relative_to(folder).as_posix().startswith(s) for s in skip)}


def export_files(out: Path) -> dict[str, bytes]:
    """The files of the export version ``<out>/exports/current`` points at."""
    return tree(resolve(out / "exports"))


def cache_of(out: Path) -> dict:
    return json.loads((out / "reports" / ".pipeline_cache.json").read_text())["notebooks"]


def test_fake_run_publishes_every_output_and_records_each_notebooks_reports(fake_project, tmp_path):
    out = tmp_path / "out"
    manifest, cmd, lines = fake_run(fake_project, out)
    assert cmd.calls[0] == "00_data" and cmd.calls[-1] == "03_join"
    tables = out / "reports" / "tables"
    assert sorted(p.relative_to(tables).as_posix() for p in tables.rglob("*.*")) == [
        "counts.csv", "join.csv", "left.csv", "right.csv", "tuning/l.json", "tuning/r.json"]
    assert sorted(p.name for p in out.glob("*.parquet")) == ["left.parquet", "right.parquet", "star.parquet"]
    exports = out / "exports"  # <processed_dir>/exports, a versioned export root
    (version,) = versions(exports)
    assert sorted(p.name for p in exports.iterdir()) == sorted([version.name, CURRENT])
    assert resolve(exports) == version and (version / "recs.csv").read_text() == "03_join None"
    assert json.loads((version / "manifest.json").read_text())["model_version"] == "03_join-None"
    assert sorted(p.name for p in (out / "reports" / "executed").iterdir()) == [f"{s}.ipynb" for s in FAKE_GRAPH]
    cache = cache_of(out)
    assert cache["01_left.ipynb"]["outputs"] == ["tables/left.csv", "tables/tuning/l.json"]
    assert cache["02_right.ipynb"]["outputs"] == ["tables/right.csv", "tables/tuning/r.json"]
    assert manifest["jobs"] == 2 and set(manifest["notebooks"]) == {f"{s}.ipynb" for s in FAKE_GRAPH}
    assert manifest["wall_time_s"] > 0 and set(manifest["schedule_s"]) == set(manifest["notebooks"])
    assert json.loads((out / "reports" / "run_manifest.json").read_text())["jobs"] == 2
    s01, s02 = manifest["schedule_s"]["01_left.ipynb"], manifest["schedule_s"]["02_right.ipynb"]
    assert s01[0] < s02[1] and s02[0] < s01[1]  # 01 and 02 overlapped
    assert any(line.startswith("[1/4] 00_data.ipynb") for line in lines)
    assert any(line.strip().startswith("02_right.ipynb done in") for line in lines)
    assert not any(p.name.startswith(".staging") for p in (out / "reports").iterdir())


def test_kernel_environment_gives_every_core_to_the_pools_and_a_share_to_native_solvers():
    assert kernel_environment(1, cores=8) == {"RECBOOK_THREADS": "8", "RECBOOK_NATIVE_THREADS": "8"}
    assert kernel_environment(3, cores=8) == {"RECBOOK_THREADS": "8", "RECBOOK_NATIVE_THREADS": "2",
                                              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert kernel_environment(4, cores=2)["RECBOOK_NATIVE_THREADS"] == "1"


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_kernel_gets_the_thread_budget(fake_project, tmp_path, jobs):
    specs = {stem: {**spec, "threads": True} for stem, spec in FAKE_SPECS.items()}
    fake_run(fake_project, tmp_path / "out", specs=specs, jobs=jobs)
    tables = tmp_path / "out" / "reports" / "tables"
    got = {stem: (tables / f"threads_{stem}.txt").read_text().split() for stem in FAKE_GRAPH}
    want = kernel_environment(jobs)
    assert {(n, native) for n, _, native in got.values()} == {(want["RECBOOK_THREADS"],
                                                               want["RECBOOK_NATIVE_THREADS"])}
    if jobs > 1:
        assert {blas for _, blas, _ in got.values()} == {"1"}


def test_fake_run_one_job_gives_the_same_outputs(fake_project, tmp_path):
    fake_run(fake_project, tmp_path / "two", jobs=2)
    _, cmd, _ = fake_run(fake_project, tmp_path / "one", jobs=1)
    assert cmd.calls == sorted(FAKE_GRAPH)
    a, b = tree(tmp_path / "two"), tree(tmp_path / "one")
    same = [k for k in a if k.startswith("reports/tables") or k.endswith(".parquet")]
    assert same and all(a[k] == b[k] for k in same)
    assert export_files(tmp_path / "two") == export_files(tmp_path / "one") != {}  # version names differ (time)


def test_fake_rerun_reuses_everything_and_a_change_reruns_only_downstream(fake_project, tmp_path):
    out = tmp_path / "out"
    fake_run(fake_project, out)
    before = tree(out, skip=("reports/run_manifest.json", "reports/.pipeline_cache.json"))
    manifest, cmd, lines = fake_run(fake_project, out)
    assert cmd.calls == [] and manifest["reused_from_cache"] == [f"{s}.ipynb" for s in sorted(FAKE_GRAPH)]
    assert tree(out, skip=("reports/run_manifest.json", "reports/.pipeline_cache.json")) == before
    assert sum("reused" in line for line in lines) == 4

    (first,) = versions(out / "exports")  # the reused export notebook published nothing
    manifest, cmd, _ = fake_run(fake_project, out, params={"knob": 5})
    assert sorted(cmd.calls) == ["01_left", "02_right", "03_join"]  # knob is declared by 01, 02, 03
    # the export that ran is a new version, current points at it, the previous one is kept
    assert versions(out / "exports") == [first, resolve(out / "exports")]
    assert (resolve(out / "exports") / "recs.csv").read_text() == "03_join 5"
    assert (first / "recs.csv").read_text() == "03_join None"
    make_notebook(fake_project / "02_right.ipynb", "knob = 0\nother = 1\n")  # the notebook file changes
    manifest, cmd, _ = fake_run(fake_project, out, params={"knob": 5})
    assert sorted(cmd.calls) == ["02_right", "03_join"]
    assert (out / "left.parquet").read_text() == "01_left 5"

    # a data file goes missing: the processed folder is not as the last run left it, nothing is reused
    (out / "left.parquet").unlink()
    manifest, cmd, _ = fake_run(fake_project, out, params={"knob": 5})
    assert sorted(cmd.calls) == sorted(FAKE_GRAPH) and (out / "left.parquet").exists()
    # a report file goes missing: only its notebook and those after it rerun
    (out / "reports" / "tables" / "right.csv").unlink()
    manifest, cmd, _ = fake_run(fake_project, out, params={"knob": 5})
    assert cmd.calls == ["02_right"]  # 03's key did not change (02's inputs did not), so it is reused


def test_exports_are_versions_and_an_old_plain_export_root_is_cleaned(fake_project, tmp_path):
    out = tmp_path / "out"
    plain = out / "exports"  # an export root written before versioning: the files in the root itself
    (plain / "model").mkdir(parents=True)
    (plain / "manifest.json").write_text('{"model_version": "plain"}')
    (plain / "recs.csv").write_text("old")
    (plain / "model" / "top_all.parquet").write_text("old")
    (plain / ".gitkeep").write_text("")
    fake_run(fake_project, out)
    (version,) = versions(plain)
    assert sorted(p.name for p in plain.iterdir()) == sorted([".gitkeep", version.name, CURRENT])
    assert resolve(plain) == version and (version / "recs.csv").read_text() == "03_join None"
    names = []
    for knob in (1, 2, 3):  # every run that exports adds a version; two are kept
        fake_run(fake_project, out, params={"knob": knob})
        names.append(resolve(plain).name)
        assert (resolve(plain) / "recs.csv").read_text() == f"03_join {knob}"
    assert [v.name for v in versions(plain)] == names[-2:]
    assert not [p for p in (out / "reports").iterdir() if p.name.startswith(".staging")]


def test_no_cache_reruns_everything_and_drops_the_old_model_cache(fake_project, tmp_path):
    out = tmp_path / "out"
    fake_run(fake_project, out)
    (out / "models" / "old").mkdir(parents=True)
    (out / "models" / "old" / "fit.pkl").write_bytes(b"x")
    _, cmd, _ = fake_run(fake_project, out)
    assert (out / "models" / "old" / "fit.pkl").read_bytes() == b"x"  # kept (linked into the staging)
    _, cmd, _ = fake_run(fake_project, out, use_cache=False)
    assert sorted(cmd.calls) == sorted(FAKE_GRAPH) and not (out / "models").exists()


def test_fake_only_reruns_the_named_notebooks_and_keeps_the_rest(fake_project, tmp_path):
    out = tmp_path / "out"
    fake_run(fake_project, out)
    manifest, cmd, _ = fake_run(fake_project, out, params={"knob": 9}, only=["01"])
    assert cmd.calls == ["01_left"] and list(manifest["notebooks"]) == ["01_left.ipynb"]
    tables = out / "reports" / "tables"
    assert sorted(p.name for p in tables.glob("*.csv")) == ["counts.csv", "join.csv", "left.csv", "right.csv"]
    assert (tables / "left.csv").read_text() == "01_left 9\n" and (tables / "right.csv").read_text() == "02_right None\n"
    assert set(cache_of(out)) == {f"{s}.ipynb" for s in FAKE_GRAPH}  # the other entries are kept


def test_a_failure_in_a_later_notebook_changes_nothing_published(fake_project, tmp_path):
    out = tmp_path / "out"
    fake_run(fake_project, out)
    (out / "models" / "m").mkdir(parents=True)
    (out / "models" / "m" / "fit.pkl").write_bytes(b"fit")
    published = tree(out)
    specs = {**FAKE_SPECS, "03_join": {**FAKE_SPECS["03_join"], "fail": True}}
    with pytest.raises(NotebookFailed) as info:
        fake_run(fake_project, out, specs=specs, params={"knob": 1})  # 00-02 succeed and write new data first
    assert info.value.notebook == "03_join.ipynb" and info.value.cell == 2
    assert "03_join broke" in str(info.value)
    assert (out / "reports" / "failed" / "03_join.ipynb").exists()
    assert tree(out) == published  # star schema, data, model cache, exports, reports: byte-identical
    assert not any(p.name.startswith(".staging") for p in (out / "reports").iterdir())


def test_a_failure_stops_the_notebook_running_beside_it(fake_project, tmp_path):
    specs = {**FAKE_SPECS, "01_left": {"fail": True}, "02_right": {"sleep": 60, "tables": ["right.csv"]}}
    t0 = time.perf_counter()
    with pytest.raises(NotebookFailed):
        fake_run(fake_project, tmp_path / "out", specs=specs)
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "out" / "reports" / "tables").exists()


def test_two_notebooks_that_may_run_at_once_writing_one_file_is_an_error(fake_project, tmp_path):
    specs = {**FAKE_SPECS, "02_right": {"tables": ["left.csv"]}}
    with pytest.raises(RuntimeError, match="tables/left.csv is written by both"):
        fake_run(fake_project, tmp_path / "out", specs=specs, jobs=1)
    assert not (tmp_path / "out" / "reports" / "tables").exists()


def test_run_refuses_an_invalid_graph_zero_jobs_and_bad_values_before_any_work(fake_project, tmp_path):
    cmd = FakeCommand({})
    with pytest.raises(ParameterError, match="unknown notebook"):
        run("synthetic", output_dir=tmp_path / "o", notebooks_dir=fake_project, log=lambda s: None,
            depends_on={**FAKE_GRAPH, "03_join": ("01_left", "02_nope")}, command=cmd)
    with pytest.raises(ParameterError, match="--jobs"):
        run("synthetic", output_dir=tmp_path / "o", notebooks_dir=fake_project, jobs=0, log=lambda s: None,
            depends_on=FAKE_GRAPH, command=cmd)
    with pytest.raises(ParameterError, match=r"\['nope'\] is not a parameter"):
        run("synthetic", output_dir=tmp_path / "o", notebooks_dir=fake_project, log=lambda s: None,
            depends_on=FAKE_GRAPH, command=cmd, params={"nope": 1, "knob": 1})
    with pytest.raises(ParameterError, match="reports_dir"):
        run("synthetic", output_dir=tmp_path / "o", notebooks_dir=fake_project, log=lambda s: None,
            depends_on=FAKE_GRAPH, command=cmd, params={"reports_dir": "x"})
    assert cmd.calls == [] and not (tmp_path / "o").exists()


def test_outputs_on_another_filesystem_are_refused_before_any_work(fake_project, tmp_path):
    from helpers.pipeline.publish import Staging

    stage = Staging(tmp_path / "p", tmp_path / "p" / "reports", tmp_path / "p" / "exports", FAKE_GRAPH)
    assert stage.other_filesystems() == []
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem here")
    cmd = FakeCommand(FAKE_SPECS)
    with pytest.raises(ParameterError, match="another filesystem"):
        run("synthetic", output_dir=tmp_path / "o", notebooks_dir=fake_project, log=lambda s: None,
            depends_on=FAKE_GRAPH, command=cmd, params={"export_dir": str(shm / f"recbook-{os.getpid()}")})
    assert cmd.calls == [] and not (tmp_path / "o").exists()


INTERRUPTED = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from tests.pipeline.test_run_fake import FAKE_GRAPH, FakeCommand
    from helpers.pipeline.run import run
    nbs, out, specs = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    run("synthetic", output_dir=out, progress=False, log=print, jobs=2, notebooks_dir=nbs, depends_on=FAKE_GRAPH,
        command=FakeCommand(specs), params={"knob": 7})
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_notebook_leaves_the_outputs_and_no_staging_or_process(fake_project, tmp_path, sig):
    out = tmp_path / "out"
    fake_run(fake_project, out)
    published = tree(out)
    marker = tmp_path / "started"
    specs = {**FAKE_SPECS, "01_left": {**FAKE_SPECS["01_left"], "started": str(marker), "sleep": 60}}
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED, str(fake_project), str(out), json.dumps(specs)],
                            cwd=config.PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "01 never started"
    child = int(marker.read_text())
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert tree(out) == published
    assert not any(p.name.startswith(".staging") for p in (out / "reports").iterdir())
    with pytest.raises(ProcessLookupError):  # the notebook's process was stopped too
        os.kill(child, 0)
