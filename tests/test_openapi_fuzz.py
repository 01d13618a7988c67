"""Schemathesis fuzzing of the OpenAPI spec: every operation, a bounded number of generated requests each.

Whatever the fuzzer sends (valid or not), the API must never answer 500, must answer with a status and a
content type its spec declares, and its bodies must match the declared schemas (errors included: the one
``{"error": {"code", "message"}}`` shape). Beyond "no 5xx", the spec must say what the server does:

* data the schema allows is never refused as invalid (422) — a published limit looser than the enforced one
  fails here (400, 413 and 415 are refusals the schema cannot express: a path with a NUL byte, a file that is
  not a document);
* data the schema forbids is refused (so a published limit tighter than the enforced one fails too);
* a method the spec does not list for a path gets 405 with an ``Allow`` naming exactly the listed ones.

Two servers: one without an API key (the spec publishes the key as optional) and one with a key that the
fuzzer does not send, whose every answer is a 401 that must be documented as it is (``/metrics`` included).
"""

from __future__ import annotations

import pytest

# integration: generated requests against the whole API
pytestmark = pytest.mark.integration

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from tests.api_fixtures import build_settings, make_docs  # noqa: E402
from tokensearch.api.app import create_app  # noqa: E402
from tokensearch.engine import Engine  # noqa: E402

MAX_EXAMPLES = 20  # per operation: the whole module stays well under a minute

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.positive_data_acceptance,
    checks.negative_data_rejection,
    checks.unsupported_method,
    checks.allow_header_conformance,
]
# schemathesis' defaults, plus the refusals of well-formed input the schema cannot express: 400 (the engine's
# or the path check's), 413/415 (an upload's size and its content sniffed by magic bytes). Never 422.
ACCEPTED = ["2xx", "3xx", "400", "401", "403", "404", "409", "413", "415", "429"]


def _schema(tmp_path_factory, encoder, **settings_kw):
    tmp = tmp_path_factory.mktemp("fuzz")
    settings_ = build_settings(tmp, max_upload_bytes=200_000, **settings_kw)
    make_docs(settings_.roots[0])
    engine = Engine(settings_, encoder=encoder)
    engine.index(settings_.roots[0])
    app = create_app(settings_, engine=engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED
    return schema, engine


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory, mini_encoder):
    schema, engine = _schema(tmp_path_factory, mini_encoder)
    yield schema
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # stop the app (its job worker) before closing the engine
    engine.close()


@pytest.fixture(scope="module")
def keyed_schema(tmp_path_factory, mini_encoder):
    schema, engine = _schema(tmp_path_factory, mini_encoder, api_key="fuzz-key-that-is-never-sent")
    yield schema
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()
    engine.close()


schema = schemathesis.pytest.from_fixture("fuzz_schema")
keyed = schemathesis.pytest.from_fixture("keyed_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_no_server_errors_and_responses_match_the_spec(case):
    case.call_and_validate(checks=CHECKS)


@keyed.parametrize()
@settings(max_examples=5, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_a_keyed_server_answers_requests_without_the_key_as_documented(case):
    case.call_and_validate(checks=CHECKS)
