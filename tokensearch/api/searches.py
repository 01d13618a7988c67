"""Where the API's searches run: in worker processes (``tokensearch serve``) or on threads of the server.

A search is CPU-bound Python and numpy. In one process, concurrent searches take turns at the GIL and each
extra thread only adds switching, so ``tokensearch serve`` answers them in ``search_workers`` processes
(default: one per CPU core), each of which opens the index and loads the model's query side once and runs
single-threaded (BLAS, FAISS's OpenMP and torch at one thread: N workers use N cores, never more threads
than cores), with the flat vector index kept decoded (``storage.vectors.keep_flat_decoded``), at niceness
``search_nice`` (5): when an index job and a flood of searches both want every core, the job gets the
larger share (about three quarters of the CPU against two busy workers) and searches the rest. Searches
wait their turn in the server, first come first served, and never behind an index job, which runs in its
own process (:mod:`.job_process`).

A worker sees the pages an index job commits at its next search: the store compares the database's
generation with the one its FAISS copy reflects before every search and adds what is new
(``storage/keeper.py``).

With an engine handed to the app (tests, embedding) searches run on threads of the server process, at
most one per core at a time, on that engine.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from tokensearch.filters import SearchFilter
from tokensearch.settings import Settings

from .errors import ApiError

if TYPE_CHECKING:
    from tokensearch.engine import Engine
    from tokensearch.search import SearchResult

log = logging.getLogger("tokensearch.api.searches")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ThreadSearches:
    """Searches on the server's threads, at most ``limit`` at a time (the others wait, in order)."""

    workers = 0

    def __init__(self, engine: Any, limit: int):
        self.engine = engine
        self.limit = limit
        self._limiter: anyio.CapacityLimiter | None = None

    async def start(self) -> None:
        self._limiter = anyio.CapacityLimiter(self.limit)

    async def search(self, q: str, k: int, offset: int, filter: SearchFilter | None = None) -> SearchResult:
        call = partial(self._search, q, k, offset, filter)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    def _search(self, q: str, k: int, offset: int, filter: SearchFilter | None) -> SearchResult:
        return _engine_search(self.engine, q, k, offset, filter)  # the engine looked up per call: tests replace it

    def close(self) -> None:
        pass


class ProcessSearches:
    """Searches in ``workers`` processes, each with its own engine built from ``settings``."""

    def __init__(self, settings: Settings, workers: int):
        self.settings_json = settings.model_dump_json()
        self.workers = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server has threads (uvicorn's, the job manager's, torch's) by now
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.settings_json, os.getpid()),
        )

    async def start(self) -> None:
        """Start the workers; return once they answer (each warms up before its first task, in
        :func:`_start_worker`; a task may go to a worker that is ready first)."""
        ready = [asyncio.wrap_future(self._pool.submit(os.getpid)) for _ in range(self.workers)]
        for outcome in await asyncio.gather(*ready, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.error("a search worker did not start: %s", outcome)

    async def search(self, q: str, k: int, offset: int, filter: SearchFilter | None = None) -> SearchResult:
        try:
            fut: Future = self._pool.submit(_search, q, k, offset, filter)
            return await asyncio.wrap_future(fut)
        except BrokenProcessPool as exc:  # a worker died (killed, out of memory): start new ones
            log.error("a search worker stopped (%s); starting new workers", exc)
            broken, self._pool = self._pool, self._new_pool()
            broken.shutdown(wait=False, cancel_futures=True)
            raise ApiError(503, "unavailable", "a search worker stopped while answering; retry") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_searches(settings: Settings, engine: Engine, owned: bool) -> ThreadSearches | ProcessSearches:
    """Worker processes when the app built its own engine from ``settings`` and ``search_workers`` is not 0;
    threads of the server, on ``engine``, otherwise."""
    cores = usable_cores()
    workers = settings.search_workers if settings.search_workers is not None else cores
    if not owned or workers == 0:
        return ThreadSearches(engine, cores)
    return ProcessSearches(settings, workers)


# -- in a worker process ---------------------------------------------------------------------------------

_engine: Any = None


def _start_worker(settings_json: str, server: int) -> None:
    global _engine
    from .job_process import die_with_parent

    die_with_parent(server)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    settings = Settings.model_validate_json(settings_json)
    if settings.search_nice:
        os.nice(settings.search_nice)  # an index job running meanwhile gets the larger share of the CPU
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # for the life of the process: one core per worker
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        pass
    from tokensearch.allocator import reuse_freed_memory
    from tokensearch.engine import Engine
    from tokensearch.storage.vectors import keep_flat_decoded

    keep_flat_decoded()  # a third less CPU a search, for memory (see there)
    reuse_freed_memory()  # the same results for less CPU, for memory (see there)
    _engine = Engine(settings.model_copy(update={"threads": 1}))
    try:  # the index, its vectors (decoded), the query side, the vocabulary check: one search loads them
        _engine.search("warming up the search worker", k=1)
    except Exception as exc:  # noqa: BLE001 - e.g. a model mismatch: every search answers it, not the start
        log.error("search worker %d could not warm up: %s", os.getpid(), exc)


def _engine_search(engine: Engine, q: str, k: int, offset: int, filter: SearchFilter | None) -> SearchResult:
    if filter:
        return engine.search(q, k=k, offset=offset, filter=filter)
    return engine.search(q, k=k, offset=offset)


def _search(q: str, k: int, offset: int, filter: SearchFilter | None = None) -> SearchResult:
    return _engine_search(_engine, q, k, offset, filter)
