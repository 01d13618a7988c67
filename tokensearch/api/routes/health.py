"""``/healthz`` (open, for load balancers and Docker) and ``/metrics`` (Prometheus; needs the key if set)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from ..deps import Authorized, StateDep
from ..schemas import Health
from .common import errors

log = logging.getLogger("tokensearch.api")
router = APIRouter(tags=["health"])


def _version() -> str:
    from tokensearch import __version__

    return __version__


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> Health:
    state = getattr(request.app.state, "api", None)
    if state is None:
        return Health(status="starting", version=_version(), auth=False)
    try:
        stats = state.engine.stats()
        return Health(
            status="ok",
            version=_version(),
            documents=int(stats.documents),
            pages=int(stats.pages),
            auth=bool(state.settings.api_key),
        )
    except Exception as exc:  # noqa: BLE001 - health reports, never raises
        log.exception("health check failed")
        return Health(status="error", version=_version(), auth=bool(state.settings.api_key), detail=type(exc).__name__)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[Authorized],
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}, **errors()},
)
def metrics(state: StateDep) -> PlainTextResponse:
    gauges: dict = {}
    try:
        s = state.engine.stats()
        gauges["tokensearch_documents"] = ("Documents in the index.", s.documents)
        gauges["tokensearch_pages_indexed"] = ("Pages in the index.", s.pages)
        gauges["tokensearch_failures"] = ("Files that failed to index.", len(s.failures))
        gauges["tokensearch_vectors"] = ("Vectors in the vector index.", s.vectors)
        gauges["tokensearch_index_bytes"] = ("Size of the index on disk.", s.index_bytes)
        gauges["tokensearch_bytes_per_page"] = ("Index bytes per page.", s.bytes_per_page)
    except Exception:  # noqa: BLE001 - request metrics stay available when the store is not
        log.exception("index stats unavailable for /metrics")
    jobs = state.jobs.counts()
    gauges["tokensearch_index_jobs"] = (
        "Index jobs by status.",
        {
            (("status", st),): jobs.get(st, 0)
            for st in ("queued", "running", "done", "failed", "interrupted", "cancelled")
        },
    )
    if state.watch is not None:
        gauges.update(state.watch.gauges())
    return PlainTextResponse(state.metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8")
