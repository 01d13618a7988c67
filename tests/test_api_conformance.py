"""The OpenAPI spec and the server agree: every limit /openapi.json publishes is the one the server enforces,
a 405 lists every method of its path, errors are documented as the JSON they are (``/metrics`` included),
the API key is published as required exactly when the server has one, ``DELETE`` of an index job does what
docs/api.md says for each state of the job, and a real ``tokensearch serve`` answers an over-long request line
with 414 (the limit lives in the HTTP server, so those tests run one on a free loopback port).

In-process (TestClient); the limits on an app whose limits are not the defaults, so a spec that ignored the
settings would show.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from tests.api_fixtures import (  # noqa: F401  (api_env is a fixture)
    api_env,
    assert_error,
    build_settings,
    free_port,
    make_docs,
    wait_job,
)
from tests.builders import write_pdf
from tokensearch.api.app import create_app
from tokensearch.api.http_limits import max_head_bytes, max_request_line
from tokensearch.engine import Engine
from tokensearch.settings import Settings

# integration: a served API (uvicorn) against its OpenAPI spec
pytestmark = pytest.mark.integration

API = "/api/v1"
KEY = "conformance-key-0123456789"

# a bound the schema can only give as a ceiling: the real one depends on the data (published, then refused
# with a message of its own when the value is within the ceiling but beyond the data)
DATA_BOUNDED = {(f"{API}/pages/{{doc_id}}/{{page}}/heatmap", "token", "maximum"): "token: the query has"}


@pytest.fixture
def limited(tmp_path, mini_encoder) -> Iterator[TestClient]:
    """An indexed home served with TOKENSEARCH_MAX_QUERY_CHARS=20 and TOKENSEARCH_MAX_K=7."""
    settings = build_settings(tmp_path, max_query_chars=20, max_k=7)
    root = make_docs(settings.roots[0])
    engine = Engine(settings, encoder=mini_encoder)
    engine.index(root)
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client
    engine.close()


def _bounds(schema: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(bound, a value on the bound, the nearest value past it) for each bound of a parameter's schema."""
    for sub in schema.get("anyOf", [schema]):  # `int | None` is published as anyOf [integer, null]
        if "maximum" in sub:
            yield "maximum", sub["maximum"], sub["maximum"] + 1
        if "minimum" in sub:
            yield "minimum", sub["minimum"], sub["minimum"] - 1
        if "maxLength" in sub:
            yield "maxLength", "x" * sub["maxLength"], "x" * (sub["maxLength"] + 1)
        if sub.get("minLength", 0) > 0:
            yield "minLength", "x" * sub["minLength"], "x" * (sub["minLength"] - 1)


def _bounded_inputs(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, str, dict[str, Any]]]:
    """(path, method, where, name, schema) of every bounded parameter and JSON body property in the spec."""
    components = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                yield path, method, p["in"], p["name"], p["schema"]
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
                for name, prop in components[ref]["properties"].items():
                    yield path, method, "body", name, prop


def test_the_spec_publishes_the_limits_of_the_settings(limited):
    spec = limited.get("/openapi.json").json()
    for path in (f"{API}/search", f"{API}/pages/{{doc_id}}/{{page}}/heatmap"):
        params = {p["name"]: p["schema"] for p in spec["paths"][path]["get"]["parameters"]}
        assert params["q"]["maxLength"] == 20, path
    k = {p["name"]: p["schema"] for p in spec["paths"][f"{API}/search"]["get"]["parameters"]}["k"]
    assert k["maximum"] == 7 and k["default"] <= 7


