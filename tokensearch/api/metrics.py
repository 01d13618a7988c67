"""Prometheus metrics in the text exposition format (no dependency): requests, latency, index size.

Request metrics are labelled by the *route template* (``/api/v1/documents/{doc_id}``), never the raw path,
so the number of series stays bounded whatever clients send.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(d: dict[str, str]) -> str:
    if not d:
        return ""
    esc = lambda v: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")  # noqa: E731
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in sorted(d.items())) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # bucket counts + [sum, count] at the end
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            h = self.latency.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
            i = bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def render(self, gauges: dict[str, tuple[str, float | dict[tuple, float]]]) -> str:
        """The exposition text; ``gauges`` maps name -> (help, value or {label-tuple: value})."""
        out: list[str] = []
        with self._lock:
            out += [
                "# HELP tokensearch_http_requests_total HTTP requests by method, route and status.",
                "# TYPE tokensearch_http_requests_total counter",
            ]
            for (m, r, s), n in sorted(self.requests.items()):
                out.append(f"tokensearch_http_requests_total{_labels({'method': m, 'route': r, 'status': s})} {n}")
            out += [
                "# HELP tokensearch_http_request_duration_seconds Request latency by method and route.",
                "# TYPE tokensearch_http_request_duration_seconds histogram",
            ]
            for (m, r), h in sorted(self.latency.items()):
                acc = 0.0
                for le, count in zip(BUCKETS, h):
                    acc += count
                    lab = _labels({"method": m, "route": r, "le": repr(le)})
                    out.append(f"tokensearch_http_request_duration_seconds_bucket{lab} {int(acc)}")
                lab = _labels({"method": m, "route": r, "le": "+Inf"})
                out.append(f"tokensearch_http_request_duration_seconds_bucket{lab} {int(h[-1])}")
                base = _labels({"method": m, "route": r})
                out.append(f"tokensearch_http_request_duration_seconds_sum{base} {h[-2]:.6f}")
                out.append(f"tokensearch_http_request_duration_seconds_count{base} {int(h[-1])}")
        out += [
            "# HELP tokensearch_process_start_time_seconds Start time of the server.",
            "# TYPE tokensearch_process_start_time_seconds gauge",
            f"tokensearch_process_start_time_seconds {self.started:.3f}",
        ]
        for name, (help_, value) in gauges.items():
            out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
            if isinstance(value, dict):
                for labels, v in sorted(value.items()):
                    out.append(f"{name}{_labels(dict(labels))} {float(v):g}")
            else:
                out.append(f"{name} {float(value):g}")
        return "\n".join(out) + "\n"


class MetricsMiddleware:
    """Pure ASGI middleware (streaming-safe) timing every HTTP request."""

    def __init__(self, app: Any, metrics: Metrics, skip: Callable[[str], bool] = lambda p: False):
        self.app = app
        self.metrics = metrics
        self.skip = skip

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http" or self.skip(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message):  # noqa: ANN001
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("static" if status < 400 else "unmatched")
            self.metrics.observe(scope.get("method", "?"), template, status, time.perf_counter() - t0)
