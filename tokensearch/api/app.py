"""The FastAPI application: ``create_app(settings)`` builds it; its lifespan builds the server's engine.

Nothing happens at import time: settings come in as an argument (or ``get_settings()`` when omitted), the
engine is opened when the app starts and closed when it stops, index jobs interrupted by the previous stop
are resumed. An app that builds its own engine answers searches in worker processes and runs index jobs
in a process each (:mod:`.searches`, :mod:`.job_process`); one handed an engine does both on its threads.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from tokensearch import __version__
from tokensearch.engine import Engine
from tokensearch.settings import Settings, get_settings

from .deps import ApiState
from .errors import install_error_handlers
from .job_process import ProcessRunner
from .jobs import JobManager
from .metrics import Metrics, MetricsMiddleware
from .openapi import install_openapi
from .pages import PageImageCache, TokenMapsCache
from .routes import documents, health, index_jobs, pages, search
from .searches import make_searches
from .security import allowed_roots, check_startup, is_inside, resolve_client_path
from .watching import WatchService

log = logging.getLogger("tokensearch.api")
STATIC = Path(__file__).parent / "static"

VIEWER_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _build_state(settings: Settings, engine: Engine, metrics: Metrics, owned: bool) -> ApiState:
    home = Path(settings.home).expanduser()
    roots = allowed_roots(settings)
    return ApiState(
        settings=settings,
        engine=engine,
        jobs=JobManager(
            engine,
            home / "api",
            validate_path=lambda p: resolve_client_path(p, settings),
            confine=lambda p: is_inside(p, roots),
            runner=ProcessRunner(settings) if owned else None,
        ),
        images=PageImageCache(engine, home / "cache", roots, settings.max_page_pixels),
        token_maps=TokenMapsCache(engine),
        metrics=metrics,
        searches=make_searches(settings, engine, owned),
        roots=roots,
        watch=WatchService(settings, None if owned else engine),
    )


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """The API + viewer app. Pass ``engine`` to share an already open engine (it is then not closed here).

    Raises :class:`~tokensearch.api.security.InsecureConfigError` if ``settings.host`` is not loopback and
    no API key is set.
    """
    settings = settings or get_settings()
    check_startup(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = engine is None
        eng = Engine(settings) if engine is None else engine
        try:
            eng.open()  # open the index now: an unusable one stops the server at start, not at every request
        except Exception:
            if own:
                eng.close()
            raise
        state = _build_state(settings, eng, metrics, own)
        try:
            await state.searches.start()
        except BaseException:
            state.searches.close()
            if own:
                eng.close()
            raise
        watch = state.watch
        assert watch is not None  # _build_state makes one (an ApiState built elsewhere may have none)
        state.jobs.start()
        watch.start()
        app.state.api = state
        log.info(
            "tokensearch API ready (home=%s, roots=%s, auth=%s, search workers=%d)",
            settings.home,
            [str(r) for r in state.roots],
            bool(settings.api_key),
            state.searches.workers,
        )
        try:
            yield
        finally:
            watch.stop()
            state.jobs.stop()
            app.state.api = None
            state.searches.close()
            if own:
                eng.close()

    app = FastAPI(
        title="tokensearch",
        version=__version__,
        summary="Search document folders for text in the page images; get ranked pages and boxes.",
        lifespan=lifespan,
        docs_url=None,  # served below from the swagger-ui-bundle package: the API docs work offline
        redoc_url=None,
    )
    install_error_handlers(app)
    for r in (
        search.build_router(settings),
        documents.router,
        index_jobs.router,
        pages.build_router(settings),
        health.router,
    ):
        app.include_router(r)

    @app.get("/", include_in_schema=False)
    def viewer() -> FileResponse:
        return FileResponse(
            STATIC / "index.html", headers={"Content-Security-Policy": VIEWER_CSP, "Cache-Control": "no-cache"}
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _offline_docs(app)
    install_openapi(app, settings)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[str(o) for o in settings.cors_origins],
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
        )
    app.add_middleware(_SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the files of the ``swagger-ui-bundle`` package instead of a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        spec_url = app.openapi_url
        assert spec_url is not None  # the app publishes its spec (FastAPI's default URL)
        return get_swagger_ui_html(
            openapi_url=spec_url,
            title=f"{app.title} API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


class _SecurityHeaders:
    """``nosniff`` everywhere; the viewer's strict CSP on its static files too."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_wrapper(message):  # noqa: ANN001
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
                if static:
                    headers.append((b"content-security-policy", VIEWER_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)
