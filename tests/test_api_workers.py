"""The served API under concurrency: searches in worker processes, index jobs in a process of their own.

An app that builds its own engine (as ``tokensearch serve`` does) answers searches in ``search_workers``
processes and runs each index job in a child process; these tests check that concurrent searches in the
workers give exactly the hits of serial in-process searches, that searches answer while a job runs (and
see its pages once it committed them) without the server process ever loading the model, and that a
``kill -9`` of the server mid-job takes the job's process with it and the next start finishes the job
with nothing lost or duplicated.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api_fixtures import build_settings, free_port, make_docs, wait_job
from tests.sample_copies import copy_sample
from tokensearch.api.app import create_app
from tokensearch.api.job_process import ProcessRunner
from tokensearch.api.searches import ProcessSearches
from tokensearch.engine import Engine
from tokensearch.filters import SearchFilter

# integration: a served API with worker processes, killed and restarted
pytestmark = pytest.mark.integration

API = "/api/v1"
QUERIES = [
    "INVOICE",
    "Harbour Logistics",
    "committee",
    '"harbour crane"',
    "ZX-99812",
    "thirty days",
    "zeppelin",
    "Aurora Shipping",
    "Total due 1730.00",
    "blue conference room",
]


def _hits(body: dict) -> list[tuple]:
    return [(h["path"], h["page"], h["score"], h["boxes"]) for h in body["hits"]]


def test_concurrent_searches_in_workers_give_the_hits_of_serial_ones(tmp_path, mini_encoder):
    settings = build_settings(tmp_path, search_workers=2)
    make_docs(settings.roots[0])
    with Engine(settings, encoder=mini_encoder) as engine:
        engine.index(settings.roots[0])
        serial = {q: [(str(h.path), h.page, h.score, h.boxes) for h in engine.search(q, k=5).hits] for q in QUERIES}
        narrowed = [
            (str(h.path), h.page, h.score, h.boxes)
            for h in engine.search("harbour", k=5, filter=SearchFilter(path="invoice*")).hits
        ]
    with TestClient(create_app(settings)) as c:
        searches = c.app.state.api.searches
        assert isinstance(searches, ProcessSearches) and searches.workers == 2
        workers = [p for p in _children(os.getpid()) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2
        want = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
        for pid in workers:  # below an index job's priority (settings.search_nice), once started: the
            # server waits for one answer a worker, and one worker may give both while the other still starts
            deadline = time.monotonic() + 30
            while os.getpriority(os.PRIO_PROCESS, pid) != want and time.monotonic() < deadline:
                time.sleep(0.05)
            assert os.getpriority(os.PRIO_PROCESS, pid) == want
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda q: (q, c.get(f"{API}/search", params={"q": q, "k": 5})), QUERIES * 3))
        filtered = c.get(f"{API}/search", params={"q": "harbour", "k": 5, "path": "invoice*"})  # pickled to a worker
        assert filtered.status_code == 200 and _hits(filtered.json()) == narrowed
        assert narrowed and {Path(p).name for p, *_ in narrowed} == {"invoice.pdf"}
    for q, r in answers:
        assert r.status_code == 200, r.text
        assert _hits(r.json()) == serial[q], q
    assert any(serial.values()) and not serial["zeppelin"]


def test_searches_answer_while_an_index_job_runs_in_its_own_process(tmp_path):
    settings = build_settings(tmp_path, search_workers=1)
    make_docs(settings.roots[0])
    with TestClient(create_app(settings)) as c:
        state = c.app.state.api
        assert isinstance(state.jobs.runner, ProcessRunner)
        first = wait_job(c, c.post(f"{API}/index-jobs", json={"path": "."}).json()["id"], timeout=120)
        assert first["status"] == "done" and first["report"]["added"] == 3
        assert _hits(c.get(f"{API}/search", params={"q": "ZX-99812"}).json())  # the workers see the job's pages
        copy_sample(settings.roots[0] / "sample")  # 8 pages, 6 of them scans: the model reads them
        job = c.post(f"{API}/index-jobs", json={"path": "sample"}).json()
        answered_while_running = 0
        while (status := c.get(f"{API}/index-jobs/{job['id']}").json()["status"]) in ("queued", "running"):
            r = c.get(f"{API}/search", params={"q": "committee"})
            assert r.status_code == 200 and r.json()["hits"], r.text
            answered_while_running += status == "running"
            time.sleep(0.2)  # a user's pace, not a busy loop: the job gets the CPU it would have
        assert status == "done", c.get(f"{API}/index-jobs/{job['id']}").json()
        assert answered_while_running >= 1
        found = c.get(f"{API}/search", params={"q": "INV-2023-0042", "k": 20}).json()["hits"]
        assert any("/sample/" in h["path"] for h in found)
        assert state.engine._encoder is None  # the server process never loaded the model: the jobs did


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.update(int(p) for p in (task / "children").read_text().split())
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _serve(home: Path, root: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSEARCH_")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), TOKENSEARCH_SEARCH_WORKERS="1")
    with log.open("ab") as out:
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
                "--root",
                str(root),
                "--log-level",
                "warning",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    t0 = time.monotonic()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() - t0 < 120, "tokensearch serve did not start"
            time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_kill_9_of_the_server_mid_job_stops_the_job_process_and_the_restart_finishes_it(tmp_path):
    home, root = tmp_path / "home", tmp_path / "docs"
    sample = copy_sample(root / "sample")
    files = sorted(p for p in (root / "sample").rglob("*") if p.is_file())
    port, log = free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    proc = _serve(home, root, port, log)
    try:
        job = httpx.post(f"{base}{API}/index-jobs", json={"path": "sample"}, timeout=30).json()
        t0 = time.monotonic()
        while True:  # until the job's process has committed part of the folder
            cur = httpx.get(f"{base}{API}/index-jobs/{job['id']}", timeout=30).json()
            assert cur["status"] in ("queued", "running"), cur
            if cur["progress"].get("files_done", 0) >= 2:
                break
            assert time.monotonic() - t0 < 120, cur
            time.sleep(0.05)
        before = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    t0 = time.monotonic()
    while any(_alive(p) for p in before):  # the job's process and the search worker die with the server
        assert time.monotonic() - t0 < 30, [p for p in before if _alive(p)]
        time.sleep(0.1)

    proc = _serve(home, root, port, log)
    try:
        done = None
        t0 = time.monotonic()
        while done is None or done["status"] in ("queued", "running", "interrupted"):
            assert time.monotonic() - t0 < 180, done
            time.sleep(0.2)
            done = httpx.get(f"{base}{API}/index-jobs/{job['id']}", timeout=30).json()
        assert done["status"] == "done" and done["resumed"] == 1, done
        docs = httpx.get(f"{base}{API}/documents", params={"limit": 100}, timeout=30).json()["items"]
        assert sorted(d["path"] for d in docs) == sorted(str(f) for f in files)  # each file once, none lost
        hits = httpx.get(f"{base}{API}/search", params={"q": sample.words[0].text, "k": 20}, timeout=60).json()["hits"]
        assert hits
    finally:
        proc.terminate()
        proc.wait(30)
