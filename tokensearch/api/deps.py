"""Dependencies of the routes, as ``Annotated`` aliases: the app state, the one engine, settings, auth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from tokensearch.engine import Engine
from tokensearch.settings import Settings

from .jobs import JobManager
from .metrics import Metrics
from .pages import PageImageCache, TokenMapsCache
from .security import check_api_key

if TYPE_CHECKING:
    from .searches import ProcessSearches, ThreadSearches
    from .watching import WatchService


@dataclass
class ApiState:
    """Everything the routes share; built once by the app's lifespan."""

    settings: Settings
    engine: Engine
    jobs: JobManager
    images: PageImageCache
    token_maps: TokenMapsCache
    metrics: Metrics
    searches: ThreadSearches | ProcessSearches  # where searches run
    roots: list[Path] = field(default_factory=list)  # resolved: settings.roots + uploads
    watch: WatchService | None = None  # the home's watcher (TOKENSEARCH_WATCH), shown as job "watch"


def get_state(request: Request) -> ApiState:
    state = getattr(request.app.state, "api", None)
    if state is None:  # only possible if a request races the lifespan
        from .errors import ApiError

        raise ApiError(503, "unavailable", "the server is starting; retry in a moment")
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def get_engine(state: StateDep) -> Engine:
    return state.engine


def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

# declared as a security scheme so /docs offers an "Authorize" button; checked by require_api_key
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="required when the server has an API key (always off loopback)"
)


def require_api_key(
    request: Request, state: StateDep, x_api_key: Annotated[str | None, Security(api_key_header)] = None
) -> None:
    check_api_key(state.settings, x_api_key, request.headers.get("authorization"))


Authorized = Depends(require_api_key)
