"""What the API lets a client touch: API-key checks, loopback detection, paths confined to the roots.

Rules (enforced here, tested in ``tests/test_api_security.py``):

* A server bound to anything but loopback refuses to start without ``settings.api_key``.
* When a key is set it is required on every ``/api/v1`` route and ``/metrics`` (header ``X-API-Key`` or
  ``Authorization: Bearer <key>``); ``/healthz`` and the viewer's static files stay open.
* No file outside the configured roots (``settings.roots`` + ``<home>/uploads``) is ever read or served:
  paths are URL-decoded, checked for ``..``, resolved through symlinks, and must land inside a root.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import unquote

from tokensearch.settings import Settings

from .errors import ApiError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class InsecureConfigError(RuntimeError):
    """The server would be reachable from the network without an API key."""


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or 0.0.0.0-like wildcard we cannot prove local


def check_startup(settings: Settings) -> None:
    """Refuse configurations that would expose the index without authentication."""
    if not is_loopback(settings.host) and not settings.api_key:
        raise InsecureConfigError(
            f"refusing to serve on {settings.host!r} without an API key: set TOKENSEARCH_API_KEY "
            "(clients then send it as the X-API-Key header) or bind to 127.0.0.1"
        )


def check_api_key(settings: Settings, x_api_key: str | None, authorization: str | None) -> None:
    """Raise 401 (no key) / 403 (wrong key) when the server has a key; no-op otherwise."""
    expected = settings.api_key
    if not expected:
        return
    supplied = x_api_key
    if supplied is None and authorization and authorization.lower().startswith("bearer "):
        supplied = authorization[7:].strip()
    if not supplied:
        raise ApiError(
            401,
            "unauthorized",
            "this server requires an API key: send it as the X-API-Key header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(supplied.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "wrong API key")


def allowed_roots(settings: Settings) -> list[Path]:
    """Folders the API may read from, resolved: the configured roots, the watched folders and the upload
    folder."""
    roots = [Path(r).expanduser().resolve() for r in [*settings.roots, *settings.watch]]
    roots.append(uploads_dir(settings).resolve())
    return roots


def uploads_dir(settings: Settings) -> Path:
    return Path(settings.home).expanduser() / "uploads"


def is_inside(path: Path, roots: list[Path]) -> bool:
    """``path`` (already resolved) lies in one of ``roots`` (already resolved)."""
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_client_path(raw: str, settings: Settings) -> Path:
    """Turn a path a client sent into an existing path inside a configured root, or raise 400/403/404.

    Relative paths are taken relative to each root in turn. Percent-encoding is decoded (repeatedly) before
    the checks, so ``%2e%2e`` and ``%252e%252e`` are treated as ``..``; any ``..`` component is refused
    outright, and the symlink-resolved result must still be inside a root.
    """
    roots = [Path(r).expanduser().resolve() for r in settings.roots]
    if not roots:
        raise ApiError(
            403,
            "forbidden",
            "indexing from the API is disabled: start the server with --root DIR "
            "(or TOKENSEARCH_ROOTS='[\"/dir\"]') to allow folders",
        )
    text = raw
    for _ in range(3):  # undo single, double and triple URL-encoding
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    if not text.strip() or "\x00" in text or len(text) > 4096:
        raise ApiError(400, "bad_path", "path must be a non-empty file or folder path")
    parts = text.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        raise ApiError(403, "forbidden", "path must not contain '..'")
    candidate = Path(os.path.expanduser(text)) if text.startswith("~") else Path(text)
    candidates = [candidate] if candidate.is_absolute() else [root / candidate for root in roots]
    for cand in candidates:
        try:
            resolved = cand.resolve(strict=True)
        except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, unencodable (lone surrogates)
            continue
        if not is_inside(resolved, roots):
            raise ApiError(403, "forbidden", f"{raw!r} is outside the configured roots")
        return resolved
    if candidate.is_absolute() and not is_inside(Path(os.path.normpath(candidate)), roots):
        raise ApiError(403, "forbidden", f"{raw!r} is outside the configured roots")
    raise ApiError(404, "not_found", f"{raw!r} does not exist under the configured roots")
