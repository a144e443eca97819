"""The papermill pipeline command and the notebooks in git."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from helpers import config
from helpers.pipeline.params import notebook_parameters
from helpers.pipeline.run import numbered_notebooks
from tests.conftest import TINY


def test_notebooks_in_git_carry_no_outputs():
    paths = numbered_notebooks()
    assert paths, "no numbered notebooks found"
    for path in paths:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{path.name} has outputs"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"


def test_every_notebook_cell_has_a_unique_id():
    """nbformat 4.5 cell ids: without them every read warns (and future nbformat refuses)."""
    for path in numbered_notebooks():
        nb = json.loads(path.read_text())
        ids = [cell.get("id") for cell in nb["cells"]]
        assert all(ids), f"{path.name} has cells without an id"
        assert len(set(ids)) == len(ids), f"{path.name} repeats a cell id"


def test_every_notebook_has_one_parameters_cell():
    for path in numbered_notebooks():
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name
        src = "".join(tagged[0]["source"])
        for name in ("dataset", "processed_dir", "reports_dir"):
            assert f"{name} =" in src, f"{path.name} lacks parameter {name}"
        # papermill must read every assignment (a line it cannot parse is not overridable with --param)
        assigned = {ln.split("=")[0].strip() for ln in src.splitlines() if re.match(r"^[A-Za-z_]\w*\s*=", ln)}
        assert set(notebook_parameters(path)) == assigned, path.name


def _run(*args, cwd=config.PROJECT_ROOT):
    return subprocess.run([sys.executable, "-m", "helpers.pipeline", "run", "--no-progress", *args],
                          cwd=cwd, capture_output=True, text=True)


def test_unknown_param_is_refused():
    res = _run("--dataset", "synthetic", "--param", "no_such_knob=1", "--only", "00")
    assert res.returncode != 0 and "no_such_knob" in (res.stderr + res.stdout)


@pytest.mark.slow
def test_files_run_with_bad_data_fails_cleanly_and_keeps_good_output(tmp_path):
    out = tmp_path / "out"
    good = _run("--dataset", "synthetic", "--output-dir", str(out), "--only", "00",
                *[f"--param={k}={v}" for k, v in TINY.items()])
    assert good.returncode == 0, good.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    assert len(before) == 6
    executed_before = (out / "reports" / "executed" / "00_data_model.ipynb").read_bytes()

    from helpers.data.star import load_tables

    t = load_tables(out)
    bad = tmp_path / "bad"
    bad.mkdir()
    t["fact_transactions"].to_parquet(bad / "fact_transactions.parquet", index=False)
    t["dim_customer"].to_parquet(bad / "dim_customer.parquet", index=False)
    prod = t["dim_product"]
    prod.iloc[1:].to_csv(bad / "dim_product.csv", index=False)  # a sold product goes missing
    res = _run("--dataset", "files", "--data-dir", str(bad), "--output-dir", str(out), "--only", "00")
    assert res.returncode == 2  # refused by the data check before notebook 00 started
    err = res.stderr
    assert "fact_transactions.product_id [foreign-key]" in err and "Nothing was run" in err
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before
    assert (out / "reports" / "executed" / "00_data_model.ipynb").read_bytes() == executed_before
    assert not (out / "reports" / "failed").exists()


@pytest.mark.slow
def test_rerun_with_nothing_changed_reuses_and_a_parameter_change_reruns(tmp_path):
    out = tmp_path / "out"
    params = [f"--param={k}={v}" for k, v in TINY.items()]
    first = _run("--dataset", "synthetic", "--output-dir", str(out), "--only", "00", *params)
    assert first.returncode == 0, first.stderr[-2000:]
    second = _run("--dataset", "synthetic", "--output-dir", str(out), "--only", "00", *params)
    assert second.returncode == 0 and "reused" in second.stdout
    manifest = json.loads((out / "reports" / "run_manifest.json").read_text())
    assert manifest["reused_from_cache"] == ["00_data_model.ipynb"]
    changed = _run("--dataset", "synthetic", "--output-dir", str(out), "--only", "00",
                   *params[:-1], "--param=seed=2")
    assert changed.returncode == 0 and "reused" not in changed.stdout


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "failed" not in p.relative_to(folder).parts}


def _kernel_running(pid: int) -> bool:
    """A notebook kernel (``ipykernel_launcher``) runs below process ``pid``."""
    import psutil

    try:
        return any("ipykernel_launcher" in " ".join(p.cmdline()) for p in psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return False


@pytest.mark.slow
def test_sigterm_mid_notebook_keeps_the_previous_outputs_and_removes_the_staging(tmp_path):
    out = tmp_path / "out"
    params = [f"--param={k}={v}" for k, v in TINY.items()]
    good = _run("--dataset", "synthetic", "--output-dir", str(out), "--only", "00", *params)
    assert good.returncode == 0, good.stderr[-2000:]
    before = _tree(out)
    # a larger source than TINY: notebook 00 runs about 12 s, well past the signal (on TINY it
    # could end within the wait once notebooks no longer start a new interpreter)
    bigger = {**TINY, "n_customers": 100_000, "n_products": 2_000, "n_days": 365, "seed": 5}
    proc = subprocess.Popen([sys.executable, "-m", "helpers.pipeline", "run", "--no-progress", "--no-cache",
                             "--dataset", "synthetic", "--output-dir", str(out), "--only", "00",
                             *[f"--param={k}={v}" for k, v in bigger.items()]], cwd=config.PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not _kernel_running(proc.pid) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # the kernel runs the notebook's cells
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Nothing was published" in err
    assert _tree(out) == before
    assert not list((out / "reports").glob(".staging-*"))
