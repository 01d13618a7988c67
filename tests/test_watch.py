"""Watched folders: the index follows files that appear, change, move and vanish while the watcher runs.

Real files, a real watcher (inotify through watchdog), the real pipeline and store; short debounce times
so each test takes seconds. Born-digital PDFs (built from their text layer, no model run) keep passes
fast; the kill -9 test uses scans, so that the watcher is killed while the model encodes them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tokensearch.api.app import create_app
from tokensearch.cli import main as cli_main
from tokensearch.engine import Engine
from tokensearch.indexer.homelock import HomeBusy, WatchLock, indexer_lock
from tokensearch.indexer.watch import FolderWatcher, WatchOptions, read_state
from tokensearch.samples import born_digital_pdf, rasterise_pdf
from tokensearch.settings import Settings

# integration: watcher processes following real folders
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
QUIET = 0.4
FAST = WatchOptions(quiet_s=QUIET, rescan_s=3600, tick_s=0.05)


def _pdf(text: str) -> bytes:
    return born_digital_pdf([[text, "a line of filler text for the watched folder"]])[0]


def _wait(what: str, cond: Callable[[], object], timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def _paths(eng: Engine) -> set[str]:
    return {k for k, rec in eng.store.known_files().items() if rec.status == "ok"}


def _found(eng: Engine, query: str) -> set[str]:
    return {str(h.path) for h in eng.search(query, k=10).hits}


class _Running:
    """A FolderWatcher on a thread, stopped (and its errors raised) on exit."""

    def __init__(self, eng: Engine, roots: list[Path], options: WatchOptions = FAST) -> None:
        self.watcher = FolderWatcher(eng, roots, Path(eng.settings.home), options)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.watcher.run(self.stop)
        except BaseException as e:  # noqa: BLE001
            self.error = e

    def __enter__(self) -> FolderWatcher:
        self.thread.start()
        _wait("the first pass over every root", lambda: self.watcher.state.last_rescan_at or self.error)
        return self.watcher

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        if self.error is not None:
            raise self.error


@pytest.fixture
def engine(tmp_path, mini_encoder):
    with Engine(Settings(home=tmp_path / "home"), encoder=mini_encoder) as eng:
        yield eng


def test_the_index_follows_files_that_appear_change_move_and_vanish(tmp_path, engine):
    docs = tmp_path / "docs"
    docs.mkdir()
    a = docs / "a.pdf"
    a.write_bytes(_pdf("ALPHA-101 first"))
    with _Running(engine, [docs]) as watcher:
        assert _paths(engine) == {str(a)}  # what was there is indexed first

        (docs / "sub").mkdir()
        b = docs / "sub" / "b.pdf"
        b.write_bytes(_pdf("BRAVO-202 second"))
        (docs / ".hidden.pdf").write_bytes(_pdf("HIDDEN-909"))  # skipped, as the folder walk skips it
        (docs / "notes.txt").write_text("not a document")
        _wait("a new file in a new folder", lambda: _paths(engine) == {str(a), str(b)})

        a.write_bytes(_pdf("CHARLIE-303 rewritten"))
        _wait("a changed file", lambda: _found(engine, "CHARLIE-303") == {str(a)})
        assert not _found(engine, "ALPHA-101")

        pages_before = engine.store.stats().pages
        c = docs / "sub" / "c.pdf"
        b.rename(c)
        _wait("a renamed file", lambda: _paths(engine) == {str(a), str(c)})
        assert _found(engine, "BRAVO-202") == {str(c)}
        (docs / "sub").rename(docs / "moved")
        c = docs / "moved" / "c.pdf"
        _wait("a moved folder", lambda: _paths(engine) == {str(a), str(c)})
        assert engine.store.stats().pages == pages_before  # moves re-link the stored pages, never duplicate

        a.unlink()
        _wait("a deleted file", lambda: _paths(engine) == {str(c)})
        shutil.rmtree(docs / "moved")
        _wait("a deleted folder", lambda: not _paths(engine))
        assert not _found(engine, "BRAVO-202") and not _found(engine, "HIDDEN-909")
        assert watcher.state.totals["failed"] == 0 and watcher.state.error is None
    st = read_state(engine.settings.home)
    assert st is not None and st["state"] == "stopped" and not st["alive"]


def test_a_file_moved_between_two_watched_folders_keeps_its_stored_pages(tmp_path, engine):
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    (inbox / "letter.pdf").write_bytes(_pdf("DELTA-404 on the move"))
    with _Running(engine, [inbox, archive]) as watcher:
        assert _paths(engine) == {str(inbox / "letter.pdf")}
        (inbox / "letter.pdf").rename(archive / "letter.pdf")
        _wait("the moved file", lambda: _paths(engine) == {str(archive / "letter.pdf")})
        assert watcher.state.totals["pages"] == 1  # encoded once, at the first pass: the move re-linked it
        assert _found(engine, "DELTA-404") == {str(archive / "letter.pdf")}


def test_a_file_copied_slowly_in_chunks_is_indexed_once(tmp_path, engine):
    docs = tmp_path / "docs"
    docs.mkdir()
    data = born_digital_pdf([[f"SLOWCOPY-{i} page {i} of the slow copy"] for i in range(6)])[0]
    quiet = 1.0  # pauses of a fifth of it: room for a busy machine's scheduling
    with _Running(engine, [docs], WatchOptions(quiet_s=quiet, rescan_s=3600, tick_s=0.05)) as watcher:
        target = docs / "slow.pdf"
        chunks = 10
        with target.open("wb") as f:
            for i in range(chunks):  # pauses shorter than the quiet time, like a copy over a slow link
                f.write(data[i * len(data) // chunks : (i + 1) * len(data) // chunks])
                f.flush()
                time.sleep(quiet / 5)
        _wait("the copied file", lambda: _paths(engine) == {str(target)})
        time.sleep(2 * quiet)  # anything still pending would be indexed by now
        t = watcher.state.totals
        assert (t["added"], t["updated"], t["failed"], t["pages"]) == (1, 0, 0, 6)
        assert engine.store.stats().pages == 6 and not engine.store.stats().failures


def test_a_pdf_read_half_written_is_read_again_when_complete_and_not_left_failed(tmp_path, engine):
    docs = tmp_path / "docs"
    docs.mkdir()
    data = born_digital_pdf([[f"HALFWAY-{i} page {i}"] for i in range(4)])[0]
    with _Running(engine, [docs]) as watcher:
        target = docs / "stalled.pdf"
        with target.open("wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            _wait("the half-written file read", lambda: watcher.state.passes >= 2, timeout=10)
            half = dict(watcher.state.totals)
            assert half["failed"] == 1 or half["pages"] > 0, half  # read as it was: failed, or partial
            f.write(data[len(data) // 2 :])  # the writer comes back after a stall longer than the quiet time
        _wait(
            "the completed file indexed whole",
            lambda: not engine.store.stats().failures and engine.store.stats().pages == 4,
        )
        assert engine.documents()[0].status == "ok"
        assert _found(engine, "HALFWAY-3") == {str(target)}


def test_lost_events_make_the_watcher_rescan_at_once(tmp_path, engine):
    docs = tmp_path / "docs"
    docs.mkdir()
    with _Running(engine, [docs]) as watcher:
        first = watcher.state.last_rescan_at
        passes = watcher.state.passes
        # what watchdog logs when the kernel's inotify queue overflowed (it has no callback for it)
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        _wait("a rescan", lambda: watcher.state.passes > passes, timeout=10)
        assert watcher.state.last_rescan_at is not None and first is not None


def test_a_second_watcher_of_a_home_is_refused_with_who_has_it(tmp_path, engine):
    docs = tmp_path / "docs"
    docs.mkdir()
    first = WatchLock(Path(engine.settings.home))
    first.acquire("tokensearch watch /elsewhere")
    try:
        with pytest.raises(HomeBusy, match=rf"already watched by pid {os.getpid()} \(tokensearch watch /elsewhere"):
            FolderWatcher(engine, [docs], Path(engine.settings.home), FAST).run(threading.Event())
    finally:
        first.release()


def _cli(*args: str, stderr: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSEARCH_")}
    env["PYTHONPATH"] = str(ROOT)
    with stderr.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tokensearch", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def test_a_second_indexer_of_a_home_waits_for_the_first_and_says_who_has_it(tmp_path):
    docs, home, log = tmp_path / "docs", tmp_path / "home", tmp_path / "index.log"
    docs.mkdir()
    (docs / "a.pdf").write_bytes(_pdf("WAITED-1"))
    with indexer_lock(home, what="tokensearch watch /the/first"):
        proc = _cli("index", str(docs), "--home", str(home), "--quiet", stderr=log)
        _wait("the waiting message", lambda: "being written by" in log.read_text(errors="replace"), timeout=120)
        assert proc.poll() is None  # it waits while the home is held
    assert proc.wait(120) == 0, log.read_text()
    text = log.read_text()
    assert f"being written by pid {os.getpid()} (tokensearch watch /the/first" in text and "waiting" in text


def _scans(folder: Path, names: list[str]) -> None:
    for name in names:
        pdf = born_digital_pdf([[f"Scan {name} of the watched archive", f"serial KILL-{name.upper()}"]])[0]
        rasterise_pdf(pdf, 150)[0].save(folder / f"{name}.png")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_9_of_the_watcher_and_a_restart_lose_nothing(tmp_path, capsys):
    docs, home, log = tmp_path / "docs", tmp_path / "home", tmp_path / "watch.log"
    docs.mkdir()
    (docs / "first.pdf").write_bytes(_pdf("FIRST-1 before the watcher"))
    args = ("watch", str(docs), "--home", str(home), "--quiet-seconds", str(QUIET), "--batch-size", "1")
    proc = _cli(*args, stderr=log)
    try:
        _wait("the first pass", lambda: (read_state(home) or {}).get("state") == "watching", timeout=120)
        _scans(docs, [f"s{i}" for i in range(1, 9)])
        _wait("part of the new scans committed", lambda: _committed(home) >= 3, timeout=120)
        assert read_state(home)["state"] == "indexing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert read_state(home)["state"] == "died"
    status = json.loads(_status(home, capsys))
    assert status["watch"]["state"] == "died" and 3 <= status["documents"] < 9  # killed mid-pass
    # while no watcher runs: a new file, a deleted one, a renamed one
    (docs / "s1.png").unlink()
    (docs / "s2.png").rename(docs / "renamed.png")
    (docs / "late.pdf").write_bytes(_pdf("LATE-7 written while the watcher was dead"))

    proc = _cli(*args, stderr=log)
    try:
        _wait(
            "the restart caught up",
            lambda: (read_state(home) or {}).get("state") == "watching" and read_state(home).get("passes", 0) >= 1,
            timeout=180,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    with Engine(Settings(home=home)) as eng:
        on_disk = {str(p) for p in docs.iterdir()}
        assert _paths(eng) == on_disk  # each file once, none lost, the deleted one gone
        st = eng.store.stats()
        assert st.documents == len(on_disk) == 9 and st.pages == 9 and not st.failures
        assert not eng.store.verify(read_all=True)  # rows, features and vectors agree
    assert read_state(home)["state"] == "stopped"


def _committed(home: Path) -> int:
    """Documents committed so far, read as cheaply as possible (the watcher is to be killed mid-pass)."""
    with closing(sqlite3.connect(f"file:{home / 'index.sqlite3'}?mode=ro", uri=True, timeout=5)) as db:
        return db.execute("SELECT count(*) FROM ts_documents").fetchone()[0]


def _status(home: Path, capsys) -> str:
    capsys.readouterr()
    assert cli_main(["status", "--home", str(home), "--json"]) == 0
    return capsys.readouterr().out


def test_tokensearch_watch_setting_takes_folders_separated_like_path(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENSEARCH_WATCH", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert Settings().watch == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.setenv("TOKENSEARCH_WATCH", json.dumps([str(tmp_path / "c")]))
    assert Settings().watch == [tmp_path / "c"]


def test_the_servers_watched_folders_are_followed_and_shown_in_index_jobs_and_metrics(tmp_path):
    docs = tmp_path / "watched"
    docs.mkdir()
    (docs / "one.pdf").write_bytes(_pdf("SERVED-1 watched by the server"))
    settings = Settings(home=tmp_path / "home", watch=[docs], watch_quiet_s=QUIET, search_workers=0)
    with TestClient(create_app(settings)) as c:  # the app's own engine: the watcher runs in its own process

        def watch_job() -> dict:
            return c.get("/api/v1/index-jobs/watch").json()

        _wait("the watcher's first pass", lambda: (watch_job().get("report") or {}).get("added") == 1, timeout=120)
        (docs / "two.pdf").write_bytes(_pdf("SERVED-2 added while the server runs"))
        _wait(
            "the new file searchable",
            lambda: c.get("/api/v1/search", params={"q": "SERVED-2"}).json()["hits"],
            timeout=60,
        )
        job = watch_job()
        assert job["kind"] == "watch" and job["status"] == "running" and job["path"] == str(docs.resolve())
        assert job["report"]["added"] == 2 and job["report"]["failed"] == [] and job["error"] is None
        listed = c.get("/api/v1/index-jobs").json()["items"]
        assert listed[0]["id"] == "watch"
        metrics = c.get("/metrics").text
        assert "tokensearch_watch_up 1" in metrics and 'tokensearch_watch_files{outcome="added"} 2' in metrics
        assert c.app.state.api.engine._encoder is None  # the server process never loaded the model
    assert read_state(settings.home)["state"] == "stopped"  # the watcher stopped with the server