def test_every_published_limit_is_the_enforced_one(limited):
    """Walk /openapi.json: each bounded parameter is accepted on its bound and refused (422) one step past it."""
    spec = limited.get("/openapi.json").json()
    hit = limited.get(f"{API}/search", params={"q": "crane"}).json()["hits"][0]
    base = {"doc_id": hit["doc_id"], "page": hit["page"], "job_id": "no-such-job", "q": "crane"}
    checked = 0
    for path, method, where, name, schema in _bounded_inputs(spec):
        if method == "delete" and where != "path":
            continue  # (none yet) a valid DELETE would remove the test's data
        for bound, on, past in _bounds(schema):
            if where == "path" and bound == "minLength":
                continue  # an empty path segment is another route
            results = {}
            for label, value in (("on", on), ("past", past)):
                path_values = {**base, name: value} if where == "path" else base
                url = re.sub(r"\{([^}]+)\}", lambda m, pv=path_values: str(pv[m.group(1)]), path)
                params = (
                    {"q": base["q"]}
                    if "q"
                    in {p["name"] for p in spec["paths"][path][method].get("parameters", []) if p.get("required")}
                    else {}
                )
                json = None
                if where == "query":
                    params[name] = value
                elif where == "body":
                    json = {name: value}
                results[label] = limited.request(method.upper(), url, params=params, json=json)
            what = f"{method.upper()} {path} {where} {name} {bound}={schema}"
            past_error = assert_error(results["past"], 422, "validation_error")
            assert name in past_error["message"], (what, past_error)
            on_response = results["on"]
            data_message = DATA_BOUNDED.get((path, name, bound))
            if data_message:
                assert on_response.status_code != 422 or data_message in on_response.json()["error"]["message"], what
            else:
                assert on_response.status_code != 422, (what, on_response.text[:300])
            checked += 1
    assert checked >= 20  # q twice, k, offset, limit, widths, ids, page numbers, job ids, the job body's path


def test_405_lists_every_method_the_path_serves(api_env):
    """Walk the app's routes: a method a path does not serve gets 405 whose ``Allow`` names exactly the methods
    of all routes of that path, and each of those is indeed not answered 405."""
    c = api_env.client
    served: dict[str, set[str]] = defaultdict(set)
    for route in iter_route_contexts(c.app.routes):  # included routers flattened
        if isinstance(route.original_route, Mount):  # static files: one that exists (else 404 for any method)
            mount = route.original_route
            served[f"{mount.path}/{sorted(Path(mount.app.directory).iterdir())[0].name}"] |= {"GET", "HEAD"}
        else:
            served[route.path] |= route.methods
    assert served[f"{API}/index-jobs/{{job_id}}"] == {"GET", "DELETE"}  # the case the walk is for
    for path, methods in served.items():
        url = re.sub(r"\{[^}]+\}", "999999", path)  # no such document/job: nothing is changed
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - methods):
            r = c.request(method, url)
            assert_error(r, 405, "method_not_allowed")
            assert set(r.headers["allow"].split(", ")) == methods, (method, path, r.headers["allow"])
        for method in methods:
            assert c.request(method, url).status_code != 405, (method, path)


def _media_types(response_doc: dict[str, Any]) -> set[str]:
    return set(response_doc.get("content", {}))


def test_metrics_auth_errors_are_the_json_the_spec_documents(tmp_path, mini_encoder):
    settings = build_settings(tmp_path, api_key=KEY)
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        documented = c.get("/openapi.json").json()["paths"]["/metrics"]["get"]["responses"]
        for status, headers in ((401, {}), (403, {"X-API-Key": "wrong"})):
            r = c.get("/metrics", headers=headers)
            assert_error(r, status)
            assert _media_types(documented[str(status)]) == {"application/json"}, documented[str(status)]
            assert r.headers["content-type"] == "application/json"
        ok = c.get("/metrics", headers={"X-API-Key": KEY})
        assert _media_types(documented["200"]) == {"text/plain"}
        assert ok.headers["content-type"].startswith("text/plain")
    engine.close()


def test_every_documented_error_is_the_json_error_shape(api_env):
    spec = api_env.client.get("/openapi.json").json()
    seen = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, doc in op["responses"].items():
                if status[0] in "45":
                    assert doc["content"] == {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
                    }, (method, path, status, doc)
                    seen += 1
    assert seen > 40


