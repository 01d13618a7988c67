"""How the storage tests choose PostgreSQL (tests/storage_fixtures.py): with no server answering where
TOKENSEARCH_TEST_PG_URL points they are skipped, saying so, outside CI, and fail in CI (the environment
variable CI, which scripts/test.sh sets); a server that answers is used."""

from __future__ import annotations

import re
import socket

import pytest

from tests.storage_fixtures import pg_silence, postgres_url


@pytest.fixture(autouse=True)
def fresh_probe():
    pg_silence.cache_clear()
    yield
    pg_silence.cache_clear()


@pytest.fixture
def silent_url(monkeypatch) -> str:
    """A URL with a password, at a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://postgres:secret@127.0.0.1:{port}/test"
    monkeypatch.setenv("TOKENSEARCH_TEST_PG_URL", url)
    return url


def _ci(monkeypatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_no_server_outside_ci_skips_with_the_reason(silent_url, monkeypatch, ci):
    _ci(monkeypatch, ci)
    shown = silent_url.replace(":secret@", ":***@")  # the password is not printed
    with pytest.raises(
        pytest.skip.Exception, match=re.escape(f"no PostgreSQL server answers at {shown}; CI requires it")
    ):
        postgres_url()


@pytest.mark.parametrize("ci", ["1", "true"])
def test_no_server_in_ci_fails(silent_url, monkeypatch, ci):
    _ci(monkeypatch, ci)
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL server answers at .*CI requires it") as e:
        postgres_url()
    assert "secret" not in str(e.value)


def test_off_skips_outside_ci_and_fails_in_ci(monkeypatch):
    monkeypatch.setenv("TOKENSEARCH_TEST_PG_URL", "off")
    _ci(monkeypatch, None)
    with pytest.raises(pytest.skip.Exception, match="disabled by TOKENSEARCH_TEST_PG_URL=off"):
        postgres_url()
    _ci(monkeypatch, "1")
    with pytest.raises(pytest.fail.Exception, match="CI requires the PostgreSQL tests"):
        postgres_url()


@pytest.mark.parametrize("ci", [None, "1"])
def test_a_server_that_answers_is_used(monkeypatch, ci):
    _ci(monkeypatch, ci)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"postgresql+psycopg://postgres@127.0.0.1:{server.getsockname()[1]}/test"
        monkeypatch.setenv("TOKENSEARCH_TEST_PG_URL", url)
        assert postgres_url() == url


def test_a_socket_folder_is_probed_through_its_socket(tmp_path, monkeypatch):
    _ci(monkeypatch, None)
    url = f"postgresql+psycopg://postgres@/test?host={tmp_path}"
    monkeypatch.setenv("TOKENSEARCH_TEST_PG_URL", url)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL server answers"):
        postgres_url()
    pg_silence.cache_clear()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / ".s.PGSQL.5432"))
        server.listen()
        assert postgres_url() == url
