"""Limits of the HTTP layer, below the ASGI app: an over-long request line gets 414, over-long headers 431.

uvicorn's h11 parser buffers an incomplete request head up to ``h11_max_incomplete_event_size`` (16 KiB), then
answers a bare-text 400 and closes the socket while the client is still sending, which the client sees as a
connection reset (a 1 MB query string did exactly that). :class:`LimitedH11Protocol` measures the request
line as it arrives and answers 414 as soon as it is longer than :func:`max_request_line` (431 for a head
longer than :func:`max_head_bytes`), in the API's one error shape; it then half-closes and reads what the
client still sends, discarding it, for a moment before closing, so that the client reads the answer instead
of a reset. The limit is derived from TOKENSEARCH_MAX_QUERY_CHARS: every query the API accepts fits.
"""

from __future__ import annotations

import asyncio
import json
import re
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from tokensearch.settings import Settings

from .errors import error_body

DRAIN_SECONDS = 2.0  # how long a refused client may keep sending before the socket closes
DRAIN_BYTES = 64 * 2**20
HEADERS_BYTES = 16 * 2**10  # room for the header fields after the request line (h11's default for both)
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def max_request_line(settings: Settings) -> int:
    """Bytes of ``METHOD target HTTP/1.1``: the longest query the API accepts, every character percent-encoded
    (up to 4 UTF-8 bytes, 3 characters each), plus room for the rest of the URL; at least 8 KiB, what common
    servers allow."""
    return max(8192, 12 * settings.max_query_chars + 2048)


def max_head_bytes(settings: Settings) -> int:
    """Bytes of the whole request head (request line and header fields)."""
    return max_request_line(settings) + HEADERS_BYTES


def server_options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.run`` / ``uvicorn.Config`` arguments that apply these limits."""
    limits = {"max_request_line": max_request_line(settings), "max_head": max_head_bytes(settings)}
    return {
        "http": type("LimitedH11Protocol", (LimitedH11Protocol,), limits),
        "h11_max_incomplete_event_size": limits["max_head"],
    }


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering 414/431 itself (see the module docstring); use :func:`server_options`."""

    max_request_line = 8192
    max_head = max_request_line + HEADERS_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drained: int | None = None  # bytes discarded since the refusal; None: not refused
        self._linger: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._drained is not None:
            self._drained += len(data)
            if self._drained > DRAIN_BYTES:
                self.transport.close()
            return
        if self.conn.their_state is h11.IDLE:  # between requests: these bytes start a request head
            head = self.conn.trailing_data[0] + data  # what h11 holds unparsed (under max_head) and the new bytes
            line_end = head.find(b"\n")
            line = len(head) if line_end < 0 else line_end - (head[line_end - 1 : line_end] == b"\r")
            if line > self.max_request_line:
                self._refuse(
                    414,
                    "uri_too_long",
                    f"the request line is longer than {self.max_request_line} bytes: "
                    "shorten the URL (the query parameter q is limited to TOKENSEARCH_MAX_QUERY_CHARS "
                    "characters)",
                )
                return
            end = _HEAD_END.search(head)
            if (end.end() if end else len(head)) > self.max_head:
                self._refuse(431, "headers_too_large", f"the request head is longer than {self.max_head} bytes")
                return
        super().data_received(data)

    def eof_received(self) -> None:
        if self._drained is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` in the one error shape, stop sending, and drain the client for a moment."""
        self.logger.warning("refused a request from %s: %d %s", self.client, status, message)
        body = json.dumps(error_body(code, message), separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\nx-content-type-options: nosniff\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self._drained = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer and then FIN; reading goes on
        self._linger = self.loop.call_later(DRAIN_SECONDS, self.transport.close)
