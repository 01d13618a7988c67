"""The OpenAPI document says what this server does: two corrections to what FastAPI generates, made once.

* Every error is the one JSON shape (:mod:`.errors`), but FastAPI files the errors a route declares under the
  route's own media type: ``/metrics`` answers ``text/plain``, so its 401/403 were documented as text.
* Routes declare the ``X-API-Key`` security scheme, which OpenAPI reads as "required"; a server without a key
  (loopback only) needs none, so there the requirement is published as optional.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from tokensearch.settings import Settings

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` (and so /openapi.json and /docs) return the corrected document."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = correct(generate(), key_required=bool(settings.api_key))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def correct(spec: dict[str, Any], *, key_required: bool) -> dict[str, Any]:
    """``spec`` with every documented error as ``application/json`` ErrorResponse, and the API key optional
    unless ``key_required``."""
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            for status, response in op.get("responses", {}).items():
                if status[:1] in ("4", "5") and "content" in response:
                    response["content"] = {"application/json": {"schema": ERROR_SCHEMA}}
            if not key_required and op.get("security") and {} not in op["security"]:
                op["security"] = [*op["security"], {}]  # {}: no credentials is also accepted
    return spec
