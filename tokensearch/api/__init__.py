"""REST API (FastAPI) and the web viewer: ``create_app(settings)``; ``tokensearch serve`` runs it."""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any):  # noqa: ANN201 - lazy re-export keeps `import tokensearch.api` light
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
