"""The tiny export of :mod:`tests.export_fixtures`, built once for the export tests."""

from __future__ import annotations

import pytest

from tests import export_fixtures


@pytest.fixture(scope="session")
def export_built(tmp_path_factory) -> dict:
    """Star schema, tuning files and one export (``export_root``, its version ``out``)."""
    return export_fixtures.build(tmp_path_factory.mktemp("export"))
