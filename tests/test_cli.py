"""The console script as users and the benchmark harness call it (DESIGN.md §5 output contract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# integration: the console script in subprocesses, end to end
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENSEARCH_HOME=str(home))
    r = subprocess.run(
        [sys.executable, "-m", "tokensearch", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_sample_index_search_status_remove(tmp_path):
    home = tmp_path / "home"
    docs = tmp_path / "docs"
    _run("sample", str(docs), home=home)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    out = _run("index", str(docs), "--text-layer", "auto", home=home).stdout
    assert "failed" in out and "1 failed" in out

    res = json.loads(_run("search", "INV-2023-0042", "-k", "3", "--json", home=home).stdout)
    assert set(res) == {"query", "hits"} and res["query"] == "INV-2023-0042"
    assert res["hits"], res
    hit = res["hits"][0]
    assert list(hit)[:4] == ["path", "page", "score", "boxes"]  # DESIGN.md §5; fields are only ever added:
    assert set(hit) == {"path", "page", "score", "boxes", "text", "modified", "pages", "type", "doc_id"}
    assert hit["text"] == "INV-2023-0042" and hit["type"] == "pdf" and hit["pages"] >= 1
    assert hit["path"].endswith("born-digital.pdf") and hit["page"] == 1
    assert all(len(b) == 4 and 0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b in hit["boxes"])

    table = _run("search", "committee", home=home).stdout
    assert "born-digital.pdf" in table and "score" in table

    # nothing is written "zeppelin": no exact hit (what the model makes of the scans is tested elsewhere)
    none = json.loads(_run("search", "zeppelin", "--json", "--threshold", "0.99", home=home).stdout)
    assert none["hits"] == []
    # over every score, the words of a phrase still count from --phrase-threshold where they stand together
    phrase = json.loads(
        _run("search", "harbour crane", "--json", "--threshold", "1.5", "--phrase-threshold", "0.3", home=home).stdout
    )
    assert phrase["hits"] and not any(h["path"].endswith("born-digital.pdf") for h in phrase["hits"])
    word = json.loads(
        _run("search", "harbour", "--json", "--threshold", "1.5", "--phrase-threshold", "0.3", home=home).stdout
    )
    assert word["hits"] == []

    status = json.loads(_run("status", "--json", home=home).stdout)
    assert status["documents"] == 6 and status["model"]["name"] == "mini"
    assert [Path(p).name for p, _ in status["failures"]] == ["broken.pdf"]

    _run("remove", str(docs / "born-digital.pdf"), home=home)
    res = json.loads(_run("search", "INV-2023-0042", "--json", home=home).stdout)
    assert all(not h["path"].endswith("born-digital.pdf") for h in res["hits"])


def test_errors_are_one_line_messages_with_exit_code_2(tmp_path):
    home = tmp_path / "home"
    r = _run("index", str(tmp_path / "missing"), home=home, check=False)
    assert r.returncode == 2 and "no such folder" in r.stderr and "Traceback" not in r.stderr
    r = _run("search", "   ", home=home, check=False)
    assert r.returncode == 2 and "empty" in r.stderr and "Traceback" not in r.stderr
    r = _run("search", "x", "--model", "nosuch", home=home, check=False)
    assert r.returncode == 2 and "unknown model" in r.stderr


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    # `tokensearch search ... | head`: the pipe closes before the table is written
    home = tmp_path / "home"
    docs = tmp_path / "docs"
    _run("sample", str(docs), home=home)
    _run("index", str(docs), home=home)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENSEARCH_HOME=str(home))
    p = subprocess.Popen(
        [sys.executable, "-m", "tokensearch", "search", "committee", "-k", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    p.stdout.close()  # the reader is gone before anything is written
    err = p.stderr.read().decode()
    assert p.wait(timeout=600) == 141 and "Traceback" not in err and "BrokenPipe" not in err


_NO_NETWORK = """
import socket, runpy, sys
def _refuse(*a, **k):
    raise OSError("network access attempted while the network is off")
socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = socket.getaddrinfo = _refuse
sys.argv = ["tokensearch", *sys.argv[1:]]
runpy.run_module("tokensearch", run_name="__main__")
"""


def test_scans_and_a_photo_are_indexed_and_searched_with_the_network_off(tmp_path):
    """The README's first command with every socket refused: the shipped model and tokenizer come from
    the package, nothing is fetched. Only image files are left, so every hit is the model's."""
    home, docs = tmp_path / "home", tmp_path / "docs"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENSEARCH_HOME=str(home))

    def run(*args: str) -> str:
        r = subprocess.run(
            [sys.executable, "-c", _NO_NETWORK, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0 and "network access attempted" not in r.stderr, r.stderr[-3000:]
        return r.stdout

    run("sample", str(docs))
    (docs / "born-digital.pdf").unlink()  # its text layer would answer without the model
    assert "0 failed" in run("index", str(docs))
    hits = json.loads(run("search", "INV-2023-0042", "--json"))["hits"]
    names = {Path(h["path"]).name for h in hits}
    assert {"invoice.jpg", "page-1.png"} <= names, hits
    assert all(len(h["boxes"]) >= 1 for h in hits)


def test_a_cli_search_does_not_import_torch(tmp_path):
    """A search answers from the stored index and the saved query side: importing torch (2-3 s) would be
    most of a CLI search's wall time on a small index."""
    home = tmp_path / "home"
    _run("sample", str(tmp_path / "docs"), home=home)
    _run("index", str(tmp_path / "docs"), home=home)
    probe = (
        "import sys; from tokensearch.cli import main; rc = main(['search', 'INV-2023-0042', '--json']); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENSEARCH_HOME=str(home))
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["hits"]


def test_status_shows_bytes_in_units_and_names_the_model_once(tmp_path, capsys):
    from tests.builders import write_pdf
    from tokensearch.cli import _size
    from tokensearch.cli import main as cli_main

    docs, home = tmp_path / "docs", tmp_path / "home"
    write_pdf(docs / "a.pdf", [["harbour crane"]])
    assert cli_main(["index", str(docs), "--home", str(home), "--quiet"]) == 0
    capsys.readouterr()
    assert cli_main(["status", "--home", str(home)]) == 0
    lines = capsys.readouterr().out.splitlines()
    fields = {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}
    assert [line.split(":")[0] for line in lines].count("model") == 1 and fields["model"].startswith("mini (")
    assert fields["pages_by_source"] == "text 1" and fields["documents"] == "1"
    for k in ("index_bytes", "bytes_per_page", "feature_bytes", "database_bytes"):
        number, unit = fields[k].split()
        assert unit in ("B", "kB", "MB") and float(number) > 0, (k, fields[k])
    assert [_size(n) for n in (0, 999, 1000, 496_086.07, 29_680_305_466, 3e12)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "496.1 kB",
        "29.7 GB",
        "3.0 TB",
    ]
