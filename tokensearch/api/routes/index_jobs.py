"""``/api/v1/index-jobs``: index a folder under a configured root in the background; poll its progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..deps import Authorized, StateDep
from ..errors import ApiError, not_found
from ..jobs import JobRunning, job_out
from ..schemas import IndexJobIn, IndexJobList, IndexJobOut
from ..security import resolve_client_path
from ..watching import JOB_ID as WATCH_JOB
from .common import API, errors

JobId = Annotated[str, Path(min_length=1, max_length=64, description="index job id")]
router = APIRouter(prefix=f"{API}/index-jobs", tags=["index jobs"], dependencies=[Authorized])


@router.post("", response_model=IndexJobOut, status_code=202, responses=errors(400, 404))
def create_index_job(state: StateDep, body: IndexJobIn) -> IndexJobOut:
    path = resolve_client_path(body.path, state.settings)
    return job_out(state.jobs.submit_folder(path))


@router.get("", response_model=IndexJobList, responses=errors())
def list_index_jobs(state: StateDep) -> IndexJobList:
    """Jobs newest first; the home's watcher, when there is one, first of all as job ``watch``."""
    watch = state.watch.job() if state.watch is not None else None
    return IndexJobList(items=[job_out(j) for j in ([watch] if watch else []) + state.jobs.list()])


@router.get("/{job_id}", response_model=IndexJobOut, responses=errors(404))
def get_index_job(state: StateDep, job_id: JobId) -> IndexJobOut:
    job = state.jobs.get(job_id)
    if job is None and job_id == WATCH_JOB and state.watch is not None:
        job = state.watch.job()
    if job is None:
        raise not_found(f"index job {job_id!r}")
    return job_out(job)


@router.delete("/{job_id}", response_model=IndexJobOut, responses=errors(404, 409))
def cancel_index_job(state: StateDep, job_id: JobId) -> IndexJobOut:  # (name kept: it is the operationId)
    """Cancel a queued job (it stays listed as ``cancelled``) or a running folder job (it stops after the
    current file, then reads ``cancelled``); remove a finished job's record (answered with its last state;
    then 404). A running upload job cannot be stopped: 409."""
    try:
        job = state.jobs.delete(job_id)
    except JobRunning as exc:
        raise ApiError(409, "job_running", str(exc)) from exc
    if job is None:
        raise not_found(f"index job {job_id!r}")
    return job_out(job)
