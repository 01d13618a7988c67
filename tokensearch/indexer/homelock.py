"""One indexer per home at a time: an exclusive ``flock`` on ``<home>/indexer.lock`` around each index pass.

The store itself is safe with several writers, but two indexers of one home (``tokensearch index`` while
``tokensearch watch`` or a server job runs) would hash and encode the same new files twice, and their
reports would contradict each other. So every pass — ``index``, an API job, each batch of a watcher —
takes this lock; a second one waits, saying once who holds the home (its pid, what it runs, since when).
The lock is held for a pass, not for a watcher's lifetime: ``tokensearch index`` of another folder waits
for the current batch only. The kernel drops the lock with its process, so a ``kill -9`` never leaves the
home locked.

:class:`WatchLock` is the other lock of a home: held for a watcher's whole life (``<home>/watch.lock``), so
a second watcher of the same home is refused with a clear message, and ``tokensearch status`` / the API
can tell a live watcher from one that died.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from ..errors import TokensearchError

log = logging.getLogger(__name__)

INDEXER_LOCK = "indexer.lock"
WATCH_LOCK = "watch.lock"


class HomeBusy(TokensearchError):
    """Another process holds the home for what this one wants to do (its message says who)."""

    code = "home_busy"
    status = 409


def _describe_holder(f: IO[bytes]) -> str:
    """Who holds a lock, from what the holder wrote into the lock file (best effort)."""
    try:
        f.seek(0)
        info = json.loads(f.read().decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return f"pid {info.get('pid', '?')} ({info.get('what', '?')}, since {info.get('since', '?')})"


def _stamp(f: IO[bytes], what: str) -> None:
    """Write who holds the lock into it, for whoever finds it busy."""
    info = {"pid": os.getpid(), "what": what, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    f.seek(0)
    f.truncate()
    f.write(json.dumps(info).encode())
    f.flush()


def _open(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    return os.fdopen(fd, "r+b")


def _try(f: IO[bytes]) -> bool:
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def command_line() -> str:
    """What this process runs, shortly (for lock holders' descriptions)."""
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


@contextmanager
def indexer_lock(
    home: Path,
    what: str | None = None,
    cancel: threading.Event | None = None,
    poll_s: float = 0.2,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[bool]:
    """Hold the home's indexer lock for the ``with`` block; wait for it if another indexer has it.

    Yields True once held, or False when ``cancel`` was set while waiting (the block must then do nothing).
    Waiting is said once, through ``on_wait`` (default: a warning in the log, which the CLI prints)."""
    f = _open(Path(home) / INDEXER_LOCK)
    try:
        if not _try(f):
            message = (
                f"the index in {home} is being written by {_describe_holder(f)}; waiting for it to "
                "finish (one indexer per home at a time)"
            )
            (on_wait or log.warning)(message)
            while not _try(f):
                if cancel is not None and cancel.wait(poll_s):
                    yield False
                    return
                if cancel is None:
                    time.sleep(poll_s)
        _stamp(f, what or command_line())
        try:
            yield True
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    finally:
        f.close()


class WatchLock:
    """The home's watcher lock, held from :meth:`acquire` until :meth:`release` (or the process's end)."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / WATCH_LOCK
        self._f: IO[bytes] | None = None

    def acquire(self, what: str) -> None:
        """Take it, or raise :class:`HomeBusy` saying which watcher has the home."""
        f = _open(self.path)
        if not _try(f):
            holder = _describe_holder(f)
            f.close()
            raise HomeBusy(
                f"the index in {self.path.parent} is already watched by {holder}: one watcher per "
                "home — stop that one, or give it these folders too (tokensearch watch DIR DIR ...)"
            )
        _stamp(f, what)
        self._f = f

    def release(self) -> None:
        if self._f is not None:
            self._f.seek(0)
            self._f.truncate()
            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
            self._f.close()
            self._f = None


def watcher_alive(home: Path) -> bool:
    """Whether a process holds the home's watcher lock right now."""
    path = Path(home) / WATCH_LOCK
    if not path.exists():
        return False
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False
