"""Errors a user can act on. Every message says what went wrong and how to fix it."""

from __future__ import annotations


class TokensearchError(Exception):
    """Base class: the CLI prints these without a traceback, the API maps them to one error shape."""

    code = "error"
    status = 400


class ModelMismatchError(TokensearchError):
    code = "model_mismatch"
    status = 409


class QueryError(TokensearchError):
    code = "bad_query"
    status = 400


class NotFound(TokensearchError):
    code = "not_found"
    status = 404


class BadDocument(TokensearchError):
    """A file that cannot be indexed; recorded as failed with this reason, never stops a folder."""

    code = "bad_document"
    status = 422


class IndexLayoutError(TokensearchError):
    """The --home / database pair does not hold an index this version can open as asked."""

    code = "index_layout"
    status = 409


class ModelLoadError(TokensearchError):
    """The model named by --model cannot be built (unknown name, missing or mismatched weights)."""

    code = "model_load"
    status = 500
