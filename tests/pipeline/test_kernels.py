"""Kernels started ahead of their notebooks (helpers.pipeline.kernels) and papermill running in them."""

from __future__ import annotations

import json
import time

import nbformat

from helpers.pipeline.kernels import WarmKernels
from helpers.pipeline.run import papermill_execute


def _wait_ready(pool: WarmKernels, n: int, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while pool.started < n and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    assert pool.started == n


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import os, sys\n"
        "print(x, os.environ.get('WARM_TEST'), 'email.mime.text' in sys.modules, setup_value, os.getcwd())")]
    nbformat.write(nb, path)


def test_a_notebook_runs_in_a_warm_kernel_which_is_then_shut_down(tmp_path):
    nb = tmp_path / "in.ipynb"
    out = tmp_path / "out.ipynb"
    _notebook(nb)
    pool = WarmKernels(1, "__import__('os').environ.update({'WARM_TEST': 'on'})", tmp_path,
                       imports=("email.mime.text",))
    try:
        _wait_ready(pool, 1)
        km = pool.take("setup_value = 7")
        assert km is not None and pool.taken == 1
        assert pool.take() is None  # only one was asked for
        papermill_execute(nb, out, {"x": 5}, False, ["--unused"], kernel=km)
        assert not km.is_alive()  # shut down once the notebook ended
    finally:
        pool.close()
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    # the set-up line ran outside the history: the notebook's cells are numbered from 1
    assert [c["execution_count"] for c in cells] == [1, 2, 3]  # parameters, injected parameters, the cell
    text = "".join(cells[-1]["outputs"][0]["text"])
    assert text.split()[:4] == ["5", "on", "True", "7"]  # parameters, start-up line, imports, set-up
    assert text.split()[4] == str(tmp_path)  # the kernel's working directory


def test_a_kernel_whose_setup_fails_is_dropped_and_close_stops_the_rest(tmp_path):
    pool = WarmKernels(2, "", tmp_path, imports=())
    _wait_ready(pool, 2)
    kms = list(pool._ready.queue)
    assert pool.take("raise ValueError('no')") is None  # each kernel fails it, and is dropped
    assert pool.taken == 0 and not any(km.is_alive() for km in kms)
    idle = WarmKernels(1, "", tmp_path, imports=())
    _wait_ready(idle, 1)
    left = list(idle._ready.queue)
    idle.close()
    assert not left[0].is_alive() and idle.take() is None
    assert WarmKernels(0, "", tmp_path).take() is None
