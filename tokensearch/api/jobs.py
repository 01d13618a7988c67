"""Index jobs run by the API: one worker thread, progress in memory, state persisted under ``<home>/api``.

A job indexes a folder (``POST /api/v1/index-jobs``) or a set of uploaded files (``POST /api/v1/documents``).
Jobs run one at a time, each in its own process under ``tokensearch serve`` (:mod:`.job_process`: a long
job never takes CPU time or the GIL from the server that answers searches), or on the worker thread with
the app's engine when the app was handed one (tests, embedding). Searches see a job's pages as it commits
them, document by document.

State survives restarts: ``<home>/api/jobs.json`` is rewritten atomically on every state change (and at
most once a second for progress). On start-up, a job that was queued or running when the server stopped
is marked ``interrupted``, then re-queued — indexing is incremental, so resuming is re-running — unless it
was already resumed :data:`MAX_RESUMES` times or its path is gone, in which case it is failed visibly.

A :class:`Job` holds its progress and report as the API's own types (:class:`~.schemas.JobProgress`,
:class:`~.schemas.JobReport`). What a pass sends — a :class:`~tokensearch.reports.ProgressEvent` and an
:class:`~tokensearch.reports.IndexReport` in this process, their JSON from a job's own process — becomes
them in :meth:`JobManager._write`, and a stored record in :meth:`Job.from_dict`.

Every job record is one the API can serve (:func:`record_problem`): a change that would make it invalid is
not applied and the job's error says so, and a stored record that is invalid (a damaged or older
``jobs.json``) is listed as a failed job whose error says why. Paths stay as the OS gives them (a job must
find its folder again), everything else is plain JSON text; file names that are not UTF-8 are shown
escaped (:func:`tokensearch.pathnames.shown`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from ..pathnames import shown
from ..reports import IndexReport, ProgressEvent
from .schemas import IndexJobOut, JobProgress, JobReport

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger("tokensearch.api.jobs")

MAX_RESUMES = 3
MAX_KEPT = 200  # finished jobs kept in the history
UNFINISHED = ("queued", "running")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def job_progress(plain: Mapping[str, Any]) -> JobProgress:
    """A job's progress from its plain (JSON) form; keys the schema does not know are ignored. Raises
    TypeError / ValueError (pydantic's errors) when it does not fit."""
    return JobProgress(**plain)


def job_report(plain: Mapping[str, Any]) -> JobReport:
    """A job's report from its plain (JSON) form: ``failed`` entries as (path, why) pairs (a bare path gets
    an empty reason). Raises TypeError / ValueError when it does not fit."""
    rep = dict(plain)
    rep["failed"] = [
        (str(f[0]), str(f[1])) if isinstance(f, (list, tuple)) and len(f) == 2 else (str(f), "")
        for f in rep.get("failed") or []
    ]
    return JobReport(**rep)


_PROGRESS_JSON: TypeAdapter[JobProgress] = TypeAdapter(JobProgress)
_REPORT_JSON: TypeAdapter[JobReport] = TypeAdapter(JobReport)


@dataclass
class Job:
    id: str
    kind: str  # "folder" | "upload" | "watch"
    path: str  # folder/file to index, or the upload root
    files: list[str] = field(default_factory=list)  # uploads: the stored files
    status: str = "queued"
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    progress: JobProgress = field(default_factory=JobProgress)
    report: JobReport | None = None
    error: str | None = None
    resumed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The record as ``jobs.json`` keeps it (progress and report in their JSON form)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["files"] = list(self.files)
        d["progress"] = _PROGRESS_JSON.dump_python(self.progress, mode="json")
        d["report"] = None if self.report is None else _REPORT_JSON.dump_python(self.report, mode="json")
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Job:
        """A record read back (keys it does not know are ignored); raises TypeError, ValueError or
        AttributeError when it is not one (see :meth:`JobManager._load`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["progress"] = job_progress(kw.get("progress") or {})
        kw["report"] = None if not kw.get("report") else job_report(kw["report"])
        return cls(**kw)

    def copy(self) -> Job:
        """A copy that shares nothing mutable with this record (what the manager hands out)."""
        return copy.deepcopy(self)


def _plain(obj: Any) -> Any:
    """Dataclass / namedtuple / object -> JSON-able dict (for ProgressEvent and IndexReport, whose fields
    :class:`~.schemas.JobReport` publishes); its texts valid UTF-8 (a file name that is not is escaped: reports
    and progress are for display). The form a job's own process sends them in (:mod:`.job_process`)."""
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    elif hasattr(obj, "_asdict"):
        obj = obj._asdict()
    elif not isinstance(obj, dict):
        obj = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return _shown_texts(json.loads(json.dumps(obj, default=str)))


def _shown_texts(value: Any) -> Any:
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, list):
        return [_shown_texts(v) for v in value]
    if isinstance(value, dict):
        return {shown(str(k)): _shown_texts(v) for k, v in value.items()}
    return value


