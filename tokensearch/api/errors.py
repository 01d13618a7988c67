"""One error shape for every response that is not a success: ``{"error": {"code", "message"}}``.

Every failure path ends here — route errors (:class:`ApiError`), engine errors
(:class:`tokensearch.errors.TokensearchError` subclasses carry their ``status`` and ``code``), request validation (422),
unknown routes (404), wrong methods (405), auth (401/403), oversize uploads (413) and bugs (500, logged,
never leaked).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tokensearch.api")


class ApiError(Exception):
    """An error a route raises on purpose; rendered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def error_body(code: str, message: str) -> dict:
    # a message may echo client input: lone surrogates (valid in JSON escapes) cannot be encoded as UTF-8
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def engine_error_status(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error code of an engine error (each ``TokensearchError`` class carries both)."""
    status = getattr(exc, "status", 500)
    code = getattr(exc, "code", "error")
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 500
    return status, str(code)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]  # where the field is; its name is what the client needs
        where = ".".join(str(p) for p in loc)
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: MutableMapping[str, Any]) -> list[str]:
    """Every method some route serves at this request's path. Starlette's 405 lists only the methods of the
    first route whose path matched, but FastAPI makes one route per method (GET and DELETE of a job are two
    routes): ask every route, once per method, with a fresh scope (matching may write into it)."""
    from starlette.routing import Match, Mount
    from starlette.staticfiles import StaticFiles

    allowed: set[str] = set()
    for method in HTTP_METHODS:
        probe = {
            "type": "http",
            "method": method,
            "path": scope.get("path", ""),
            "root_path": scope.get("root_path", ""),
            "headers": [],
            "query_string": b"",
        }
        for route in app.router.routes:
            if route.matches(dict(probe))[0] != Match.FULL:
                continue
            if isinstance(route, Mount):  # a mount matches every method; its app decides
                if not (isinstance(route.app, StaticFiles) and method not in ("GET", "HEAD")):
                    allowed.add(method)
            else:
                allowed.add(method)
            break
    return sorted(allowed)


def install_error_handlers(app: FastAPI) -> None:
    from tokensearch.errors import TokensearchError  # the engine's error hierarchy

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(TokensearchError)
    async def _engine_error(request: Request, exc: TokensearchError) -> JSONResponse:
        status, code = engine_error_status(exc)
        if status >= 500:
            log.error("engine error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(status, code, str(exc) or type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "validation_error", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        if exc.status_code == 404 and exc.detail in (None, "Not Found"):
            message = f"no route {request.method} {request.url.path}"
        else:
            message = str(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            allow = allowed_methods(request.app, request.scope)
            headers = {**(headers or {}), "Allow": ", ".join(allow)} if allow else headers
            message = f"{request.method} is not allowed here; use {' or '.join(allow) or 'another method'}"
        return error_response(exc.status_code, code, message, headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # the traceback is logged by the server (Starlette re-raises after this response is sent)
        return error_response(500, "internal_error", "internal server error (see the server log)")
