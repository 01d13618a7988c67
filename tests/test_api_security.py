"""What the API lets a client do: API keys, refusing to start exposed, paths confined to the roots, limits."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api_fixtures import api_env, assert_error, build_settings, make_docs, wait_job  # noqa: F401
from tests.builders import write_pdf
from tokensearch.api.app import create_app
from tokensearch.api.security import InsecureConfigError, is_loopback, resolve_client_path
from tokensearch.api.serve import add_serve_arguments, run_serve, serve_settings
from tokensearch.engine import Engine

# integration: the API over an index the vision model builds
pytestmark = pytest.mark.integration

API = "/api/v1"
KEY = "s3cret-key-for-tests"


@pytest.fixture
def keyed(tmp_path, mini_encoder):
    """An app with an API key, on an index of the generated documents."""
    settings = build_settings(tmp_path, api_key=KEY)
    make_docs(settings.roots[0])
    engine = Engine(settings, encoder=mini_encoder)
    engine.index(settings.roots[0])
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c
    engine.close()


# -- startup ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_refuses_to_start_on_a_network_interface_without_a_key(tmp_path, host):
    with pytest.raises(InsecureConfigError, match="TOKENSEARCH_API_KEY"):
        create_app(build_settings(tmp_path, host=host))
    create_app(build_settings(tmp_path, host=host, api_key=KEY))  # with a key it is allowed


def test_serve_command_exits_with_a_message_instead_of_serving_unprotected(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--host", "0.0.0.0", "--port", "8123"])
    assert run_serve(args, build_settings(tmp_path)) == 2
    assert "refusing to serve on '0.0.0.0' without an API key" in capsys.readouterr().err


def test_serve_flags_apply_over_the_environment(tmp_path):
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    args = parser.parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "9001",
            "--root",
            str(tmp_path),
            "--root",
            "/srv",
            "--api-key-file",
            str(key_file),
            "--cors-origin",
            "https://a.example",
        ]
    )
    s = serve_settings(args, build_settings(tmp_path))
    assert (s.host, s.port, s.api_key) == ("0.0.0.0", 9001, KEY)
    assert s.roots == [tmp_path, Path("/srv")] and s.cors_origins == ["https://a.example"]


@pytest.mark.parametrize(
    "host,loop",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.5", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("::", False),
    ],
)
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


# -- API key ------------------------------------------------------------------------------------------------


def test_loopback_without_a_key_needs_no_auth(api_env):
    assert api_env.client.get(f"{API}/search", params={"q": "crane"}).status_code == 200
    assert api_env.client.get("/healthz").json()["auth"] is False


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", f"{API}/search?q=crane"),
        ("get", f"{API}/documents"),
        ("get", f"{API}/documents/1"),
        ("delete", f"{API}/documents/1"),
        ("post", f"{API}/documents"),
        ("get", f"{API}/index-jobs"),
        ("post", f"{API}/index-jobs"),
        ("get", f"{API}/index-jobs/x"),
        ("delete", f"{API}/index-jobs/x"),
        ("get", f"{API}/pages/1/1/image"),
        ("get", f"{API}/pages/1/1/heatmap?q=crane"),
        ("get", "/metrics"),
    ],
)
def test_a_configured_key_is_required_everywhere(keyed, method, path):
    assert_error(getattr(keyed, method)(path), 401, "unauthorized")
    assert_error(getattr(keyed, method)(path, headers={"X-API-Key": "wrong"}), 403, "forbidden")


def test_the_right_key_works_as_header_or_bearer(keyed):
    ok = keyed.get(f"{API}/search", params={"q": "crane"}, headers={"X-API-Key": KEY})
    assert ok.status_code == 200 and ok.json()["hits"]
    assert keyed.get(f"{API}/documents", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
    assert_error(keyed.get(f"{API}/documents", headers={"Authorization": "Bearer nope"}), 403)


def test_health_and_viewer_stay_open_with_a_key(keyed):
    h = keyed.get("/healthz")
    assert h.status_code == 200 and h.json()["auth"] is True and h.json()["status"] == "ok"
    assert keyed.get("/").status_code == 200
    assert keyed.get("/static/viewer.js").status_code == 200


def test_openapi_documents_the_key(keyed):
    spec = keyed.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "required when the server has an API key (always off loopback)",
    }


# -- paths --------------------------------------------------------------------------------------------------

ESCAPES = [
    "../",
    "..",
    "../../etc",
    "docs/../../etc",
    "%2e%2e/%2e%2e/etc",
    "%2E%2E%2Fetc",
    "%252e%252e%252fetc",
    "..%2f..%2fetc",
    "/etc",
    "/etc/passwd",
    "/",
    "~",
    "~/",
    "..\\..\\windows",
    "docs/..",
    "./../",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_index_jobs_refuse_paths_outside_the_roots(api_env, path):
    r = api_env.client.post(f"{API}/index-jobs", json={"path": path})
    assert r.status_code in (403, 404), (path, r.status_code, r.text)
    assert_error(r, r.status_code)
    assert api_env.client.get(f"{API}/index-jobs").json()["items"] == []


def test_index_jobs_refuse_a_symlink_leading_out_of_the_root(api_env, tmp_path):
    outside = tmp_path / "outside"
    write_pdf(outside / "secret.pdf", [["Top secret payroll", "numbers inside"]])
    (api_env.root / "link").symlink_to(outside, target_is_directory=True)
    assert_error(api_env.client.post(f"{API}/index-jobs", json={"path": "link"}), 403, "forbidden")
    assert_error(api_env.client.post(f"{API}/index-jobs", json={"path": str(api_env.root / "link")}), 403)
    assert_error(api_env.client.post(f"{API}/index-jobs", json={"path": "link/secret.pdf"}), 403)


def test_index_jobs_never_read_files_symlinked_out_of_the_roots(api_env, tmp_path):
    outside = write_pdf(tmp_path / "outside" / "secret.pdf", [["Classified walnut ledger", "page one"]])
    (api_env.root / "mixed").mkdir()
    (api_env.root / "mixed" / "secret.pdf").symlink_to(outside)
    write_pdf(api_env.root / "mixed" / "public.pdf", [["Public hazelnut notice", "page one"]])
    job = api_env.client.post(f"{API}/index-jobs", json={"path": "mixed"}).json()
    done = wait_job(api_env.client, job["id"])
    assert done["status"] == "done", done
    assert done["report"]["skipped_outside_roots"] == [str(api_env.root / "mixed" / "secret.pdf")]
    assert api_env.client.get(f"{API}/search", params={"q": "hazelnut"}).json()["hits"]
    assert api_env.client.get(f"{API}/search", params={"q": "walnut"}).json()["hits"] == []


def test_index_jobs_need_configured_roots(tmp_path, mini_encoder):
    settings = build_settings(tmp_path, roots=[])
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        err = assert_error(c.post(f"{API}/index-jobs", json={"path": str(tmp_path)}), 403, "forbidden")
        assert "--root" in err["message"]
    engine.close()


def test_resolve_client_path_accepts_paths_inside(tmp_path):
    settings = build_settings(tmp_path)
    root = settings.roots[0]
    (root / "a" / "b").mkdir(parents=True)
    assert resolve_client_path("a/b", settings) == (root / "a" / "b").resolve()
    assert resolve_client_path(str(root / "a"), settings) == (root / "a").resolve()
    assert resolve_client_path("a%2Fb", settings) == (root / "a" / "b").resolve()
    assert resolve_client_path(".", settings) == root.resolve()


def test_pages_of_documents_outside_the_roots_are_never_served(tmp_path, mini_encoder):
    """A document indexed by the CLI from elsewhere is searchable, but its pages are not read or served."""
    settings = build_settings(tmp_path)
    elsewhere = make_docs(tmp_path / "elsewhere")
    engine = Engine(settings, encoder=mini_encoder)
    engine.index(elsewhere)
    read = []
    real = engine.page_image
    engine.page_image = lambda *a: read.append(a) or real(*a)
    with TestClient(create_app(settings, engine=engine)) as c:
        hit = c.get(f"{API}/search", params={"q": "crane"}).json()["hits"][0]
        err = assert_error(c.get(hit["image_url"]), 403, "forbidden")
        assert "--root" in err["message"]
        assert_error(c.get(f"{API}/pages/{hit['doc_id']}/1/heatmap", params={"q": "crane"}), 403)
    assert read == []
    engine.close()


# -- limits and CORS ----------------------------------------------------------------------------------------


def test_limits_come_from_the_settings(tmp_path, mini_encoder):
    settings = build_settings(tmp_path, max_query_chars=10, max_k=3)
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        assert c.get(f"{API}/search", params={"q": "x" * 10, "k": 3}).status_code == 200
        assert "10" in assert_error(c.get(f"{API}/search", params={"q": "x" * 11}), 422)["message"]
        assert "3" in assert_error(c.get(f"{API}/search", params={"q": "x", "k": 4}), 422)["message"]
    engine.close()


def test_pages_above_the_pixel_limit_are_refused(api_env, monkeypatch):
    hit = api_env.client.get(f"{API}/search", params={"q": "crane"}).json()["hits"][0]
    monkeypatch.setattr(api_env.client.app.state.api.images, "max_page_pixels", 1000)
    assert_error(api_env.client.get(hit["image_url"]), 422, "page_too_large")


def test_cors_is_off_by_default(api_env):
    r = api_env.client.get(f"{API}/documents", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = api_env.client.options(
        f"{API}/documents", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in pre.headers


def test_cors_allows_only_configured_origins(tmp_path, mini_encoder):
    settings = build_settings(tmp_path, cors_origins=["https://app.example"])
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        ok = c.get(f"{API}/documents", headers={"Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        bad = c.get(f"{API}/documents", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in bad.headers
        pre = c.options(
            f"{API}/search",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-API-Key",
            },
        )
        assert pre.status_code == 200 and "x-api-key" in pre.headers["access-control-allow-headers"].lower()
    engine.close()


def test_responses_carry_nosniff(api_env):
    assert api_env.client.get("/healthz").headers["x-content-type-options"] == "nosniff"


def test_settings_from_the_environment(tmp_path, monkeypatch):
    """TOKENSEARCH_* variables configure the server (as in Docker)."""
    from tokensearch.settings import Settings

    monkeypatch.setenv("TOKENSEARCH_ROOTS", f'["{tmp_path}"]')
    monkeypatch.setenv("TOKENSEARCH_API_KEY", KEY)
    monkeypatch.setenv("TOKENSEARCH_HOST", "0.0.0.0")
    s = Settings()
    assert s.roots == [tmp_path] and s.api_key == KEY
    create_app(s)  # allowed: a key is set
    assert os.environ["TOKENSEARCH_HOST"] == "0.0.0.0"
