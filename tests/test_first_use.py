"""First use of a home by several processes at once, and index runs whose process was killed.

Each test runs on SQLite and on PostgreSQL (a fresh schema per test: a fresh database as far as the
index can tell; see storage_fixtures.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokensearch.storage import Store

# integration: several processes opening one home
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
N_PROCESSES = 6

# imports first (seconds, and uneven), then every process waits for the same "go" to open the home together
OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from tokensearch.storage import Store
home, url, ready, go = Path(sys.argv[1]), sys.argv[2] or None, Path(sys.argv[3]), Path(sys.argv[4])
ready.touch()
while not go.exists():
    time.sleep(0.001)
Store.open(home, url).close()
"""

# begins a run, says so, then waits to be killed
RUN_THEN_HANG = """
import sys, time
from pathlib import Path
from tokensearch.storage import Store
store = Store.open(Path(sys.argv[1]), sys.argv[2] or None)
print(store.begin_run("/docs"), flush=True)
time.sleep(600)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def test_processes_opening_a_fresh_home_at_once_all_succeed(tmp_path, db_url):
    home = tmp_path / "home"
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{i}" for i in range(N_PROCESSES)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT_ONCE, str(home), db_url or "", str(r), str(go)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for r in readies
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in readies):
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(p.poll() is None for p in procs), [p.communicate()[1].decode()[-2000:] for p in procs]
            time.sleep(0.02)
        go.touch()
        results = [(p.wait(120), p.communicate()[1].decode()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(rc == 0 for rc, _ in results), "\n".join(err[-1500:] for rc, err in results if rc)
    with Store.open(home, db_url) as store:  # one index, one identity
        assert store.stats().documents == 0
    assert (home / "index-id").read_text().strip()


def test_a_run_whose_process_was_killed_is_marked_interrupted_by_the_next_opener(tmp_path, db_url):
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_THEN_HANG, str(home), db_url or ""],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = int(proc.stdout.readline() or proc.communicate()[1][-2000:])
        with Store.open(home, db_url) as store:  # the run's process is alive: it is left running
            assert {r["id"]: r["status"] for r in store.runs()} == {run_id: "running"}
            own = store.begin_run("/mine")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        with Store.open(home, db_url) as store:
            runs = {r["id"]: r for r in store.runs()}
            assert runs[run_id]["status"] == "interrupted" and runs[run_id]["finished_at"] is not None
            assert runs[own]["status"] == "interrupted"  # closed without finishing: its process let go of it
            live = store.begin_run("/live")
            with Store.open(home, db_url) as other:  # a run of a live store is never taken for a dead one
                assert {r["id"]: r["status"] for r in other.runs()}[live] == "running"
            store.finish_run(live, status="ok", files=1)
            assert store.runs()[0]["status"] == "ok" and "lock" not in store.runs()[0]["stats"]
        assert not list((home / "runs").iterdir())  # no lock file outlives its run
    finally:
        if proc.poll() is None:
            proc.kill()


def test_switching_a_fresh_sqlite_file_to_wal_waits_for_a_lock_held_elsewhere(tmp_path):
    """The switch to WAL is where processes opening one fresh home at once collided ("database is
    locked" from the connect hook): it waits for the other holder instead of failing."""
    import sqlite3
    import threading

    from tokensearch.storage.store import _use_wal

    db = tmp_path / "index.sqlite3"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()
    opener = sqlite3.connect(db, timeout=0.05, check_same_thread=False)
    _use_wal(opener.cursor(), wait_s=10)
    assert opener.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    opener.close()
    holder.close()
