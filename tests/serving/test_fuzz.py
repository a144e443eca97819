"""OpenAPI fuzzing of the app in-process (schemathesis): no input makes the server fail (no 5xx)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def fuzz_app(export_world):
    from helpers.serving.api import create_app
    from helpers.serving.settings import Settings

    app = create_app(settings=Settings.from_env(export_world["out"], reload_seconds=0.0, max_body_bytes=4096))
    assert app.state.holder.load()  # loaded up front: schemathesis calls the app without its lifespan
    return app


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_is_a_server_error(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body,
                                         response.text[:300])
    assert response.status_code in (200, 400, 401, 404, 405, 413, 422, 429, 503), response.status_code
