"""``tokensearch serve``: run the API and viewer with uvicorn (one process, one engine).

The CLI adds the common flags (``--home``, ``--model`` ...) and passes the resulting settings; this module
adds the server's own flags and applies them on top.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tokensearch.local_server import ServerNote, announce, withdraw
from tokensearch.settings import Settings

from .http_limits import server_options
from .security import InsecureConfigError, check_startup, is_loopback


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server (env TOKENSEARCH_*)")
    g.add_argument("--host", help="interface to bind (default 127.0.0.1; anything else requires an API key)")
    g.add_argument("--port", type=int, help="port (default 8000)")
    g.add_argument(
        "--root",
        dest="roots",
        type=Path,
        action="append",
        metavar="DIR",
        help="folder the API may index and serve pages from (repeatable; env TOKENSEARCH_ROOTS='[\"/a\"]')",
    )
    g.add_argument(
        "--api-key-file",
        type=Path,
        metavar="FILE",
        help="read the API key from FILE (or set TOKENSEARCH_API_KEY); never pass keys on the command line",
    )
    g.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        metavar="ORIGIN",
        help="allow browser calls from ORIGIN (repeatable; CORS is off by default)",
    )
    g.add_argument("--max-upload-bytes", type=int, help="upload size limit (default 100 MiB)")
    g.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def serve_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings with this command's flags applied (flags win over the environment)."""
    update: dict = {}
    for name in ("host", "port", "roots", "cors_origins", "max_upload_bytes"):
        value = getattr(args, name, None)
        if value is not None:
            update[name] = value
    key_file = getattr(args, "api_key_file", None)
    if key_file is not None:
        update["api_key"] = Path(key_file).read_text().strip() or None
    merged = settings.model_copy(update=update)
    return Settings.model_validate(merged.model_dump())  # re-validate the flag values


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Start uvicorn; returns the process exit code (2 for a refused configuration)."""
    import uvicorn

    from .app import create_app

    settings = serve_settings(args, settings)
    level = getattr(args, "log_level", "info")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        check_startup(settings)
    except InsecureConfigError as exc:
        print(f"tokensearch serve: {exc}", file=sys.stderr)
        return 2
    if not settings.roots:
        print(
            "tokensearch serve: no --root given: the API can serve only uploaded documents' pages and cannot "
            "index folders; add --root DIR for each folder you indexed",
            file=sys.stderr,
        )
    app = create_app(settings)
    where = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(
        f"tokensearch: viewer at http://{where}:{settings.port}/  API docs at /docs  "
        f"({'API key required' if settings.api_key else 'no API key'}"
        f"{'' if is_loopback(settings.host) else ', reachable from the network'})",
        file=sys.stderr,
    )
    # a CLI search on this home asks this server instead of loading the index (tokensearch.local_server)
    reach = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(settings.host, where)
    announce(
        settings.home, ServerNote(os.getpid(), f"http://{reach}:{settings.port}", settings.database_url, settings.model)
    )
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=level,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=15,
            **server_options(settings),
        )
    finally:
        withdraw(settings.home, os.getpid())
    return 0


if __name__ == "__main__":  # python -m tokensearch.api.serve (the Docker image's entry point uses the CLI)
    parser = argparse.ArgumentParser(prog="tokensearch-serve")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("TOKENSEARCH_HOME", ".tokensearch")))
    add_serve_arguments(parser)
    ns = parser.parse_args()
    raise SystemExit(run_serve(ns, Settings(home=ns.home)))
