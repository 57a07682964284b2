"""The server's Prometheus metrics (prometheus-client) and the ASGI middleware that records each request.

One registry per app, so two apps in one process (tests) keep their own counts. ``GET /metrics`` returns
``Telemetry.exposition()`` in the Prometheus text format."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Telemetry:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # the app's own paths (create_app fills them in); any other is counted as "other": unbounded label values
        # would be a leak
        self.routes: set[str] = set()
        self.registry = CollectorRegistry()
        self.requests = Counter("genre_lab_requests", "HTTP requests answered", ["path", "status"],
                                registry=self.registry)
        self.errors = Counter("genre_lab_errors", "HTTP requests answered with a 4xx or 5xx status",
                              ["path", "status"], registry=self.registry)
        self.latency = Histogram("genre_lab_request_seconds", "time from request to the end of its response",
                                 ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("genre_lab_requests_in_flight", "requests being answered", registry=self.registry)
        self.batch_rows = Histogram("genre_lab_batch_rows", "texts per model call (micro-batch size)",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("genre_lab_batch_seconds", "seconds per model call",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("genre_lab_predicted_rows", "movies and texts predicted", registry=self.registry)

    def observe_batch(self, rows: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.batch_seconds.observe(seconds)
        self.rows.inc(rows)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        path = path if path in self.routes else "other"
        self.requests.labels(path, str(status)).inc()
        if status >= 400:
            self.errors.labels(path, str(status)).inc()
        self.latency.labels(path).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Observed:
    """ASGI middleware: each HTTP request's path, status and duration into ``telemetry``."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app, self.telemetry = app, telemetry

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500  # an app that dies before answering counts as a 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.telemetry.in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            self.telemetry.in_flight.dec()
            self.telemetry.observe_request(scope["path"], status, time.perf_counter() - start)
