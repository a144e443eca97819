"""Every project path, built from one project-root constant.

``PROJECT_ROOT`` is the folder holding ``pyproject.toml``. It can be moved with
the ``RECBOOK_ROOT`` environment variable (tests use it to work in a scratch
copy). All other paths derive from it, never from the current directory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("RECBOOK_ROOT", Path(__file__).resolve().parents[1])).resolve()

DATA_DIR = PROJECT_ROOT / "data"
RAW_DIR = DATA_DIR / "raw"
PROCESSED_DIR = DATA_DIR / "processed"
EXPORTS_DIR = DATA_DIR / "exports"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
REPORTS_DIR = PROJECT_ROOT / "reports"
EXECUTED_DIR = REPORTS_DIR / "executed"
TABLES_DIR = REPORTS_DIR / "tables"
FIGURES_DIR = REPORTS_DIR / "figures"
BENCH_DIR = REPORTS_DIR / "benchmarks"
BUILD_DIR = PROJECT_ROOT / "_build"
#: every hybrid configuration ever scored on a test window (committed; each run adds its own row)
TEST_LEDGER = PROJECT_ROOT / "book" / "test_ledger.csv"

DATASETS = ("completejourney", "synthetic", "files")
DEFAULT_DATASET = "completejourney"


def processed_dir(output_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the star-schema tables of a run (default ``data/processed``)."""
    return Path(output_dir).resolve() if output_dir else PROCESSED_DIR


def code_hash() -> str:
    """Hash of the helpers package source: a code change invalidates every cached notebook."""
    h = hashlib.sha256()
    for path in sorted((PROJECT_ROOT / "helpers").rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()
