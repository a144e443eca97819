"""Shared fixtures: a tiny synthetic star schema, raw and validated."""

from __future__ import annotations

import os

import pytest

TINY = dict(n_customers=200, n_products=150, n_days=120, seed=1)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
