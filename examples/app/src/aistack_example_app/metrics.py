"""Prometheus metrics of the service contract, recorded by a plain ASGI middleware.

``http_requests_total`` and ``http_request_duration_seconds`` carry the labels method,
path (the route template, ``<unmatched>`` for unknown paths so that scanners cannot blow up
the series count), status and version. Being plain ASGI (not ``BaseHTTPMiddleware``), the
duration of a streaming response covers the whole stream, not just its headers.

With several uvicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory the
service user owns: every worker then writes its samples there and ``/metrics`` adds them up.
"""

import os
import time

from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LABELS = ("method", "path", "status", "version")
# 0.2: the latency threshold of seed 004's SLO (95 % of requests within 200 ms), which a
# burn-rate rule can only count at a bucket bound (aistack.fleet.slo_rules).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The service's metric families, in a registry of their own."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests answered.", LABELS, registry=self.registry)
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response.",
            LABELS,
            buckets=BUCKETS,
            registry=self.registry,
        )

    def initialise(self, routes) -> None:
        """Create the 200 and 500 series of every API route at zero, as Prometheus advises: a
        series that first appears with its first request loses that request to increase() and
        rate(), so a new release's first errors would be missed by a gate reading Prometheus."""
        for route in routes:
            if not isinstance(route, APIRoute):
                continue
            for method in sorted(route.methods - {"HEAD"}):
                for status in ("200", "500"):
                    labels = (method, route.path, status, self.version)
                    self.requests.labels(*labels)
                    self.duration.labels(*labels)

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        labels = (method, path, str(status), self.version)
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format, summed over workers in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Count and time every HTTP request by its route template and final status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "<unmatched>"
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - started)
