"""Prometheus metrics in the text exposition format, collected by a pure ASGI middleware.

Requests are labelled by route *template* (``/v1/users/{user_id}/recommendations``), never by raw
path, so the number of series stays bounded whatever clients send.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BUCKETS", "Metrics", "MetricsMiddleware"]

BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the latency histogram."""


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and histograms of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.events: dict[str, int] = {"accepted": 0, "duplicate": 0, "rejected": 0}
        self.rate_limited = 0
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            key = (method, route)
            counts = self.buckets.get(key)
            if counts is None:
                counts = self.buckets[key] = [0] * (len(BUCKETS) + 1)
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[key] += seconds

    def count_events(self, *, accepted: int, duplicates: int, rejected: int) -> None:
        """Count the outcome of one posted batch."""
        with self._lock:
            self.events["accepted"] += accepted
            self.events["duplicate"] += duplicates
            self.events["rejected"] += rejected

    def take(self) -> dict[str, Any]:
        """Every count since the last `take`, reset to zero (what another process's `add` takes in)."""
        with self._lock:
            counts = {
                "requests": dict(self.requests),
                "buckets": self.buckets,
                "sums": dict(self.sums),
                "events": dict(self.events),
                "rate_limited": self.rate_limited,
            }
            self.requests.clear()
            self.buckets = {}
            self.sums.clear()
            self.events = dict.fromkeys(self.events, 0)
            self.rate_limited = 0
        return counts

    def add(self, counts: Mapping[str, Any]) -> None:
        """Add counts from `take` (the intake front process's, sent to the service that shows them)."""
        with self._lock:
            for key, n in counts["requests"].items():
                self.requests[key] += n
            for key, added in counts["buckets"].items():
                mine = self.buckets.setdefault(key, [0] * (len(BUCKETS) + 1))
                for i, n in enumerate(added):
                    mine[i] += n
            for key, seconds in counts["sums"].items():
                self.sums[key] += seconds
            for outcome, n in counts["events"].items():
                self.events[outcome] = self.events.get(outcome, 0) + n
            self.rate_limited += counts["rate_limited"]

    def render(self, *, models: Mapping[str, Mapping[str, Any]], gauges: Mapping[str, float]) -> str:
        """The exposition text: requests, latency histogram, events, model versions, gauges."""
        lines: list[str] = []
        with self._lock:
            lines += [
                "# HELP cartlift_http_requests_total HTTP requests by method, route template and status.",
                "# TYPE cartlift_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(
                    f"cartlift_http_requests_total{_labels(method=method, route=route, status=status)} {n}"
                )
            lines += [
                "# HELP cartlift_http_request_duration_seconds Time to answer, by method and route template.",
                "# TYPE cartlift_http_request_duration_seconds histogram",
            ]
            for (method, route), counts in sorted(self.buckets.items()):
                cumulative = 0
                for bound, n in zip([*map(str, BUCKETS), "+Inf"], counts, strict=True):
                    cumulative += n
                    lines.append(
                        "cartlift_http_request_duration_seconds_bucket"
                        f"{_labels(method=method, route=route, le=bound)} {cumulative}"
                    )
                lines.append(
                    f"cartlift_http_request_duration_seconds_sum{_labels(method=method, route=route)} "
                    f"{self.sums[(method, route)]:.6f}"
                )
                lines.append(
                    f"cartlift_http_request_duration_seconds_count{_labels(method=method, route=route)} {cumulative}"
                )
            lines += [
                "# HELP cartlift_events_ingested_total Posted events by outcome.",
                "# TYPE cartlift_events_ingested_total counter",
            ]
            lines += [
                f"cartlift_events_ingested_total{_labels(outcome=k)} {v}"
                for k, v in sorted(self.events.items())
            ]
            lines += [
                "# HELP cartlift_rate_limited_total Requests refused by the per-key rate limit.",
                "# TYPE cartlift_rate_limited_total counter",
                f"cartlift_rate_limited_total {self.rate_limited}",
            ]
        lines += [
            "# HELP cartlift_model_info The model version each kind serves (1 = loaded).",
            "# TYPE cartlift_model_info gauge",
        ]
        for kind, info in sorted(models.items()):
            lines.append(
                f"cartlift_model_info{_labels(kind=kind, name=str(info.get('name', '')), version=str(info.get('version', '')))} 1"
            )
        for name, value in sorted(gauges.items()):
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Times every HTTP request and counts it under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)