def test_the_api_key_is_published_as_required_only_when_the_server_has_one(tmp_path, api_env):
    """Without a key (loopback) requests need none: the spec says so; with a key each operation requires it."""
    keyless = api_env.client.get("/openapi.json").json()["paths"][f"{API}/search"]["get"]["security"]
    assert {} in keyless and {"APIKeyHeader": []} in keyless
    assert api_env.client.get(f"{API}/search", params={"q": "crane"}).status_code == 200
    keyed = create_app(build_settings(tmp_path / "keyed", api_key=KEY)).openapi()
    assert keyed["paths"][f"{API}/search"]["get"]["security"] == [{"APIKeyHeader": []}]


# -- DELETE /index-jobs/{id} -------------------------------------------------------------------------------


def _wait_status(c: TestClient, job_id: str, status: str, timeout: float = 20.0) -> dict:
    t0 = time.monotonic()
    while (job := c.get(f"{API}/index-jobs/{job_id}").json())["status"] != status:
        assert time.monotonic() - t0 < timeout, job
        time.sleep(0.02)
    return job


def test_delete_of_a_finished_job_removes_its_record(api_env):
    c = api_env.client
    job = c.post(f"{API}/index-jobs", json={"path": "."}).json()
    assert wait_job(c, job["id"])["status"] == "done"
    r = c.delete(f"{API}/index-jobs/{job['id']}")
    assert r.status_code == 200 and r.json()["status"] == "done"  # its last state
    assert_error(c.get(f"{API}/index-jobs/{job['id']}"), 404, "not_found")
    assert job["id"] not in [j["id"] for j in c.get(f"{API}/index-jobs").json()["items"]]
    assert_error(c.delete(f"{API}/index-jobs/{job['id']}"), 404, "not_found")
    stored = json.loads((api_env.home / "api" / "jobs.json").read_text())["jobs"]
    assert job["id"] not in [j["id"] for j in stored]  # gone after a restart too


