"""A CLI search asks a running ``tokensearch serve`` on the same index, and never answers differently.

The server notes itself in its home (``server.json``); the CLI uses it only when the server is alive,
searches the same database and model, and accepts the CLI's key; otherwise it searches in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api_fixtures import build_settings, free_port, make_docs
from tokensearch import cli
from tokensearch import local_server as ls
from tokensearch.engine import Engine

# integration: a running `tokensearch serve` and CLI subprocesses
pytestmark = pytest.mark.integration

SERVED = "answered by the tokensearch server"


def _cli_search(capsys, home: Path, *extra: str) -> tuple[dict, str]:
    assert cli.main(["search", "ZX-99812", "--home", str(home), "--json", *extra]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def _start_server(home: Path, port: int, key: str) -> subprocess.Popen:
    env = dict(os.environ, TOKENSEARCH_API_KEY=key, TOKENSEARCH_SEARCH_WORKERS="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokensearch", "serve", "--home", str(home), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < 90:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError("the server did not start")


def test_cli_search_is_answered_by_a_running_server_with_the_same_hits(tmp_path, mini_encoder, capsys, monkeypatch):
    settings = build_settings(tmp_path)
    with Engine(settings, encoder=mini_encoder) as eng:
        assert not eng.index(make_docs(settings.roots[0])).failed
    home = settings.home
    here, err = _cli_search(capsys, home)
    assert here["hits"] and SERVED not in err

    proc = _start_server(home, free_port(), key="s3cret")
    try:
        note = ls.read_note(home)
        assert note is not None and note.pid == proc.pid and note.model == "mini"
        # the server wants a key the CLI was not given: the CLI searches itself, silently
        monkeypatch.delenv("TOKENSEARCH_API_KEY", raising=False)
        assert _cli_search(capsys, home) == (here, "")
        monkeypatch.setenv("TOKENSEARCH_API_KEY", "s3cret")
        served, err = _cli_search(capsys, home)
        assert SERVED in err and f"pid {proc.pid}" in err
        assert served == here
        assert _cli_search(capsys, home, "--no-server") == (here, "")
        # filters and the added hit fields are the same through the server as here
        for narrow in (
            ["--path", "letter*"],
            ["--path", "invoice*"],
            ["--type", "image"],
            ["--modified-after", "2000-01-01", "--type", "pdf"],
        ):
            filtered, err = _cli_search(capsys, home, *narrow)
            assert SERVED in err and (filtered, "") == _cli_search(capsys, home, "--no-server", *narrow), narrow
        assert _cli_search(capsys, home, "--path", "letter*")[0] == here and here["hits"][0]["text"] == "ZX-99812"
        assert _cli_search(capsys, home, "--path", "invoice*")[0]["hits"] == []
        assert ls.running_server(home, None, "mini:/elsewhere") is None  # another model or database: here
        assert ls.running_server(home, "postgresql://other/db", None) is None
        os.kill(proc.pid, signal.SIGKILL)  # a killed server leaves its note behind: a dead pid is ignored
        proc.wait(10)
        assert ls.read_note(home) is not None
        assert _cli_search(capsys, home) == (here, "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_stopped_server_takes_its_note_away(tmp_path):
    home = tmp_path / "home"
    note = ls.ServerNote(os.getpid(), "http://127.0.0.1:9", None, "mini")
    ls.announce(home, note)
    assert ls.read_note(home) == note and ls.running_server(home, None, None) == note
    ls.withdraw(home, os.getpid() + 1)  # another server's stop leaves this note
    assert ls.read_note(home) == note
    ls.withdraw(home, os.getpid())
    assert ls.read_note(home) is None and not list(home.iterdir())


@pytest.mark.parametrize("text", ["", "{", '{"pid": "x"}', '{"url": "http://a"}', "[]"])
def test_a_damaged_note_means_no_server(tmp_path, text):
    (tmp_path / ls.NOTE_NAME).write_text(text)
    assert ls.read_note(tmp_path) is None and ls.running_server(tmp_path, None, None) is None


def test_a_server_that_refuses_the_connection_gives_no_answer():
    note = ls.ServerNote(os.getpid(), f"http://127.0.0.1:{free_port()}", None, "mini")
    assert ls.search(note, "x", 10, 0, None) is None
