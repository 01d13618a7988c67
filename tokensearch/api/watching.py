"""The server's watched folders (``TOKENSEARCH_WATCH``): one watcher beside the server, shown as a job.

``tokensearch serve`` runs the watcher (:class:`tokensearch.indexer.watch.FolderWatcher`) in a process of its
own (``python -m tokensearch.api.watching``), for the reason index jobs get one: a long indexing pass must
not take CPU time or the GIL from the server that answers searches. The child opens its own engine on
the same settings, hence the same home, and stops when its stdin closes (the server stopped) or dies
with the server (``PR_SET_PDEATHSIG``). If it dies on its own it is started again after a pause; its
first pass is a full incremental one, so nothing changed meanwhile is lost. An app handed an engine
(tests, embedding) runs the watcher on a thread with that engine instead.

What the API shows comes from the watcher's state file (:func:`tokensearch.indexer.watch.read_state`), so
a ``tokensearch watch`` running on the server's home from a terminal is listed the same way: job
``watch`` in ``GET /api/v1/index-jobs``, ``tokensearch_watch_*`` gauges in ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokensearch.pathnames import shown
from tokensearch.settings import Settings

from .job_process import child_start, emit, send_spec, start_child
from .jobs import Job, _now, job_progress, job_report

if TYPE_CHECKING:
    from tokensearch.engine import Engine

log = logging.getLogger("tokensearch.api.watching")

JOB_ID = "watch"
HOME_BUSY_EXIT = 3  # the child's exit code when another watcher has the home
_RESTART_PAUSES = (1.0, 2.0, 5.0, 15.0, 30.0)


def _options(settings: Settings) -> Any:
    from tokensearch.indexer.watch import WatchOptions

    return WatchOptions(quiet_s=settings.watch_quiet_s, rescan_s=settings.watch_rescan_s)


class WatchService:
    """Runs the server's watcher while the app runs; describes the home's watcher for the API."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.home = Path(settings.home).expanduser()
        self.engine = engine  # given: watch on a thread with it; None: in a child process
        self.error: str | None = None  # why the server's watcher is not running (another one has the home)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.watch)

    def start(self) -> None:
        if not self.configured:
            return
        target = self._watch_here if self.engine is not None else self._supervise
        self._thread = threading.Thread(target=target, name="tokensearch-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()  # the child stops after its current file
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    # -- running ---------------------------------------------------------------------------------------------

    def _watch_here(self) -> None:
        from tokensearch.indexer.homelock import HomeBusy
        from tokensearch.indexer.watch import FolderWatcher

        assert self.engine is not None  # the thread that runs this is started only with an engine
        try:
            FolderWatcher(self.engine, list(self.settings.watch), self.home, _options(self.settings)).run(self._stop)
        except HomeBusy as e:
            self.error = str(e)
            log.error("%s", e)
        except Exception as e:  # noqa: BLE001 - shown on the watch job, never kills the server
            self.error = f"{type(e).__name__}: {e}"
            log.exception("the watcher stopped")

    def _supervise(self) -> None:
        failures = 0
        while not self._stop.is_set():
            code = self._run_child()
            if self._stop.is_set():
                return
            pause = _RESTART_PAUSES[min(failures, len(_RESTART_PAUSES) - 1)]
            failures += 1
            if code == HOME_BUSY_EXIT:
                pause = _RESTART_PAUSES[-1]  # try again later: the other watcher may stop
            log.warning("the watcher process ended (exit code %s): starting it again in %.0f s", code, pause)
            self._stop.wait(pause)

    def _run_child(self) -> int:
        proc = start_child("tokensearch.api.watching")
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        send_spec(proc, {"settings": self.settings.model_dump(mode="json")})
        for line in proc.stdout:  # only a fatal error comes this way; progress is in the state file
            try:
                self.error = str(json.loads(line).get("error"))
            except (ValueError, AttributeError):
                continue
        code = proc.wait()
        proc.stdout.close()
        if code == 0:
            self.error = None
        return code

    # -- what the API shows ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        from tokensearch.indexer.watch import read_state

        return read_state(self.home)

    def job(self) -> Job | None:
        """The home's watcher as an index job (id ``watch``, kind ``watch``), or None if there is none to show:
        no watched folders are configured and no watcher runs on this home."""
        st = self.state()
        if not self.configured and (st is None or not st.get("alive")):
            return None
        roots = (st or {}).get("roots") or [shown(str(r)) for r in self.settings.watch]
        if st is None or (not st.get("alive") and self.error):
            return Job(
                id=JOB_ID,
                kind="watch",
                path=os.pathsep.join(roots),
                status="failed" if self.error else "queued",
                error=self.error,
            )
        status = {"died": "interrupted", "stopped": "cancelled"}.get(str(st.get("state")), "running")
        totals = st.get("totals") or {}
        report: dict[str, Any] = {
            k: int(totals.get(k, 0)) for k in ("added", "updated", "removed", "duplicates", "pages")
        }
        report.update(
            failed=[list(f) for f in st.get("recent_failures") or []],
            state=st.get("state"),
            pending=int(st.get("pending", 0)),
            passes=int(st.get("passes", 0)),
            failed_total=int(totals.get("failed", 0)),
            last_pass_at=st.get("last_pass_at"),
            last_rescan_at=st.get("last_rescan_at"),
            pid=st.get("pid"),
        )
        error = st.get("error") or self.error  # self.error: the server's own watcher could not start (home busy)
        return Job(
            id=JOB_ID,
            kind="watch",
            path=os.pathsep.join(roots),
            status=status,
            created_at=st.get("started_at") or _now(),
            started_at=st.get("started_at"),
            progress=job_progress(st.get("progress") or {}),
            report=job_report(report),
            error=error,
        )

    def gauges(self) -> dict[str, tuple[str, Any]]:
        """``tokensearch_watch_*`` gauges for ``/metrics`` (none when no watcher ever ran on the home)."""
        st = self.state()
        if st is None:
            return (
                {"tokensearch_watch_up": ("1 while a watcher follows folders into this index.", 0)}
                if self.configured
                else {}
            )
        totals = st.get("totals") or {}
        return {
            "tokensearch_watch_up": ("1 while a watcher follows folders into this index.", int(bool(st.get("alive")))),
            "tokensearch_watch_pending_paths": ("Changed paths waiting for their debounce.", st.get("pending", 0)),
            "tokensearch_watch_files": (
                "Files the watcher handled since it started, by outcome.",
                {(("outcome", k),): totals.get(k, 0) for k in ("added", "updated", "duplicates", "removed", "failed")},
            ),
            "tokensearch_watch_passes": ("Index passes the watcher ran since it started.", st.get("passes", 0)),
            "tokensearch_watch_error": ("1 while the watcher's last pass failed.", int(bool(st.get("error")))),
        }


# -- the child ---------------------------------------------------------------------------------------------


def main() -> int:
    out, spec, stop = child_start()  # stop: the server stopped (or died)

    from tokensearch.engine import Engine
    from tokensearch.indexer.homelock import HomeBusy
    from tokensearch.indexer.watch import FolderWatcher

    settings = Settings.model_validate(spec["settings"])
    try:
        with Engine(settings) as engine:
            FolderWatcher(engine, list(settings.watch), Path(settings.home), _options(settings)).run(stop)
        return 0
    except HomeBusy as e:
        emit(out, {"error": str(e)})
        return HOME_BUSY_EXIT
    except Exception as e:  # noqa: BLE001 - said to the server, which shows it on the watch job
        log.exception("the watcher stopped")
        emit(out, {"error": f"{type(e).__name__}: {e}"})
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
