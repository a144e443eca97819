"""Shared fixtures (a tiny synthetic star schema, raw and validated) and the session guard:
the suite fails when it changed the checkout's outputs (``data/``, ``reports/``, ``_build/``);
tests write only under ``tmp_path``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY = dict(n_customers=200, n_products=150, n_days=120, seed=1)
CHECKOUT = Path(__file__).resolve().parents[1]
GUARDED = ("data", "reports", "_build")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def output_state(root: Path = CHECKOUT) -> dict[str, tuple[int, int]]:
    """``path -> (size, mtime_ns)`` of every file under the guarded folders (``.gitkeep`` left out)."""
    out = {}
    for name in GUARDED:
        for dirpath, _, files in os.walk(root / name):
            for f in files:
                if f == ".gitkeep":
                    continue
                p = os.path.join(dirpath, f)
                try:
                    st = os.stat(p)
                except FileNotFoundError:
                    continue
                out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def output_changes(before: dict, after: dict) -> list[str]:
    return ([f"added {p}" for p in sorted(after.keys() - before.keys())]
            + [f"removed {p}" for p in sorted(before.keys() - after.keys())]
            + [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]])


def pytest_sessionstart(session):
    session.config.stash[_STATE] = output_state()


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_STATE, None)
    if before is None:
        return
    changes = output_changes(before, output_state())
    if changes:
        shown = "\n  ".join(changes[:20]) + ("\n  ..." if len(changes) > 20 else "")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = f"The test session changed the checkout's outputs ({', '.join(GUARDED)}):\n  {shown}"
        if reporter is not None:
            reporter.write_sep("=", "checkout outputs changed", red=True)
            reporter.write_line(text)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_STATE = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def tiny_raw():
    from helpers.data.sources import synthetic

    return synthetic.generate(**TINY)


@pytest.fixture()
def raw_copy(tiny_raw):
    """A fresh deep copy of the raw tiny tables that a test may corrupt."""
    return {k: (v.copy(deep=True) if hasattr(v, "copy") else v) for k, v in tiny_raw.items()}


@pytest.fixture(scope="session")
def tiny_tables(tiny_raw):
    from helpers.data.validate import validate_star_schema

    return validate_star_schema({k: v.copy() for k, v in tiny_raw.items() if not k.startswith("_")})