def job_out(job: Job) -> IndexJobOut:
    """The API's view of a job (raises ValueError if the record does not fit it; see :func:`record_problem`)."""
    return IndexJobOut(
        id=job.id,
        kind=job.kind,
        path=shown(str(job.path)),
        status=job.status,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        progress=job.progress,
        report=job.report,
        error=job.error,
        resumed=job.resumed,
    )


def _problem(exc: Exception) -> str:
    return shown(" ".join(str(exc).split()))[:500]


def record_problem(job: Job) -> str | None:
    """Why the API could not serve ``job`` (its fields do not validate, or do not encode as JSON), or None."""
    try:
        job_out(job).model_dump_json()
    except (ValueError, TypeError, AttributeError) as exc:  # pydantic's errors are ValueErrors; a field of
        # the wrong shape (a list where a mapping belongs) fails before pydantic sees it
        return _problem(exc)
    return None


def _broken_record(d: Any, problem: str) -> Job:
    """A stored record that does not validate, kept as a failed job that says so (never a 500 when listed)."""
    d = d if isinstance(d, dict) else {}
    job = Job(
        id=shown(str(d.get("id") or uuid.uuid4().hex[:12]))[:64],
        kind=d["kind"] if d.get("kind") in ("folder", "upload") else "folder",
        path=str(d.get("path") or ""),
        status="failed",
        error=f"this job's stored record is invalid ({problem}); submit the job again",
    )
    created = d.get("created_at")
    if isinstance(created, str) and record_problem(dataclasses.replace(job, created_at=created)) is None:
        job.created_at = created
    return job


class JobRunning(Exception):
    """The job is running and cannot be stopped (an upload job); answered 409."""


# what a pass sends while it runs, and at its end: the indexer's own objects (in this process), or their
# plain JSON form (:func:`_plain`; from a job's own process, or a report with what it skipped)
ProgressSent = ProgressEvent | Mapping[str, Any]
ReportSent = IndexReport | Mapping[str, Any] | None
Progress = Callable[[ProgressSent], None]
# runs one job: (job, cancel, progress) -> its report; blocks until the job ends
Runner = Callable[[Job, threading.Event, Progress], ReportSent]


def run_job(
    engine: Engine,
    job: Job,
    cancel: threading.Event,
    progress: Progress,
    *,
    validate_path: Callable[[str], Path] | None = None,
    confine: Callable[[Path], bool] | None = None,
) -> ReportSent:
    """Index what ``job`` names with ``engine``; returns the indexer's report (in the server, or in the job's
    own process: :mod:`.job_process`)."""
    if job.kind == "upload":
        return engine.index_files([Path(f) for f in job.files], Path(job.path), progress=progress)
    target = Path(job.path)
    if validate_path is not None:
        target = validate_path(job.path)
    if target.is_file():
        return engine.index_files([target], target.parent, progress=progress)
    if confine is not None:
        from tokensearch.indexer import walk_documents

        files = walk_documents(target)
        outside = [p for p in files if not confine(p.resolve())]
        if outside:  # symlinks leading out of the roots: never read them; index the rest (no pruning)
            log.warning("index job %s: skipping %d file(s) that link outside the roots", job.id, len(outside))
            report = engine.index_files([p for p in files if p not in outside], target, progress=progress)
            extra = _plain(report) or {}
            extra["skipped_outside_roots"] = [str(p) for p in outside]
            return extra
    return engine.index(target, progress=progress, cancel=cancel)


