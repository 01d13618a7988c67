"""Watched folders: index what is there, then follow the folders (``tokensearch watch``, ``TOKENSEARCH_WATCH``).

Nothing here indexes: every pass goes through the incremental pipeline (``index`` for a whole root,
``index_changes`` for the paths events named), so a watched folder gets exactly the change detection,
dedup (a move or a copy is re-linked, never re-encoded), per-document atomic commits and failure records
of ``tokensearch index``, and each pass takes the home's indexer lock (:mod:`.homelock`).

How changes are found:

* **Events** (inotify through ``watchdog``): a created, written, moved or deleted document or folder marks
  its path pending. Reads (ours included) and attribute changes are ignored; so are hidden entries (as
  the folder walk skips them) and the home itself when it lies inside a root.
* **Debounce**: a pending path is indexed once no event has named it (or anything below it, for a
  folder) for ``quiet_s`` *and* its size and mtime held still between two looks; a file still being
  written or copied keeps being pushed back, so it is read once, complete. Both ends of a move become
  pending together and are passed together: the new path is linked to the stored content before the old
  one is forgotten.
* **Rescans**: every ``rescan_s`` each root gets a full incremental pass (a stat per file), for network
  filesystems that lose events and for anything missed while the watcher was not running; at once when
  the kernel's event queue overflowed (watchdog says so only in its log). The first pass at start is
  such a pass: a watcher killed with ``kill -9`` and started again loses nothing.

A file read while incomplete (its writer paused longer than ``quiet_s``) is recorded with that size and
mtime — as a partial document, or failed with the reason — and is read again as soon as it changes,
since the pipeline compares size and mtime: a failure is never final for a file that is still growing.
A root that disappears (an unmounted share) keeps its documents until it is back: only paths below an
existing root are ever forgotten.

The watcher writes what it is doing to ``<home>/watch.json`` (atomically) and holds ``<home>/watch.lock``
for its life, so ``tokensearch status``, ``GET /api/v1/index-jobs`` and ``/metrics`` show its progress and
failures, and tell a live watcher from a dead one (:func:`read_state`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..pathnames import shown
from ..reports import IndexReport, ProgressEvent
from .homelock import WatchLock, command_line, watcher_alive
from .sources import is_candidate

log = logging.getLogger(__name__)

STATE_FILE = "watch.json"
RECENT_FAILURES = 20
# event types that say a path's content or existence changed (reads, attribute changes do not)
_FILE_EVENTS = {"created", "modified", "moved", "deleted", "closed"}
_DIR_EVENTS = {"created", "moved", "deleted"}


class Indexes(Protocol):
    """What the watcher needs of an engine (:class:`tokensearch.engine.Engine` is one)."""

    def index(
        self, root: Path, progress: Callable[[ProgressEvent], None] | None = None, cancel: threading.Event | None = None
    ) -> IndexReport: ...

    def index_changes(
        self,
        root: Path,
        paths: list[Path],
        progress: Callable[[ProgressEvent], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> IndexReport: ...


@dataclass(frozen=True)
class WatchOptions:
    quiet_s: float = 2.0  # no event for this long (and size/mtime still) before a path is read
    rescan_s: float = 300.0  # full incremental pass of every root this often (lost events)
    tick_s: float = 0.25  # how often pending paths are looked at


@dataclass
class WatchState:
    """What ``<home>/watch.json`` holds (paths as shown to people: non-UTF-8 bytes escaped)."""

    pid: int
    roots: list[str]
    command: str
    started_at: str
    state: str = "starting"  # starting | indexing | watching | stopped
    pending: int = 0  # paths waiting for their debounce
    passes: int = 0
    last_pass_at: str | None = None
    last_rescan_at: str | None = None
    totals: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("added", "updated", "removed", "duplicates", "failed", "pages"), 0)
    )
    recent_failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), newest last
    error: str | None = None  # the last pass that raised, until a pass succeeds
    progress: dict[str, Any] = field(default_factory=dict)  # the current (or last) pass's ProgressEvent
    events: bool = True  # False: inotify could not be used, rescans only


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_state(home: Path) -> dict[str, Any] | None:
    """The last state a watcher of ``home`` wrote, with ``alive`` (it still holds the home's watcher lock);
    None if no watcher ever ran there. A state that says it runs but whose watcher is not alive was left by
    a watcher that died (killed): its ``state`` reads ``died``."""
    path = Path(home) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    data["alive"] = watcher_alive(Path(home))
    if not data["alive"] and data.get("state") != "stopped":
        data["state"] = "died"
    return data


@dataclass
class _Pending:
    root: Path
    due: float  # monotonic time from which it may be read
    look: tuple | None = None  # (size, mtime_ns) at the last look; ("dir",) / ("gone",)


class _Events(FileSystemEventHandler):
    """watchdog's callback (its thread): relevant paths go to the watcher."""

    def __init__(self, mark: Callable[[str, bool], None]) -> None:
        self.mark = mark

    def on_any_event(self, event: FileSystemEvent) -> None:
        wanted = _DIR_EVENTS if event.is_directory else _FILE_EVENTS
        if event.event_type not in wanted:
            return
        for p in (event.src_path, getattr(event, "dest_path", "") or ""):
            if p:
                self.mark(os.fsdecode(p), event.is_directory)


class _OverflowAlarm(logging.Handler):
    """Sets ``lost`` when watchdog logs that inotify dropped events (it has no callback for it)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lost = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.lost.set()


class FolderWatcher:
    """Keeps ``roots`` indexed in ``home`` through ``indexer`` until :meth:`run`'s ``stop`` is set."""

    def __init__(self, indexer: Indexes, roots: list[Path], home: Path, options: WatchOptions = WatchOptions()) -> None:
        resolved = sorted({Path(r).resolve() for r in roots}, key=lambda p: len(p.parts))
        # a root inside another is already followed by the outer one
        self.roots = [r for i, r in enumerate(resolved) if not any(r.is_relative_to(o) for o in resolved[:i])]
        self.indexer = indexer
        self.home = Path(home).resolve()
        self.opt = options
        self._pending: dict[Path, _Pending] = {}
        self._followed: set[Path] = set()  # roots whose events the observer delivers
        self._lock = threading.Lock()
        self._lock_file = WatchLock(self.home)
        self.state = WatchState(
            pid=os.getpid(), roots=[shown(str(r)) for r in self.roots], command=command_line(), started_at=_now_iso()
        )
        self._state_lock = threading.Lock()
        self._last_write = 0.0
        self._written = ""  # the state file's text: rewritten only when it changes

    # ------------------------------------------------------------------ events (watchdog's thread)
    def _root_of(self, path: Path) -> Path | None:
        for root in self.roots:
            if path == root or path.is_relative_to(root):
                return root
        return None

    def mark(self, raw: str, is_dir: bool) -> None:
        """An event named ``raw``: make it pending if it can hold documents, and push back the folders above."""
        path = Path(raw)
        root = self._root_of(path)
        if root is None or any(part.startswith(".") for part in path.relative_to(root).parts):
            return
        if path.is_relative_to(self.home) and not root.is_relative_to(self.home):
            return  # the index itself (its page cache holds PNGs) in a watched folder
        if not is_dir and not is_candidate(path):
            return
        if path == root and not root.is_dir():
            log.warning("watched folder %s is gone; its documents are kept until it is back", shown(str(root)))
            return
        due = time.monotonic() + self.opt.quiet_s
        with self._lock:
            entry = self._pending.get(path)
            if entry is None:
                self._pending[path] = _Pending(root, due)
            else:
                entry.due, entry.look = due, None
            for parent in path.parents:  # a folder waiting to be walked waits for what is written in it
                if parent == root or not parent.is_relative_to(root):
                    break
                if parent in self._pending:
                    self._pending[parent].due = max(self._pending[parent].due, due)

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event) -> None:
        """Index every root, then follow them until ``stop`` is set. Raises
        :class:`~tokensearch.indexer.homelock.HomeBusy` if another watcher has the home."""
        self._lock_file.acquire(f"tokensearch watch {' '.join(self.state.roots)}")
        observer = None
        alarm = _OverflowAlarm()
        watchdog_log = logging.getLogger("watchdog.observers")
        watchdog_log.addHandler(alarm)
        try:
            self._write_state(force=True)
            observer = self._start_observer()  # before the first pass: what changes during it is caught
            self._rescan(stop, observer, first=True)  # errors here (a model mismatch...) end the watch
            next_rescan = time.monotonic() + (
                self.opt.rescan_s if observer is not None else min(self.opt.rescan_s, 60.0)
            )
            while not stop.is_set():
                if time.monotonic() >= next_rescan or alarm.lost.is_set():
                    if alarm.lost.is_set():
                        log.warning("file events were lost (inotify queue overflow): rescanning now")
                        alarm.lost.clear()
                    self._rescan(stop, observer)
                    rescan_s = self.opt.rescan_s if observer is not None else min(self.opt.rescan_s, 60.0)
                    next_rescan = time.monotonic() + rescan_s
                batch = self._ready()
                if batch:
                    self._changes(batch, stop)
                self._set(state="watching", pending=len(self._pending))
                stop.wait(self.opt.tick_s)
        finally:
            watchdog_log.removeHandler(alarm)
            if observer is not None:
                observer.stop()
                observer.join(5)
            self._set(state="stopped", pending=len(self._pending))
            self._write_state(force=True)
            self._lock_file.release()

    def _start_observer(self) -> Any:
        observer = Observer()
        try:
            for root in self.roots:
                self._follow(observer, root)
            observer.start()
        except OSError as e:  # e.g. the inotify watch limit (fs.inotify.max_user_watches)
            log.warning(
                "cannot follow events in %s (%s): rescanning every %.0f s instead",
                ", ".join(self.state.roots),
                e,
                min(self.opt.rescan_s, 60.0),
            )
            self._set(events=False, error=f"file events unavailable ({e}); rescans only")
            return None
        return observer

    def _ready(self) -> dict[Path, list[Path]]:
        """Pending paths whose debounce is over, by root; the others get looked at again later."""
        now = time.monotonic()
        ready: dict[Path, list[Path]] = {}
        with self._lock:
            for path, entry in list(self._pending.items()):
                if entry.due > now:
                    continue
                look = _look(path)
                if look == entry.look:
                    ready.setdefault(entry.root, []).append(path)
                    del self._pending[path]
                else:  # still changing (or first look): look again a little later
                    entry.look = look
                    entry.due = now + self.opt.quiet_s / 2
        return ready

    def _follow(self, observer: Any, root: Path) -> None:
        """Watch ``root``'s events (once it exists: a missing root is followed from the rescan that finds it)."""
        if root.is_dir() and root not in self._followed:
            observer.schedule(_Events(self.mark), str(root), recursive=True)
            self._followed.add(root)

    def _rescan(self, stop: threading.Event, observer: Any, first: bool = False) -> None:
        for root in self.roots:
            if stop.is_set():
                return
            if not root.is_dir():
                log.warning("watched folder %s is missing; its documents are kept until it is back", shown(str(root)))
                self._set(error=f"watched folder {shown(str(root))} is missing; its documents are kept")
                continue
            if observer is not None and root not in self._followed:
                try:
                    self._follow(observer, root)
                except OSError as e:
                    log.warning("cannot follow events in %s: %s", shown(str(root)), e)
            self._pass(partial(self.indexer.index, root, cancel=stop), raise_errors=first)  # (progress) -> report
        self._set(last_rescan_at=_now_iso())

    def _changes(self, batch: dict[Path, list[Path]], stop: threading.Event) -> None:
        groups = list(batch.items())
        if len(groups) > 1:  # a file moved from one root to another: link the new path before forgetting the old
            here = [(r, [p for p in ps if os.path.lexists(p)]) for r, ps in groups]
            gone = [(r, [p for p in ps if not os.path.lexists(p)]) for r, ps in groups]
            groups = [(r, ps) for r, ps in here + gone if ps]
        for root, paths in groups:
            if not root.is_dir():  # an unmounted share: keep its documents (see the module's docstring)
                continue
            ok = self._pass(partial(self.indexer.index_changes, root, paths, cancel=stop))
            if not ok and not stop.is_set():  # try these again after a while
                due = time.monotonic() + max(5.0, self.opt.quiet_s)
                with self._lock:
                    for p in paths:
                        self._pending.setdefault(p, _Pending(root, due))

    def _pass(self, run: Callable[[Callable[[ProgressEvent], None]], IndexReport], raise_errors: bool = False) -> bool:
        """One pass through the pipeline, its outcome added to the state; False if it raised (or, with
        ``raise_errors``, the error after recording it)."""
        self._set(state="indexing", pending=len(self._pending))

        def progress(ev: ProgressEvent) -> None:
            self._set(progress={**asdict(ev), "current_path": shown(ev.current_path) if ev.current_path else None})
            self._write_state()

        try:
            report = run(progress)
        except Exception as e:  # noqa: BLE001 - a failed pass is reported and retried, never ends the watch
            self._set(error=f"{type(e).__name__}: {e}")
            self._write_state(force=True)
            if raise_errors:
                raise
            log.exception("watch pass failed; its paths are tried again")
            return False
        with self._state_lock:
            st = self.state
            st.passes += 1
            st.last_pass_at = _now_iso()
            st.error = None if st.events else st.error
            for k in ("added", "updated", "removed", "duplicates", "pages"):
                st.totals[k] += int(getattr(report, k))
            st.totals["failed"] += len(report.failed)
            st.recent_failures = (st.recent_failures + [(shown(p), r) for p, r in report.failed])[-RECENT_FAILURES:]
        if report.added or report.updated or report.removed or report.duplicates or report.failed:
            log.info(
                "watch: %d new, %d changed, %d duplicate, %d removed, %d failed (%d pages)",
                report.added,
                report.updated,
                report.duplicates,
                report.removed,
                len(report.failed),
                report.pages,
            )
        self._write_state(force=True)
        return True

    # ------------------------------------------------------------------ state
    def _set(self, **changes: Any) -> None:
        with self._state_lock:
            for k, v in changes.items():
                setattr(self.state, k, v)
        self._write_state()

    def _write_state(self, force: bool = False) -> None:
        """Rewrite ``<home>/watch.json`` atomically when it changed (at most twice a second unless ``force``)."""
        now = time.monotonic()
        with self._state_lock:
            text = json.dumps(asdict(self.state))
            if text == self._written or (not force and now - self._last_write < 0.5):
                return
            self._last_write, self._written = now, text
        path = self.home / STATE_FILE
        tmp = path.with_name(f"{STATE_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except OSError as e:
            log.warning("cannot write %s: %s", path, e)


def _look(path: Path) -> tuple:
    """What a path is now, to tell whether it still changes: (size, mtime_ns), ("dir",) or ("gone",)."""
    try:
        st = path.stat()
    except OSError:
        return ("gone",) if not os.path.lexists(path) else ("unreadable",)
    if path.is_dir():
        return ("dir",)
    return (st.st_size, st.st_mtime_ns)
