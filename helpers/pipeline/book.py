"""Build the Jupyter Book from the executed notebooks (execution off).

``python -m helpers.pipeline.book [--no-strict]`` builds into a clean staging folder with
warnings as errors (``-W -n --keep-going``) and replaces ``_build/`` only when
the build succeeded, so a failed build never destroys the last good book.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import config
from helpers.report import ablation, lift
from helpers.report.performance import page_listed, write_placeholder


def jupyter_book_exe() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    return str(exe) if exe.exists() else "jupyter-book"


BOOK_FILES = ("_config.yml", "_toc.yml", "book")


def ensure_performance_tables(root: Path) -> Path:
    """The Performance page includes the benchmark's tables and the Methods chapter the synthetic
    retailer's and the ablation's tables (:mod:`helpers.report.lift`, :mod:`helpers.report.ablation`); write the 'not run yet' ones when missing."""
    ablation.write_page(Path(root) / "reports" / "benchmarks")
    lift.write_page(Path(root) / "reports" / "benchmarks")
    return write_placeholder(Path(root) / "reports" / "benchmarks")


def prepare_root(reports_dir: Path, dest: Path) -> Path:
    """A scratch book root whose ``reports/executed`` is another run's executed notebooks."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        src = config.PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy(src, dest / name)
    (dest / "reports").mkdir(exist_ok=True)
    target = dest / "reports" / "executed"
    if target.exists() or target.is_symlink():
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    shutil.copytree(Path(reports_dir) / "executed", target)
    bench = Path(reports_dir) / "benchmarks"
    if bench.is_dir():
        shutil.copytree(bench, dest / "reports" / "benchmarks", dirs_exist_ok=True)
    manifest = Path(reports_dir) / "run_manifest.json"
    if manifest.exists():  # the Performance page shows the run's own timings
        shutil.copy(manifest, dest / "reports" / "run_manifest.json")
    return dest


def toc_without(toc: Path, dest: Path, drop: str) -> Path:
    """A copy of the table of contents ``toc`` at ``dest`` without the entry ``file: drop``."""
    lines = [line for line in Path(toc).read_text().splitlines() if line.strip() != f"- file: {drop}"]
    dest.write_text("\n".join(lines) + "\n")
    return dest


def build(root: Path = config.PROJECT_ROOT, strict: bool = True, build_dir: Path | None = None) -> Path:
    """Build the book at ``root``; returns the ``_build/html`` folder."""
    root = Path(root)
    ensure_performance_tables(root)
    build_dir = Path(build_dir) if build_dir else root / "_build"
    staging = root / ".book-staging"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [jupyter_book_exe(), "build", str(root), "--path-output", str(staging)]
    if not page_listed(root / "reports" / "benchmarks"):  # neither a run manifest nor a bench: no such page
        staging.mkdir(parents=True)
        cmd += ["--toc", str(toc_without(root / "_toc.yml", staging / "_toc.yml", "book/performance"))]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    res = subprocess.run(cmd, cwd=root)
    if res.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise SystemExit(f"jupyter-book build failed (exit {res.returncode}); the previous {build_dir} is untouched")
    old = root / ".book-old"
    shutil.rmtree(old, ignore_errors=True)
    if build_dir.exists():
        os.replace(build_dir, old)
    os.replace(staging / "_build", build_dir)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    print(f"Book built: {build_dir / 'html' / 'index.html'}")
    return build_dir / "html"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helpers.pipeline.book")
    ap.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    ap.add_argument("--reports-dir", help="build from another run's reports (e.g. OUTPUT_DIR/reports)")
    args = ap.parse_args(argv)
    if args.reports_dir:
        root = prepare_root(Path(args.reports_dir), Path(args.reports_dir) / "book-root")
        build(root=root, strict=not args.no_strict)
    else:
        build(strict=not args.no_strict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