class JobManager:
    """Runs index jobs on a worker thread and persists their state.

    ``runner`` runs one job (default: :func:`run_job` with ``engine`` on the worker thread; ``tokensearch
    serve`` passes :class:`.job_process.ProcessRunner`, which runs it in a process of its own)."""

    def __init__(
        self,
        engine: Engine,
        state_dir: Path,
        *,
        validate_path: Callable[[str], Path] | None = None,
        confine: Callable[[Path], bool] | None = None,
        on_finish: Callable[[Job], None] | None = None,
        runner: Runner | None = None,
    ):
        self.engine = engine
        self.runner = runner
        self.state_file = Path(state_dir) / "jobs.json"
        self.validate_path = validate_path  # re-checks a resumed job's path against the roots
        self.confine = confine  # is a (resolved) file inside the roots? files symlinked out of them are skipped
        self.on_finish = on_finish
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._done: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._last_save = 0.0

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._load()
        with self._lock:
            for job in sorted(self._jobs.values(), key=lambda j: j.created_at):
                if job.status in UNFINISHED:
                    job.status = "interrupted"
                    log.warning("index job %s (%s) was interrupted by a server stop", job.id, job.path)
            self._save(force=True)
            for job in sorted(self._jobs.values(), key=lambda j: j.created_at):
                if job.status == "interrupted":
                    self._resume(job)
            self._save(force=True)
        self._thread = threading.Thread(target=self._work, name="tokensearch-index-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the running job (it stays resumable: marked ``interrupted``) and stop the worker."""
        self._stopping.set()
        with self._lock:
            for ev in self._cancel.values():
                ev.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            for job in self._jobs.values():
                if job.status in UNFINISHED:
                    job.status = "interrupted"
            self._save(force=True)

    def _resume(self, job: Job) -> None:
        if job.resumed >= MAX_RESUMES:
            self._finish(
                job,
                "failed",
                error=f"interrupted {job.resumed + 1} times by server restarts; giving up — submit the job again",
            )
            return
        paths = job.files if job.kind == "upload" else [job.path]
        try:
            for p in paths:
                if self.validate_path is not None and job.kind == "folder":
                    self.validate_path(p)
                elif not Path(p).exists():
                    raise FileNotFoundError(p)
        except Exception as exc:  # noqa: BLE001 - any reason makes the job un-resumable; say which
            self._finish(job, "failed", error=f"could not resume after a restart: {getattr(exc, 'message', exc)}")
            return
        job.resumed += 1
        job.status = "queued"
        job.error = None
        self._enqueue(job)
        log.info("resuming index job %s (%s), attempt %d", job.id, job.path, job.resumed + 1)

    # -- API ------------------------------------------------------------------------------------------------

    def submit_folder(self, path: Path) -> Job:
        return self._submit(Job(id=uuid.uuid4().hex[:12], kind="folder", path=str(path)))

    def submit_upload(self, files: list[Path], root: Path) -> Job:
        return self._submit(Job(id=uuid.uuid4().hex[:12], kind="upload", path=str(root), files=[str(f) for f in files]))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.copy() if job else None

    def list(self) -> list[Job]:
        with self._lock:
            return [j.copy() for j in sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)]

    def delete(self, job_id: str) -> Job | None:
        """``DELETE`` of a job, by its state: a queued job is cancelled (its record stays, ``cancelled``); a
        running folder job is asked to stop (it ends ``cancelled`` after the current file); a finished job's
        record is removed (a later ``get`` is None). Returns the job after the call — for a removed one, its
        last state — or None if there is no such job. Raises :class:`JobRunning` for a running upload job,
        which cannot be stopped (it is a few files: it finishes soon)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status == "queued":
                self._finish(job, "cancelled")
            elif job.status == "running":
                if job.kind != "folder":
                    raise JobRunning(
                        f"index job {job_id!r} is indexing uploaded files and cannot be cancelled; "
                        "it finishes in moments — delete it then to remove its record"
                    )
                self._cancel[job_id].set()
            else:
                del self._jobs[job_id]
                self._done.pop(job_id, None)
                self._save(force=True)
            return job.copy()

    def wait(self, job_id: str, timeout: float | None = None) -> Job | None:
        with self._lock:
            ev = self._done.get(job_id)
        if ev is not None:
            ev.wait(timeout)
        return self.get(job_id)

    def counts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for job in self._jobs.values():
                out[job.status] = out.get(job.status, 0) + 1
            return out

    # -- internals ------------------------------------------------------------------------------------------

    def _submit(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
            self._enqueue(job)
            self._prune()
            self._save(force=True)
            return job.copy()

    def _enqueue(self, job: Job) -> None:
        self._cancel[job.id] = threading.Event()
        self._done.setdefault(job.id, threading.Event()).clear()
        self._queue.put(job.id)

    def _work(self) -> None:
        while not self._stopping.is_set():
            job_id = self._queue.get()
            if job_id is None:
                break
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job.status != "queued":
                    continue
                job.status = "running"
                job.started_at = _now()
                job.finished_at = None
                cancel = self._cancel[job_id]
                self._save(force=True)
            try:
                report = self._run(job, cancel)
            except Exception as exc:  # noqa: BLE001 - a job failure is reported on the job, never crashes the worker
                log.exception("index job %s failed", job.id)
                with self._lock:
                    self._finish(
                        job,
                        "interrupted" if self._stopping.is_set() else "failed",
                        error=shown(str(exc)) or type(exc).__name__,
                    )
                continue
            with self._lock:
                self._write(job, report=_plain(report))  # in its JSON form: texts shown escaped
                if cancel.is_set():
                    self._finish(job, "interrupted" if self._stopping.is_set() else "cancelled")
                else:
                    self._finish(job, "done")

    def _run(self, job: Job, cancel: threading.Event) -> ReportSent:
        t0 = time.monotonic()

        def progress(event: ProgressSent) -> None:
            p = _plain(event) or {}
            if not p.get("pages_per_s"):
                elapsed = max(time.monotonic() - t0, 1e-6)
                p["pages_per_s"] = round(p.get("pages_done", 0) / elapsed, 3)
            with self._lock:
                self._write(job, progress=p)
                self._save()

        if self.runner is not None:
            return self.runner(job, cancel, progress)
        return run_job(self.engine, job, cancel, progress, validate_path=self.validate_path, confine=self.confine)

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        if job.error and error is None and job.status == "running":
            error = job.error  # what _write could not record while the job ran
        job.status = status
        job.error = error
        job.finished_at = _now()
        if job.report is not None and status == "done":  # the progress agrees with the report at the end
            rep, prog = job.report, job.progress
            pages_done = max(prog.pages_done, rep.pages)
            final = dataclasses.replace(
                prog,
                files_total=max(prog.files_total, rep.files_seen),
                files_done=max(prog.files_done, rep.files_seen),
                pages_done=pages_done,
                pages_total=max(prog.pages_total, pages_done),
                failures=max(prog.failures, len(rep.failed)),
            )
            if rep.seconds:
                final.pages_per_s = round(rep.pages / rep.seconds, 3)
            self._write(job, progress=final)
        self._save(force=True)
        ev = self._done.setdefault(job.id, threading.Event())
        ev.set()
        self._cancel.pop(job.id, None)
        if self.on_finish is not None:
            try:
                self.on_finish(job)
            except Exception:  # noqa: BLE001
                log.exception("job finish hook failed")

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.status not in UNFINISHED]
        finished.sort(key=lambda j: j.created_at)
        for j in finished[:-MAX_KEPT] if len(finished) > MAX_KEPT else []:
            self._jobs.pop(j.id, None)
            self._done.pop(j.id, None)

    def _load(self) -> None:
        if not self.state_file.exists():
            return
        try:
            data = json.loads(self.state_file.read_text())
            self._jobs = {}
            for d in data.get("jobs", []):
                try:
                    job = Job.from_dict(d)
                    problem = record_problem(job)
                except (TypeError, AttributeError) as exc:  # not a mapping, or a field missing
                    problem = shown(str(exc))
                except ValueError as exc:  # a progress or report that does not fit its type
                    problem = _problem(exc)
                if problem is not None:
                    job = _broken_record(d, problem)
                    log.error(
                        "index job record %s in %s is invalid (%s); listed as failed", job.id, self.state_file, problem
                    )
                self._jobs[job.id] = job
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            broken = self.state_file.with_suffix(".json.broken")
            log.error("cannot read %s (%s); moved it to %s and starting with no jobs", self.state_file, exc, broken)
            os.replace(self.state_file, broken)
            self._jobs = {}

    def _write(self, job: Job, **changes: Any) -> None:
        """Apply ``changes`` to ``job`` if its record stays valid; otherwise keep the old values and say in the
        job's error what was not recorded (a job the API cannot serve would break every listing). A progress
        or report in its plain form (a mapping) becomes the job's type here."""
        old = {k: getattr(job, k) for k in changes}
        try:
            for k, v in changes.items():
                if isinstance(v, Mapping):
                    v = {"progress": job_progress, "report": job_report}[k](v)
                setattr(job, k, v)
            problem = record_problem(job)
        except (ValueError, TypeError) as exc:  # a plain form that does not fit the type
            problem = _problem(exc)
        if problem is None:
            return
        for k, v in old.items():
            setattr(job, k, v)
        log.error("index job %s: not recording %s (%s)", job.id, ", ".join(changes), problem)
        job.error = f"part of this job's record could not be kept ({', '.join(changes)}: {problem})"

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_save < 1.0:
            return
        self._last_save = now
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps({"version": 1, "jobs": [j.to_dict() for j in self._jobs.values()]}, indent=1))
        os.replace(tmp, self.state_file)
