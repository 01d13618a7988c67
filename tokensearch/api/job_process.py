"""An index job in a process of its own, so that indexing never takes CPU time or the GIL from searches.

The server (:class:`ProcessRunner`, called by the job manager's worker thread) starts
``python -m tokensearch.api.job_process`` with the same settings, hence the same home: the child opens its
own engine and indexes exactly as the server would (:func:`.jobs.run_job`). The store is built for several
processes on one home (feature segments owned by flock, commits serialised by SQL, every reader's FAISS
copy catches up with the generation before it searches), so the search workers see each document as soon
as the child commits it.

Protocol, JSON lines (ASCII): the server writes ``{"settings": ..., "job": ...}`` to the child's stdin,
later ``cancel`` when the job is to stop after the current file; the end of stdin (the server stopped or
died) cancels as well. The child writes ``{"progress": ...}`` as it goes, then ``{"report": ...}`` or
``{"error": message}`` to stdout; its logs go to the server's stderr. On Linux the child is killed with
the server (``PR_SET_PDEATHSIG``): a ``kill -9`` of the server stops indexing at once, as when jobs ran on
its thread, and the store's crash safety covers the rest (the next start resumes the job).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from tokensearch.settings import Settings

from .jobs import Job, Progress, ReportSent, _plain, run_job

log = logging.getLogger("tokensearch.api.job_process")


def start_child(module: str) -> subprocess.Popen[bytes]:
    """``python -m module``, a child of the server: the protocol on its stdin and stdout, its logs on the
    server's stderr."""
    return subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,
        close_fds=True,
    )


def send_spec(proc: subprocess.Popen[bytes], spec: dict[str, Any]) -> None:
    """The child's first line (what :func:`child_start` reads): ``spec`` with the server's pid (the child dies
    with it) and log level (serve --log-level). Nothing is written to a child that died at start."""
    assert proc.stdin is not None
    spec = {**spec, "parent": os.getpid(), "log_level": logging.getLogger().getEffectiveLevel()}
    try:
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        proc.stdin.flush()
    except OSError:
        pass


class JobProcessError(Exception):
    """The job failed in its process (the message is the child's), or the process ended without a word."""


class ProcessRunner:
    """Runs a job in a child process (a :data:`.jobs.Runner`)."""

    def __init__(self, settings: Settings):
        self.settings_json = settings.model_dump(mode="json")

    def __call__(self, job: Job, cancel: threading.Event, progress: Progress) -> ReportSent:
        proc = start_child("tokensearch.api.job_process")
        assert proc.stdin is not None and proc.stdout is not None
        send_spec(proc, {"settings": self.settings_json, "job": job.to_dict()})  # died at start: the exit code says why
        stopper = threading.Thread(
            target=_forward_cancel, args=(cancel, proc), daemon=True, name=f"tokensearch-job-{job.id}-cancel"
        )
        stopper.start()
        final: dict[str, Any] | None = None
        try:
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("index job %s: unreadable line from its process: %r", job.id, line[:200])
                    continue
                if "progress" in msg:
                    progress(msg["progress"])
                else:
                    final = msg
        finally:
            code = proc.wait()
            stopper.join(1.0)
            for f in (proc.stdin, proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
        if final is None:
            raise JobProcessError(f"the indexing process ended with exit code {code} before its report")
        if "error" in final:
            raise JobProcessError(final["error"])
        return final.get("report")


def _forward_cancel(cancel: threading.Event, proc: subprocess.Popen) -> None:
    while proc.poll() is None:
        if cancel.wait(0.2):
            try:
                assert proc.stdin is not None
                proc.stdin.write(b"cancel\n")
                proc.stdin.flush()
            except (OSError, ValueError):
                pass
            return


# -- the child -------------------------------------------------------------------------------------------


def die_with_parent(parent: int) -> None:
    """This process gets SIGKILL when its parent (the server, ``parent``) exits, on Linux; it exits now if
    that is already gone. (A ``kill -9`` of the server leaves no index job or search worker behind.)"""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def _watch_stdin(cancel: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "cancel":
            break
    cancel.set()  # asked to, or the server went away


def emit(out: IO[str], msg: dict[str, Any]) -> None:
    out.write(json.dumps(msg) + "\n")
    out.flush()


def child_start() -> tuple[IO[str], dict[str, Any], threading.Event]:
    """What a child of the server (an index job, the folder watcher) does first: the protocol gets its own
    copy of stdout (anything else printed, a library's message, goes to stderr), the spec is the first line
    of stdin, and the child dies with the server. Returns (protocol out, spec, an event set when the server
    says "cancel" or goes away)."""
    out = os.fdopen(os.dup(1), "w", encoding="ascii")
    os.dup2(2, 1)
    spec = json.loads(sys.stdin.readline() or "{}")
    logging.basicConfig(
        level=int(spec.get("log_level", logging.INFO)), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    die_with_parent(int(spec.get("parent", os.getppid())))
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    return out, spec, stop


def main() -> int:
    out, spec, cancel = child_start()

    from tokensearch.engine import Engine

    from .security import allowed_roots, is_inside, resolve_client_path

    settings = Settings.model_validate(spec["settings"])
    roots = allowed_roots(settings)
    job = Job.from_dict(spec["job"])
    engine = Engine(settings)
    try:
        report = run_job(
            engine,
            job,
            cancel,
            lambda event: emit(out, {"progress": _plain(event)}),
            validate_path=lambda p: resolve_client_path(p, settings),
            confine=lambda p: is_inside(p, roots),
        )
        emit(out, {"report": _plain(report)})
        return 0
    except Exception as exc:  # noqa: BLE001 - the job's error, reported as the in-server runner reports it
        log.exception("index job %s failed", job.id)
        emit(out, {"error": str(exc) or type(exc).__name__})
        return 1
    finally:
        engine.close()


if __name__ == "__main__":
    raise SystemExit(main())
