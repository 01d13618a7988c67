"""Schemathesis fuzzing of the OpenAPI spec: every operation, a bounded number of generated requests each.

Whatever the fuzzer sends (valid or not), the API must never answer 500, must answer with a status and a
content type its spec declares, and its bodies must match the declared schemas (errors included: the one
``{"error": {"code", "message"}}`` shape).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from test_api_fixtures import build_settings, make_docs  # noqa: E402
from tokensearch.api.app import create_app  # noqa: E402
from tokensearch.engine import Engine  # noqa: E402

MAX_EXAMPLES = 20  # per operation: the whole module stays well under a minute

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory, mini_encoder):
    tmp = tmp_path_factory.mktemp("fuzz")
    settings_ = build_settings(tmp, max_upload_bytes=200_000)
    make_docs(settings_.roots[0])
    engine = Engine(settings_, encoder=mini_encoder)
    engine.index(settings_.roots[0])
    app = create_app(settings_, engine=engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    yield schema
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # stop the app (its job worker) before closing the engine
    engine.close()


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_spec(case):
    case.call_and_validate(checks=CHECKS)