def test_delete_of_a_queued_job_cancels_it_and_a_second_delete_removes_it(api_env, monkeypatch):
    c = api_env.client
    gate = threading.Event()
    real_index = api_env.engine.index
    monkeypatch.setattr(api_env.engine, "index", lambda *a, **k: (gate.wait(20), real_index(*a, **k))[1])
    try:
        first = c.post(f"{API}/index-jobs", json={"path": "."}).json()
        _wait_status(c, first["id"], "running")  # holds the one worker: the next job waits in the queue
        queued = c.post(f"{API}/index-jobs", json={"path": "."}).json()
        assert c.get(f"{API}/index-jobs/{queued['id']}").json()["status"] == "queued"
        r = c.delete(f"{API}/index-jobs/{queued['id']}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert c.get(f"{API}/index-jobs/{queued['id']}").json()["status"] == "cancelled"  # listed, as cancelled
        assert c.delete(f"{API}/index-jobs/{queued['id']}").json()["status"] == "cancelled"  # now finished: removed
        assert_error(c.get(f"{API}/index-jobs/{queued['id']}"), 404, "not_found")
    finally:
        gate.set()
    assert wait_job(c, first["id"])["status"] == "done"


def test_delete_of_a_running_upload_job_is_409_until_it_finishes(api_env, monkeypatch, tmp_path):
    c = api_env.client
    gate = threading.Event()
    real_index_files = api_env.engine.index_files
    monkeypatch.setattr(api_env.engine, "index_files", lambda *a, **k: (gate.wait(20), real_index_files(*a, **k))[1])
    pdf = write_pdf(tmp_path / "upload.pdf", [["Quokka upload"]]).read_bytes()
    try:
        job = c.post(f"{API}/documents", files={"file": ("upload.pdf", pdf, "application/pdf")}).json()["job"]
        _wait_status(c, job["id"], "running")
        assert (
            "cannot be cancelled"
            in assert_error(c.delete(f"{API}/index-jobs/{job['id']}"), 409, "job_running")["message"]
        )
    finally:
        gate.set()
    assert wait_job(c, job["id"])["status"] == "done"
    assert c.delete(f"{API}/index-jobs/{job['id']}").status_code == 200
    assert_error(c.get(f"{API}/index-jobs/{job['id']}"), 404, "not_found")


# -- a real server: request-line and header limits ---------------------------------------------------------

SERVED_QUERY_CHARS = 1000  # not the default: the request-line limit must follow it


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[int, Settings]]:
    """``tokensearch serve`` (the CLI, in its own process) on a free loopback port: (port, its settings)."""
    home = tmp_path_factory.mktemp("served") / "home"
    log = home.parent / "serve.log"  # a file, not a pipe nobody reads while the tests run
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSEARCH_")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), TOKENSEARCH_MAX_QUERY_CHARS=str(SERVED_QUERY_CHARS))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokensearch",
                "serve",
                "--home",
                str(home),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        t0 = time.monotonic()
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() - t0 < 120, "tokensearch serve did not start"
                time.sleep(0.05)
        yield port, Settings(home=home, max_query_chars=SERVED_QUERY_CHARS)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _raw(port: int, *chunks: bytes) -> tuple[int, dict]:
    """Send ``chunks`` on one connection, read the answer to the end: (status, JSON body or {})."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        for chunk in chunks:
            s.sendall(chunk)
        data = b""
        while piece := s.recv(65536):
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body) if body.startswith(b"{") else {}


def _request_line(target_length: int, line_length: int) -> bytes:
    """``GET /api/v1/search?k=0&q=aaa… HTTP/1.1`` padded to exactly ``line_length`` bytes (k=0: answered 422
    by the app without searching, so an answer that is not 414 shows the line reached the app)."""
    prefix, suffix = b"GET /api/v1/search?k=0&q=", b" HTTP/1.1"
    return prefix + b"a" * (line_length - len(prefix) - len(suffix)) + suffix


def test_a_1mb_query_string_gets_414_not_a_connection_reset(served):
    port, _ = served
    for _ in range(2):  # and the server keeps serving
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("GET", "/api/v1/search?q=" + "a" * 2**20)
        r = conn.getresponse()
        assert r.status == 414 and r.getheader("content-type") == "application/json"
        body = json.loads(r.read())
        assert set(body) == {"error"} and body["error"]["code"] == "uri_too_long", body
        conn.close()
    assert _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200


def test_the_request_line_limit_is_exact_and_follows_the_settings(served):
    port, settings = served
    limit = max_request_line(settings)
    assert limit >= 12 * SERVED_QUERY_CHARS  # derived from TOKENSEARCH_MAX_QUERY_CHARS
    tail = b"\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, body = _raw(port, _request_line(0, limit) + tail)
    assert status == 422 and body["error"]["code"] == "validation_error", body  # reached the app
    status, body = _raw(port, _request_line(0, limit + 1) + tail)
    assert status == 414 and body["error"]["code"] == "uri_too_long", body


def test_every_query_the_api_accepts_fits_the_request_line(served):
    port, _ = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    widest = "".join(f"%{b:02X}" for b in ("\U0001f600" * SERVED_QUERY_CHARS).encode())  # 4 UTF-8 bytes each
    conn.request("GET", f"/api/v1/search?k=0&offset=0&q={widest}")
    r = conn.getresponse()
    assert r.status == 422 and "k" in json.loads(r.read())["error"]["message"]  # the app refused k, not the line


def test_an_over_long_request_line_in_pieces_or_after_a_kept_alive_request_gets_414(served):
    port, settings = served
    line = _request_line(0, max_request_line(settings) + 1)
    pieces = [line[i : i + 1000] for i in range(0, len(line), 1000)]
    assert _raw(port, *pieces)[0] == 414  # no line end yet: refused on its length alone
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/healthz")
    first = conn.getresponse()
    assert first.status == 200 and first.read()
    kept = conn.sock
    conn.request("GET", "/api/v1/search?q=" + "a" * 2**18)
    assert conn.sock is kept  # the same connection's next request
    assert conn.getresponse().status == 414


def test_over_long_headers_get_431(served):
    port, settings = served
    padding = b"X-Padding: " + b"p" * max_head_bytes(settings) + b"\r\n"
    status, body = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + padding + b"\r\n")
    assert status == 431 and body["error"]["code"] == "headers_too_large", body
